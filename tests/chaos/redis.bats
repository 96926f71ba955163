#!/usr/bin/env bats
# Chaos: the Redis server dies (kill -9) and comes back from its AOF
# while tasks are queued and running; np-worker's warnings about Redis
# settings that can lose queued tasks.
# shellcheck disable=SC2154

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../../build/rel/bin}
load ../helpers
load chaos

setup_file() {
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	export FAKE_DIR
	fake_start s1 "$FAKE_DIR" '{"pending_seconds":0.01,"running_seconds":0.05}'
	fake_start s2 "$FAKE_DIR" '{"pending_seconds":0.01,"running_seconds":0.05}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
}

setup() {
	fake_reset s1
	fake_reset s2
	scan_env
}

teardown() {
	kill_tracked
	redis_stop
}

# Redis of this test, in a folder kept across its restarts.
redis_up() {
	mkdir -p "$BATS_TEST_TMPDIR/redis"
	REDIS_ARGS=$1 redis_start "$BATS_TEST_TMPDIR/redis"
}

# pending: what np-status says is still to do.
pending() {
	np-status --queue --pool nessus | jq -r '.queue_depth + .processing'
}

# outage CMD...: CMD must exit 75 with one clear line on stderr naming
# Redis, and print nothing on standard output.
outage() {
	run -75 --separate-stderr "$@"
	[ "${#stderr_lines[@]}" -eq 1 ] || { printf '%s\n' "$stderr" >&2; false; }
	[[ "$stderr" == "$(basename "$1"):"*[Rr]edis* ]] || { echo "$1: $stderr" >&2; false; }
}

