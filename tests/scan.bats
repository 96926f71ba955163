#!/usr/bin/env bats
# The scan path: np-worker takes tasks, np-scan drives the (fake) Nessus
# over HTTPS through a scan's whole life, failures end where documented.
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
	keys_scanner s1 2 | scan_config
}

enqueue() {
	np-enqueue -n "${2:-t}" -T "${1:-10.0.0.1}" | jq -r .task_id
}

inject() {
	fake s1 POST /__fake/inject "$1" > /dev/null
}

@test "full lifecycle over HTTPS with a CA file and API keys" {
	id=$(enqueue "10.0.0.1 10.0.0.2")
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task progress "$id")" = 100 ]
	[ "$(task scanner_instance "$id")" = s1 ]
	[ "$(task attempts "$id")" = 1 ]
	sid=$(task nessus_scan_id "$id")
	[ "$sid" -gt 0 ]
	f=$NP_DATA_DIR/tasks/$id/scan.nessus
	[ "$(grep -c '<ReportHost ' "$f")" -eq 2 ]
	python3 -c "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$f"
	run -0 fake_requests s1 '"\(.method) \(.path) \(.auth)"'
	assert_line '"POST /scans api_keys"'
	assert_line "\"POST /scans/$sid/launch api_keys\""
	assert_line --regexp "\"GET /scans/$sid/export/[0-9]+/download api_keys\""
	refute_line --partial "POST /session"
	# The Nessus scan's name carries the task id, so it can be found again.
	fake_requests s1 'select(.method == "POST" and .path == "/scans") | .body.settings.name' |
		grep -q "\[np:$id\]"
	run -0 redis-cli -s "$REDIS_SOCK" zcard 'np:{nessus}:slots:s1'
	assert_output 0
	run -0 np-status --queue --pool nessus
	jq -e '.queue_depth == 0 and .processing == 0 and .dlq_depth == 0' <<< "$output"
}

@test "a first attempt does not list the scanner's scans; a later one finds the scan an earlier one created" {
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake_requests s1 '"\(.method) \(.path)"'
	refute_line '"GET /scans"'
	[ "$(task create_sent "$id")" = true ]
	# An attempt that sent its create and died before it could record the
	# answer: the scan exists on the scanner, the record does not know it.
	id2=$(enqueue 10.0.0.2)
	f=$NP_DATA_DIR/tasks/$id2/task.json
	jq -c '.create_sent = true' "$f" > "$BATS_TEST_TMPDIR/t.json"
	cat "$BATS_TEST_TMPDIR/t.json" > "$f"
	sid=$(curl -sf --cacert "$FAKE_DIR/tls/cert.pem" -H 'X-ApiKeys: accessKey=accesskey; secretKey=secretkey' \
		-H 'Content-Type: application/json' -d "{\"uuid\":\"ad629e16-03b6-8c1d-cef6-ef8c9dd3c658d24bd260ef5f9e66\",
		\"settings\":{\"name\":\"t [np:$id2]\",\"text_targets\":\"10.0.0.2\"}}" \
		"$(cat "$FAKE_DIR/s1.url")/scans" | jq -er .scan.id)
	fake s1 POST /__fake/reset '{"requests":true}' > /dev/null
	run -0 drain
	[ "$(task status "$id2")" = completed ]
	[ "$(task nessus_scan_id "$id2")" = "$sid" ]
	run -0 fake_requests s1 '"\(.method) \(.path)"'
	assert_line '"GET /scans"'
	refute_line '"POST /scans"'
	assert_line "\"POST /scans/$sid/launch\""
}

