#!/usr/bin/env bats
# Chaos: scanner faults. 5xx bursts, timeouts, dropped connections, a
# scanner that dies mid-scan and comes back empty, one that hangs for a
# while (SIGSTOP, SIGCONT), one whose TLS certificate changes. Each ends
# as np-scan(1) documents, with the circuit breaker in the state
# np-worker(8) documents, as np-select --list shows it.
# shellcheck disable=SC2154

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../../build/rel/bin}
load ../helpers
load chaos

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	"$BATS_TEST_DIRNAME/../fake-nessus/mkcert.sh" "$BATS_FILE_TMPDIR/tls" > /dev/null 2>&1
	"$BATS_TEST_DIRNAME/../fake-nessus/mkcert.sh" "$BATS_FILE_TMPDIR/tls2" > /dev/null 2>&1
}

teardown_file() {
	redis_stop
}

setup() {
	redis_flush
	FAKE_DIR=$BATS_TEST_TMPDIR/fakes
	export FAKE_DIR
	mkdir -p "$FAKE_DIR"
	cp -r "$BATS_FILE_TMPDIR/tls" "$FAKE_DIR/tls"
	fake_start s1 "$FAKE_DIR" '{"pending_seconds":0.05,"running_seconds":0.3}'
	scan_env
	keys_scanner s1 2 | scan_config $'  max_attempts: 10\n'
}

teardown() {
	local f
	# A stopped fake cannot die of SIGTERM: let it go on first.
	for f in "$FAKE_DIR"/*.pid; do
		[ -f "$f" ] && kill -CONT "$(cat "$f")" 2> /dev/null
	done
	kill_tracked
	fake_stop "$FAKE_DIR"
}

enqueue() {
	np-enqueue -n "${2:-t}" -T "${1:-10.0.0.1}" ${3:+-i "$3"} | jq -er .task_id
}

inject() { # inject FAKE JSON
	fake "$1" POST /__fake/inject "$2" > /dev/null
}

# breaker INSTANCE: "state failures", as np-select --list shows them.
breaker() {
	np-select --list --pool nessus |
		jq -r --arg i "$1" 'select(.instance_id == $i) | "\(.breaker) \(.consecutive_failures)"'
}

breaker_is() { # breaker_is INSTANCE STATE
	[ "$(breaker "$1" | cut -d' ' -f1)" = "$2" ]
}

# kill_fake NAME: the fake dies at once (SIGKILL), as a crashed scanner.
kill_fake() {
	kill -9 "$(cat "$FAKE_DIR/$1.pid")"
	wait "$(cat "$FAKE_DIR/$1.pid")" 2> /dev/null || true
	rm -f "$FAKE_DIR/$1.pid"
}

@test "5xx bursts on polls: retried in the step, then in new attempts on the same scan; breaker closed again" {
	inject s1 '{"errors":[{"route":"GET /scans/*","status":503,"count":6}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	# retry_attempts 3: two attempts used up 3 answers each, the third went through.
	[ "$(task attempts "$id")" = 3 ]
	run -0 fake_requests s1 'select(.status == 503)'
	[ "${#lines[@]}" -eq 6 ]
	once s1 -- "$id"
	settled nessus "$id"
	[ "$(breaker s1)" = "closed 0" ]
}

@test "a 5xx storm on one scanner: its breaker opens, the other takes the work, a probe closes it" {
	fake_start s2 "$FAKE_DIR" '{"pending_seconds":0.05,"running_seconds":0.3}'
	{ keys_scanner s1 2; keys_scanner s2 2; } |
		scan_config $'  max_attempts: 10\n  breaker_threshold: 2\n  breaker_cooldown: 2s\n  retry_attempts: 2\n'
	inject s1 '{"errors":[{"route":"*","status":502,"count":null}]}'
	for i in $(seq 8); do enqueue "10.0.4.$i"; done > "$BATS_TEST_TMPDIR/ids"
	start_worker
	within 20 breaker_is s1 open
	breaker_is s2 closed
	# The scanner heals; after the cooldown a probe closes the breaker.
	inject s1 '{"errors":null}'
	id=$(enqueue 10.0.5.1 late s1)
	within 30 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id/task.json')\" = completed ]"
	within 10 breaker_is s1 closed
	run -0 drain
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	ids+=("$id")
	for i in "${ids[@]}"; do [ "$(task status "$i")" = completed ]; done
	settled nessus "${ids[@]}"
	once s1 s2 -- "${ids[@]}"
	[ "$(breaker s1)" = "closed 0" ]
	[ "$(breaker s2)" = "closed 0" ]
	# No create reached s1 while it failed: 502s are answered before.
	run -0 fake_requests s1 'select(.status == 502) | .path'
	[ "${#lines[@]}" -ge 2 ]
}

@test "timeouts: slow polls are retried; a launch whose answer is late is not launched twice" {
	keys_scanner s1 2 | scan_config $'  max_attempts: 10\n  request_timeout: 400ms\n'
	fake s1 POST /__fake/config '{"running_seconds":2}' > /dev/null
	inject s1 '{"slow":[{"route":"POST /scans/*/launch","seconds":1},
		{"route":"GET /scans/*","seconds":1,"count":2}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task attempts "$id")" = 1 ]
	# The late first launch came after the retried one: Nessus said 409.
	run -0 fake_requests s1 'select(.path | endswith("/launch")) | .status'
	[ "$(sort <<< "$output" | tr '\n' ' ')" = "200 409 " ]
	once s1 -- "$id"
	settled nessus "$id"
	[ "$(breaker s1)" = "closed 0" ]
}

