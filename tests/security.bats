#!/usr/bin/env bats
# Security audit: secrets never leak (files, logs, outputs, Redis, the
# process list), permissions of task folders and of configs holding
# secrets, and hostile input (path tricks, NUL, huge and deeply nested
# requests, YAML bombs, XML entity expansion and external entities).
# shellcheck disable=SC2154

load helpers

# Every secret of this file: a unique string per Nessus key, scanner
# password, scan password and the Redis password, so that a leak names
# its source. Written with builtins only (never on a command line).
secret() {
	printf '%s-%s' "$1" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
}

setup_file() {
	local s
	{
		for s in ACC1 SEC1 ACC2 SEC2 SESS1 SESS2 REDIS BAD; do
			printf '%s=%s\n' "$s" "$(secret "Np-$s")"
		done
		for s in k1 k2 p1 p2; do
			printf 'SSH_%s=%s\nROOT_%s=%s\nESC_%s=%s\n' "$s" "$(secret "Np-Ssh-$s")" \
				"$s" "$(secret "Np-Root-$s")" "$s" "$(secret "Np-Esc-$s")"
		done
	} > "$BATS_FILE_TMPDIR/secrets.env"
	cut -d= -f2 "$BATS_FILE_TMPDIR/secrets.env" > "$BATS_FILE_TMPDIR/secrets.list"
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/secrets.env"
	redis_start ""
	# The password is set through stdin, never on a command line.
	printf 'CONFIG SET requirepass %s\n' "$REDIS" | redis-cli -s "$REDIS_SOCK" > /dev/null
	REDISCLI_AUTH=$REDIS
	NP_REDIS_URL=unix://default:$REDIS@$REDIS_SOCK
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR REDISCLI_AUTH
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	export FAKE_DIR
	local conf='{"pending_seconds":0.05,"running_seconds":1,' accounts
	for s in k1 k2 p1 p2; do
		accounts=$(printf '"accounts":[{"username":"u-%s","password":"%s","privileged":false},
			{"username":"r-%s","password":"%s","privileged":true,"escalation_password":"%s"}]' \
			"$s" "$(var "SSH_$s")" "$s" "$(var "ROOT_$s")" "$(var "ESC_$s")")
		case $s in
		k1) fake_start k1 "$FAKE_DIR" "$conf$accounts,\"api_keys\":[{\"access_key\":\"$ACC1\",\"secret_key\":\"$SEC1\"}]}" ;;
		k2) fake_start k2 "$FAKE_DIR" "$conf$accounts,\"api_keys\":[{\"access_key\":\"$ACC2\",\"secret_key\":\"$SEC2\"}]}" ;;
		p1) fake_start p1 "$FAKE_DIR" "$conf$accounts,\"users\":[{\"username\":\"admin1\",\"password\":\"$SESS1\"}]}" ;;
		p2) fake_start p2 "$FAKE_DIR" "$conf$accounts,\"users\":[{\"username\":\"admin2\",\"password\":\"$SESS2\"}]}" ;;
		esac
	done
	# A plain HTTP listener that logs every request: nothing may call it.
	fake_start probe "$FAKE_DIR" '{}' http
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

# var NAME: the value of the variable NAME (of secrets.env).
var() {
	printf '%s' "${!1}"
}

setup() {
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/secrets.env"
	redis_flush
	for f in k1 k2 p1 p2 probe; do fake_reset "$f"; done
	scan_env
	: > "$BATS_TEST_TMPDIR/pids"
}

teardown() {
	local p
	while read -r p; do
		kill -9 "$p" 2> /dev/null || true
	done < "$BATS_TEST_TMPDIR/pids"
}

