#!/usr/bin/env bats
# Tests for np-status: one task (TASK_ID), task lists (--list with its
# filters) and queue state (--queue). Tasks are made with np-enqueue.
# shellcheck disable=SC2154

load helpers

setup_file() {
	redis_start
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
	redis_flush
}

rc() { # redis-cli against the file's private server
	redis-cli -s "$REDIS_SOCK" "$@"
}

# enqueue NAME TARGETS [np-enqueue flags]: prints the new task id.
enqueue() {
	local name=$1 targets=$2
	shift 2
	np-enqueue --name "$name" --targets "$targets" "$@" | jq -er .task_id
}

task_json() {
	printf '%s/tasks/%s/task.json' "$NP_DATA_DIR" "$1"
}

# set_status ID STATUS: as a worker would, in task.json and in the index.
set_status() {
	local f line tab=$'\t'
	f=$(task_json "$1")
	jq --arg s "$2" '.status = $s' "$f" > "$f.new" && mv "$f.new" "$f"
	line=$(rc HGET np:tindex "$1")
	[ -n "$line" ]
	rc HSET np:tindex "$1" "$2$tab${line#*"$tab"}" > /dev/null
}

# names: the task names in $output (NDJSON), in order, comma-separated.
names() {
	jq -r .name <<< "$output" | paste -sd, -
}

# A listing of everything under the test's folder (the data dir and its
# parent), to see what appeared; bats keeps its stderr files there too.
tree() {
	find "$BATS_TEST_TMPDIR" -mindepth 1 ! -name 'separate-stderr-*' \
	    -printf '%P %m %s\n' | sort
}

# ------------------------------------------------------------- one task

@test "TASK_ID prints the task record" {
	local id
	id=$(enqueue web "10.0.0.2 10.0.0.1,10.0.0.2, Web1.Example.COM." \
	    --pool dmz --description 'a test')
	run --separate-stderr -0 np-status "$id"
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e --arg id "$id" '.task_id == $id and .status == "queued" and
	    .scanner_pool == "dmz" and .name == "web" and
	    .description == "a test" and .scan_type == "untrusted" and
	    .targets == "10.0.0.2,10.0.0.1,web1.example.com" and
	    (.trace_id | test("^[0-9a-f]{32}$")) and .attempts == 0 and
	    .nessus_scan_id == null and .started_at == null' <<< "$output"
}

