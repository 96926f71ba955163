#!/usr/bin/env bats
# Load: thousands of short scans over 20 fake scanners and 3 workers.
# All complete, each scanned once, and no scanner ever runs more scans at
# once than its max_concurrent_scans (the fakes measure it).
#
# NP_LOAD_TASKS sets the number of tasks: 5,000, or 1,000 under the
# sanitizers (several times slower; the same code paths).
# shellcheck disable=SC2154

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../../build/rel/bin}
load ../helpers
load chaos

if [ "${NP_SANITIZE:-}" = 1 ]; then
	N=${NP_LOAD_TASKS:-1000}
else
	N=${NP_LOAD_TASKS:-5000}
fi
FAKES=20

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	export FAKE_DIR
	"$BATS_TEST_DIRNAME/../fake-nessus/mkcert.sh" "$FAKE_DIR/tls" > /dev/null 2>&1
	for i in $(seq "$FAKES"); do
		fake_start "f$i" "$FAKE_DIR" '{"pending_seconds":0.01,"running_seconds":0.05}' &
	done
	wait
	for i in $(seq "$FAKES"); do
		[ -s "$FAKE_DIR/f$i.url" ]
	done
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	scan_env
}

teardown() {
	kill_tracked
}

# Scanner i may run 1, 2 or 3 scans at once.
max_of() {
	echo $(($1 % 3 + 1))
}

@test "load: 5,000 tasks (NP_LOAD_TASKS) over 20 scanners and 3 workers, all complete, no scanner over its max" {
	# lease_ttl well above the stalls of a loaded machine (20 fakes, ASan):
	# a holder slower than its lease races the next holder (np.yaml(5)).
	for i in $(seq "$FAKES"); do
		keys_scanner "f$i" "$(max_of "$i")"
	done | scan_config $'  poll_interval: 50ms\n  lease_ttl: 10s\n  max_attempts: 3\n  request_timeout: 20s\n'
	t0=$(date +%s%N)
	for i in $(seq "$N"); do
		printf '{"name":"l%d","targets":"10.%d.%d.%d"}\n' "$i" $((i / 62500)) $((i / 250 % 250)) $((i % 250 + 1))
	done | np-enqueue --batch | jq -r .task_id > "$BATS_TEST_TMPDIR/ids"
	[ "$(grep -c . "$BATS_TEST_TMPDIR/ids")" -eq "$N" ]
	t1=$(date +%s%N)
	# Redis's view, sampled: no scanner ever holds more leases than its max.
	(
		while :; do
			np-select --list --pool nessus 2> /dev/null |
				jq -c 'select(.active_scans > .max_concurrent_scans)'
			sleep 0.5
		done
	) > "$BATS_TEST_TMPDIR/over" 3>&- &
	sampler=$!
	track "$sampler"
	for w in 1 2 3; do
		timeout 1200 np-worker --drain 2> "$BATS_TEST_TMPDIR/w$w.log" 3>&- &
		eval "w$w=\$!"
	done
	wait "$w1"
	wait "$w2"
	wait "$w3"
	t2=$(date +%s%N)
	kill "$sampler"
	wait "$sampler" 2> /dev/null || true
	echo "# enqueue $N: $(((t1 - t0) / 1000000)) ms; drain with 3 workers: $(((t2 - t1) / 1000000)) ms ($((N * 1000000000 / (t2 - t1))) tasks/s)" >&3
	[ ! -s "$BATS_TEST_TMPDIR/over" ] || { cat "$BATS_TEST_TMPDIR/over" >&2; false; }
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	settled nessus "${ids[@]}"
	[ "$(cut -f2 "$BATS_TEST_TMPDIR/settled.st" | sort -u)" = completed ]
	fakes=()
	for i in $(seq "$FAKES"); do fakes+=("f$i"); done
	once "${fakes[@]}" -- "${ids[@]}"
	# Each fake's own measure of scans running at once, against its max.
	for i in $(seq "$FAKES"); do
		run -0 fake "f$i" GET /__fake/scans
		m=$(jq .max_concurrent_running <<< "$output")
		[ "$m" -le "$(max_of "$i")" ] || { echo "f$i ran $m scans at once, max $(max_of "$i")" >&2; false; }
		[ "$m" -ge 1 ]
	done
	# Every scanner got work, in proportion to its slots, roughly.
	run -0 np-status --list --status completed -n 100000
	[ "${#lines[@]}" -eq "$N" ]
	[ "$(jq -r .scanner_instance <<< "$output" | sort -u | wc -l)" -eq "$FAKES" ]
}

@test "a slot freed by an ending np-scan is taken again at once, not after the worker's 1s wait" {
	fake_reset f1
	# The default lease_ttl (60s): the worker then waits for a wake-up up
	# to a second at a time.
	keys_scanner f1 1 | scan_config $'  poll_interval: 50ms\n  lease_ttl: 60s\n'
	for i in $(seq 10); do
		printf '{"name":"g%d","targets":"10.1.0.%d"}\n' "$i" "$i"
	done | np-enqueue --batch > /dev/null
	run -0 timeout 60 np-worker --drain
	# From a scan's end on the scanner's only slot to the next scan's
	# launch there: np-scan sees the end (poll_interval), frees the slot
	# and wakes a worker, which takes the next task and starts its
	# np-scan; the export is fetched meanwhile.
	run -0 fake f1 GET /__fake/scans
	jq -r '[.scans[] | select(.launched != null)] | sort_by(.launched) |
		range(1; length) as $i | .[$i].launched - .[$i - 1].ended' <<< "$output" |
		sort -n > "$BATS_TEST_TMPDIR/gaps"
	[ "$(wc -l < "$BATS_TEST_TMPDIR/gaps")" -eq 9 ]
	echo "# idle slot between tasks (s): $(tr '\n' ' ' < "$BATS_TEST_TMPDIR/gaps")" >&3
	# The median gap, well under the worker's 1 s wait: np-worker wakes
	# at once when there is a free slot (np-worker(8)).
	median=$(sed -n 5p "$BATS_TEST_TMPDIR/gaps")
	awk -v m="$median" 'BEGIN { exit !(m < 0.5) }'
}
