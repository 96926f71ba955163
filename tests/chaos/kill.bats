#!/usr/bin/env bats
# Chaos: kill -9 of np-worker or of np-scan at every step of a task's
# life, then recovery by a new worker or by np-housekeep. Every task ends
# in exactly one terminal state, none is lost, none runs twice on Nessus,
# no claim or slot lease is left, and task.json is valid JSON throughout.
#
# A step is held open with the fake's "slow" injection (the request waits
# before it is handled) or, for the last one, by holding the record's
# lock. A held request is handled by the fake only after the test is
# over: each test has its own fake, stopped by teardown. Then: random
# storms of kills (one on a slow disk), a worker frozen past its lease,
# and a record writer stuck holding the record's lock.
# shellcheck disable=SC2154

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../../build/rel/bin}
load ../helpers
load chaos

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	"$BATS_TEST_DIRNAME/../fake-nessus/mkcert.sh" "$BATS_FILE_TMPDIR/tls" > /dev/null 2>&1
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
	# Requests may be held for long (request_timeout); claims expire fast.
	keys_scanner s1 2 | scan_config $'  request_timeout: 20s\n  max_attempts: 10\n  lease_ttl: 1s\n'
	json_watch
}

teardown() {
	exec 9>&- 2> /dev/null || true
	kill_tracked
	fake_stop "$FAKE_DIR"
}

enqueue() {
	np-enqueue -n "${2:-t}" -T "${1:-10.0.0.1}" | jq -er .task_id
}

inject() {
	fake s1 POST /__fake/inject "$1" > /dev/null
}

is() { # is ID FIELD VALUE
	[ "$(task "$2" "$1")" = "$3" ]
}

logged() { # logged JQ_SELECT: the fake has answered such a request
	[ -n "$(fake_requests s1 "select($1)")" ]
}

# reach POINT ID: sets up the fault holding task ID at POINT; run before
# the worker starts. at POINT ID waits until the task is there.
reach() {
	case $1 in
	take)	# np-worker took the task and its slot; np-scan has not started
		mkdir -p "$BATS_TEST_TMPDIR/hold"
		cat > "$BATS_TEST_TMPDIR/hold/np-scan" <<-EOF
		#!/bin/bash
		echo \$\$ > "$BATS_TEST_TMPDIR/hold/at.\$1"
		while [ -e "$BATS_TEST_TMPDIR/hold/on" ]; do sleep 0.05; done
		exec "$NP_BIN/np-scan" "\$@"
		EOF
		chmod +x "$BATS_TEST_TMPDIR/hold/np-scan"
		touch "$BATS_TEST_TMPDIR/hold/on"
		export NP_SCAN_BIN=$BATS_TEST_TMPDIR/hold/np-scan ;;
	lease)	# np-scan runs the task (record running), first request held
		inject '{"slow":[{"route":"GET /editor/scan/templates","seconds":60}]}' ;;
	create)	# the Nessus scan exists and is recorded, its launch held
		inject '{"slow":[{"route":"POST /scans/*/launch","seconds":60}]}' ;;
	running) # the Nessus scan runs
		fake s1 POST /__fake/config '{"running_seconds":2}' > /dev/null ;;
	download) # the export is ready, its download held
		inject '{"slow":[{"route":"GET /scans/*/export/*/download","seconds":60}]}' ;;
	final)	# scan.nessus downloaded, the record's final writes not made
		inject '{"slow":[{"route":"GET /scans/*/export/*/download","seconds":1}]}' ;;
	esac
}

