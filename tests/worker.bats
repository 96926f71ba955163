#!/usr/bin/env bats
# np-worker: concurrency limits across workers, crash recovery and
# reattachment, the circuit breaker, SIGHUP and SIGTERM.
# shellcheck disable=SC2154

load helpers

setup_file() {
	scan_servers s1 '{"pending_seconds":0.05,"running_seconds":0.6}' \
		s2 '{"pending_seconds":0.05,"running_seconds":0.3}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	fake_reset s1
	fake_reset s2
	scan_env
	keys_scanner s1 2 | scan_config
}

# Stops the workers this test started (never another file's).
teardown() {
	local p
	for p in $(jobs -p); do kill "$p" 2> /dev/null || true; done
}

enqueue() {
	np-enqueue -n "${2:-t}" -T "${1:-10.0.0.1}" | jq -r .task_id
}

# scanning SECONDS: queues a task whose scan runs SECONDS on s1, starts a
# worker (pid in w, log in w.log) and waits until the Nessus scan exists.
scanning() {
	fake s1 POST /__fake/config "{\"running_seconds\":$1}" > /dev/null
	id=$(enqueue)
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	within 5 has_scan "$id"
}

has_scan() {
	[ "$(task nessus_scan_id "$1")" != null ]
}

@test "two workers, one 2-slot scanner: never more than 2 scans at once" {
	for i in $(seq 8); do enqueue "10.0.0.$i" > /dev/null; done
	drain 2> "$BATS_TEST_TMPDIR/w1.log" &
	drain 2> "$BATS_TEST_TMPDIR/w2.log" &
	wait
	run -0 np-status --list --status completed
	[ "${#lines[@]}" -eq 8 ]
	run -0 fake s1 GET /__fake/scans
	jq -e '.max_concurrent_running <= 2 and (.scans | length) == 8' <<< "$output"
	# Both workers took tasks... or at least none ran twice.
	[ "$(jq '[.scans[].launches] | add' <<< "$output")" -eq 8 ]
}

@test "least-loaded scanner gets the work; both scanners are used" {
	{ keys_scanner s1 1; keys_scanner s2 1; } | scan_config
	for i in $(seq 6); do enqueue "10.0.1.$i" > /dev/null; done
	run -0 drain
	run -0 np-status --list
	[ "$(jq -r .scanner_instance <<< "$output" | sort -u | wc -l)" -eq 2 ]
	run -0 fake s1 GET /__fake/scans
	jq -e '.max_concurrent_running <= 1' <<< "$output"
	run -0 fake s2 GET /__fake/scans
	jq -e '.max_concurrent_running <= 1' <<< "$output"
}

@test "an instance-targeted task waits for its scanner" {
	{ keys_scanner s1 1; keys_scanner s2 1; } | scan_config
	id=$(np-enqueue -n t -T 10.0.0.1 -i s2 | jq -r .task_id)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task scanner_instance "$id")" = s2 ]
	run -0 fake s1 GET /__fake/scans
	jq -e '.scans | length == 0' <<< "$output"
}

@test "kill -9 of the worker mid-scan: a new worker reattaches, same Nessus scan" {
	scanning 3
	sid=$(task nessus_scan_id "$id")
	[ "$sid" != null ]
	kill -9 "$w"
	wait "$w" || true
	# The orphaned np-scan stops (parent-death signal), leaving the scan running.
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/scans")'
	[ "${#lines[@]}" -eq 1 ]
	run -0 redis-cli -s "$REDIS_SOCK" zcard 'np:{nessus}:slots:s1'
	assert_output 0
}

@test "a task runs in the worker's child, which ps and pgrep show as np-scan TASK" {
	scanning 3
	run -0 pgrep -f "^np-scan $id\$"
	[ "${#lines[@]}" -eq 1 ]
	p=${lines[0]}
	[ "$(ps -o ppid= -p "$p" | tr -d ' ')" = "$w" ]
	[ "$(cat "/proc/$p/comm")" = np-scan ]
	[ "$(tr -d '\0' < "/proc/$p/cmdline")" = "np-scan $id" ]
	# Its log lines say np-scan, as an exec'd np-scan's would.
	grep -q "^np-scan: task $id: nessus scan" "$BATS_TEST_TMPDIR/w.log"
	kill -TERM "$w"
	wait "$w"
}

@test "a child that exits 0 or 1 without ending its task (a sanitizer's report, say): an attempt, never a lost task" {
	keys_scanner s1 2 | scan_config $'  max_attempts: 3\n'
	for code in 0 1; do
		printf '#!/bin/sh\nexit %s\n' "$code" > "$BATS_TEST_TMPDIR/np-scan"
		chmod +x "$BATS_TEST_TMPDIR/np-scan"
		id=$(enqueue)
		NP_SCAN_BIN=$BATS_TEST_TMPDIR/np-scan run -0 drain
		[ "$(task status "$id")" = failed ]
		[ "$(task failure_reason "$id")" = attempts_exhausted ]
		task error "$id" | grep -q "after 3 attempts: np-scan exited without ending the task"
		run -0 redis-cli -s "$REDIS_SOCK" zscore 'np:{nessus}:dlq' "$id"
		[ -n "$output" ]
	done
}

