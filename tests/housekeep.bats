#!/usr/bin/env bats
# np-housekeep: TTL deletion, stale claim recovery, lost tasks, orphans,
# Nessus hygiene, the lock, dry runs, the systemd units.
# Ages are faked by editing task.json; everything else is real (Redis,
# np-enqueue, np-worker, the fake Nessus).
# shellcheck disable=SC2154

load helpers

setup_file() {
	scan_servers s1 '{"pending_seconds":0.05,"running_seconds":0.3}' \
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
	{ keys_scanner s1 2; keys_scanner s2 2; } |
		scan_config $'  ttl_completed: 1h\n  ttl_failed: 1d\n'
	: > "$BATS_TEST_TMPDIR/pids"
}

# Only the processes this test started, by their ids.
teardown() {
	local p
	while read -r p; do
		kill -9 "$p" 2> /dev/null || true
	done < "$BATS_TEST_TMPDIR/pids"
}

rc() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# ago SECONDS: the UTC time that long ago, as np writes it.
ago() {
	date -u -d "@$(($(date +%s) - $1))" +%Y-%m-%dT%H:%M:%S.000Z
}

# edit ID JQ: rewrites a task record through a jq filter.
edit() {
	local f=$NP_DATA_DIR/tasks/$1/task.json
	jq "$2" "$f" > "$f.new" && mv "$f.new" "$f"
}

# mk STATUS [POOL] [np-enqueue flags]: a real task (np-enqueue), then
# moved to STATUS as np would leave it: out of its queue, and in the DLQ
# when it failed. Prints its id.
mk() {
	local st=$1 pool=${2:-nessus} id
	shift 2 || shift
	id=$(np-enqueue -n t -T 10.0.0.1 -p "$pool" "$@" | jq -er .task_id)
	if [ "$st" != queued ]; then
		rc lrem "np:{$pool}:queue" 0 "$id" > /dev/null
		edit "$id" ".status = \"$st\""
	fi
	case $st in failed | timeout) rc zadd "np:{$pool}:dlq" 1 "$id" > /dev/null ;; esac
	echo "$id"
}

# used ID SECONDS: last used that long ago.
used() {
	edit "$1" ".last_accessed_at = \"$(ago "$2")\""
}

# bytes DIR...: the sum of the sizes of the files under the folders.
bytes() {
	find "$@" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'
}

# (bats does not fail a test on "! cmd": each check has its negation.)
exists() {
	[ -d "$NP_DATA_DIR/tasks/$1" ]
}

gone() {
	[ ! -e "$NP_DATA_DIR/tasks/$1" ]
}

indexed() { # in np:tasks and np:tindex
	[ -n "$(rc zscore np:tasks "$1")" ] && [ "$(rc hexists np:tindex "$1")" = 1 ]
}

unindexed() {
	[ -z "$(rc zscore np:tasks "$1")" ] && [ "$(rc hexists np:tindex "$1")" = 0 ]
}