@test "session login with the web UI X-API-Token; the session is closed" {
	{
		printf -- '- instance_id: s1\n  url: %s\n  ca_file: %s\n' \
			"$(cat "$FAKE_DIR/s1.url")" "$FAKE_DIR/tls/cert.pem"
		printf '  username: nessus\n  password_file: %s\n' "$BATS_TEST_TMPDIR/user.password"
	} | scan_config
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake_requests s1 '"\(.method) \(.path) \(.auth) \(.api_token_ok)"'
	assert_line --partial "GET /nessus6.js"
	assert_line '"POST /scans session true"'
	assert_line --partial "DELETE /session"
	refute_line --partial "api_keys"
}

@test "insecure: true skips verification and says so" {
	{
		printf -- '- instance_id: s1\n  url: %s\n  insecure: true\n' "$(cat "$FAKE_DIR/s1.url")"
		printf '  access_key: accesskey\n  secret_key_file: %s\n' "$BATS_TEST_TMPDIR/api.secret"
	} | scan_config
	id=$(enqueue)
	run -0 --separate-stderr drain
	[ "$(task status "$id")" = completed ]
	[[ "$stderr" == *"TLS verification is off"* ]]
}

@test "an untrusted certificate fails closed" {
	{
		printf -- '- instance_id: s1\n  url: %s\n' "$(cat "$FAKE_DIR/s1.url")"
		printf '  access_key: accesskey\n  secret_key_file: %s\n' "$BATS_TEST_TMPDIR/api.secret"
	} | scan_config
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[[ "$(task error "$id")" == *"not trusted"* ]]
	run -0 fake_requests s1 'select(.path == "/scans")'
	assert_output ""
}

@test "Nessus Essentials refuses API-key writes: 412 is permanent, one try, dead-lettered" {
	fake s1 POST /__fake/config '{"essentials":true,"essentials_drop_body":true}' > /dev/null
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = api_unavailable ]
	[ "$(task attempts "$id")" = 1 ]
	run -0 redis-cli -s "$REDIS_SOCK" zscore 'np:{nessus}:dlq' "$id"
	[ -n "$output" ]
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/scans")'
	[ "${#lines[@]}" -eq 1 ]
	# A 412 says nothing about the scanner's health.
	run -0 redis-cli -s "$REDIS_SOCK" hget 'np:{nessus}:breaker:s1' failures
	[ -z "$output" ] || [ "$output" = 0 ]
}

