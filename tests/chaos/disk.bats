#!/usr/bin/env bats
# Chaos: the data directory's file system is full (a 2 MiB tmpfs, so
# root only). np-enqueue fails with status 74 and a clear message, leaves
# no folder and queues nothing; no record is ever torn; every queued id
# has its record. A download that does not fit fails the task as
# np-scan(1) documents, and it can be retried once there is room.
# shellcheck disable=SC2154

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../../build/rel/bin}
load ../helpers
load chaos

setup_file() {
	scan_servers s1 '{"pending_seconds":0.05,"running_seconds":0.2}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	if [ "$(id -u)" != 0 ]; then
		skip "mounting a small tmpfs on the data directory needs root"
	fi
	redis_flush
	fake_reset s1
	scan_env
	keys_scanner s1 2 | scan_config
	mount -t tmpfs -o size=2m,mode=0700 tmpfs "$NP_DATA_DIR" ||
		skip "cannot mount a tmpfs here (no CAP_SYS_ADMIN?)"
	MOUNTED=$NP_DATA_DIR
}

teardown() {
	kill_tracked
	[ -n "${MOUNTED:-}" ] && umount "$MOUNTED"
	return 0
}

# fill [BYTES_LEFT]: fills the file system, leaving about BYTES_LEFT free.
fill() {
	rm -f "$NP_DATA_DIR/fill"
	local free
	free=$(($(stat -f -c '%a * %S' "$NP_DATA_DIR")))
	head -c $((free - ${1:-0})) /dev/zero > "$NP_DATA_DIR/fill" 2> /dev/null || true
}

unfill() {
	rm -f "$NP_DATA_DIR/fill"
}

# consistent: every record is valid JSON; every id queued has a queued
# record; every queued record is in the queue.
consistent() {
	local f id
	for f in "$NP_DATA_DIR"/tasks/*/task.json; do
		[ -e "$f" ] || continue
		jq -e 'type == "object"' "$f" > /dev/null || { echo "torn: $f" >&2; return 1; }
	done
	for id in $(rc lrange 'np:{nessus}:queue' 0 -1); do
		[ "$(jq -r .status "$NP_DATA_DIR/tasks/$id/task.json")" = queued ] ||
			{ echo "queued without a record: $id" >&2; return 1; }
	done
	for f in "$NP_DATA_DIR"/tasks/*/task.json; do
		[ -e "$f" ] || continue
		id=$(jq -r .task_id "$f")
		[ "$(jq -r .status "$f")" != queued ] || [ -n "$(rc lpos 'np:{nessus}:queue' "$id")" ] ||
			{ echo "record queued, not in the queue: $id" >&2; return 1; }
	done
}

folders() {
	find "$NP_DATA_DIR/tasks" -mindepth 1 -maxdepth 1 | wc -l
}

@test "disk full: np-enqueue exits 74 with a clear message, leaves no folder, queues nothing" {
	a=$(np-enqueue -n before -T 10.0.0.1 | jq -er .task_id)
	fill
	run -74 --separate-stderr np-enqueue -n full -T 10.0.0.2 -k key-1
	[ "$output" = "" ]
	[[ "$stderr" == "np-enqueue: "*"No space left on device"* ]]
	run -74 --separate-stderr np-enqueue --json <<< '{"name":"c","targets":"10.0.0.3",
		"scan_type":"authenticated","ssh_username":"u","ssh_password":"Pw-On-A-Full-Disk"}'
	[[ "$stderr" == *"No space left on device"* ]]
	[[ "$stderr" != *"Pw-On-A-Full-Disk"* ]]
	# --batch: one error line per request, with the status it would have had.
	run -65 --separate-stderr np-enqueue --batch <<< $'{"name":"d","targets":"10.0.0.4"}\n{"name":"e","targets":"10.0.0.5"}'
	[ "${#lines[@]}" -eq 2 ]
	jq -se 'map(.status == 74 and (.error | contains("No space left on device"))) | all' <<< "$output"
	[ "$(folders)" -eq 1 ]
	run -0 rc lrange 'np:{nessus}:queue' 0 -1
	assert_output "$a"
	[ "$(rc zcard np:tasks)" = 1 ]
	consistent
	# The idempotency key was released: once there is room, it makes a new task.
	[ "$(rc exists np:idem:key-1)" = 0 ]
	unfill
	run -0 np-enqueue -n full -T 10.0.0.2 -k key-1
	jq -e '.idempotent == false' <<< "$output"
	consistent
}

