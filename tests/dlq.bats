#!/usr/bin/env bats
# np-dlq: dead tasks listed, inspected, retried (atomically), purged
# (exact counts), counted.
# shellcheck disable=SC2154

load helpers

setup_file() {
	scan_servers s1 '{"pending_seconds":0.05,"running_seconds":0.2}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	fake_reset s1
	scan_env
	keys_scanner s1 2 | scan_config
}

rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# bury N: N tasks made dead by hand (record failed + DLQ entry), fast.
bury() {
	local i id
	for i in $(seq "$1"); do
		printf '{"name":"d%d","targets":"10.9.%d.%d"}\n' "$i" $((i / 200)) $((i % 200))
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	rcli del 'np:{nessus}:queue' > /dev/null
	while read -r id; do
		f=$NP_DATA_DIR/tasks/$id/task.json
		jq '.status = "failed" | .failure_reason = "scanner_error" | .error = "boom" | .attempts = 2' \
			"$f" > "$f.new" && mv "$f.new" "$f"
		printf 'ZADD np:{nessus}:dlq %s %s\n' "$(date +%s%3N)" "$id"
	done < "$BATS_TEST_TMPDIR/ids" | rcli > /dev/null
}

@test "a scan failing forever ends dead with reason and attempts; retry brings it back and it completes" {
	fake s1 POST /__fake/inject '{"errors":[{"route":"POST /scans","status":500,"count":null}]}' > /dev/null
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	run -0 np-dlq list
	jq -e --arg id "$id" '.task_id == $id and .reason == "attempts_exhausted" and .attempts == 2 and
	    .pool == "nessus" and (.error | test("500"))' <<< "$output"
	run -0 np-dlq inspect "$id"
	jq -e '(.history | map(.event) | index("requeued")) != null and .task.status == "failed"' <<< "$output"
	fake_reset s1
	run -0 np-dlq retry "$id"
	jq -e '.status == "queued"' <<< "$output"
	[ "$(task attempts "$id")" = 0 ]
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 0
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 rcli hget 'np:{nessus}:counters' dlq_retries
	assert_output 1
	# The history keeps every attempt.
	[ "$(jq '[.history[] | select(.event == "started")] | length' "$NP_DATA_DIR/tasks/$id/task.json")" -eq 3 ]
}

@test "a retried task whose scan ran is launched again, not re-created" {
	fake s1 POST /__fake/inject '{"download":"not_xml"}' > /dev/null
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	run -0 drain
	[ "$(task failure_reason "$id")" = download_invalid ]
	sid=$(task nessus_scan_id "$id")
	fake s1 POST /__fake/inject '{"download":null}' > /dev/null
	run -0 np-dlq retry "$id"
	run -0 rcli lrange 'np:{nessus}:iq:s1' 0 -1
	assert_output "$id"
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	run -0 fake s1 GET /__fake/scans
	jq -e --argjson sid "$sid" '(.scans | length) == 1 and .scans[0].id == $sid and .scans[0].launches == 2' <<< "$output"
}

@test "retry --all over 200 entries moves exactly 200" {
	bury 200
	run -0 np-dlq stats
	jq -e '.dead == 200 and .by_reason.scanner_error == 200' <<< "${lines[0]}"
	run -0 np-dlq retry --all
	jq -e '.retried == 200 and .failed == 0' <<< "$output"
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 200
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 0
	run -0 np-status --list --status queued --limit 1000
	[ "${#lines[@]}" -eq 200 ]
}

@test "retry of a task not dead: 66; retry filters by reason" {
	bury 3
	id=$(head -1 "$BATS_TEST_TMPDIR/ids")
	f=$NP_DATA_DIR/tasks/$id/task.json
	jq '.failure_reason = "scan_aborted"' "$f" > "$f.new" && mv "$f.new" "$f"
	run -0 np-dlq retry --all --reason scan_aborted
	jq -e '.retried == 1' <<< "$output"
	run -66 np-dlq retry "$id"
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 2
}

@test "purge: exact counts; --older-than; --delete-records" {
	bury 5
	run -0 np-dlq purge --older-than 1h --yes
	jq -e '.purged == 0' <<< "$output"
	run -0 np-dlq purge --yes
	jq -e '.purged == 5 and .records_deleted == 0' <<< "$output"
	run -0 np-dlq purge --yes
	jq -e '.purged == 0' <<< "$output"
	bury 3
	run -0 np-dlq purge --yes --delete-records
	jq -e '.purged == 3 and .records_deleted == 3' <<< "$output"
	[ "$(find "$NP_DATA_DIR/tasks" -name task.json | wc -l)" -eq 5 ]
}

@test "purge without --yes and without a terminal refuses with 64" {
	bury 2
	run -64 np-dlq purge < /dev/null
	assert_output --partial "refusing without --yes"
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 2
}

@test "list: newest first, --limit, --reason, --human; never credentials" {
	id=$(np-enqueue --json <<< '{"name":"a","targets":"10.0.0.1","scan_type":"authenticated","ssh_username":"u","ssh_password":"Dlq-Secret-33"}' | jq -r .task_id)
	fake s1 POST /__fake/inject '{"errors":[{"route":"POST /scans","status":500,"count":null}]}' > /dev/null
	run -0 drain
	bury 3
	run -0 np-dlq list --limit 2
	[ "${#lines[@]}" -eq 2 ]
	last=$(tail -1 "$BATS_TEST_TMPDIR/ids")
	jq -e --arg id "$last" '.task_id == $id' <<< "${lines[0]}"
	run -0 np-dlq list --reason attempts_exhausted
	[ "${#lines[@]}" -eq 1 ]
	run -0 np-dlq list --human
	assert_line --partial "TASK"
	run -0 np-dlq inspect "$id"
	refute_output --partial "Dlq-Secret-33"
	run -0 np-dlq list
	refute_output --partial "Dlq-Secret-33"
}

@test "usage: bad subcommands and flags exit 64; Redis down 75" {
	run -64 np-dlq
	run -64 np-dlq nope
	run -64 np-dlq retry
	run -64 np-dlq retry --all 20261123T185000Z-0000000000000000
	run -64 np-dlq list --older-than soon
	run -64 np-dlq list --pool nope
	run -65 np-dlq inspect ../x
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 np-dlq list
}

@test "a failed task whose dead-letter entry was never made (np-scan died, or Redis was away) is dead-lettered when it comes back" {
	id=$(np-enqueue -n lost -T 10.0.0.1 | jq -er .task_id)
	# np-scan wrote the failure to the record, then died: no DLQ entry,
	# and the index still says queued. Recovery puts it back in line.
	f=$NP_DATA_DIR/tasks/$id/task.json
	jq -c '.status = "failed" | .failure_reason = "scan_aborted" | .error = "aborted"' "$f" > "$BATS_TEST_TMPDIR/t.json"
	cat "$BATS_TEST_TMPDIR/t.json" > "$f"
	[ "$(rcli zcard 'np:{nessus}:dlq')" = 0 ]
	run -0 drain
	[ "$(rcli zscore 'np:{nessus}:dlq' "$id")" -gt 0 ]
	run -0 np-dlq list
	[ "$(jq -r .task_id <<< "$output")" = "$id" ]
	[ "$(np-status --list --status failed | jq -r .task_id)" = "$id" ]
	[ "$(jq -r .status "$f")" = failed ]
	# Nothing ran on the scanner.
	[ -z "$(fake_requests s1 'select(.method == "POST")')" ]
}
