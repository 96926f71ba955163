#!/usr/bin/env bats
# np-enqueue: validation, the task record, the queue, idempotency, batch.
# shellcheck disable=SC2154

load helpers

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
	redis_flush
}

rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

ntasks() {
	find "$NP_DATA_DIR" -name task.json 2>/dev/null | wc -l
}

@test "flags form: record written, task queued, answer printed" {
	run -0 --separate-stderr np-enqueue -n "web tier" -T "10.0.0.1, 10.0.0.0/24"
	id=$(jq -r .task_id <<< "$output")
	jq -e '.status == "queued" and .scanner_pool == "nessus" and
	    .queue_position == 1 and (.estimated_wait_seconds | type) == "number"' <<< "$output"
	[ -z "$stderr" ]
	f=$NP_DATA_DIR/tasks/$id/task.json
	jq -e --arg id "$id" '.task_id == $id and .status == "queued" and
	    .targets == "10.0.0.1,10.0.0.0/24" and .name == "web tier" and
	    .attempts == 0 and (.created_at | test("Z$"))' "$f"
	[ "$(stat -c %a "$f")" = 600 ]
	[ "$(stat -c %a "$(dirname "$f")")" = 700 ]
	run -0 rcli lrange 'np:{nessus}:queue' 0 -1
	assert_output "$id"
}

@test "queue positions count up, FIFO order in Redis" {
	a=$(np-enqueue -n a -T 10.0.0.1 | jq -r .task_id)
	run -0 np-enqueue -n b -T 10.0.0.2
	jq -e '.queue_position == 2' <<< "$output"
	b=$(jq -r .task_id <<< "$output")
	run -0 rcli rpop 'np:{nessus}:queue'
	assert_output "$a"
	run -0 rcli rpop 'np:{nessus}:queue'
	assert_output "$b"
}

@test "targeting an instance: answer names it, task waits on its queue" {
	run -0 np-enqueue -n a -T 10.0.0.1 -i s2
	jq -e '.scanner_instance == "s2" and .scanner_url == "https://127.0.0.1:8835"' <<< "$output"
	id=$(jq -r .task_id <<< "$output")
	run -0 rcli lrange 'np:{nessus}:iq:s2' 0 -1
	assert_output "$id"
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 0
}

@test "bad requests exit 65 and write nothing" {
	run -65 np-enqueue -n a -T "10.0.0.1 10.0.0.999"
	assert_output --partial "bad target '10.0.0.999'"
	run -65 np-enqueue -n a -T 'host;reboot'
	run -65 np-enqueue -n a -T '$(id)'
	run -65 np-enqueue -n a -T ' , '
	run -65 np-enqueue -n "   " -T 10.0.0.1
	assert_output --partial "name"
	run -65 np-enqueue -n "$(printf 'x%.0s' $(seq 300))" -T 10.0.0.1
	run -65 np-enqueue -n a -T 10.0.0.1 -p nope
	assert_output --partial "no pool named 'nope'"
	run -65 np-enqueue -n a -T 10.0.0.1 -i nope
	assert_output --partial "no scanner 'nope'"
	run -65 np-enqueue -n a -T 10.0.0.1 -i off
	assert_output --partial "disabled"
	run -65 np-enqueue -n a -T 10.0.0.1 -i d1
	run -65 np-enqueue -n a -T 10.0.0.1 -t full_audit
	assert_output --partial "scan_type: must be one of"
	run -65 np-enqueue -n a -T 10.0.0.1 -s everything
	run -65 np-enqueue -n a -T 10.0.0.1 -k 'bad key!'
	run -65 np-enqueue -n "$(printf 'a\001b')" -T 10.0.0.1
	[ "$(ntasks)" -eq 0 ]
	run -0 rcli dbsize
	assert_output 0
}

@test "credentials: only on stdin; required by authenticated scans" {
	run -65 np-enqueue -n a -T 10.0.0.1 -t authenticated
	assert_output --partial "ssh_username, ssh_password: required"
	run -64 np-enqueue -n a -T 10.0.0.1 --ssh-password x
	run -65 np-enqueue --json <<< '{"name":"a","targets":"10.0.0.1","scan_type":"authenticated_privileged","ssh_username":"u","ssh_password":"p"}'
	assert_output --partial "elevate_privileges_with"
	run -65 np-enqueue --json <<< '{"name":"a","targets":"10.0.0.1","ssh_username":"u","ssh_password":"p"}'
	assert_output --partial "untrusted scans take no credentials"
	run -65 np-enqueue --json <<< '{"name":"a","targets":"10.0.0.1","scan_type":"authenticated","ssh_username":"u","ssh_password":"p","elevate_privileges_with":"runas"}'
	assert_output --partial "must be one of"
	[ "$(ntasks)" -eq 0 ]
}