@test "Redis killed and restarted from its AOF with 500 tasks queued and 4 running: nothing lost" {
	redis_up "--appendonly yes --appendfsync always"
	# The first scans run long enough to be running through the outage.
	fake s1 POST /__fake/config '{"running_seconds":4}' > /dev/null
	fake s2 POST /__fake/config '{"running_seconds":4}' > /dev/null
	{ keys_scanner s1 2; keys_scanner s2 2; } |
		scan_config $'  poll_interval: 50ms\n  lease_ttl: 10s\n  max_attempts: 5\n'
	for i in $(seq 504); do
		printf '{"name":"q%d","targets":"10.7.%d.%d"}\n' "$i" $((i / 250)) $((i % 250 + 1))
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	[ "$(grep -c . "$BATS_TEST_TMPDIR/ids")" -eq 504 ]
	start_worker --drain
	w1=$W
	start_worker --drain
	w2=$W
	# 4 running (2 slots on each of 2 scanners), 500 queued.
	within 20 sh -c "[ \"\$(np-status --queue --pool nessus | jq -c '[.queue_depth, .processing]')\" = '[500,4]' ]"
	within 10 sh -c "[ \"\$(curl -sk $(cat "$FAKE_DIR/s1.url")/__fake/scans | jq '[.scans[] | select(.status == \"running\")] | length')\" = 2 ]"
	fake s1 POST /__fake/config '{"running_seconds":0.05}' > /dev/null
	fake s2 POST /__fake/config '{"running_seconds":0.05}' > /dev/null
	# Redis dies.
	kill -9 "$(cat "$REDIS_DIR/redis.pid")"
	rm -f "$REDIS_DIR/redis.pid"
	within 5 sh -c "! redis-cli -s '$REDIS_SOCK' ping > /dev/null 2>&1"
	t0=$(date +%s)
	id=$(sed -n 300p "$BATS_TEST_TMPDIR/ids")
	# Commands run meanwhile exit 75, saying why, and change nothing.
	n=$(find "$NP_DATA_DIR/tasks" -mindepth 1 -maxdepth 1 | wc -l)
	outage np-enqueue -n late -T 10.0.0.1
	outage np-status --list
	outage np-status --queue
	outage np-select --list
	outage np-dlq list
	outage np-cancel "$id"
	outage np-housekeep
	outage np-metrics
	outage np-worker --drain
	run -75 --separate-stderr np-status --health
	jq -e '.status == "unavailable"' <<< "$output"
	[ "$(find "$NP_DATA_DIR/tasks" -mindepth 1 -maxdepth 1 | wc -l)" -eq "$n" ]
	[ "$(task status "$id")" = queued ]
	# The workers are still there, waiting for Redis.
	kill -0 "$w1"
	kill -0 "$w2"
	# Redis comes back after 3s, from the same folder (its AOF).
	sleep $((3 - ($(date +%s) - t0)))
	redis_up "--appendonly yes --appendfsync always"
	t1=$(date +%s)
	# Each worker reconnects, within its backoff (at most 8s by then).
	within 10 sh -c "[ \"\$(grep -c 'redis: reconnected' '$BATS_TEST_TMPDIR/w.log')\" -ge 2 ]"
	echo "# reconnected $(($(date +%s) - t1))s after the restart" >&3
	# More slots for the 500 (a reload, as an operator would): the test
	# is about Redis, not about waiting for 4 slots.
	sed -i 's/max_concurrent_scans: 2/max_concurrent_scans: 6/' "$NP_CONFIG"
	kill -HUP "$w1" "$w2"
	timeout 150 sh -c "while kill -0 $w1 2> /dev/null || kill -0 $w2 2> /dev/null; do sleep 0.2; done"
	# Both drained and exited 0: neither died of the outage (a write to
	# the dead server's socket must be an error to reconnect from, not a
	# SIGPIPE).
	wait "$w1" || { echo "worker 1 exited $?" >&2; false; }
	wait "$w2" || { echo "worker 2 exited $?" >&2; false; }
	grep -q "reconnecting" "$BATS_TEST_TMPDIR/w.log"
	# All 504 completed, each once, and the index says so too.
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	settled nessus "${ids[@]}"
	[ "$(cut -f2 "$BATS_TEST_TMPDIR/settled.st" | sort | uniq -c | awk '{ print $2 "=" $1 }')" = completed=504 ]
	once s1 s2 -- "${ids[@]}"
	# The np-scans that ran through the outage ended by themselves (75 at
	# worst), none was killed by a signal.
	printf "$NP_DATA_DIR/tasks/%s/task.json\n" "${ids[@]}" |
		xargs jq -r '.task_id as $id | .history[] | select(.detail // "" | test("killed by a signal")) |
			"\($id): \(.detail)"' > "$BATS_TEST_TMPDIR/killed"
	[ ! -s "$BATS_TEST_TMPDIR/killed" ] || { cat "$BATS_TEST_TMPDIR/killed" >&2; false; }
	# The task index agrees, also for the tasks that ended while Redis
	# was away: np-status --list --status completed finds all 504 (the
	# index narrows the search by state; see np-status(1)).
	np-status --list --status completed -n 1000 | jq -r .task_id | sort > "$BATS_TEST_TMPDIR/index"
	sort "$BATS_TEST_TMPDIR/ids" > "$BATS_TEST_TMPDIR/all"
	comm -23 "$BATS_TEST_TMPDIR/all" "$BATS_TEST_TMPDIR/index" > "$BATS_TEST_TMPDIR/unlisted"
	if [ -s "$BATS_TEST_TMPDIR/unlisted" ]; then
		echo "completed, but not listed as completed (np:tindex says):" >&2
		while read -r id; do
			echo "$id: $(rc hget np:tindex "$id" | cut -f1)" >&2
		done < "$BATS_TEST_TMPDIR/unlisted"
		false
	fi
	run -0 np-status --queue --pool nessus
	jq -e '.queue_depth == 0 and .processing == 0 and .dlq_depth == 0' <<< "$output"
	# This server keeps its data: np-worker did not warn about it.
	run -1 grep -E "maxmemory-policy|no persistence" "$BATS_TEST_TMPDIR/w.log"
}

@test "Redis down longer than lease_ttl while scans run, np-housekeep first back: each task completes once, on one scan" {
	redis_up "--appendonly yes --appendfsync always"
	fake s1 POST /__fake/config '{"running_seconds":2}' > /dev/null
	fake s2 POST /__fake/config '{"running_seconds":2}' > /dev/null
	{ keys_scanner s1 2; keys_scanner s2 2; } |
		scan_config $'  poll_interval: 50ms\n  lease_ttl: 1s\n  max_attempts: 10\n'
	for i in $(seq 12); do
		printf '{"name":"o%d","targets":"10.8.0.%d"}\n' "$i" "$i"
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	start_worker
	w1=$W
	start_worker
	w2=$W
	within 20 sh -c "[ \"\$(curl -sk $(cat "$FAKE_DIR/s1.url")/__fake/scans | jq '[.scans[] | select(.status == \"running\")] | length')\" = 2 ]"
	kill -9 "$(cat "$REDIS_DIR/redis.pid")"
	rm -f "$REDIS_DIR/redis.pid"
	# Down three lease_ttls: every claim has expired when it is back.
	sleep 3
	redis_up "--appendonly yes --appendfsync always"
	# The hourly housekeeping happens to run first: it recovers the claims
	# of the running scans; their workers find them gone.
	run -0 --separate-stderr np-housekeep
	jq -e '.recovered >= 1' <<< "$output"
	# Until all is done, or a worker died.
	for _ in $(seq 600); do
		kill -0 "$w1" 2> /dev/null && kill -0 "$w2" 2> /dev/null || break
		[ "$(np-status --queue --pool nessus | jq '.queue_depth + .processing')" = 0 ] &&
			[ "$(rc llen 'np:{nessus}:iq:s1')" = 0 ] && [ "$(rc llen 'np:{nessus}:iq:s2')" = 0 ] && break
		sleep 0.1
	done
	kill -TERM "$w1" "$w2" 2> /dev/null || true
	wait "$w1" || { echo "worker 1 exited $?" >&2; false; }
	wait "$w2" || { echo "worker 2 exited $?" >&2; false; }
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	settled nessus "${ids[@]}"
	[ "$(cut -f2 "$BATS_TEST_TMPDIR/settled.st" | sort -u)" = completed ]
	once s1 s2 -- "${ids[@]}"
	for id in "${ids[@]}"; do
		[ "$(grep -c '<ReportHost ' "$NP_DATA_DIR/tasks/$id/scan.nessus")" -eq 1 ]
		np-validate "$NP_DATA_DIR/tasks/$id/scan.nessus" > /dev/null
	done
}

