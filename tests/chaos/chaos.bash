# shellcheck shell=bash
# tests/chaos/chaos.bash: helpers shared by the chaos tests (loaded after
# ../helpers): processes started by a test and stopped by it, a fake
# Nessus on a given port, and the checks every chaos test ends
# with (one terminal state per task, nothing left in Redis, one Nessus
# scan and one launch per task, records always valid JSON).
# shellcheck disable=SC2154

rc() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# track PID: a process this test started; teardown kills it by its id.
track() {
	echo "$1" >> "$BATS_TEST_TMPDIR/pids"
}

kill_tracked() {
	local p
	if [ -f "$BATS_TEST_TMPDIR/pids" ]; then
		while read -r p; do
			kill -9 "$p" 2> /dev/null || true
		done < "$BATS_TEST_TMPDIR/pids"
	fi
	# And the np commands of this test left behind (an np-scan whose
	# worker was killed, say): those whose environment names this test.
	for p in $(pgrep '^np-' || true); do
		grep -qzx "BATS_TEST_TMPDIR=$BATS_TEST_TMPDIR" "/proc/$p/environ" 2> /dev/null &&
			kill -9 "$p" 2> /dev/null
	done
	return 0
}

# start_worker [ARGS]: np-worker in the background (its stderr appended
# to $BATS_TEST_TMPDIR/w.log); its pid in W.
start_worker() {
	np-worker "$@" 2>> "$BATS_TEST_TMPDIR/w.log" 3>&- &
	W=$!
	track "$W"
}

# scan_pids ID: the pids of the np-scan processes running task ID.
scan_pids() {
	pgrep -f "np-scan $1\$" || true
}

no_scan() {
	[ -z "$(scan_pids "$1")" ]
}

# fake_at NAME DIR PORT [CONFIG_JSON] [CERT_DIR]: a fake Nessus on a given
# port (a scanner coming back at the same address), with the certificate
# of CERT_DIR (default DIR/tls). Writes DIR/NAME.pid like fake_start.
fake_at() {
	local name=$1 dir=$2 port=$3 conf=${4:-"{}"} tls=${5:-$2/tls}
	printf '%s\n' "$conf" > "$dir/$name.json"
	rm -f "$dir/$name.port"
	for _ in $(seq 100); do
		python3 "$BATS_TEST_DIRNAME/../fake-nessus/fake_nessus.py" --port "$port" \
			--port-file "$dir/$name.port" --config "$dir/$name.json" \
			--log "$dir/$name.log" --tls --cert "$tls/cert.pem" --key "$tls/key.pem" \
			> "$dir/$name.out" 2> "$dir/$name.err" 3>&- &
		echo $! > "$dir/$name.pid"
		within 5 test -s "$dir/$name.port" && return 0
		# The port may still be held for a moment: try again.
		kill "$(cat "$dir/$name.pid")" 2> /dev/null
		sleep 0.1
	done
	cat "$dir/$name.err" >&2
	return 1
}

# port_of NAME: the port of a fake started in FAKE_DIR.
port_of() {
	local u
	u=$(cat "$FAKE_DIR/$1.url")
	echo "${u##*:}"
}