@test "--json with credentials: kept apart in a 0600 file, never in task.json or output" {
	run -0 --separate-stderr np-enqueue --json <<-'JSON'
	{"name":"db","targets":"10.0.0.5","scan_type":"authenticated_privileged",
	 "ssh_username":"scan","ssh_password":"S3cr3t-Pw-123",
	 "elevate_privileges_with":"sudo","escalation_password":"Esc-Pw-456"}
	JSON
	refute_output --partial "S3cr3t"
	[ -z "$stderr" ]
	id=$(jq -r .task_id <<< "$output")
	d=$NP_DATA_DIR/tasks/$id
	run grep -r "S3cr3t-Pw-123" "$d/task.json"
	[ "$status" -eq 1 ]
	jq -e '.password == "S3cr3t-Pw-123" and .escalation_password == "Esc-Pw-456" and
	    .elevate_privileges_with == "sudo"' "$d/credentials.json"
	[ "$(stat -c %a "$d/credentials.json")" = 600 ]
	jq -e '.ssh_username == "scan" and .scan_type == "authenticated_privileged"' "$d/task.json"
	run -0 rcli --scan
	for k in $output; do
		run rcli dump "$k"
		refute_output --partial "S3cr3t"
	done
}

@test "malformed, unknown-field, wrong-type and huge JSON requests: 65" {
	run -65 np-enqueue --json <<< '{"name":"a",'
	assert_output --partial "invalid JSON"
	run -65 np-enqueue --json <<< '["a"]'
	run -65 np-enqueue --json <<< '{"name":"a","targets":"10.0.0.1","colour":"red"}'
	assert_output --partial "unknown field 'colour'"
	run -65 np-enqueue --json <<< '{"name":5,"targets":"10.0.0.1"}'
	assert_output --partial "name: must be a string"
	run -65 np-enqueue --json <<< '{"name":"a","name":"b","targets":"10.0.0.1"}'
	run -65 np-enqueue --json < <(head -c 3000000 /dev/zero | tr '\0' ' ')
	assert_output --partial "larger than"
	run -65 np-enqueue --json <<< "$(printf '[%.0s' $(seq 5000))"
	[ "$(ntasks)" -eq 0 ]
}

@test "usage errors: 64" {
	run -64 np-enqueue
	run -64 np-enqueue extra-arg -n a -T 10.0.0.1
	run -64 np-enqueue --json -n a
}

@test "idempotency: same key and request returns the same task" {
	run -0 np-enqueue -n a -T "10.0.0.1 10.0.0.2" -k job-1
	id=$(jq -r .task_id <<< "$output")
	jq -e '.idempotent == false' <<< "$output"
	# Same request, targets in another order and form: still the same.
	run -0 np-enqueue -n a -T "10.0.0.2,10.0.0.1" -k job-1
	jq -e --arg id "$id" '.task_id == $id and .idempotent == true' <<< "$output"
	[ "$(ntasks)" -eq 1 ]
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 1
	run -0 rcli pttl np:idem:job-1
	[ "$output" -gt 172000000 ]
}

@test "idempotency: same key, different request: 65 conflict, nothing written" {
	np-enqueue -n a -T 10.0.0.1 -k job-2 > /dev/null
	run -65 np-enqueue -n b -T 10.0.0.1 -k job-2
	assert_output --partial "'job-2' exists with different request parameters"
	run -65 np-enqueue -n a -T 10.0.0.1 -k job-2 -p dmz
	[ "$(ntasks)" -eq 1 ]
}

@test "20 concurrent identical idempotent enqueues create exactly one task" {
	for i in $(seq 20); do
		np-enqueue -n race -T 10.9.0.0/16 -k race-1 > "$BATS_TEST_TMPDIR/out.$i" &
	done
	wait
	run -0 sh -c "cat '$BATS_TEST_TMPDIR'/out.* | jq -r .task_id | sort -u | wc -l"
	assert_output 1
	[ "$(ntasks)" -eq 1 ]
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 1
	run -0 sh -c "cat '$BATS_TEST_TMPDIR'/out.* | jq -r .idempotent | sort | uniq -c | tr -s ' '"
	assert_output --partial " 1 false"
	assert_output --partial " 19 true"
}