@test "SIGTERM to np-worker while Redis is down: it exits 0 (no crash); the task is recovered once Redis is back" {
	redis_up "--appendonly yes --appendfsync always"
	fake s1 POST /__fake/config '{"running_seconds":4}' > /dev/null
	keys_scanner s1 2 | scan_config $'  lease_ttl: 1s\n  max_attempts: 5\n'
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -er .task_id)
	start_worker
	within 10 sh -c "[ \"\$(jq -r .nessus_status '$NP_DATA_DIR/tasks/$id/task.json')\" = running ]"
	sid=$(jq -r .nessus_scan_id "$NP_DATA_DIR/tasks/$id/task.json")
	kill -9 "$(cat "$REDIS_DIR/redis.pid")"
	rm -f "$REDIS_DIR/redis.pid"
	within 5 grep -q reconnecting "$BATS_TEST_TMPDIR/w.log"
	# Stopped while it cannot reach Redis: the hand-back cannot be made;
	# the claim will expire and be recovered.
	kill -TERM "$W"
	run timeout -k 2 40 sh -c "while kill -0 $W 2> /dev/null; do sleep 0.1; done"
	wait "$W" || { echo "np-worker exited $? (139: SIGSEGV)" >&2; false; }
	redis_up "--appendonly yes --appendfsync always"
	run -0 drain
	[ "$(jq -r .status "$NP_DATA_DIR/tasks/$id/task.json")" = completed ]
	[ "$(jq -r .nessus_scan_id "$NP_DATA_DIR/tasks/$id/task.json")" = "$sid" ]
	settled nessus "$id"
	once s1 -- "$id"
}

@test "np-worker warns at start about an evicting maxmemory-policy and about no persistence" {
	redis_up "--maxmemory-policy allkeys-lru"
	keys_scanner s1 2 | scan_config
	run -0 --separate-stderr timeout 20 np-worker --drain
	[[ "$stderr" == *"maxmemory-policy is allkeys-lru"* ]]
	[[ "$stderr" == *"evict queued tasks"* ]]
	[[ "$stderr" == *"noeviction"* ]]
	# Started by redis_start with --save '' --appendonly no.
	[[ "$stderr" == *"no persistence"* ]]
	[[ "$stderr" == *"appendonly yes"* ]]
	[ "$(grep -c 'np-worker: .*maxmemory-policy' <<< "$stderr")" -eq 1 ]
}

@test "np-worker does not warn with noeviction and AOF, nor with RDB snapshots only" {
	redis_up "--appendonly yes"
	keys_scanner s1 2 | scan_config
	run -0 --separate-stderr timeout 20 np-worker --drain
	[[ "$stderr" != *"maxmemory-policy"* ]]
	[[ "$stderr" != *"persistence"* ]]
	redis_stop
	redis_up "--save 60 1"
	run -0 --separate-stderr timeout 20 np-worker --drain
	[[ "$stderr" != *"persistence"* ]]
	[[ "$stderr" != *"maxmemory-policy"* ]]
	# The warning is about queued tasks being lost: it does not stop the worker.
	redis_stop
	redis_up "--maxmemory-policy volatile-lru"
	id=$(np-enqueue -n t -T 10.0.0.1 | jq -r .task_id)
	run -0 --separate-stderr timeout 30 np-worker --drain
	[[ "$stderr" == *"maxmemory-policy is volatile-lru"* ]]
	[ "$(task status "$id")" = completed ]
}