@test "TASK_ID updates last_accessed_at in task.json" {
	local id f before after shown
	id=$(enqueue a 10.0.0.1)
	f=$(task_json "$id")
	before=$(jq -er .last_accessed_at "$f")
	sleep 0.05
	run -0 np-status "$id"
	shown=$(jq -er .last_accessed_at <<< "$output")
	after=$(jq -er .last_accessed_at "$f")
	[[ $after =~ ^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
	[[ $after > $before ]]
	assert_equal "$shown" "$after"
	# Only last_accessed_at changed.
	assert_equal "$(jq -S 'del(.last_accessed_at)' "$f")" \
	    "$(jq -S 'del(.last_accessed_at)' <<< "$output")"
	[ "$(jq -r .created_at "$f")" = "$before" ]
	[ "$(stat -c %a "$f")" = 600 ]
}

@test "TASK_ID works with Redis down" {
	local id
	id=$(enqueue a 10.0.0.1)
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no-such.sock
	run --separate-stderr -0 np-status "$id"
	[ -z "$stderr" ]
	jq -e --arg id "$id" '.task_id == $id and .status == "queued"' <<< "$output"
	# Lists need Redis: 75 then.
	run --separate-stderr -75 np-status --list
	[ -z "$output" ]
	[[ $stderr == np-status:* ]]
	run -75 np-status --queue
}

@test "an unknown well-formed id -> 66, nothing created" {
	enqueue a 10.0.0.1 > /dev/null
	local before
	before=$(tree)
	run --separate-stderr -66 np-status 20261123T185000Z-0123456789abcdef
	[ -z "$output" ]
	[[ $stderr == *20261123T185000Z-0123456789abcdef* ]]
	assert_equal "$(tree)" "$before"
}

@test "malformed ids -> 65 and nothing is created" {
	local id before long bad
	id=$(enqueue a 10.0.0.1)
	# A record where "../x" would lead, to be sure it is not read.
	mkdir -p "$NP_DATA_DIR/x"
	jq --arg id "$id" '.name = "planted"' "$(task_json "$id")" \
	    > "$NP_DATA_DIR/x/task.json"
	before=$(tree)
	long=$(printf 'a%.0s' {1..10000})
	for bad in ../x a/b 20261123T185000Z-../../etc/pass "" "$long" \
	    "../tasks/$id" "$id/" "${id^^}" "$id " "${id}0"; do
		run --separate-stderr -65 np-status "$bad"
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[ "${#stderr}" -lt 300 ]
	done
	assert_equal "$(tree)" "$before"
}

@test "usage errors -> 64; --help -> 0 on stdout" {
	run --separate-stderr -64 np-status
	[ -z "$output" ]
	[[ $stderr == *usage:* ]]
	run -64 np-status 20261123T185000Z-0123456789abcdef extra
	run -64 np-status --status queued 20261123T185000Z-0123456789abcdef
	run -64 np-status --list --queue
	run -64 np-status --queue --status queued
	run -64 np-status --queue --target 10.0.0.1
	run -64 np-status --list extra
	run -64 np-status --list --limit 0
	run -64 np-status --list --limit x
	run -64 np-status --list --pool nope
	run -64 np-status --queue --pool nope
	run --separate-stderr -0 np-status --help
	[ -z "$stderr" ]
	[[ $output == *usage:*np-status* ]]
}

@test "a bad config -> 78" {
	np_config "$BATS_TEST_TMPDIR/bad.yaml" <<< 'pools: [ {'
	run --separate-stderr -78 np-status 20261123T185000Z-0123456789abcdef
	[[ $stderr == *bad.yaml* ]]
	run -78 np-status --list
}

# --------------------------------------------------------------- secrets

@test "scan passwords never show in np-status, --list or task.json" {
	local id dir
	id=$(np-enqueue --json <<-'JSON' | jq -er .task_id
	{"name": "auth", "targets": "10.0.0.5",
	 "scan_type": "authenticated_privileged",
	 "ssh_username": "scanuser", "ssh_password": "S3cr3t-Pw-123",
	 "elevate_privileges_with": "sudo", "escalation_account": "root",
	 "escalation_password": "Esc-Pw-456"}
	JSON
	)
	dir=$NP_DATA_DIR/tasks/$id
	run -0 np-status "$id"
	jq -e '.ssh_username == "scanuser" and .scan_type ==
	    "authenticated_privileged"' <<< "$output"
	refute_output --partial S3cr3t-Pw-123
	refute_output --partial Esc-Pw-456
	run -0 np-status --list
	[ "${#lines[@]}" -eq 1 ]
	refute_output --partial S3cr3t-Pw-123
	refute_output --partial Esc-Pw-456
	run -1 grep -rF -e S3cr3t-Pw-123 -e Esc-Pw-456 "$dir/task.json"
	# They wait for np-scan in credentials.json, 0600.
	[ "$(stat -c %a "$dir/credentials.json")" = 600 ]
	[ "$(stat -c %a "$dir")" = 700 ]
	grep -qF S3cr3t-Pw-123 "$dir/credentials.json"
	grep -qF Esc-Pw-456 "$dir/credentials.json"
	# Nothing else in the data dir holds them.
	run -0 grep -rlF -e S3cr3t-Pw-123 -e Esc-Pw-456 "$NP_DATA_DIR"
	assert_output "$dir/credentials.json"
}

# ---------------------------------------------------------------- --list

@test "--list: newest first, --limit" {
	enqueue one 10.0.0.1 > /dev/null
	sleep 0.01
	enqueue two 10.0.0.2 --pool dmz > /dev/null
	sleep 0.01
	enqueue three 10.0.0.3 > /dev/null
	run --separate-stderr -0 np-status --list
	[ -z "$stderr" ]
	run -0 names
	assert_output three,two,one
	run -0 np-status --list --limit 2
	run -0 names
	assert_output three,two
	run -0 np-status -l -n 1
	run -0 names
	assert_output three
}

@test "--list with no tasks prints nothing" {
	run --separate-stderr -0 np-status --list
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "--list --status filters by state" {
	local b c
	enqueue a 10.0.0.1 > /dev/null
	b=$(enqueue b 10.0.0.2)
	c=$(enqueue c 10.0.0.3)
	run -0 np-status --list --status queued
	run -0 names
	assert_output c,b,a
	run -0 np-status --list --status completed
	[ -z "$output" ]
	set_status "$b" completed
	set_status "$c" running
	run -0 np-status --list --status completed
	run -0 names
	assert_output b
	run -0 np-status --list --status running
	run -0 names
	assert_output c
	run -0 np-status --list --status queued
	run -0 names
	assert_output a
	run -0 np-status --list
	run -0 names
	assert_output c,b,a
}

@test "--list --status: task.json decides when the index lags" {
	local a
	a=$(enqueue a 10.0.0.1)
	# The record moved on; the index still says queued.
	jq '.status = "cancelled"' "$(task_json "$a")" > "$BATS_TEST_TMPDIR/t"
	cp "$BATS_TEST_TMPDIR/t" "$(task_json "$a")"
	run -0 np-status --list --status queued
	[ -z "$output" ]
}

@test "--list --pool filters by pool" {
	enqueue n1 10.0.0.1 > /dev/null
	enqueue d1 10.0.0.2 --pool dmz > /dev/null
	enqueue n2 10.0.0.3 --pool nessus > /dev/null
	run -0 np-status --list --pool dmz
	run -0 names
	assert_output d1
	run -0 np-status --list --pool nessus
	run -0 names
	assert_output n2,n1
}

@test "--list --target matches CIDR-aware both ways" {
	enqueue ip 10.1.2.3 > /dev/null
	enqueue net16 10.1.0.0/16 > /dev/null
	enqueue net24 192.168.1.0/24 > /dev/null
	enqueue host Host.Example.com > /dev/null
	enqueue v6 2001:db8::1 > /dev/null
	t() {
		run -0 np-status --list --target "$1"
		run -0 names
		assert_output "$2"
	}
	t 10.1.2.3 net16,ip
	# 10.1.0.0/24 is 10.1.0.0-10.1.0.255: inside the /16, not 10.1.2.3.
	t 10.1.0.0/24 net16
	t 10.1.2.0/24 net16,ip
	t 10.0.0.0/8 net16,ip
	t 10.1.2.1-10.1.2.9 net16,ip
	t 192.168.1.77 net24
	t 192.168.0.0/16 net24
	t host.example.COM host
	t example.com ""
	t 2001:db8::/64 v6
	t 2001:db8::2 ""
	t 10.9.9.9 ""
	t "10.9.9.9, 2001:db8::1 192.168.1.1" v6,net24
}

@test "--list: bad --target or --status -> 64" {
	enqueue a 10.0.0.1 > /dev/null
	run --separate-stderr -64 np-status --list --target 'bad!'
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	run -64 np-status --list --target 10.0.0.1/33
	run -64 np-status --list --target ''
	run --separate-stderr -64 np-status --list --status bogus
	[ -z "$output" ]
	[[ $stderr == *bogus* ]]
	run -64 np-status --list --status QUEUED
}

# --------------------------------------------------------------- --queue

@test "--queue: depth, processing, dead letters, next ids in FIFO order" {
	local a b c p
	a=$(enqueue a 10.7.7.1)
	b=$(enqueue b 10.7.7.2)
	c=$(enqueue c 10.7.7.3)
	p=$(enqueue pinned 10.7.7.4 --instance s2)
	enqueue d 10.7.7.5 --pool dmz > /dev/null
	rc ZADD 'np:{nessus}:claims' 9999999999999 x1 9999999999999 x2 > /dev/null
	rc ZADD 'np:{nessus}:dlq' 1 y1 > /dev/null
	run --separate-stderr -0 np-status --queue
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 2 ]
	jq -e --arg a "$a" --arg b "$b" --arg c "$c" '.pool == "nessus" and
	    .queue_depth == 3 and .processing == 2 and .dlq_depth == 1 and
	    .next_task_ids == [$a, $b, $c] and
	    .instance_queues == {"s2": 1}' <<< "${lines[0]}"
	jq -e '.pool == "dmz" and .queue_depth == 1 and .processing == 0 and
	    .dlq_depth == 0 and (.next_task_ids | length) == 1 and
	    .instance_queues == {}' <<< "${lines[1]}"
	# Ids only, never payloads.
	refute_output --partial '"name"'
	refute_output --partial '"targets"'
	refute_output --partial 10.7.7.
	# The pinned task waits on s2's own queue, not in the pool's line.
	[ "$(rc LRANGE 'np:{nessus}:iq:s2' 0 -1)" = "$p" ]
	jq -e --arg p "$p" '.next_task_ids | index($p) == null' <<< "${lines[0]}"
}

@test "--queue: the next ids follow the queue as tasks are taken" {
	local a b c
	a=$(enqueue a 10.0.0.1)
	b=$(enqueue b 10.0.0.2)
	c=$(enqueue c 10.0.0.3)
	# A worker takes from the right end.
	[ "$(rc RPOP 'np:{nessus}:queue')" = "$a" ]
	run -0 np-status --queue --pool nessus
	jq -e --arg b "$b" --arg c "$c" '.queue_depth == 2 and
	    .next_task_ids == [$b, $c]' <<< "$output"
}

@test "--queue --pool dmz prints only dmz" {
	enqueue n 10.0.0.1 > /dev/null
	run --separate-stderr -0 np-status --queue --pool dmz
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e '.pool == "dmz" and .queue_depth == 0 and .next_task_ids == []
	    and .instance_queues == {}' <<< "$output"
}