at() {
	local id=$2
	case $1 in
	take)
		within 10 test -s "$BATS_TEST_TMPDIR/hold/at.$id"
		is "$id" status queued
		[ "$(rc hget 'np:{nessus}:claimed' "$id")" = s1 ] ;;
	lease)
		within 10 is "$id" status running
		is "$id" attempts 1
		is "$id" nessus_scan_id null
		sleep 0.3
		# Still held: no scan was created.
		! logged '.path == "/scans" and .method == "POST"' ;;
	create)
		within 10 is "$id" status running
		within 10 logged '.path == "/scans" and .method == "POST" and .status == 200'
		within 5 sh -c "[ \"\$(jq -r .nessus_scan_id '$NP_DATA_DIR/tasks/$id/task.json')\" != null ]"
		sleep 0.3
		is "$id" launched_at null
		! logged '(.path | endswith("/launch"))' ;;
	running)
		within 10 is "$id" nessus_status running
		[ "$(task launched_at "$id")" != null ] ;;
	download)
		within 10 logged '(.path | test("/export/[0-9]+/status$")) and .status == 200'
		sleep 0.3
		[ ! -e "$NP_DATA_DIR/tasks/$id/scan.nessus" ] ;;
	final)
		within 10 logged '(.path | test("/export/[0-9]+/status$")) and .status == 200'
		# Hold the record's lock, as a writer would: np-scan's next
		# write (the verdict, then completed) waits for it.
		exec 9> "$NP_DATA_DIR/tasks/$id/.lock"
		flock -x 9
		within 10 test -e "$NP_DATA_DIR/tasks/$id/scan.nessus"
		sleep 0.3
		is "$id" status running
		is "$id" validation_stats null ;;
	esac
}

# The run of one case: task ID killed (VICTIM worker or scan) at POINT,
# recovered by HOW (worker: a new worker; housekeep: np-housekeep first).
kill_case() {
	local point=$1 victim=$2 how=$3 id pids p want
	id=$(enqueue)
	reach "$point"
	start_worker
	at "$point" "$id"
	jq -e . "$NP_DATA_DIR/tasks/$id/task.json" > /dev/null
	if [ "$victim" = worker ]; then
		kill -9 "$W"
		wait "$W" 2> /dev/null || true
	else
		pids=$(scan_pids "$id")
		[ -n "$pids" ]
		for p in $pids; do kill -9 "$p"; done
	fi
	jq -e . "$NP_DATA_DIR/tasks/$id/task.json" > /dev/null
	[ "$point" = final ] && { exec 9>&-; }
	rm -f "$BATS_TEST_TMPDIR/hold/on"
	within 10 no_scan "$id"
	if [ "$victim" = worker ]; then
		kill -0 "$W" 2> /dev/null && false
		if [ "$how" = housekeep ]; then
			# The dead worker's claim expires (lease_ttl 1s).
			within 10 sh -c "[ -n \"\$(redis-cli -s '$REDIS_SOCK' zrangebyscore 'np:{nessus}:claims' -inf \$(date +%s%3N))\" ]"
			run -0 --separate-stderr np-housekeep
			jq -e '.recovered == 1 and .errors == []' <<< "$output"
		fi
	else
		# The worker outlives its np-scan and puts the task back in line,
		# also before np-scan started (the record still says queued).
		within 30 is "$id" status completed
		kill -TERM "$W"
		wait "$W"
	fi
	unset NP_SCAN_BIN
	run -0 drain
	is "$id" status completed
	# It went back in line once, and ran again; but an np-scan that had
	# its export already ends the task itself when its worker dies (the
	# recovery leaves a final record as it is).
	want=1
	[ "$point/$victim" = final/worker ] && want=0
	jq -e --argjson n "$want" '[.history[] | select(.event == "requeued")] | length == $n' \
		"$NP_DATA_DIR/tasks/$id/task.json"
	[ "$(grep -c '<ReportHost ' "$NP_DATA_DIR/tasks/$id/scan.nessus")" -eq 1 ]
	settled nessus "$id"
	once s1 -- "$id"
	json_watched
	# Nothing left for housekeeping to do.
	run -0 --separate-stderr np-housekeep
	jq -e '.recovered == 0 and .requeued == 0' <<< "$output"
}

@test "kill -9 worker after take (np-scan not started); np-housekeep recovers" {
	kill_case take worker housekeep
}