rc() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# secrets_config: pool nessus with two API-keys scanners (a secret file,
# and the keys in np.yaml), pool dmz with two session-login scanners (a
# password file, and the password in np.yaml). np.yaml holds secrets: 0600.
secrets_config() {
	printf '%s\n' "$SEC1" > "$BATS_TEST_TMPDIR/k1.secret"
	printf '%s\n' "$SESS1" > "$BATS_TEST_TMPDIR/p1.password"
	chmod 600 "$BATS_TEST_TMPDIR/k1.secret" "$BATS_TEST_TMPDIR/p1.password"
	np_config "$BATS_TEST_TMPDIR/np.yaml" <<-YAML
	settings:
	  poll_interval: 100ms
	  lease_ttl: 2s
	  retry_backoff: 50ms
	  max_attempts: 2
	pools:
	  nessus:
	    - instance_id: k1
	      url: $(cat "$FAKE_DIR/k1.url")
	      ca_file: $FAKE_DIR/tls/cert.pem
	      access_key: $ACC1
	      secret_key_file: $BATS_TEST_TMPDIR/k1.secret
	      max_concurrent_scans: 2
	    - instance_id: k2
	      url: $(cat "$FAKE_DIR/k2.url")
	      ca_file: $FAKE_DIR/tls/cert.pem
	      access_key: $ACC2
	      secret_key: $SEC2
	      max_concurrent_scans: 2
	  dmz:
	    - instance_id: p1
	      url: $(cat "$FAKE_DIR/p1.url")
	      ca_file: $FAKE_DIR/tls/cert.pem
	      username: admin1
	      password_file: $BATS_TEST_TMPDIR/p1.password
	      max_concurrent_scans: 2
	    - instance_id: p2
	      url: $(cat "$FAKE_DIR/p2.url")
	      ca_file: $FAKE_DIR/tls/cert.pem
	      username: admin2
	      password: "$SESS2"
	      max_concurrent_scans: 2
	YAML
}

# leaks FILE...: prints the lines of FILEs holding a secret (of any kind:
# text or binary); fails when there is one.
leaks() {
	if grep -a -r -F -f "$BATS_FILE_TMPDIR/secrets.list" "$@" > "$BATS_TEST_TMPDIR/leaks"; then
		echo "secrets found:" >&2
		cut -c1-300 "$BATS_TEST_TMPDIR/leaks" | head -20 >&2
		return 1
	fi
	return 0
}

# redis_all: every key of Redis, its DUMP and its value read by type.
redis_all() {
	local k
	rc --scan | while read -r k; do
		printf 'key %s\n' "$k"
		rc dump "$k"
		case $(rc type "$k") in
		string) rc get "$k" ;;
		hash) rc hgetall "$k" ;;
		list) rc lrange "$k" 0 -1 ;;
		set) rc smembers "$k" ;;
		zset) rc zrange "$k" 0 -1 withscores ;;
		stream) rc xrange "$k" - + ;;
		esac
	done
}

# A task's record, for the flows.
tfield() {
	jq -r ".$2" "$NP_DATA_DIR/tasks/$1/task.json"
}

