#!/usr/bin/env bats
# The README's first command: make demo (scripts/demo) runs np end to end
# on its own redis-server and fake scanners, ends each scan as it says,
# and stops and removes everything it started.
# shellcheck disable=SC2154

load helpers

# demo_dirs: the private directories of demo runs now on this machine.
demo_dirs() {
	find /tmp -maxdepth 1 -name 'np-demo.*' -type d | sort
}

@test "make demo: each of its seven scans ends as it says; nothing is left running or on disk" {
	before=$(demo_dirs)
	run -0 timeout 120 "$BATS_TEST_DIRNAME/../scripts/demo"
	# NAME POOL SCANNER STATUS SECONDS ATTEMPTS WHY, one line per task.
	row() { grep -E "^$1 +$2 +$3 +$4 " <<< "$output"; }
	for t in 'mail relay' 'db hosts' 'web tier'; do
		row "$t" nessus scanner1 completed
	done
	row 'dmz web' dmz dmz1 completed
	row 'dmz vpn' dmz dmz1 completed
	row 'wrong password' nessus scanner1 failed | grep -q ' auth_failed$'
	row 'on the broken scanner' nessus scanner2 failed |
		grep -q ' attempts_exhausted$'
	grep -Eq '^nessus +scanner2 +yes +0 +2 +0\.0 +open ' <<< "$output"
	grep -q '"pool":"nessus","queue_depth":0,.*"dlq_depth":2' <<< "$output"
	grep -q 'everything it started is stopped now' <<< "$output"
	[ "$(demo_dirs)" = "$before" ]
	run pgrep -f '/tmp/np-demo\.'
	[ "$status" -eq 1 ]
}