@test "dropped connections at every step are retried; one scan, one launch" {
	inject s1 '{"drop":[{"route":"GET /editor/scan/templates","count":1},
		{"route":"POST /scans/*/launch","count":1},{"route":"GET /scans/*","count":2},
		{"route":"POST /scans/*/export","count":1},{"route":"GET /scans/*/export/*/status","count":1},
		{"route":"GET /scans/*/export/*/download","count":1}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task attempts "$id")" = 1 ]
	run -0 fake_requests s1 'select(.injected == "drop")'
	[ "${#lines[@]}" -eq 7 ]
	once s1 -- "$id"
	settled nessus "$id"
	[ "$(breaker s1)" = "closed 0" ]
}

@test "scanner dies mid-scan and comes back at once without its scans: scan_deleted, breaker closed" {
	keys_scanner s1 2 | scan_config $'  max_attempts: 10\n  retry_attempts: 4\n  retry_backoff: 300ms\n'
	fake s1 POST /__fake/config '{"running_seconds":5}' > /dev/null
	port=$(port_of s1)
	id=$(enqueue)
	start_worker
	within 10 sh -c "[ \"\$(jq -r .nessus_status '$NP_DATA_DIR/tasks/$id/task.json')\" = running ]"
	sid=$(task nessus_scan_id "$id")
	kill_fake s1
	fake_at s1 "$FAKE_DIR" "$port" '{"pending_seconds":0.05,"running_seconds":0.3}'
	within 20 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id/task.json')\" = failed ]"
	[ "$(task failure_reason "$id")" = scan_deleted ]
	[ "$(task attempts "$id")" = 1 ]
	[[ "$(task error "$id")" == *404* ]] || [[ "$(task error "$id")" == *"not found"* ]]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	# The retries spanned the restart: nothing counted against the scanner.
	[ "$(breaker s1)" = "closed 0" ]
	# The new instance runs new work.
	id2=$(enqueue 10.0.0.2)
	within 20 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id2/task.json')\" = completed ]"
	kill -TERM "$W"
	wait "$W"
	settled nessus "$id" "$id2"
	once s1 -- "$id2"
	run -0 np-dlq list
	jq -e --arg id "$id" 'select(.task_id == $id) | .reason == "scan_deleted"' <<< "$output"
}

@test "scanner down for a while, back without its scans: breaker opens, the probe ends scan_deleted (half-open), the next closes it" {
	keys_scanner s1 2 | scan_config $'  max_attempts: 20\n  retry_attempts: 2\n  breaker_threshold: 1\n  breaker_cooldown: 1s\n'
	fake s1 POST /__fake/config '{"running_seconds":5}' > /dev/null
	port=$(port_of s1)
	id=$(enqueue)
	start_worker
	within 10 sh -c "[ \"\$(jq -r .nessus_status '$NP_DATA_DIR/tasks/$id/task.json')\" = running ]"
	kill_fake s1
	within 10 breaker_is s1 open
	[ "$(task status "$id")" != failed ]
	sleep 1.5
	fake_at s1 "$FAKE_DIR" "$port" '{"pending_seconds":0.05,"running_seconds":0.3}'
	within 20 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id/task.json')\" = failed ]"
	[ "$(task failure_reason "$id")" = scan_deleted ]
	# Its attempts were the transient failures, then the probe.
	[ "$(task attempts "$id")" -ge 2 ]
	# A probe that ended another way than completed leaves it half-open.
	within 5 breaker_is s1 half_open
	id2=$(enqueue 10.0.0.2)
	within 20 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id2/task.json')\" = completed ]"
	[ "$(breaker s1)" = "closed 0" ]
	kill -TERM "$W"
	wait "$W"
	settled nessus "$id" "$id2"
}