@test "Redis down: 75 with a clear message, nothing written" {
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "redis unix://$BATS_TEST_TMPDIR/no.sock"
	NP_REDIS_URL=redis://127.0.0.1:1/0 run -75 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "Connection refused"
	[ "$(ntasks)" -eq 0 ]
}

@test "queue push refused after the record was written: 75, no orphan" {
	rcli config set maxmemory 1 > /dev/null
	run -75 np-enqueue -n a -T 10.0.0.1
	rcli config set maxmemory 0 > /dev/null
	assert_output --partial "OOM"
	[ "$(ntasks)" -eq 0 ]
	[ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}

@test "a bad Redis URL is a config error" {
	NP_REDIS_URL=http://x run -78 np-enqueue -n a -T 10.0.0.1
	NP_REDIS_URL=rediss://x:1 run -78 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "TLS"
}

@test "estimated wait follows capacity, queue and mean duration" {
	# nessus: s1 (2) + s2 (3) enabled = capacity 5; recent scans took 600 s.
	rcli lpush 'np:{nessus}:durations' 500 700 > /dev/null
	for i in 1 2 3 4 5; do np-enqueue -n "t$i" -T 10.0.0.$i > /dev/null; done
	run -0 np-enqueue -n t6 -T 10.0.0.6
	jq -e '.queue_position == 6 and .estimated_wait_seconds == 600' <<< "$output"
	# Two scans running on s1 now: (2 + 6) / 5 rounds ahead of the 7th.
	rcli zadd 'np:{nessus}:slots:s1' 99999999999999 x 99999999999999 y > /dev/null
	run -0 np-enqueue -n t7 -T 10.0.0.7
	jq -e '.estimated_wait_seconds == 600' <<< "$output"
	for i in 8 9 10 11 12; do np-enqueue -n "t$i" -T 10.0.0.$i > /dev/null; done
	run -0 np-enqueue -n t13 -T 10.0.0.13
	jq -e '.queue_position == 13 and .estimated_wait_seconds == 1200' <<< "$output"
}

@test "--batch: one answer per line, in order, errors included" {
	run -65 --separate-stderr np-enqueue --batch <<-'EOF2'
	{"name":"a","targets":"10.0.0.1"}
	{"name":"b",
	{"name":"c","targets":"10.0.0.300"}
	{"name":"d","targets":"10.0.0.4","scanner_pool":"dmz"}
	EOF2
	[ "${#lines[@]}" -eq 4 ]
	jq -e '.status == "queued" and .scanner_pool == "nessus"' <<< "${lines[0]}"
	jq -e '.line == 2 and .status == 65 and (.error | test("invalid JSON"))' <<< "${lines[1]}"
	jq -e '.line == 3 and (.error | test("10.0.0.300"))' <<< "${lines[2]}"
	jq -e '.scanner_pool == "dmz"' <<< "${lines[3]}"
	[ "$(ntasks)" -eq 2 ]
}

@test "--batch: 300 requests, all queued, exit 0" {
	for i in $(seq 300); do
		printf '{"name":"n%d","targets":"10.1.%d.%d"}\n' "$i" $((i / 250)) $((i % 250))
	done > "$BATS_TEST_TMPDIR/in"
	run -0 np-enqueue --batch < "$BATS_TEST_TMPDIR/in"
	[ "${#lines[@]}" -eq 300 ]
	[ "$(ntasks)" -eq 300 ]
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 300
}

@test "--batch with credentials and idempotency keys" {
	run -0 np-enqueue --batch <<-'EOF2'
	{"name":"a","targets":"10.0.0.1","scan_type":"authenticated","ssh_username":"u","ssh_password":"Pw-Batch-1","idempotency_key":"b1"}
	{"name":"a","targets":"10.0.0.1","scan_type":"authenticated","ssh_username":"u","ssh_password":"Pw-Batch-1","idempotency_key":"b1"}
	EOF2
	refute_output --partial "Pw-Batch-1"
	[ "$(jq -r .task_id <<< "${lines[0]}")" = "$(jq -r .task_id <<< "${lines[1]}")" ]
	[ "$(ntasks)" -eq 1 ]
}