@test "credentials reach the scanner once and are then deleted" {
	fake s1 POST /__fake/config '{"accounts":[{"username":"root","password":"Unique-Pw-7731","privileged":true}]}' > /dev/null
	id=$(np-enqueue --json <<< '{"name":"db","targets":"10.0.0.9","scan_type":"authenticated_privileged",
	  "ssh_username":"root","ssh_password":"Unique-Pw-7731","elevate_privileges_with":"sudo",
	  "escalation_password":"Esc-Pw-2209"}' | jq -r .task_id)
	[ -f "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	run -0 --separate-stderr drain
	[ "$(task status "$id")" = completed ]
	[ "$(task authentication_status "$id")" = success ]
	[ ! -e "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	run -0 fake_requests s1 'select(.path == "/scans" and .method == "POST") | .body.credentials.add.Host.SSH[0]'
	jq -e '.username == "root" and .password == "Unique-Pw-7731" and .elevate_privileges_with == "sudo" and
	    .escalation_password == "Esc-Pw-2209" and .auth_method == "password"' <<< "$output"
	run -1 grep -r "Unique-Pw-7731\|Esc-Pw-2209" "$NP_DATA_DIR"
	[[ "$stderr" != *"Unique-Pw"* ]]
	run -0 np-status "$id"
	refute_output --partial "Unique-Pw"
	run -0 redis-cli -s "$REDIS_SOCK" --scan
	for k in $output; do
		[ "$(redis-cli -s "$REDIS_SOCK" dump "$k" | grep -c "Unique-Pw")" = 0 ]
	done
}

@test "5xx twice on status polls: retried within the step, completes" {
	inject '{"errors":[{"route":"GET /scans/*","status":502,"count":2}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task attempts "$id")" = 1 ]
	run -0 fake_requests s1 'select(.status == 502)'
	[ "${#lines[@]}" -eq 2 ]
}

@test "503 forever on create: each attempt fails, dead-lettered after max_attempts" {
	inject '{"errors":[{"route":"POST /scans","status":503,"count":null}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = attempts_exhausted ]
	[ "$(task attempts "$id")" = 2 ]
	[[ "$(task error "$id")" == *"503"* ]]
	run -0 redis-cli -s "$REDIS_SOCK" zscore 'np:{nessus}:dlq' "$id"
	[ -n "$output" ]
	# create is never blindly retried: one POST per attempt.
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/scans")'
	[ "${#lines[@]}" -eq 2 ]
}

@test "a dropped answer to create: the scan is found by its task tag, not made twice" {
	inject '{"drop_after_write":{"value":true,"count":1}}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake s1 GET /__fake/scans
	[ "$(jq '.scans | length' <<< "$output")" -eq 1 ]
	[ "$(jq '.scans[0].id' <<< "$output")" = "$(task nessus_scan_id "$id")" ]
}

@test "slow answers past the request timeout and dropped connections are retried" {
	sed -i 's/request_timeout: 2s/request_timeout: 300ms/' "$NP_CONFIG"
	inject '{"slow":[{"route":"GET /scans/*","seconds":1,"count":1}],"drop":[{"route":"POST /scans/*/launch","count":1}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake s1 GET /__fake/scans
	[ "$(jq '.scans | length' <<< "$output")" -eq 1 ]
}

@test "session expiry: one re-login, the scan goes on" {
	{
		printf -- '- instance_id: s1\n  url: %s\n  ca_file: %s\n' \
			"$(cat "$FAKE_DIR/s1.url")" "$FAKE_DIR/tls/cert.pem"
		printf '  username: nessus\n  password_file: %s\n' "$BATS_TEST_TMPDIR/user.password"
	} | scan_config
	inject '{"session_expire_after":4}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/session")'
	[ "${#lines[@]}" -ge 2 ]
}

@test "scanner login refused: failed, counted against the scanner" {
	{
		printf -- '- instance_id: s1\n  url: %s\n  ca_file: %s\n' \
			"$(cat "$FAKE_DIR/s1.url")" "$FAKE_DIR/tls/cert.pem"
		printf '  username: nessus\n  password_file: %s\n' "$BATS_TEST_TMPDIR/user.password"
	} | scan_config
	inject '{"login_fail":true}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = scanner_auth ]
	run -0 redis-cli -s "$REDIS_SOCK" hget 'np:{nessus}:breaker:s1' failures
	assert_output 1
}

@test "scan ends aborted / canceled on the scanner: failed with that reason" {
	inject '{"end_state":"aborted"}'
	a=$(enqueue)
	run -0 drain
	[ "$(task status "$a")" = failed ]
	[ "$(task failure_reason "$a")" = scan_aborted ]
	inject '{"end_state":"canceled"}'
	b=$(enqueue)
	run -0 drain
	[ "$(task failure_reason "$b")" = scan_canceled ]
}

@test "a paused scan is resumed once" {
	inject '{"end_state":"paused"}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = completed ]
	run -0 fake_requests s1 'select(.path | endswith("/resume"))'
	[ "${#lines[@]}" -eq 1 ]
}

@test "a scan that cannot be resumed fails with scan_paused" {
	inject '{"end_state":"paused","errors":[{"route":"POST /scans/*/resume","status":409,"count":null}]}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = scan_paused ]
}

@test "scan deleted on the scanner mid-poll (404): failed, scan_deleted" {
	inject '{"delete_after_polls":2}'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = scan_deleted ]
}

@test "export stuck loading a while completes; export error fails" {
	inject '{"export_loading_polls":3}'
	a=$(enqueue)
	run -0 drain
	[ "$(task status "$a")" = completed ]
	inject '{"export_loading_polls":null,"export_error":true}'
	b=$(enqueue)
	run -0 drain
	[ "$(task status "$b")" = failed ]
	[ "$(task failure_reason "$b")" = export_failed ]
}

@test "truncated or non-XML downloads fail download_invalid" {
	inject '{"download":"truncated"}'
	a=$(enqueue)
	run -0 drain
	[ "$(task status "$a")" = failed ]
	[ "$(task failure_reason "$a")" = download_invalid ]
	inject '{"download":"not_xml"}'
	b=$(enqueue)
	run -0 drain
	[ "$(task failure_reason "$b")" = download_invalid ]
}

@test "scan_timeout stops the Nessus scan and ends the task timeout" {
	fake s1 POST /__fake/config '{"running_seconds":30}' > /dev/null
	keys_scanner s1 2 | scan_config $'  scan_timeout: 1s\n'
	id=$(enqueue)
	run -0 drain
	[ "$(task status "$id")" = timeout ]
	[ "$(task failure_reason "$id")" = timeout ]
	run -0 fake_requests s1 'select(.path | endswith("/stop"))'
	[ "${#lines[@]}" -eq 1 ]
}

@test "validation end to end: wrong credentials fail auth_failed with troubleshooting; good ones succeed" {
	bad=$(np-enqueue --json <<< '{"name":"bad","targets":"10.0.0.1 10.0.0.2","scan_type":"authenticated","ssh_username":"scanuser","ssh_password":"wrong"}' | jq -r .task_id)
	good=$(np-enqueue --json <<< '{"name":"good","targets":"10.0.0.3","scan_type":"authenticated","ssh_username":"scanuser","ssh_password":"scanpass"}' | jq -r .task_id)
	run -0 drain
	[ "$(task status "$bad")" = failed ]
	[ "$(task failure_reason "$bad")" = auth_failed ]
	[ "$(task authentication_status "$bad")" = failed ]
	[ "$(task attempts "$bad")" = 1 ]
	[ "$(task status "$good")" = completed ]
	[ "$(task authentication_status "$good")" = success ]
	[ "$(task validation_stats.hosts_scanned "$good")" = 1 ]
	run -0 np-status "$bad"
	jq -e '.troubleshooting.problem == "failed" and (.troubleshooting.hosts | length) == 2 and
	    (.troubleshooting.likely_causes[0] | test("password is wrong")) and
	    .results_summary.hosts_scanned == 2' <<< "$output"
	run -0 np-status "$good"
	jq -e '(has("troubleshooting") | not) and .results_summary.total_vulnerabilities >= 0' <<< "$output"
	run -0 np-status --human "$bad"
	assert_output --partial "troubleshooting (failed)"
	assert_output --partial "auth      failed"
	# The export of a failed validation stays readable.
	run -0 np-results "$bad" --page 0
	[ "$(grep -c '"type":"vulnerability"' <<< "$output")" -gt 0 ]
	run -0 redis-cli -s "$REDIS_SOCK" hget 'np:{nessus}:counters' auth_failures:authenticated
	assert_output 1
	run -0 redis-cli -s "$REDIS_SOCK" hget 'np:{nessus}:counters' validation_failures:auth_failed
	assert_output 1
	run -0 np-dlq list
	jq -e --arg id "$bad" 'select(.task_id == $id) | .reason == "auth_failed"' <<< "$output"
}

@test "privileged scan whose account cannot escalate: privilege_insufficient" {
	id=$(np-enqueue --json <<< '{"name":"p","targets":"10.0.0.4","scan_type":"authenticated_privileged","ssh_username":"scanuser","ssh_password":"scanpass","elevate_privileges_with":"sudo"}' | jq -r .task_id)
	run -0 drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = privilege_insufficient ]
	run -0 np-status "$id"
	jq -e '.troubleshooting.problem == "privilege_insufficient" and
	    (.troubleshooting.next_steps | any(test("sudo -l")))' <<< "$output"
}