# json_watch: checks every task.json of the data dir, over and over, in
# the background, until the test ends; a record that is not a JSON object
# is appended to $BATS_TEST_TMPDIR/torn. json_watched asserts none was.
json_watch() {
	: > "$BATS_TEST_TMPDIR/torn"
	(
		while :; do
			for f in "$NP_DATA_DIR"/tasks/*/task.json; do
				[ -e "$f" ] || continue
				jq -e 'type == "object"' "$f" > /dev/null 2>&1 ||
					{ [ -e "$f" ] && echo "$f" >> "$BATS_TEST_TMPDIR/torn"; }
			done
			sleep 0.05
		done
	) 3>&- &
	track $!
}

json_watched() {
	if [ -s "$BATS_TEST_TMPDIR/torn" ]; then
		echo "task.json not valid JSON while running:" >&2
		sort -u "$BATS_TEST_TMPDIR/torn" >&2
		return 1
	fi
}

# settled POOL ID...: each task's record is valid JSON in exactly one
# terminal state, in the dead-letter queue exactly when it failed or
# timed out, with no scan.nessus.part left; the pool has no claim, no
# slot lease and nothing queued left (so no task is in a queue or
# claimed). Checks in bulk: fast for thousands of tasks.
settled() {
	local pool=$1 k bad=0
	shift
	printf '%s\n' "$@" | sort > "$BATS_TEST_TMPDIR/settled.ids"
	rc zrange "np:{$pool}:dlq" 0 -1 | sort > "$BATS_TEST_TMPDIR/settled.dlq"
	# One line per task: id, status, dead-lettered or not.
	printf "$NP_DATA_DIR/tasks/%s/task.json\n" "$@" |
		xargs jq -r 'if type == "object" then [.task_id, .status] | @tsv else "not an object" end' \
		> "$BATS_TEST_TMPDIR/settled.st" 2> "$BATS_TEST_TMPDIR/settled.err" || bad=1
	if [ -s "$BATS_TEST_TMPDIR/settled.err" ] || grep -q "not an object" "$BATS_TEST_TMPDIR/settled.st"; then
		echo "records not valid JSON objects:" >&2
		cat "$BATS_TEST_TMPDIR/settled.err" >&2
		bad=1
	fi
	[ "$(cut -f1 "$BATS_TEST_TMPDIR/settled.st" | sort)" = "$(cat "$BATS_TEST_TMPDIR/settled.ids")" ] ||
		{ echo "records do not match the task ids" >&2; bad=1; }
	awk -F'\t' 'NR == FNR { dlq[$1] = 1; next }
		$2 ~ /^(completed|cancelled)$/ { if ($1 in dlq) { print $1 ": " $2 " but dead-lettered"; bad = 1 }; next }
		$2 ~ /^(failed|timeout)$/ { if (!($1 in dlq)) { print $1 ": " $2 " but not dead-lettered"; bad = 1 }; next }
		{ print $1 ": not ended: " $2; bad = 1 }
		END { exit bad }' "$BATS_TEST_TMPDIR/settled.dlq" "$BATS_TEST_TMPDIR/settled.st" >&2 || bad=1
	for k in $(printf "$NP_DATA_DIR/tasks/%s/scan.nessus.part\n" "$@"); do
		[ ! -e "$k" ] || { echo "$k left" >&2; bad=1; }
	done
	for k in "np:{$pool}:claims" $(rc --scan --pattern "np:{$pool}:slots:*"); do
		[ "$(rc zcard "$k")" = 0 ] ||
			{ echo "$k not empty: $(rc zrange "$k" 0 -1)" >&2; bad=1; }
	done
	for k in claimed holders; do
		[ "$(rc hlen "np:{$pool}:$k")" = 0 ] ||
			{ echo "np:{$pool}:$k not empty" >&2; bad=1; }
	done
	for k in "np:{$pool}:queue" $(rc --scan --pattern "np:{$pool}:iq:*"); do
		[ "$(rc llen "$k")" = 0 ] ||
			{ echo "$k not empty: $(rc lrange "$k" 0 -1)" >&2; bad=1; }
	done
	return "$bad"
}

# once FAKE... -- ID...: over those fakes together, each task got exactly
# one create request and one Nessus scan, launched once.
once() {
	local fakes=() f
	while [ "$1" != -- ]; do
		fakes+=("$1")
		shift
	done
	shift
	printf '%s\n' "$@" | sort > "$BATS_TEST_TMPDIR/once.ids"
	for f in "${fakes[@]}"; do
		fake "$f" GET /__fake/scans | jq -c '.scans[]'
	done > "$BATS_TEST_TMPDIR/once.scans"
	for f in "${fakes[@]}"; do
		fake "$f" GET /__fake/requests |
			jq -c '.requests[] | select(.method == "POST" and .path == "/scans")'
	done > "$BATS_TEST_TMPDIR/once.creates"
	jq -rn --rawfile ids "$BATS_TEST_TMPDIR/once.ids" \
		--slurpfile scans "$BATS_TEST_TMPDIR/once.scans" \
		--slurpfile creates "$BATS_TEST_TMPDIR/once.creates" '
		def tag: capture("\\[np:(?<id>[^]]+)\\]").id // null;
		($scans | map({id: (.name | tag), launches}) | group_by(.id)
			| map({key: (.[0].id // "?"), value: {n: length, l: (map(.launches) | add)}}) | from_entries) as $s
		| ($creates | map(.body.settings.name? // "" | tag) | group_by(.)
			| map({key: (.[0] // "?"), value: length}) | from_entries) as $c
		| $ids | split("\n")[] | select(. != "")
		| . as $id
		| if ($s[$id].n // 0) != 1 then "\($id): \($s[$id].n // 0) Nessus scans"
		  elif $s[$id].l != 1 then "\($id): launched \($s[$id].l) times"
		  elif ($c[$id] // 0) != 1 then "\($id): \($c[$id] // 0) create requests"
		  else empty end' > "$BATS_TEST_TMPDIR/once.bad"
	if [ -s "$BATS_TEST_TMPDIR/once.bad" ]; then
		head -20 "$BATS_TEST_TMPDIR/once.bad" >&2
		return 1
	fi
}