@test "kill -9 np-scan after take (before it ran); the worker puts the task back in line" {
	kill_case take scan worker
}

@test "kill -9 worker after the lease (np-scan running, no scan yet); a new worker recovers" {
	kill_case lease worker worker
}

@test "kill -9 np-scan after the lease (no scan yet); the worker hands the task back" {
	kill_case lease scan worker
}

@test "kill -9 worker after create, before launch; np-housekeep recovers, the scan is launched once" {
	kill_case create worker housekeep
}

@test "kill -9 np-scan after create, before launch; relaunched once, never recreated" {
	kill_case create scan worker
}

@test "kill -9 worker while the scan runs; a new worker reattaches" {
	kill_case running worker worker
}

@test "kill -9 np-scan while the scan runs; the worker reattaches" {
	kill_case running scan worker
}

@test "kill -9 worker during the export download; np-housekeep recovers" {
	kill_case download worker housekeep
}

@test "kill -9 np-scan during the export download; downloaded again, scanned once" {
	kill_case download scan worker
}

@test "kill -9 worker after the download, before the final write; a new worker recovers" {
	kill_case final worker worker
}

@test "kill -9 np-scan after the download, before the final write" {
	kill_case final scan worker
}

# storm TASKS SECONDS [stalls]: TASKS tasks over two scanners of 2 slots,
# two workers, and for SECONDS a random kill -9 of a worker (replaced at
# once) or of an np-scan, or an np-housekeep run, every 0.1 to 0.4 s.
# Then the workers stop, a drain finishes the work, and each task must
# have completed, nothing left in Redis, every record whole. Without
# stalls each also ran on one Nessus scan, made and launched once; with
# workers stalled past their leases a second scan may be made
# (np.yaml(5), lease_ttl), so then that is not asserted.
# NP_STORM_MONITOR=1 keeps Redis's MONITOR output in the test's folder.
storm() {
	local ntasks=$1 secs=$2 stalls=${3:-} kills=0 end i p s n id w1 w2 ids
	fake s1 POST /__fake/config '{"running_seconds":0.8}' > /dev/null
	fake_start s2 "$FAKE_DIR" '{"pending_seconds":0.05,"running_seconds":0.8}'
	{ keys_scanner s1 2; keys_scanner s2 2; } |
		scan_config $'  request_timeout: 5s\n  max_attempts: 100\n  lease_ttl: 1s\n'
	for i in $(seq "$ntasks"); do
		printf '{"name":"r%d","targets":"10.9.%d.%d"}\n' "$i" $((i / 250)) $((i % 250 + 1))
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	[ "$(wc -l < "$BATS_TEST_TMPDIR/ids")" -eq "$ntasks" ]
	if [ -n "${NP_STORM_MONITOR:-}" ]; then
		rc monitor > "$BATS_TEST_TMPDIR/monitor.log" 3>&- &
		track $!
	fi
	start_worker
	w1=$W
	start_worker
	w2=$W
	end=$((SECONDS + secs))
	while [ "$SECONDS" -lt "$end" ]; do
		sleep "0.$((RANDOM % 4 + 1))"
		case $((RANDOM % 5)) in
		0) # a worker, replaced at once
			if [ $((RANDOM % 2)) = 0 ]; then
				kill -9 "$w1"
				wait "$w1" 2> /dev/null || true
				start_worker
				w1=$W
			else
				kill -9 "$w2"
				wait "$w2" 2> /dev/null || true
				start_worker
				w2=$W
			fi ;;
		1) np-housekeep > /dev/null 2>> "$BATS_TEST_TMPDIR/hk.log" || true ;;
		*) # an np-scan
			p=$(pgrep -P "$w1,$w2" | shuf -n 1)
			[ -z "$p" ] || kill -9 "$p" 2> /dev/null || true ;;
		esac
		kills=$((kills + 1))
	done
	kill -TERM "$w1" "$w2"
	wait "$w1" "$w2" 2> /dev/null || true
	run -0 drain
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	for id in "${ids[@]}"; do
		is "$id" status completed || {
			# What happened to it: its record, the logs, Redis.
			jq -c '{status, error, attempts, history}' "$NP_DATA_DIR/tasks/$id/task.json" >&2
			grep -hF "$id" "$BATS_TEST_TMPDIR/w.log" "$BATS_TEST_TMPDIR/hk.log" | tail -20 >&2
			printf '%s\n' "$output" | grep -F "$id" >&2 || true
			for k in $(rc --scan --pattern 'np:{nessus}:*'); do
				echo "$k: $(rc type "$k"), names it: $(rc --no-raw dump "$k" | grep -c "$id")" >&2
			done
			return 1
		}
	done
	settled nessus "${ids[@]}"
	if [ -z "$stalls" ]; then
		once s1 s2 -- "${ids[@]}"
		n=0
		for s in s1 s2; do
			n=$((n + $(fake "$s" GET /__fake/scans | jq '.scans | length')))
		done
		[ "$n" -eq "$ntasks" ]
	fi
	json_watched
	echo "# $kills faults injected" >&3
}

