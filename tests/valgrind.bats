#!/usr/bin/env bats
# Every command's main paths under valgrind --leak-check=full: no leak
# (definite or indirect) and no memory error. A whole scan runs in the
# worker's own child under valgrind (valgrind follows the fork), and a
# failing one with the worker and the np-scan program (NP_SCAN_BIN) both
# under valgrind, and a task stopped while its export is asked for.
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
	command -v valgrind > /dev/null || skip "valgrind is not installed"
	! grep -qa __asan_init "$NP_BIN/np-enqueue" || skip "an ASan build: valgrind cannot run it"
	redis_flush
	fake_reset s1
	scan_env
	# valgrind is slow: long leases and request timeouts.
	keys_scanner s1 2 | scan_config $'  lease_ttl: 60s\n  request_timeout: 30s\n  poll_interval: 200ms\n'
	VG=$BATS_TEST_TMPDIR/vg
	mkdir -p "$VG"
}

# vg CMD ARGS...: runs an np command under valgrind, its report in $VG
# (VG_TIMEOUT: seconds it may take, default 300).
vg() {
	local c=$1
	shift
	timeout "${VG_TIMEOUT:-300}" valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=99 \
		--log-file="$VG/$c.%p" "$NP_BIN/$c" "$@"
}

# clean: no valgrind report says anything (-q: only errors are written).
clean() {
	local f bad=0
	for f in "$VG"/*; do
		[ -s "$f" ] || continue
		echo "== $f" >&2
		cat "$f" >&2
		bad=1
	done
	[ "$bad" = 0 ]
}

scan_completed() { # scan_completed ID: its Nessus scan has completed
	[ "$(task nessus_status "$1")" = completed ]
}

@test "np-enqueue, np-select, np-status, np-metrics: no leaks" {
	run -0 vg np-enqueue -n one -T 10.0.0.1
	id=$(jq -r .task_id <<< "$output")
	run -0 vg np-enqueue --json <<< '{"name":"two","targets":"10.0.0.0/30","scan_type":"untrusted"}'
	printf '{"name":"b%d","targets":"10.1.0.%d"}\n' 1 1 2 2 3 3 | vg np-enqueue --batch > /dev/null
	run -65 vg np-enqueue --json <<< '{"name":'
	run -0 vg np-select --pool nessus
	run -0 vg np-select --list --pool nessus
	run -0 vg np-status "$id"
	run -0 vg np-status --list --target 10.0.0.0/24
	run -0 vg np-status --queue --pool nessus
	# Unhealthy (no worker is alive): 1, a verdict, not an error.
	run -1 vg np-status --health
	run -0 vg np-status -H "$id"
	run -0 vg np-metrics
	run -66 vg np-status 20990101T000000Z-0000000000000000
	clean
}

@test "a whole scan (np-worker's child, and the np-scan program), then np-validate, np-results, np-dlq, np-housekeep, np-cancel: no leaks" {
	id=$(np-enqueue -n vg -T "10.0.0.1 10.0.0.2" | jq -er .task_id)
	run vg np-worker --drain
	clean
	[ "$status" -eq 0 ]
	[ "$(task status "$id")" = completed ]
	# Two reports at least: the worker's and its child's.
	[ "$(find "$VG" -name 'np-worker.*' | wc -l)" -ge 2 ]
	cat > "$BATS_TEST_TMPDIR/np-scan" <<-EOF
		#!/bin/sh
		exec valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect --error-exitcode=99 \
			--log-file="$VG/np-scan.%p" "$NP_BIN/np-scan" "\$@"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/np-scan"
	f=$NP_DATA_DIR/tasks/$id/scan.nessus
	run -0 vg np-validate "$f"
	run -0 vg np-results "$id"
	run -0 vg np-results -P full -f 'severity>=2' -p 0 "$id"
	# A dead task, listed, inspected and retried; then cancelled.
	fake s1 POST /__fake/inject '{"errors":[{"route":"POST /scans","status":500,"count":null}]}' > /dev/null
	dead=$(np-enqueue -n dead -T 10.0.0.3 | jq -er .task_id)
	NP_SCAN_BIN=$BATS_TEST_TMPDIR/np-scan run -0 vg np-worker --drain
	[ "$(task status "$dead")" = failed ]
	[ -n "$(find "$VG" -name 'np-scan.*')" ]
	run -0 vg np-dlq list
	run -0 vg np-dlq inspect "$dead"
	run -0 vg np-dlq stats
	fake_reset s1
	run -0 vg np-dlq retry "$dead"
	run -0 vg np-cancel "$dead"
	run -0 vg np-housekeep --dry-run
	run -0 vg np-housekeep
	clean
}

@test "a task stopped while its export is asked for (np-worker's child, SIGTERM): no leak" {
	# The export request is held 5 s; SIGTERM comes once the scan ended.
	fake s1 POST /__fake/inject '{"slow":[{"route":"POST /scans/*/export","seconds":5}]}' > /dev/null
	id=$(np-enqueue -n vg -T 10.0.0.1 | jq -er .task_id)
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=99 \
		--log-file="$VG/np-worker.%p" "$NP_BIN/np-worker" 3>&- &
	w=$!
	within 30 scan_completed "$id"
	sleep 0.5
	kill -TERM "$w"
	wait "$w"
	[ "$(task status "$id")" = queued ]
	task error "$id" | grep -q "export: interrupted"
	clean
}