@test "scanner hangs for a while (SIGSTOP, SIGCONT): the task reattaches to the same scan, breaker opens then closes" {
	keys_scanner s1 2 | scan_config $'  max_attempts: 20\n  request_timeout: 500ms\n  connect_timeout: 500ms\n  retry_attempts: 2\n  breaker_threshold: 2\n  breaker_cooldown: 1s\n'
	fake s1 POST /__fake/config '{"running_seconds":4}' > /dev/null
	id=$(enqueue)
	start_worker
	within 10 sh -c "[ \"\$(jq -r .nessus_status '$NP_DATA_DIR/tasks/$id/task.json')\" = running ]"
	sid=$(task nessus_scan_id "$id")
	kill -STOP "$(cat "$FAKE_DIR/s1.pid")"
	within 15 breaker_is s1 open
	kill -CONT "$(cat "$FAKE_DIR/s1.pid")"
	within 30 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id/task.json')\" = completed ]"
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	[ "$(task attempts "$id")" -ge 2 ]
	[ "$(breaker s1)" = "closed 0" ]
	kill -TERM "$W"
	wait "$W"
	settled nessus "$id"
	once s1 -- "$id"
}

@test "TLS certificate changed between tasks: fails closed (scanner_auth), nothing sent; insecure: true goes on" {
	port=$(port_of s1)
	a=$(enqueue)
	run -0 drain
	[ "$(task status "$a")" = completed ]
	kill_fake s1
	fake_at s1 "$FAKE_DIR" "$port" '{"pending_seconds":0.05,"running_seconds":0.3}' "$BATS_FILE_TMPDIR/tls2"
	b=$(enqueue 10.0.0.2)
	run -0 --separate-stderr drain
	[ "$(task status "$b")" = failed ]
	[ "$(task failure_reason "$b")" = scanner_auth ]
	[ "$(task attempts "$b")" = 1 ]
	[[ "$(task error "$b")" == *"not trusted"* ]]
	# Not one request got through the handshake.
	run -0 fake_requests s1
	assert_output ""
	[ "$(breaker s1)" = "closed 1" ]
	settled nessus "$a" "$b"
	# Configured insecure, the same scanner is used.
	{
		printf -- '- instance_id: s1\n  url: %s\n  insecure: true\n' "$(cat "$FAKE_DIR/s1.url")"
		printf '  access_key: accesskey\n  secret_key_file: %s\n' "$BATS_TEST_TMPDIR/api.secret"
	} | scan_config $'  max_attempts: 10\n'
	c=$(enqueue 10.0.0.3)
	run -0 --separate-stderr drain
	[ "$(task status "$c")" = completed ]
	[[ "$stderr" == *"TLS verification is off"* ]]
	once s1 -- "$c"
	[ "$(breaker s1)" = "closed 0" ]
}

@test "TLS certificate changed mid-scan: the running task fails closed at once (scanner_auth), never retried" {
	# The retries span the restart: the scanner is back when np-scan asks.
	keys_scanner s1 2 | scan_config $'  max_attempts: 10\n  breaker_threshold: 5\n  retry_attempts: 4\n  retry_backoff: 300ms\n'
	fake s1 POST /__fake/config '{"running_seconds":5}' > /dev/null
	port=$(port_of s1)
	id=$(enqueue)
	start_worker
	within 10 sh -c "[ \"\$(jq -r .nessus_status '$NP_DATA_DIR/tasks/$id/task.json')\" = running ]"
	kill_fake s1
	fake_at s1 "$FAKE_DIR" "$port" '{"pending_seconds":0.05,"running_seconds":0.3}' "$BATS_FILE_TMPDIR/tls2"
	within 20 sh -c "[ \"\$(jq -r .status '$NP_DATA_DIR/tasks/$id/task.json')\" = failed ]"
	[ "$(task failure_reason "$id")" = scanner_auth ]
	[ "$(task attempts "$id")" = 1 ]
	[[ "$(task error "$id")" == *"not trusted"* ]]
	kill -TERM "$W"
	wait "$W"
	run -0 fake_requests s1
	assert_output ""
	[ "$(breaker s1)" = "closed 1" ]
	settled nessus "$id"
}