@test "random kill -9 of workers and np-scans for 8s, with housekeeping: all complete, each scanned once" {
	# NP_STORM="tasks seconds" makes it a longer soak.
	storm ${NP_STORM:-16 8}
}

@test "the same storm on a slow disk (each fsync 0-400 ms): workers stall past their 1s leases, still no task is lost" {
	# A claim recovered and taken again while its recoverer was slow
	# to write the record once left the record queued under a running
	# np-scan, which could not end it: the task was in no line.
	LD_PRELOAD=${NP_UNIT:-$BATS_TEST_DIRNAME/../../build/rel/tests}/slowsync.so
	[ -f "$LD_PRELOAD" ] || skip "no slowsync.so (make check builds it)"
	# The sanitizers' runtime must be first; the shim only wraps libc.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	SLOW_SYNC_MS=400
	export LD_PRELOAD SLOW_SYNC_MS ASAN_OPTIONS
	storm 24 12 stalls
}

# running SECONDS: a task (id) whose scan runs that long, its worker w1 and
# its np-scan a.
running() {
	fake s1 POST /__fake/config "{\"running_seconds\":$1}" > /dev/null
	id=$(enqueue)
	start_worker
	w1=$W
	within 10 is "$id" nessus_status running
	a=$(scan_pids "$id")
	[ -n "$a" ]
}

@test "a worker frozen (SIGSTOP) past its lease with its np-scan: recovered elsewhere, it stops its np-scan on waking" {
	# Long enough that both np-scans would still be polling at the check.
	running 15
	sid=$(task nessus_scan_id "$id")
	# A paused VM, say: the worker and its np-scan stop renewing. (Not in
	# the middle of a record write: that is the next test.)
	exec 9> "$NP_DATA_DIR/tasks/$id/.lock"
	flock -x 9
	kill -STOP "$w1" "$a"
	exec 9>&-
	sleep 1.5
	run -0 --separate-stderr np-housekeep
	jq -e '.recovered == 1' <<< "$output"
	is "$id" status queued
	# Another worker takes the task and reattaches to its scan.
	start_worker
	w2=$W
	within 10 is "$id" attempts 2
	within 10 is "$id" status running
	[ "$(scan_pids "$id" | wc -l)" -eq 2 ]
	kill -CONT "$a" "$w1"
	# np-worker(8): "on reconnecting, it finds them gone at the next
	# renewal and stops those scans": the claim is the other worker's now.
	within 3 sh -c "[ \"\$(pgrep -cf 'np-scan $id\$')\" -le 1 ]"
	# Gone, or a zombie its worker has yet to reap.
	st=$(awk '/^State:/ { print $2 }' "/proc/$a/status" 2> /dev/null || true)
	[ -z "$st" ] || [ "$st" = Z ] || { echo "np-scan $a of the frozen worker still runs ($st)" >&2; false; }
	within 30 is "$id" status completed
	kill -TERM "$w1" "$w2"
	wait "$w1"
	wait "$w2"
	[ "$(task nessus_scan_id "$id")" = "$sid" ]
	np-validate "$NP_DATA_DIR/tasks/$id/scan.nessus" > /dev/null
	settled nessus "$id"
	once s1 -- "$id"
	json_watched
}

