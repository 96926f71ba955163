#!/usr/bin/env bats
# np-cancel: queued, running, finished, twice, and racing the worker.
# shellcheck disable=SC2154

load helpers

setup_file() {
	scan_servers s1 '{"pending_seconds":0.05,"running_seconds":0.3}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	fake_reset s1
	scan_env
	keys_scanner s1 4 | scan_config
}

teardown() {
	local p
	for p in $(jobs -p); do kill "$p" 2> /dev/null || true; done
}

rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

@test "queued: out of the queue, cancelled; twice is fine" {
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	other=$(np-enqueue -n t -T 10.0.0.2 -i s1 | jq -r .task_id)
	run -0 np-cancel "$id"
	jq -e '.status == "cancelled" and .previous_status == "queued"' <<< "$output"
	run -0 np-cancel "$other"
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 0
	run -0 rcli llen 'np:{nessus}:iq:s1'
	assert_output 0
	[ "$(task status "$id")" = cancelled ]
	[ "$(task completed_at "$id")" != null ]
	run -0 np-cancel "$id"
	jq -e '.previous_status == "cancelled"' <<< "$output"
	run -0 drain
	run -0 fake s1 GET /__fake/scans
	jq -e '.scans | length == 0' <<< "$output"
}

@test "running: the Nessus scan is stopped, the slot released, the task cancelled" {
	fake s1 POST /__fake/config '{"running_seconds":20}' > /dev/null
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	for _ in $(seq 100); do
		[ "$(task launched_at "$id")" != null ] && break
		sleep 0.05
	done
	sid=$(task nessus_scan_id "$id")
	run -0 np-cancel "$id"
	jq -e '.previous_status == "running" and .nessus_scan_stopped == true' <<< "$output"
	[ "$(task status "$id")" = cancelled ]
	run -0 fake_requests s1 "select(.path == \"/scans/$sid/stop\")"
	[ "${#lines[@]}" -ge 1 ]
	for _ in $(seq 60); do
		[ "$(rcli zcard 'np:{nessus}:slots:s1')" = 0 ] && [ "$(rcli zcard 'np:{nessus}:claims')" = 0 ] && break
		sleep 0.05
	done
	run -0 rcli zcard 'np:{nessus}:slots:s1'
	assert_output 0
	kill -TERM "$w"
	wait "$w"
	[ "$(task status "$id")" = cancelled ]
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 0
}

@test "finished: exit 1 naming the state" {
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	run -0 drain
	run -1 np-cancel "$id"
	assert_output --partial "is completed"
	[ "$(task status "$id")" = completed ]
}

@test "bad ids and usage" {
	run -65 np-cancel ../etc
	run -66 np-cancel 20261123T185000Z-0000000000000000
	run -64 np-cancel
	run -64 np-cancel a b
}

@test "cancel racing the worker: every task ends cancelled or completed, nothing leaks" {
	fake s1 POST /__fake/config '{"running_seconds":0.5}' > /dev/null
	for i in $(seq 20); do
		printf '{"name":"r%d","targets":"10.8.0.%d"}\n' "$i" "$i"
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	while read -r id; do
		np-cancel "$id" > /dev/null 2>&1 &
		sleep 0.02
	done < "$BATS_TEST_TMPDIR/ids"
	wait $(jobs -p | grep -v "^$w$") 2> /dev/null || true
	for _ in $(seq 100); do
		[ "$(rcli zcard 'np:{nessus}:claims')" = 0 ] && break
		sleep 0.1
	done
	kill -TERM "$w"
	wait "$w"
	while read -r id; do
		st=$(task status "$id")
		[ "$st" = cancelled ] || [ "$st" = completed ] || { echo "$id: $st"; false; }
	done < "$BATS_TEST_TMPDIR/ids"
	[ "$(rcli zcard 'np:{nessus}:slots:s1')" = 0 ]
	[ "$(rcli llen 'np:{nessus}:queue')" = 0 ]
	# A cancelled task's scan was never launched, or was told to stop.
	run -0 fake s1 GET /__fake/scans
	scans=$output
	stops=$(fake_requests s1 'select(.path | endswith("/stop")) | .path')
	while read -r id; do
		[ "$(task status "$id")" = cancelled ] || continue
		sid=$(task nessus_scan_id "$id")
		[ "$sid" = null ] && continue
		launches=$(jq --argjson sid "$sid" '.scans[] | select(.id == $sid) | .launches' <<< "$scans")
		[ "$launches" = 0 ] || grep -q "/scans/$sid/stop" <<< "$stops"
	done < "$BATS_TEST_TMPDIR/ids"
}