@test "SIGTERM: the worker hands its task back and exits 0; the scan keeps running" {
	scanning 5
	kill -TERM "$w"
	wait "$w"
	[ "$(task status "$id")" = queued ]
	[ "$(task attempts "$id")" = 0 ]
	sid=$(task nessus_scan_id "$id")
	run -0 fake_requests s1 'select(.path | endswith("/stop"))'
	assert_output ""
	run -0 redis-cli -s "$REDIS_SOCK" lrange 'np:{nessus}:iq:s1' 0 -1
	assert_output "$id"
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
}

@test "breaker: opens after the threshold, a probe after the cooldown closes it" {
	fake s1 POST /__fake/inject '{"errors":[{"route":"POST /scans","status":500,"count":6}]}' > /dev/null
	keys_scanner s1 1 | scan_config $'  breaker_cooldown: 2s\n  max_attempts: 1\n  breaker_threshold: 2\n'
	a=$(enqueue 10.0.0.1 a)
	b=$(enqueue 10.0.0.2 b)
	c=$(enqueue 10.0.0.3 c)
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	for _ in $(seq 100); do
		[ "$(task status "$b")" = failed ] && break
		sleep 0.05
	done
	[ "$(task status "$a")" = failed ]
	run -0 np-select --list
	jq -e '.breaker == "open"' <<< "$output"
	# While open, c waits in line.
	[ "$(task status "$c")" = queued ]
	run -69 np-select --pool nessus
	# After the cooldown one probe goes; the fake is healthy again.
	fake s1 POST /__fake/reset '{"all":true}' > /dev/null
	for _ in $(seq 100); do
		[ "$(task status "$c")" = completed ] && break
		sleep 0.1
	done
	kill -TERM "$w"
	wait "$w"
	[ "$(task status "$c")" = completed ]
	run -0 np-select --list
	jq -e '.breaker == "closed" and .consecutive_failures == 0' <<< "$output"
}

@test "SIGHUP reloads the config; a broken one is refused and the old one kept" {
	fake s1 POST /__fake/config '{"running_seconds":1.5}' > /dev/null
	keys_scanner s1 1 | scan_config
	for i in $(seq 6); do enqueue "10.0.2.$i" > /dev/null; done
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	sleep 0.5
	cp "$NP_CONFIG" "$BATS_TEST_TMPDIR/good.yaml"
	printf 'colour: blue\n' >> "$NP_CONFIG"
	kill -HUP "$w"
	for _ in $(seq 100); do
		grep -q "reload refused" "$BATS_TEST_TMPDIR/w.log" && break
		sleep 0.05
	done
	grep -q "reload refused" "$BATS_TEST_TMPDIR/w.log"
	kill -0 "$w"
	sed 's/max_concurrent_scans: 1/max_concurrent_scans: 3/' "$BATS_TEST_TMPDIR/good.yaml" > "$NP_CONFIG"
	kill -HUP "$w"
	for _ in $(seq 150); do
		[ "$(np-status --list --status completed | wc -l)" -eq 6 ] && break
		sleep 0.1
	done
	kill -TERM "$w"
	wait "$w"
	grep -q "config reloaded" "$BATS_TEST_TMPDIR/w.log"
	run -0 fake s1 GET /__fake/scans
	jq -e '.max_concurrent_running > 1 and .max_concurrent_running <= 3' <<< "$output"
}

@test "no secret in logs, records, status output, Redis or ps during a run" {
	printf 'Api-Secret-5521\n' > "$BATS_TEST_TMPDIR/api.secret"
	fake s1 POST /__fake/config '{"api_keys":[{"access_key":"accesskey","secret_key":"Api-Secret-5521"}],"running_seconds":1,
	  "accounts":[{"username":"scanuser","password":"Ssh-Secret-9917","privileged":false}]}' > /dev/null
	id=$(np-enqueue --json <<< '{"name":"db","targets":"10.0.0.9","scan_type":"authenticated",
	  "ssh_username":"scanuser","ssh_password":"Ssh-Secret-9917"}' | jq -r .task_id)
	NP_LOG_LEVEL=debug np-worker --drain > "$BATS_TEST_TMPDIR/w.out" 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	: > "$BATS_TEST_TMPDIR/ps"
	while kill -0 "$w" 2> /dev/null; do
		cat /proc/[0-9]*/cmdline 2> /dev/null | tr '\0' ' ' >> "$BATS_TEST_TMPDIR/ps"
		np-status "$id" >> "$BATS_TEST_TMPDIR/status" 2>&1
		sleep 0.1
	done
	wait "$w"
	[ "$(task status "$id")" = completed ]
	grep -q "np-scan $id" "$BATS_TEST_TMPDIR/ps"
	for s in Api-Secret-5521 Ssh-Secret-9917; do
		run -1 grep -rq "$s" "$NP_DATA_DIR" "$BATS_TEST_TMPDIR/w.log" "$BATS_TEST_TMPDIR/w.out" \
			"$BATS_TEST_TMPDIR/status" "$BATS_TEST_TMPDIR/ps"
		for k in $(redis-cli -s "$REDIS_SOCK" --scan); do
			[ "$(redis-cli -s "$REDIS_SOCK" dump "$k" | grep -c "$s")" = 0 ]
		done
	done
	grep -q "np-scan" "$BATS_TEST_TMPDIR/w.log"
}

@test "usage and config errors" {
	run -64 np-worker extra
	run -78 np-worker --pools nope
	run -0 np-worker --help
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/none.sock run -75 np-worker --drain
}