@test "a worker frozen (SIGSTOP) past its lease while its np-scan runs on: at the scan's end that np-scan stops, the next holder's slot untouched" {
	running 4
	# The worker stops renewing; its np-scan, a process of its own, polls on.
	kill -STOP "$w1"
	sleep 1.5
	run -0 --separate-stderr np-housekeep
	jq -e '.recovered == 1' <<< "$output"
	start_worker
	w2=$W
	within 10 is "$id" attempts 2
	[ "$(rc hget 'np:{nessus}:claimed' "$id")" = s1 ]
	# Both np-scans see the scan end. The first one's claim is gone: it
	# frees no slot (the one on s1 is the second holder's) and stops.
	within 20 sh -c "! kill -0 $a 2> /dev/null || grep -q '^State:.Z' /proc/$a/status"
	kill -CONT "$w1"
	within 30 is "$id" status completed
	kill -TERM "$w1" "$w2"
	wait "$w1"
	wait "$w2"
	# Only the second holder fetched the export.
	run -0 fake_requests s1 'select(.method == "POST" and (.path | endswith("/export")))'
	[ "${#lines[@]}" -eq 1 ]
	settled nessus "$id"
	once s1 -- "$id"
	json_watched
	grep -q "task $id: claimed by another worker now: this run outlived its lease and stops" "$BATS_TEST_TMPDIR/w.log"
}

# stuck_writer ID: the record's lock is held by this shell (fd 9), as by a
# writer that hangs (a stalled disk, say); the task's worker dies and its
# claim expires. Nothing started afterwards may inherit fd 9 (9>&-).
stuck_writer() {
	local id=$1
	fake s1 POST /__fake/config '{"running_seconds":3}' > /dev/null
	start_worker
	w1=$W
	within 10 is "$id" nessus_status running
	exec 9> "$NP_DATA_DIR/tasks/$id/.lock"
	flock -x 9
	kill -9 "$w1"
	wait "$w1" 2> /dev/null || true
	within 10 sh -c "[ -n \"\$(redis-cli -s '$REDIS_SOCK' zrangebyscore 'np:{nessus}:claims' -inf \$(date +%s%3N))\" ]"
}

@test "a record writer stuck holding the record's lock does not hang np-housekeep" {
	id=$(enqueue)
	stuck_writer "$id"
	# np-housekeep(8): "A task being written is skipped until the next run".
	run --separate-stderr timeout -k 2 10 np-housekeep 9>&-
	exec 9>&-
	[ "$status" -eq 0 ] || { echo "np-housekeep: status $status: it waited for the lock, deaf to SIGTERM" >&2; false; }
	run -0 drain
	is "$id" status completed
	settled nessus "$id"
	once s1 -- "$id"
}

@test "a record writer stuck holding the record's lock does not stall a worker recovering its claim" {
	id=$(enqueue)
	stuck_writer "$id"
	other=$(enqueue 10.0.0.2 other 9>&-)
	start_worker 9>&-
	w2=$W
	ok=0
	for _ in $(seq 100); do
		[ "$(task status "$other")" = completed ] && { ok=1; break; }
		sleep 0.1
	done
	exec 9>&-
	[ "$ok" = 1 ] || { echo "the worker stalled behind the record lock" >&2; false; }
	within 30 is "$id" status completed
	kill -TERM "$w2"
	wait "$w2"
	settled nessus "$id" "$other"
	once s1 -- "$id" "$other"
}