@test "secrets: untrusted, authenticated and privileged scans on API-keys and session scanners leak nowhere" {
	secrets_config
	# Requests, passwords on stdin only (printf is a builtin).
	for s in k1 k2 p1 p2; do
		pool=nessus
		[ "${s#p}" != "$s" ] && pool=dmz
		printf '{"name":"open %s","targets":"10.1.0.1","scanner_pool":"%s","scanner_instance":"%s"}\n' "$s" "$pool" "$s"
		printf '{"name":"auth %s","targets":"10.1.0.2","scanner_pool":"%s","scanner_instance":"%s","scan_type":"authenticated","ssh_username":"u-%s","ssh_password":"%s"}\n' \
			"$s" "$pool" "$s" "$s" "$(var "SSH_$s")"
		printf '{"name":"priv %s","targets":"10.1.0.3","scanner_pool":"%s","scanner_instance":"%s","scan_type":"authenticated_privileged","ssh_username":"r-%s","ssh_password":"%s","elevate_privileges_with":"sudo","escalation_account":"root","escalation_password":"%s"}\n' \
			"$s" "$pool" "$s" "$s" "$(var "ROOT_$s")" "$(var "ESC_$s")"
	done > "$BATS_TEST_TMPDIR/requests"
	printf '{"name":"wrong password","targets":"10.1.0.4","scanner_instance":"k1","scan_type":"authenticated","ssh_username":"u-k1","ssh_password":"%s"}\n' \
		"$BAD" >> "$BATS_TEST_TMPDIR/requests"
	out=$BATS_TEST_TMPDIR/out
	mkdir -p "$out"
	# Everything Redis is sent, from the start.
	redis-cli -s "$REDIS_SOCK" monitor > "$out/monitor" 2>&1 3>&- &
	monitor=$!
	echo "$monitor" >> "$BATS_TEST_TMPDIR/pids"
	sleep 0.2
	np-enqueue --batch < "$BATS_TEST_TMPDIR/requests" > "$out/enqueue" 2>&1
	jq -r .task_id "$out/enqueue" > "$BATS_TEST_TMPDIR/ids"
	[ "$(grep -c . "$BATS_TEST_TMPDIR/ids")" -eq 13 ]
	# Until their scans exist, the passwords wait in credentials.json.
	for id in $(cat "$BATS_TEST_TMPDIR/ids"); do
		[ "$(tfield "$id" scan_type)" = untrusted ] && continue
		[ -s "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	done
	# The process list, sampled often (every command line, as ps shows it).
	(
		while :; do
			cat /proc/[0-9]*/cmdline 2> /dev/null | tr '\0' ' ' >> "$out/ps"
			echo >> "$out/ps"
			sleep 0.05
		done
	) 3>&- &
	sampler=$!
	echo "$sampler" >> "$BATS_TEST_TMPDIR/pids"
	NP_LOG_LEVEL=debug np-worker --drain > "$out/worker.out" 2> "$out/worker.log" &
	w=$!
	echo "$w" >> "$BATS_TEST_TMPDIR/pids"
	n=0
	while kill -0 "$w" 2> /dev/null && [ "$n" -lt 300 ]; do
		redis_all >> "$out/redis" 2>&1
		{
			np-status --list || true
			np-select --list || true
			np-status --queue || true
		} >> "$out/during" 2>&1
		n=$((n + 1))
		sleep 0.2
	done
	wait "$w"
	kill "$sampler"
	wait "$sampler" 2> /dev/null || true
	grep -q "np-scan [0-9]" "$out/ps"
	mapfile -t ids < "$BATS_TEST_TMPDIR/ids"
	bad=${ids[12]}
	for id in "${ids[@]}"; do
		if [ "$id" = "$bad" ]; then
			[ "$(tfield "$id" failure_reason)" = auth_failed ]
		else
			[ "$(tfield "$id" status)" = completed ] || { echo "$id: $(tfield "$id" status) $(tfield "$id" error)"; false; }
		fi
		[ ! -e "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	done
	# The scanners did get the secrets (so the test is not vacuous).
	run -0 fake_requests k1 'select(.method == "POST" and .path == "/scans") | .body.credentials.add.Host.SSH[0].password'
	assert_line "\"$SSH_k1\""
	run -0 fake_requests p2 'select(.path == "/session") | .body.password'
	assert_line "\"$SESS2\""
	run -0 fake_requests k2 '.headers["X-ApiKeys"]'
	assert_line --partial "$SEC2"
	# Every command's output, and Redis at the end.
	{
		for id in "${ids[@]}"; do
			np-status "$id" || true
			np-status --human "$id" || true
			np-results "$id" --page 0 --profile full || true
		done
		np-status --list || true
		np-status --list --human || true
		np-status --queue || true
		np-status --health || true
		np-dlq list || true
		np-dlq list --human || true
		np-dlq inspect "$bad" || true
		np-dlq stats || true
		np-metrics || true
		np-select --list || true
		np-select --list --human || true
		np-select --pools || true
		np-select --pool-status nessus || true
		np-select --pool-status dmz || true
		np-housekeep --dry-run || true
	} > "$out/commands" 2>&1
	grep -q "$bad" "$out/commands"
	redis_all >> "$out/redis" 2>&1
	grep -q "np:tasks" "$out/redis"
	kill "$monitor"
	wait "$monitor" 2> /dev/null || true
	grep -q "EVAL" "$out/monitor"
	leaks "$NP_DATA_DIR" "$out"
	# The worker's debug log says something about every step.
	grep -q "np-scan" "$out/worker.log"
}

@test "secrets: refusals, config errors and Redis errors never quote a secret" {
	secrets_config
	# Bad requests carrying passwords.
	for req in \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"ssh_password\":\"$BAD\"}" \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"scan_type\":\"authenticated\",\"ssh_username\":\"u\",\"ssh_password\":[\"$BAD\"]}" \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"password\":\"$BAD\"}" \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"scan_type\":\"authenticated\",\"ssh_username\":\"u\",\"ssh_password\":\"$BAD\",\"escalation_password\":\"$BAD\"}" \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"scan_type\":\"authenticated\",\"ssh_username\":\"u\",\"ssh_password\":\"$BAD$(printf 'x%.0s' $(seq 1100))\"}" \
		"{\"name\":\"x\",\"targets\":\"10.0.0.1\",\"ssh_password\":\"$BAD\""; do
		run -65 --separate-stderr np-enqueue --json <<< "$req"
		[ -n "$stderr" ]
		printf '%s\n%s\n' "$output" "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
		run --separate-stderr np-enqueue --batch <<< "$req"
		[ "$status" -eq 65 ]
		printf '%s\n%s\n' "$output" "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
	done
	[ ! -e "$NP_DATA_DIR/tasks" ] || [ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
	# Config errors next to secrets.
	y=$BATS_TEST_TMPDIR/bad.yaml
	for body in \
		"      password: \"$SESS2" \
		"      password: {x: $SESS2}" \
		"      password: $SESS2
      password_file: /nonexistent" \
		"      password: $SESS2
      password: $SESS2" \
		"      password: [$SESS2]" \
		"      password: $SESS2
      secret_key: $SEC2"; do
		printf 'pools:\n  dmz:\n    - instance_id: p2\n      url: https://127.0.0.1:1\n      username: admin\n%s\n' "$body" > "$y"
		chmod 600 "$y"
		NP_CONFIG=$y run -78 --separate-stderr np-status --list
		[ -n "$stderr" ]
		printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
		NP_CONFIG=$y run -78 --separate-stderr np-worker --drain
		printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
	done
	# A Redis password in an unreachable Redis URL.
	NP_REDIS_URL="unix://default:$REDIS@$BATS_TEST_TMPDIR/none.sock" run -75 --separate-stderr np-status --list
	printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
	NP_REDIS_URL="redis://default:$REDIS@127.0.0.1:1/0" run -75 --separate-stderr np-enqueue -n x -T 10.0.0.1
	printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
	# The right password is needed, and a wrong one is not quoted either.
	NP_REDIS_URL="unix://default:$BAD@$REDIS_SOCK" run -78 --separate-stderr np-status --list
	printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/refusals"
	NP_REDIS_URL="unix://default:$REDIS@$REDIS_SOCK" run -0 np-status --list
	leaks "$BATS_TEST_TMPDIR/refusals"
}

@test "secrets: a cancelled authenticated task does not keep its scan password" {
	secrets_config
	printf '{"name":"c","targets":"10.0.0.1","scanner_instance":"k1","scan_type":"authenticated","ssh_username":"u-k1","ssh_password":"%s"}\n' \
		"$SSH_k1" > "$BATS_TEST_TMPDIR/req"
	id=$(np-enqueue --json < "$BATS_TEST_TMPDIR/req" | jq -er .task_id)
	[ -s "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	run -0 np-cancel "$id"
	[ "$(tfield "$id" status)" = cancelled ]
	# cancelled is final: no scan will ever be created with them.
	[ ! -e "$NP_DATA_DIR/tasks/$id/credentials.json" ]
	leaks "$NP_DATA_DIR"
}

@test "permissions: task folders 0700, task.json, credentials.json and scan.nessus 0600, whatever the umask" {
	secrets_config
	umask 000
	printf '{"name":"p","targets":"10.0.0.1","scanner_instance":"k1","scan_type":"authenticated","ssh_username":"u-k1","ssh_password":"%s"}\n' \
		"$SSH_k1" > "$BATS_TEST_TMPDIR/req"
	id=$(np-enqueue --json < "$BATS_TEST_TMPDIR/req" | jq -er .task_id)
	d=$NP_DATA_DIR/tasks/$id
	[ "$(stat -c %a "$d")" = 700 ]
	[ "$(stat -c %a "$d/task.json")" = 600 ]
	[ "$(stat -c %a "$d/credentials.json")" = 600 ]
	run -0 timeout 60 np-worker --drain
	[ "$(tfield "$id" status)" = completed ]
	[ "$(stat -c %a "$d")" = 700 ]
	[ "$(stat -c %a "$d/task.json")" = 600 ]
	[ "$(stat -c %a "$d/scan.nessus")" = 600 ]
	# Nothing in a task folder is open to group or others, nor are the
	# folders above it writable by them.
	run -0 find "$d" -perm /077
	assert_output ""
	run -0 find "$NP_DATA_DIR" -maxdepth 1 -perm /022
	assert_output ""
	# np-status and np-results rewrite the record (last_accessed_at): still 0600.
	np-status "$id" > /dev/null
	np-results "$id" > /dev/null
	[ "$(stat -c %a "$d/task.json")" = 600 ]
	run -0 find "$d" -perm /077
	assert_output ""
}

@test "permissions: a config holding a secret readable by group or others is refused (78)" {
	secrets_config
	run -0 np-select --list
	for m in 644 640 604; do
		chmod "$m" "$NP_CONFIG"
		run -78 --separate-stderr np-select --list
		[[ "$stderr" == *"holds a secret"* ]]
		run -78 np-worker --drain
		run -78 np-enqueue -n x -T 10.0.0.1
		run -78 np-status --list
	done
	chmod 600 "$NP_CONFIG"
	# A secret file readable by others is refused too.
	chmod 644 "$BATS_TEST_TMPDIR/k1.secret"
	run -78 --separate-stderr np-select --list
	[[ "$stderr" == *"k1.secret"* ]]
	chmod 600 "$BATS_TEST_TMPDIR/k1.secret"
	# A config whose secrets are all in files may be read by others.
	np_config "$BATS_TEST_TMPDIR/files.yaml" <<-YAML
	pools:
	  nessus:
	    - instance_id: p1
	      url: https://127.0.0.1:1
	      username: admin1
	      password_file: $BATS_TEST_TMPDIR/p1.password
	YAML
	chmod 644 "$NP_CONFIG"
	run -0 np-select --list
}

# ----------------------------------------------------------------- hostile input

@test "hostile ids: ../, newlines, slashes and junk are refused (65) by every command, before any file is opened" {
	keys_scanner k1 2 | scan_config
	for bad in "../../../../etc/passwd" ".." "../tasks" "20261123T185000Z-0000000000000000/../x" \
		"20261123T185000Z-../../../etc/pa" $'20261123T185000Z-0000000000000000\n' \
		$'20261123T185000Z-00000000\n00000000' "20261123T185000Z-000000000000000G" \
		"20261123T185000Z-0000000000000000/" "/etc/passwd" "" "20261123T185000Z-0000000000000000 x"; do
		for cmd in "np-status" "np-results" "np-cancel" "np-dlq inspect" "np-dlq retry" "np-scan"; do
			# shellcheck disable=SC2086
			run --separate-stderr timeout 10 $cmd "$bad"
			[ "$status" -eq 65 ] || { [ -z "$bad" ] && [ "$status" -eq 64 ]; } ||
				{ echo "$cmd '$bad': $status $stderr"; false; }
			[[ "$output" != *"root:"* ]]
		done
	done
	# A well-formed id that does not exist is 66, not a path.
	run -66 np-status 20261123T185000Z-0000000000000000
	# Pools and scanners are names, not paths.
	run -65 np-enqueue -n x -T 10.0.0.1 -p ../../etc
	run -65 np-enqueue -n x -T 10.0.0.1 -i ../k1
	run -64 np-housekeep --pool ../x
	run -64 np-dlq list --pool ../x
	[ ! -e "$NP_DATA_DIR/tasks" ] || [ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}

@test "hostile requests: NUL (\\u0000) in any field is refused (65), nothing is created" {
	keys_scanner k1 2 | scan_config
	base='"name":"n","targets":"10.0.0.1"'
	for req in \
		'{"name":"a\u0000b","targets":"10.0.0.1"}' \
		'{"name":"n","targets":"10.0.0.1\u0000; rm -rf /"}' \
		"{$base,\"description\":\"d\\u0000\"}" \
		"{$base,\"scan_type\":\"authenticated\",\"ssh_username\":\"u\\u0000x\",\"ssh_password\":\"p\"}" \
		"{$base,\"scan_type\":\"authenticated\",\"ssh_username\":\"u\",\"ssh_password\":\"p\\u0000q\"}" \
		"{$base,\"scan_type\":\"authenticated_privileged\",\"ssh_username\":\"u\",\"ssh_password\":\"p\",\"elevate_privileges_with\":\"sudo\",\"escalation_password\":\"e\\u0000\"}" \
		"{$base,\"idempotency_key\":\"k\\u0000\"}" \
		"{$base,\"scanner_pool\":\"nessus\\u0000\"}" \
		"{$base,\"scanner_instance\":\"k1\\u0000\"}" \
		"{$base,\"schema_profile\":\"full\\u0000\"}" \
		"{$base,\"scan_type\":\"untrusted\\u0000\"}" \
		"{\"na\\u0000me\":\"n\",\"targets\":\"10.0.0.1\"}"; do
		run -65 --separate-stderr np-enqueue --json <<< "$req"
		run -65 np-enqueue --batch <<< "$req"
		jq -e '.status == 65' <<< "$output"
	done
	# A raw NUL byte in the input is invalid JSON.
	run -65 np-enqueue --json < <(printf '{"name":"a\0b","targets":"10.0.0.1"}')
	[ ! -e "$NP_DATA_DIR/tasks" ] || [ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
	[ "$(rc llen 'np:{nessus}:queue')" = 0 ]
	[ "$(rc zcard np:tasks)" = 0 ]
}

@test "hostile requests: very long strings are refused (65) quickly" {
	keys_scanner k1 2 | scan_config
	mb=$(head -c 1000000 /dev/zero | tr '\0' a)
	for field in name targets description ssh_username; do
		printf '{"name":"n","targets":"10.0.0.1","%s":"%s"}' "$field" "$mb" > "$BATS_TEST_TMPDIR/req"
		run -65 --separate-stderr timeout 5 np-enqueue --json < "$BATS_TEST_TMPDIR/req"
		[ "${#stderr}" -lt 1000 ]
	done
	# On the command line (an argument is at most 128 KiB).
	run -65 --separate-stderr timeout 5 np-enqueue -n "${mb:0:100000}" -T 10.0.0.1
	[ "${#stderr}" -lt 1000 ]
	run -65 --separate-stderr timeout 5 np-enqueue -n x -T "${mb:0:100000}"
	[ "${#stderr}" -lt 1000 ]
	run -65 --separate-stderr timeout 5 np-enqueue -n x -T 10.0.0.1 -d "${mb:0:100000}"
	[ ! -e "$NP_DATA_DIR/tasks" ] || [ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}

# rss_of CMD...: runs CMD (stdin passed on); prints "status max_rss_kb
# seconds" on fd 3 of the caller through $BATS_TEST_TMPDIR/rss.
rss_of() {
	/usr/bin/time -f '%M %e' -o "$BATS_TEST_TMPDIR/rss.all" "$@"
	local rc=$?
	# A command killed by a signal gets a line before the figures.
	tail -n 1 "$BATS_TEST_TMPDIR/rss.all" > "$BATS_TEST_TMPDIR/rss"
	return "$rc"
}

@test "hostile requests: 100 MB on stdin is refused (65) fast, in bounded memory" {
	keys_scanner k1 2 | scan_config
	# One JSON object of 100 MB.
	run -65 --separate-stderr rss_of timeout 10 np-enqueue --json < <(
		printf '{"name":"n","targets":"10.0.0.1","description":"'
		head -c 100000000 /dev/zero | tr '\0' a
		printf '"}')
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	echo "# --json, 100 MB: ${kb} KiB max RSS, ${secs}s" >&3
	[ "$kb" -lt 65536 ]
	# A 100 MB line in a batch: refused, and the next line still answered.
	run -65 --separate-stderr rss_of timeout 20 np-enqueue --batch < <(
		printf '{"name":"n","targets":"10.0.0.1","description":"'
		head -c 100000000 /dev/zero | tr '\0' a
		printf '"}\n{"name":"after","targets":"10.0.0.2"}\n')
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	echo "# --batch, 100 MB line: ${kb} KiB max RSS, ${secs}s" >&3
	[ "$kb" -lt 65536 ]
	[ "${#lines[@]}" -eq 2 ]
	jq -e '.status == 65 and .line == 1' <<< "${lines[0]}"
	jq -e '.task_id and .status == "queued"' <<< "${lines[1]}"
	# 100 MB of garbage without a newline, and of newlines.
	run -65 rss_of timeout 10 np-enqueue --json < <(head -c 100000000 /dev/zero)
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	[ "$kb" -lt 65536 ]
	run -65 rss_of timeout 30 np-enqueue --batch < <(head -c 100000000 /dev/urandom | tr -d '\n')
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	[ "$kb" -lt 65536 ]
	[ "${#lines[@]}" -eq 1 ]
}

@test "hostile requests: 100k nested '[' in JSON is refused (65), no crash" {
	keys_scanner k1 2 | scan_config
	deep=$(head -c 100000 /dev/zero | tr '\0' '[')
	run -65 timeout 10 np-enqueue --json <<< "$deep"
	run -65 timeout 10 np-enqueue --json <<< "{\"name\":$deep"
	run -65 timeout 10 np-enqueue --json <<< "{\"name\":\"n\",\"targets\":\"10.0.0.1\",\"description\":$deep$(head -c 100000 /dev/zero | tr '\0' ']')}"
	run -65 timeout 10 np-enqueue --batch <<< "$deep"
	jq -e '.status == 65' <<< "$output"
	deepo=$(for _ in $(seq 20000); do printf '{"a":'; done)
	run -65 timeout 10 np-enqueue --json <<< "$deepo"
}

@test "hostile config: YAML nested 100k deep is refused (78) quickly, no crash" {
	# Block mappings nested 1,500 deep.
	{ printf 'pools:\n'; for i in $(seq 1500); do printf '%*sa%d:\n' "$i" '' "$i"; done; } > "$BATS_TEST_TMPDIR/deep2.yaml"
	chmod 600 "$BATS_TEST_TMPDIR/deep2.yaml"
	NP_CONFIG=$BATS_TEST_TMPDIR/deep2.yaml run -78 timeout 10 np-status --list
	# Flow sequences nested 100k deep: a 100 KB file.
	printf 'pools: %s\n' "$(head -c 100000 /dev/zero | tr '\0' '[')" > "$BATS_TEST_TMPDIR/deep.yaml"
	chmod 600 "$BATS_TEST_TMPDIR/deep.yaml"
	NP_CONFIG=$BATS_TEST_TMPDIR/deep.yaml run -78 --separate-stderr rss_of timeout 10 np-status --list
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	echo "# ${kb} KiB, ${secs}s" >&3
}

@test "hostile config: a YAML anchor bomb (billion laughs) is refused (78) at once" {
	y=$BATS_TEST_TMPDIR/bomb.yaml
	{
		printf 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
		prev=a
		for n in b c d e f g h i j k l m; do
			printf '%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n' "$n" "$n" \
				"$prev" "$prev" "$prev" "$prev" "$prev" "$prev" "$prev" "$prev" "$prev"
			prev=$n
		done
		printf 'pools:\n  nessus:\n    - instance_id: x\n      url: https://127.0.0.1:1\n      access_key: *m\n      secret_key: s\n'
	} > "$y"
	chmod 600 "$y"
	for cmd in "np-status --list" "np-worker --drain" "np-enqueue -n x -T 10.0.0.1" "np-housekeep" "np-select --list"; do
		# shellcheck disable=SC2086
		NP_CONFIG=$y run -78 --separate-stderr rss_of timeout 10 $cmd
		[[ "$stderr" == *"aliases are not supported"* ]]
		read -r kb secs < "$BATS_TEST_TMPDIR/rss"
		[ "$kb" -lt 65536 ]
	done
	# A merge key (<<) is an alias too.
	printf 'base: &b {url: "https://127.0.0.1:1"}\npools:\n  nessus:\n    - <<: *b\n      instance_id: x\n' > "$y"
	NP_CONFIG=$y run -78 np-status --list
}

# A .nessus export carrying hostile XML. $1: the DOCTYPE, $2: text put in
# the host's properties, the output of plugin 19506 and of a finding.
nessus_with() {
	cat <<-XML
	<?xml version="1.0" encoding="UTF-8"?>
	$1
	<NessusClientData_v2>
	<Policy><policyName>Advanced Scan</policyName></Policy>
	<Report name="hostile" xmlns:cm="http://www.nessus.org/cm">
	<ReportHost name="10.0.0.1"><HostProperties>
	<tag name="host-ip">10.0.0.1</tag>
	<tag name="operating-system">$2</tag>
	<tag name="Credentialed_Scan">false</tag>
	</HostProperties>
	<ReportItem port="0" svc_name="general" protocol="tcp" severity="0" pluginID="19506" pluginName="Nessus Scan Information" pluginFamily="Settings">
	<plugin_output>Information about this scan :
	Credentialed checks : $2
	</plugin_output>
	</ReportItem>
	<ReportItem port="22" svc_name="ssh" protocol="tcp" severity="2" pluginID="187315" pluginName="Terrapin" pluginFamily="Misc.">
	<description>$2</description>
	<solution>fix it</solution>
	<synopsis>$2</synopsis>
	<plugin_output>$2</plugin_output>
	</ReportItem>
	</ReportHost>
	</Report>
	</NessusClientData_v2>
	XML
}

# A completed task of the fake k1, whose scan.nessus the test replaces.
completed_task() {
	secrets_config
	id=$(np-enqueue -n x -T 10.0.0.1 -p nessus | jq -er .task_id)
	run -0 timeout 60 np-worker --drain
	[ "$(tfield "$id" status)" = completed ]
	echo "$id"
}

@test "XXE: external entities, external DTDs and XInclude in a .nessus are inert in np-validate and np-results" {
	probe=$(cat "$FAKE_DIR/probe.url")
	passwd=$(head -n 1 /etc/passwd)
	f=$BATS_TEST_TMPDIR/xxe.nessus
	nessus_with "<!DOCTYPE NessusClientData_v2 SYSTEM \"$probe/xxe-doctype.dtd\" [
	<!ENTITY xxe SYSTEM \"file:///etc/passwd\">
	<!ENTITY net SYSTEM \"$probe/xxe-entity\">
	<!ENTITY % remote SYSTEM \"$probe/xxe-parameter.dtd\">
	%remote;
	]>" '[&xxe;][&net;]<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="'"$probe"'/xxe-xinclude" parse="text"/>' > "$f"
	run --separate-stderr rss_of timeout 10 np-validate "$f"
	echo "# np-validate: $status $output $stderr" >&3
	[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
	[[ "$output$stderr" != *"$passwd"* ]]
	[[ "$output$stderr" != *"root:"* ]]
	jq -e . <<< "$output" > /dev/null
	id=$(completed_task)
	cp "$f" "$NP_DATA_DIR/tasks/$id/scan.nessus"
	run --separate-stderr timeout 10 np-results "$id" --page 0 --profile full
	[ "$status" -eq 0 ] || [ "$status" -eq 74 ]
	[[ "$output$stderr" != *"$passwd"* ]]
	[[ "$output$stderr" != *"root:"* ]]
	run --separate-stderr timeout 10 np-results "$id" --page 0 -F host,operating_system,plugin_output,description,synopsis
	[[ "$output$stderr" != *"root:"* ]]
	run --separate-stderr timeout 10 np-status "$id"
	[[ "$output$stderr" != *"root:"* ]]
	# Nothing was fetched from the network.
	run -0 fake_requests probe '.path'
	assert_output ""
}

@test "entity expansion bombs in a .nessus: np-validate and np-results end fast, in bounded memory" {
	f=$BATS_TEST_TMPDIR/laughs.nessus
	{
		printf '<!DOCTYPE NessusClientData_v2 [\n<!ENTITY l0 "lollollollollollollollollollol">\n'
		for i in $(seq 1 12); do
			printf '<!ENTITY l%d "' "$i"
			for _ in $(seq 10); do printf '&l%d;' $((i - 1)); done
			printf '">\n'
		done
		printf ']>'
	} > "$BATS_TEST_TMPDIR/doctype"
	nessus_with "$(cat "$BATS_TEST_TMPDIR/doctype")" '&l12;&l12;' > "$f"
	# Quadratic blowup: one 64 KiB entity referenced 20,000 times.
	q=$BATS_TEST_TMPDIR/quadratic.nessus
	{
		printf '<!DOCTYPE NessusClientData_v2 [<!ENTITY a "%s">]>' "$(head -c 65536 /dev/zero | tr '\0' A)"
	} > "$BATS_TEST_TMPDIR/doctype2"
	nessus_with "$(cat "$BATS_TEST_TMPDIR/doctype2")" @REFS@ |
		python3 -c 'import sys; sys.stdout.write(sys.stdin.read().replace("@REFS@", "&a;" * 20000))' > "$q"
	id=$(completed_task)
	for x in "$f" "$q"; do
		run --separate-stderr rss_of timeout 20 np-validate "$x"
		read -r kb secs < "$BATS_TEST_TMPDIR/rss"
		echo "# np-validate $(basename "$x"): status $status, ${kb} KiB, ${secs}s, $(jq -c '[.valid, .reason]' <<< "$output")" >&3
		[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
		[ "$kb" -lt 131072 ]
		[ "${#output}" -lt 100000 ]
		cp "$x" "$NP_DATA_DIR/tasks/$id/scan.nessus"
		run --separate-stderr rss_of timeout 20 np-results "$id" --page 0 --profile full
		read -r kb secs < "$BATS_TEST_TMPDIR/rss"
		echo "# np-results $(basename "$x"): status $status, ${kb} KiB, ${secs}s, ${#output} bytes" >&3
		[ "$status" -eq 0 ] || [ "$status" -eq 74 ]
		[ "$kb" -lt 131072 ]
		[ "${#output}" -lt 1000000 ]
		[[ "$output" != *lollollollollollollollollollollollollollollol* ]]
	done
}

@test "np-validate: a file name that looks like a URL is a file; a compressed export is not uncompressed" {
	probe=$(cat "$FAKE_DIR/probe.url")
	run -66 timeout 10 np-validate "$probe/scan.nessus"
	run -66 timeout 10 np-validate "ftp://127.0.0.1:1/scan.nessus"
	run -0 fake_requests probe '.path'
	assert_output ""
	cp "$BATS_TEST_DIRNAME/fixtures/sample_scan.nessus" "$BATS_TEST_TMPDIR/s.nessus"
	run -0 np-validate "$BATS_TEST_TMPDIR/s.nessus"
	jq -e '.valid == true' <<< "$output"
	gzip -c "$BATS_TEST_TMPDIR/s.nessus" > "$BATS_TEST_TMPDIR/s.gz.nessus"
	run -1 timeout 10 np-validate "$BATS_TEST_TMPDIR/s.gz.nessus"
	jq -e '.valid == false' <<< "$output"
	# A gzip bomb (200 MB of zeros in 200 KB) is not inflated either.
	head -c 200000000 /dev/zero | gzip -1 > "$BATS_TEST_TMPDIR/bomb.nessus"
	run -1 --separate-stderr rss_of timeout 10 np-validate "$BATS_TEST_TMPDIR/bomb.nessus"
	read -r kb secs < "$BATS_TEST_TMPDIR/rss"
	[ "$kb" -lt 65536 ]
}