@test "disk almost full: credentials.json does not fit; the task is refused whole" {
	fill 6000
	refused=0
	for _ in 1 2 3 4; do
		run --separate-stderr np-enqueue --json <<< '{"name":"c","targets":"10.0.0.3",
			"scan_type":"authenticated","ssh_username":"u","ssh_password":"Pw-Almost-Full"}'
		[ "$status" -eq 0 ] || [ "$status" -eq 74 ]
		[ "$status" -eq 0 ] || refused=$((refused + 1))
		[[ "$stderr" != *"Pw-Almost-Full"* ]]
		consistent
	done
	[ "$refused" -ge 1 ]
	# The refused ones left nothing behind; the accepted ones are whole.
	for d in "$NP_DATA_DIR"/tasks/*; do
		[ -e "$d" ] || continue
		jq -e '.status == "queued"' "$d/task.json"
		[ -s "$d/credentials.json" ]
	done
	[ "$(folders)" -eq "$(rc llen 'np:{nessus}:queue')" ]
}

@test "disk filling up during a batch of 300 (about 15 fit): each line queued whole or refused whole" {
	fill 60000
	for i in $(seq 300); do
		printf '{"name":"b%d","targets":"10.6.%d.%d","description":"%0500d"}\n' "$i" $((i / 250)) $((i % 250 + 1)) 0
	done > "$BATS_TEST_TMPDIR/batch"
	run -65 --separate-stderr timeout 60 np-enqueue --batch < "$BATS_TEST_TMPDIR/batch"
	[ "${#lines[@]}" -eq 300 ]
	ok=$(jq -r 'select(.task_id) | .task_id' <<< "$output" | sort)
	n=$(grep -c . <<< "$ok")
	echo "# $n of 300 fitted" >&3
	[ "$n" -gt 0 ] && [ "$n" -lt 300 ]
	jq -se 'map(select(.error)) | all(.status == 74 and (.error | contains("No space left")))' <<< "$output"
	[ "$(rc lrange 'np:{nessus}:queue' 0 -1 | sort)" = "$ok" ]
	[ "$(find "$NP_DATA_DIR/tasks" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)" = "$ok" ]
	consistent
	# And they run.
	unfill
	run -0 timeout 120 np-worker --drain
	for id in $ok; do [ "$(task status "$id")" = completed ]; done
}

@test "a download that does not fit: failed bad_request, record whole, slot freed; retried once there is room" {
	id=$(np-enqueue -n t -T "10.0.0.1 10.0.0.2 10.0.0.3" | jq -er .task_id)
	fill 24000
	run -0 --separate-stderr drain
	[ "$(task status "$id")" = failed ]
	[ "$(task failure_reason "$id")" = bad_request ]
	[[ "$(task error "$id")" == *"No space left on device"* ]]
	[ ! -e "$NP_DATA_DIR/tasks/$id/scan.nessus.part" ]
	consistent
	settled nessus "$id"
	unfill
	run -0 np-dlq retry "$id"
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(grep -c '<ReportHost ' "$NP_DATA_DIR/tasks/$id/scan.nessus")" -eq 3 ]
	settled nessus "$id"
	# The same Nessus scan, launched again (a retry relaunches), never recreated.
	run -0 fake s1 GET /__fake/scans
	jq -e '(.scans | length) == 1 and .scans[0].launches == 2' <<< "$output"
}