# state: every file with its checksum, every Redis key with its value.
state() {
	(cd "$NP_DATA_DIR" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
	rc --scan | sort | while read -r k; do
		printf '%s %s\n' "$k" "$(rc --no-raw dump "$k" | sha256sum)"
	done
}

# hk ARGS: np-housekeep, its diagnostics kept apart in $BATS_TEST_TMPDIR/err
# (bats' run would mix them into the JSON).
hk() {
	np-housekeep "$@" 2> "$BATS_TEST_TMPDIR/err"
}

two_pools() { # pools nessus (s1) and dmz (s2)
	{
		printf 'settings:\n  lease_ttl: 1s\n  ttl_completed: 1h\n  ttl_failed: 1d\n'
		printf 'pools:\n  nessus:\n'
		keys_scanner s1 2 | sed 's/^/    /'
		printf '  dmz:\n'
		keys_scanner s2 2 | sed 's/^/    /'
	} | np_config "$BATS_TEST_TMPDIR/np.yaml"
}

@test "TTL: exactly the expired tasks go, with their index and DLQ entries" {
	old_done=$(mk completed)
	used "$old_done" 7200
	head -c 5000 /dev/urandom > "$NP_DATA_DIR/tasks/$old_done/scan.nessus"
	mkdir "$NP_DATA_DIR/tasks/$old_done/sub"
	head -c 123 /dev/urandom > "$NP_DATA_DIR/tasks/$old_done/sub/x"
	young_done=$(mk completed)
	used "$young_done" 1800
	old_failed=$(mk failed)
	used "$old_failed" $((2 * 86400))
	mid_failed=$(mk failed)		# past ttl_completed, not ttl_failed
	used "$mid_failed" 7200
	old_timeout=$(mk timeout)
	used "$old_timeout" $((2 * 86400))
	old_cancelled=$(mk cancelled)
	used "$old_cancelled" $((2 * 86400))
	ancient_queued=$(mk queued)
	edit "$ancient_queued" ".created_at = \"$(ago 8640000)\" | .last_accessed_at = \"$(ago 8640000)\""
	ancient_running=$(mk running)
	edit "$ancient_running" ".created_at = \"$(ago 8640000)\" | .last_accessed_at = \"$(ago 8640000)\""
	gone="$old_done $old_failed $old_timeout $old_cancelled"
	kept="$young_done $mid_failed $ancient_queued $ancient_running"
	dirs=()
	for id in $gone; do dirs+=("$NP_DATA_DIR/tasks/$id"); done
	want=$(bytes "${dirs[@]}")

	run -0 hk
	jq -e ".deleted == 4 and .freed_bytes == $want and .requeued == 0 and
		.recovered == 0 and .errors == [] and .dry_run == false" <<< "$output"
	for id in $gone; do
		gone "$id"
		unindexed "$id"
		[ -z "$(rc zscore 'np:{nessus}:dlq' "$id")" ]
	done
	for id in $kept; do
		exists "$id"
		indexed "$id"
	done
	[ -n "$(rc zscore 'np:{nessus}:dlq' "$mid_failed")" ]
	[ "$(rc hget np:counters ttl_deletions)" = 4 ]
	# Nothing left in sight: no half-deleted folder either.
	run -0 ls -A "$NP_DATA_DIR/tasks"
	[ "${#lines[@]}" -eq 4 ]
	# Again: nothing more to do; the counter does not move.
	run -0 hk
	jq -e '.deleted == 0 and .freed_bytes == 0' <<< "$output"
	[ "$(rc hget np:counters ttl_deletions)" = 4 ]
}

@test "TTL: the per-status counts (np:states, the nessus_tasks gauge) drop with the tasks deleted" {
	a=$(np-enqueue -n a -T 10.0.0.1 | jq -er .task_id)
	b=$(np-enqueue -n b -T 10.0.0.2 | jq -er .task_id)
	c=$(np-enqueue -n c -T 10.0.0.3 | jq -er .task_id)
	run -0 drain
	[ "$(rc hget np:states $'nessus\tcompleted')" = 3 ]
	used "$a" 7200
	used "$b" 7200
	run -0 hk
	jq -e '.deleted == 2' <<< "$output"
	gone "$a"
	gone "$b"
	exists "$c"
	[ "$(rc hget np:states $'nessus\tcompleted')" = 1 ]
	run -0 np-metrics
	grep -qx 'nessus_tasks{pool="nessus",status="completed"} 1' <<< "$output"
}

@test "TTL: last_accessed_at first, then completed_at, then created_at" {
	# Recently read, though long finished: stays.
	read_recently=$(mk completed)
	edit "$read_recently" ".completed_at = \"$(ago 86400)\" | .created_at = \"$(ago 86400)\" |
		.last_accessed_at = \"$(ago 60)\""
	by_completed=$(mk completed)
	edit "$by_completed" ".last_accessed_at = null | .completed_at = \"$(ago 7200)\""
	by_completed_young=$(mk completed)
	edit "$by_completed_young" ".last_accessed_at = null | .completed_at = \"$(ago 600)\" |
		.created_at = \"$(ago 86400)\""
	by_created=$(mk failed)
	edit "$by_created" "del(.last_accessed_at) | .completed_at = null | .created_at = \"$(ago 172800)\""
	# A local time with an offset is not guessed at: the next field decides.
	offset=$(mk completed)
	edit "$offset" ".last_accessed_at = \"2020-01-01T10:00:00+02:00\" | .completed_at = \"$(ago 60)\""
	no_time=$(mk completed)
	edit "$no_time" ".last_accessed_at = null | .completed_at = null | .created_at = \"yesterday\""
	run -0 hk
	jq -e '.deleted == 2' <<< "$output"
	gone "$by_completed"
	gone "$by_created"
	exists "$read_recently"
	exists "$by_completed_young"
	exists "$offset"
	exists "$no_time"
	jq -e --arg id "$no_time" '.errors | length == 1 and (.[0] | contains($id))' <<< "$output"
}

@test "TTL: a task whose lock is held (being written) is skipped, then deleted" {
	id=$(mk completed)
	used "$id" 7200
	# Held as np_task_update holds it, here by this shell.
	exec 9> "$NP_DATA_DIR/tasks/$id/.lock"
	flock -x 9
	run -0 hk
	jq -e '.deleted == 0 and .errors == []' <<< "$output"
	exists "$id"
	flock -u 9
	exec 9>&-
	run -0 hk
	jq -e '.deleted == 1' <<< "$output"
	gone "$id"
}

@test "a deletion cut short (folder renamed, not yet removed) is finished by the next run" {
	t=$NP_DATA_DIR/tasks/.housekeep-1-20250101T000000Z-00000000000000ae
	mkdir -p "$t"
	printf '{}' > "$t/task.json"
	run -0 hk --dry-run
	[ -d "$t" ]
	run -0 hk
	jq -e '.orphans.folders == [] and .deleted == 0 and .errors == []' <<< "$output"
	[ ! -e "$t" ]
}

@test "--dry-run changes nothing and reports the counts of the real run" {
	a=$(mk completed)
	used "$a" 7200
	b=$(mk failed)
	used "$b" $((3 * 86400))
	c=$(mk completed)	# young
	lost=$(mk queued)
	rc lrem 'np:{nessus}:queue' 0 "$lost" > /dev/null
	edit "$lost" ".created_at = \"$(ago 120)\""
	# A claim past its deadline, as a dead worker leaves it.
	stale=$(mk running)
	rc zadd 'np:{nessus}:claims' 1000 "$stale" > /dev/null
	rc hset 'np:{nessus}:claimed' "$stale" s1 > /dev/null
	rc zadd 'np:{nessus}:slots:s1' 1000 "$stale" > /dev/null
	mkdir "$NP_DATA_DIR/tasks/junk"
	touch -d '3 days ago' "$NP_DATA_DIR/tasks/junk"
	rc zadd np:tasks 1000 20200101T000000Z-00000000000000aa > /dev/null
	: "$c"
	state > "$BATS_TEST_TMPDIR/before"
	run -0 hk --dry-run
	dry=$output
	state > "$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	jq -e '.dry_run == true and .deleted == 2 and .recovered == 1 and
		.requeued == 1 and .orphans_removed == 2 and .freed_bytes > 0' <<< "$dry"
	run -0 hk -n
	[ "$output" = "$dry" ]
	run -0 hk
	jq -e '.dry_run == false' <<< "$output"
	[ "$(jq -c 'del(.dry_run)' <<< "$output")" = "$(jq -c 'del(.dry_run)' <<< "$dry")" ]
	gone "$a"
	gone "$b"
	[ "$(task status "$stale")" = queued ]
	[ "$(rc lpos 'np:{nessus}:queue' "$lost")" != "" ]
}

@test "kill -9 of a worker mid-scan: np-housekeep recovers it, drain completes it on the same scan" {
	fake s1 POST /__fake/config '{"running_seconds":5}' > /dev/null
	keys_scanner s1 2 | scan_config
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	echo "$w" >> "$BATS_TEST_TMPDIR/pids"
	for _ in $(seq 100); do
		[ "$(task nessus_scan_id "$id")" != null ] && break
		sleep 0.05
	done
	sid=$(task nessus_scan_id "$id")
	[ "$sid" != null ]
	kill -9 "$w"
	wait "$w" || true
	# Its np-scan stops (parent-death signal); the claim expires (lease_ttl 1s).
	for _ in $(seq 100); do
		pgrep -f "np-scan $id" > /dev/null || break
		sleep 0.05
	done
	for _ in $(seq 100); do
		[ -n "$(rc zrangebyscore 'np:{nessus}:claims' -inf "$(date +%s%3N)")" ] && break
		sleep 0.05
	done
	[ "$(task status "$id")" = running ]
	run -0 hk
	jq -e '.recovered == 1 and .requeued == 0 and .deleted == 0' <<< "$output"
	[ "$(task status "$id")" = queued ]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	run -0 rc lrange 'np:{nessus}:iq:s1' 0 -1
	assert_output "$id"
	run -0 rc zcard 'np:{nessus}:claims'
	assert_output 0
	run -0 drain
	[ "$(task status "$id")" = completed ]
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/scans")'
	[ "${#lines[@]}" -eq 1 ]
	run -0 rc zcard 'np:{nessus}:slots:s1'
	assert_output 0
}

@test "housekeeping beside a running worker: no task queued twice, each scanned once" {
	ids=()
	for i in $(seq 8); do
		id=$(np-enqueue -n t -T "10.0.3.$i" | jq -er .task_id)
		# Old enough to be judged lost if it ever looked lost.
		edit "$id" ".created_at = \"$(ago 600)\""
		ids+=("$id")
	done
	np-worker --drain 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	echo "$w" >> "$BATS_TEST_TMPDIR/pids"
	n=0
	while kill -0 "$w" 2> /dev/null; do
		hk >> "$BATS_TEST_TMPDIR/runs"
		n=$((n + 1))
	done
	wait "$w"
	[ "$n" -ge 1 ]
	jq -se 'map(.requeued + .recovered + .deleted) | add == 0' "$BATS_TEST_TMPDIR/runs"
	for id in "${ids[@]}"; do [ "$(task status "$id")" = completed ]; done
	run -0 fake_requests s1 'select(.method == "POST" and .path == "/scans")'
	a=${#lines[@]}
	run -0 fake_requests s2 'select(.method == "POST" and .path == "/scans")'
	[ "$((a + ${#lines[@]}))" -eq 8 ]
}

@test "lost queued tasks go back in line: pool queue, or their scanner's queue" {
	lost=$(mk queued)
	rc lrem 'np:{nessus}:queue' 0 "$lost" > /dev/null
	edit "$lost" ".created_at = \"$(ago 120)\""
	young=$(mk queued)		# its push may still be coming
	rc lrem 'np:{nessus}:queue' 0 "$young" > /dev/null
	edit "$young" ".created_at = \"$(ago 30)\""
	pinned=$(mk queued nessus -i s2)
	rc lrem 'np:{nessus}:iq:s2' 0 "$pinned" > /dev/null
	edit "$pinned" ".created_at = \"$(ago 120)\""
	reattach=$(mk queued)		# its Nessus scan exists on s1
	rc lrem 'np:{nessus}:queue' 0 "$reattach" > /dev/null
	edit "$reattach" ".created_at = \"$(ago 120)\" | .scanner_instance = \"s1\" | .nessus_scan_id = 77"
	retried=$(mk queued)		# a requeue writes the record, then pushes
	rc lrem 'np:{nessus}:queue' 0 "$retried" > /dev/null
	edit "$retried" ".created_at = \"$(ago 600)\" |
		.history = [{\"at\": \"$(ago 5)\", \"event\": \"requeued\"}]"
	in_line=$(mk queued)
	edit "$in_line" ".created_at = \"$(ago 600)\""
	claimed=$(mk queued)
	rc lrem 'np:{nessus}:queue' 0 "$claimed" > /dev/null
	rc zadd 'np:{nessus}:claims' "$(($(date +%s%3N) + 60000))" "$claimed" > /dev/null
	edit "$claimed" ".created_at = \"$(ago 600)\""
	run -0 hk
	jq -e '.requeued == 3 and .recovered == 0 and .errors == []' <<< "$output"
	run -0 rc lrange 'np:{nessus}:queue' 0 -1
	assert_output "$in_line"$'\n'"$lost"
	run -0 rc lrange 'np:{nessus}:iq:s2' 0 -1
	assert_output "$pinned"
	run -0 rc lrange 'np:{nessus}:iq:s1' 0 -1
	assert_output "$reattach"
	[ "$(rc lindex 'np:{nessus}:wake' 0)" = 1 ]
	jq -e '.history[-1].event == "requeued"' "$NP_DATA_DIR/tasks/$lost/task.json"
	# Once in line, it is not lost any more.
	run -0 hk
	jq -e '.requeued == 0' <<< "$output"
	run -0 rc llen 'np:{nessus}:queue'
	assert_output 2
	# And it runs.
	rc lrem 'np:{nessus}:queue' 0 "$in_line" > /dev/null
	rc del 'np:{nessus}:iq:s1' 'np:{nessus}:iq:s2' 'np:{nessus}:claims' > /dev/null
	run -0 drain
	[ "$(task status "$lost")" = completed ]
}

@test "orphans: reported at once, removed only past ttl_failed" {
	good=$(mk completed)
	garbage=20250101T000000Z-00000000000000ab
	mkdir -p "$NP_DATA_DIR/tasks/$garbage"
	printf '{"status": "compl' > "$NP_DATA_DIR/tasks/$garbage/task.json"
	mkdir "$NP_DATA_DIR/tasks/not-a-task"
	printf 'x%.0s' $(seq 100) > "$NP_DATA_DIR/tasks/not-a-task/f"
	empty=20250101T000000Z-00000000000000ac	# no task.json yet: being written
	mkdir "$NP_DATA_DIR/tasks/$empty"
	noidx=20250101T000000Z-00000000000000ad
	rc zadd np:tasks "$(($(date +%s%3N) - 3600000))" "$noidx" > /dev/null
	rc hset np:tindex "$noidx" $'failed\tnessus\tuntrusted\t10.0.0.1' > /dev/null
	rc zadd 'np:{nessus}:dlq' 1 "$noidx" > /dev/null
	run -0 hk
	jq -e --arg g "$garbage" --arg n "$noidx" '
		(.orphans.folders | sort) == ([$g, "not-a-task"] | sort) and
		.orphans.index == [$n] and .orphans_removed == 0 and .deleted == 0' <<< "$output"
	exists "$garbage"
	exists not-a-task
	indexed "$noidx"
	# Older than ttl_failed (1d): they go.
	touch -d '2 days ago' "$NP_DATA_DIR/tasks/$garbage" "$NP_DATA_DIR/tasks/not-a-task" \
		"$NP_DATA_DIR/tasks/$empty"
	rc zadd np:tasks "$(($(date +%s%3N) - 2 * 86400000))" "$noidx" > /dev/null
	want=$(bytes "$NP_DATA_DIR/tasks/$garbage" "$NP_DATA_DIR/tasks/not-a-task")
	run -0 hk
	jq -e --arg e "$empty" ".orphans_removed == 4 and .freed_bytes == $want and
		(.orphans.folders | index(\$e) != null)" <<< "$output"
	gone "$garbage"
	gone not-a-task
	gone "$empty"
	unindexed "$noidx"
	[ -z "$(rc zscore 'np:{nessus}:dlq' "$noidx")" ]
	exists "$good"
	indexed "$good"
	# Orphans are not TTL deletions.
	[ -z "$(rc hget np:counters ttl_deletions)" ]
	run -0 hk
	jq -e '.orphans == {"folders": [], "index": []} and .orphans_removed == 0' <<< "$output"
}

@test "--nessus-cleanup deletes exactly the finished tasks' scans, on their own scanners" {
	ids=()
	for s in s1 s1 s2 s2 s2; do
		ids+=("$(np-enqueue -n t -T 10.0.0.1 -i "$s" | jq -er .task_id)")
	done
	run -0 drain
	for id in "${ids[@]}"; do [ "$(task status "$id")" = completed ]; done
	edit "${ids[1]}" '.status = "failed"'
	edit "${ids[2]}" '.status = "running"'		# still running: its scan stays
	edit "${ids[3]}" '.nessus_deleted = true'	# cleaned already
	# A scan made on the scanner by someone else: never ours to delete.
	url=$(cat "$FAKE_DIR/s1.url")
	curl -sk --cacert "$FAKE_DIR/tls/cert.pem" -H 'X-ApiKeys: accessKey=accesskey; secretKey=secretkey' \
		-H 'Content-Type: application/json' -X POST "$url/scans" \
		-d '{"uuid":"731a8e52-3ea6-a291-ec0a-d2ff0619c19d7bd788d6be818b65",
		     "settings":{"name":"not np","text_targets":"10.9.9.9"}}' > /dev/null
	# Only np's own: the fakes number their scans alike, so the same id on
	# the other scanner would be someone else's scan.
	want_s1=$(printf '/scans/%s\n' "$(task nessus_scan_id "${ids[0]}")" \
		"$(task nessus_scan_id "${ids[1]}")" | sort)
	want_s2=$(printf '/scans/%s\n' "$(task nessus_scan_id "${ids[4]}")")
	run -0 hk --dry-run --nessus-cleanup
	jq -e '.nessus_deleted == 3' <<< "$output"
	run -0 fake_requests s1 'select(.method == "DELETE") | .path'
	assert_output ""
	run -0 hk --nessus-cleanup
	jq -e '.nessus_deleted == 3 and .errors == [] and .deleted == 0' <<< "$output"
	run -0 fake_requests s1 'select(.method == "DELETE") | .path'
	[ "$(tr -d '"' <<< "$output" | sort)" = "$want_s1" ]
	run -0 fake_requests s2 'select(.method == "DELETE") | .path'
	[ "$(tr -d '"' <<< "$output")" = "$want_s2" ]
	for i in 0 1 4; do
		jq -e '.nessus_deleted == true and .history[-1].event == "nessus_deleted"' \
			"$NP_DATA_DIR/tasks/${ids[$i]}/task.json"
	done
	[ "$(task nessus_deleted "${ids[2]}")" = null ]
	run -0 fake s1 GET /__fake/scans
	jq -e '[.scans[] | select(.name == "not np")][0].deleted == false' <<< "$output"
	# Done once: a second run sends nothing.
	run -0 hk --nessus-cleanup
	jq -e '.nessus_deleted == 0' <<< "$output"
	run -0 fake_requests s1 'select(.method == "DELETE")'
	[ "${#lines[@]}" -eq 2 ]
}

@test "--nessus-cleanup: a scanner gone from the config is an error, never another scanner" {
	id=$(np-enqueue -n t -T 10.0.0.1 -i s2 | jq -er .task_id)
	run -0 drain
	keys_scanner s1 2 | scan_config $'  ttl_completed: 1h\n  ttl_failed: 1d\n'
	run -0 hk --nessus-cleanup
	jq -e --arg id "$id" '.nessus_deleted == 0 and (.errors | length == 1) and
		(.errors[0] | contains($id) and contains("s2"))' <<< "$output"
	run -0 fake_requests s1 'select(.method == "DELETE")'
	assert_output ""
	[ "$(task nessus_deleted "$id")" = null ]
	# A scan that cannot be deleted now keeps its folder past the TTL.
	fake s1 POST /__fake/config '{}' > /dev/null
	{ keys_scanner s1 2; keys_scanner s2 2; } | scan_config $'  ttl_completed: 1h\n  ttl_failed: 1d\n'
	used "$id" 7200
	fake s2 POST /__fake/inject '{"errors":[{"route":"DELETE /scans/*","status":500,"count":10}]}' > /dev/null
	run -0 hk --nessus-cleanup
	jq -e '.nessus_deleted == 0 and .deleted == 0 and (.errors | length == 1)' <<< "$output"
	exists "$id"
	fake s2 POST /__fake/inject '{"errors":null}' > /dev/null
	run -0 hk --nessus-cleanup
	jq -e '.nessus_deleted == 1 and .deleted == 1 and .errors == []' <<< "$output"
	gone "$id"
}

@test "--pool: only that pool's tasks and claims" {
	two_pools
	a=$(mk completed nessus)
	used "$a" 7200
	b=$(mk completed dmz)
	used "$b" 7200
	rc zadd 'np:{nessus}:claims' 1000 "$a" > /dev/null
	mkdir "$NP_DATA_DIR/tasks/junk"
	touch -d '3 days ago' "$NP_DATA_DIR/tasks/junk"
	run -0 hk --pool dmz
	jq -e '.deleted == 1 and .recovered == 0 and .orphans.folders == []' <<< "$output"
	exists "$a"
	gone "$b"
	run -0 hk -p nessus
	jq -e '.deleted == 1 and .recovered == 1' <<< "$output"
}

@test "two housekeepers at once: the second exits 75; the lock is only ever ours to free" {
	id=$(np-enqueue -n t -T 10.0.0.1 -i s1 | jq -er .task_id)
	run -0 drain
	# The first run is held up by a slow scanner.
	fake s1 POST /__fake/inject '{"slow":[{"route":"DELETE /scans/*","seconds":1.5}]}' > /dev/null
	np-housekeep --nessus-cleanup > "$BATS_TEST_TMPDIR/first" &
	first=$!
	echo "$first" >> "$BATS_TEST_TMPDIR/pids"
	for _ in $(seq 100); do
		[ -n "$(rc get np:housekeep:lock)" ] && break
		sleep 0.02
	done
	run -75 np-housekeep
	assert_output --partial "another np-housekeep is running"
	wait "$first"
	jq -e '.nessus_deleted == 1' "$BATS_TEST_TMPDIR/first"
	[ "$(task nessus_deleted "$id")" = true ]
	run -0 rc exists np:housekeep:lock
	assert_output 0
	# Someone else's lock is left alone.
	rc set np:housekeep:lock other:1 px 60000 > /dev/null
	run -75 hk
	[ "$(rc get np:housekeep:lock)" = other:1 ]
	# A dry run takes no lock.
	run -0 hk --dry-run
	rc del np:housekeep:lock > /dev/null
	run -0 hk
}

@test "usage errors 64, config 78, Redis down 75" {
	run -64 hk extra
	run -64 hk --bogus
	run -64 hk --pool 'a/b'
	run -78 hk --pool nope
	NP_CONFIG=$BATS_TEST_TMPDIR/none.yaml run -78 hk
	run -0 hk --help
	assert_output --partial usage
	run -0 hk --version
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/none.sock run -75 hk
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/none.sock run -75 hk --dry-run
}

@test "no data yet: an empty summary" {
	rm -rf "$NP_DATA_DIR"
	run -0 hk
	[ "$output" = '{"dry_run":false,"deleted":0,"freed_bytes":0,"recovered":0,"requeued":0,"workers_pruned":0,"orphans":{"folders":[],"index":[]},"orphans_removed":0,"nessus_deleted":0,"errors":[]}' ]
	[ ! -e "$NP_DATA_DIR" ]
}

@test "the man page passes mandoc -T lint" {
	command -v mandoc > /dev/null || skip "mandoc is not installed"
	run -0 mandoc -T lint -W warning "$BATS_TEST_DIRNAME/../man/np-housekeep.8"
	assert_output ""
}

@test "systemd units: verify clean, security exposure under 20" {
	command -v systemd-analyze > /dev/null || skip "systemd-analyze is not installed"
	d=$BATS_TEST_TMPDIR/units
	mkdir -p "$d"
	bin=$(cd "$NP_BIN" && pwd)/np-housekeep
	sed "s|^ExecStart=.*|ExecStart=$bin|" "$BATS_TEST_DIRNAME/../systemd/np-housekeep.service" \
		> "$d/np-housekeep.service"
	cp "$BATS_TEST_DIRNAME/../systemd/np-housekeep.timer" "$d/"
	run -0 systemd-analyze verify --man=no "$d/np-housekeep.service" "$d/np-housekeep.timer"
	assert_output ""
	run -0 systemd-analyze security --offline=true --threshold=20 "$d/np-housekeep.service"
	grep -q '^Type=oneshot$' "$d/np-housekeep.service"
	grep -q '^User=np$' "$d/np-housekeep.service"
	run ! grep -q '^DynamicUser' "$d/np-housekeep.service"
	grep -q '^OnCalendar=hourly$' "$d/np-housekeep.timer"
	grep -q '^WantedBy=timers.target$' "$d/np-housekeep.timer"
}

@test "worker heartbeats silent for a day are forgotten, but the pool's newest" {
	two_pools
	now=$(date +%s%3N)
	day=$((24 * 3600 * 1000))
	rc HSET 'np:{nessus}:workers' live "$now" old1 "$((now - day - 5000))" \
		old2 "$((now - 2 * day))" > /dev/null
	rc HSET 'np:{dmz}:workers' last "$((now - 3 * day))" gone "$((now - 4 * day))" > /dev/null
	run -0 --separate-stderr np-housekeep --dry-run
	jq -e '.workers_pruned == 3' <<< "$output"
	[ "$(rc hlen 'np:{nessus}:workers')" = 3 ]
	run -0 --separate-stderr np-housekeep
	jq -e '.workers_pruned == 3' <<< "$output"
	[ "$(rc hkeys 'np:{nessus}:workers')" = live ]
	# Every worker of dmz is long gone: the last one seen stays.
	[ "$(rc hkeys 'np:{dmz}:workers')" = last ]
}
