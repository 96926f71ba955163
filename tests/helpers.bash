# shellcheck shell=bash
# tests/helpers.bash: loaded by every bats file. Puts the built commands
# first in PATH and gives each test its own config and data directory.
bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert
# shellcheck source=tests/lib.sh
. "$BATS_TEST_DIRNAME/lib.sh"

NP_BIN=${NP_BIN:-$BATS_TEST_DIRNAME/../build/rel/bin}
PATH=$NP_BIN:$PATH
export PATH

# np_config FILE: writes the YAML on stdin to FILE (mode 0600) and
# points NP_CONFIG at it.
np_config() {
	cat > "$1"
	chmod 600 "$1"
	export NP_CONFIG=$1
}

# np_setup: a fresh data dir and a two-pool config for this test.
np_setup() {
	export NP_DATA_DIR=$BATS_TEST_TMPDIR/data
	mkdir -p "$NP_DATA_DIR"
	printf 'k3y\n' > "$BATS_TEST_TMPDIR/secret"
	chmod 600 "$BATS_TEST_TMPDIR/secret"
	np_config "$BATS_TEST_TMPDIR/np.yaml" <<-YAML
	default_pool: nessus
	pools:
	  nessus:
	    - instance_id: s1
	      url: https://127.0.0.1:8834
	      access_key: ak1
	      secret_key_file: $BATS_TEST_TMPDIR/secret
	      max_concurrent_scans: 2
	    - instance_id: s2
	      url: https://127.0.0.1:8835
	      access_key: ak2
	      secret_key_file: $BATS_TEST_TMPDIR/secret
	      max_concurrent_scans: 3
	    - instance_id: off
	      url: https://127.0.0.1:8836
	      access_key: ak3
	      secret_key_file: $BATS_TEST_TMPDIR/secret
	      enabled: false
	  dmz:
	    - instance_id: d1
	      url: https://127.0.0.1:8837
	      username: admin
	      password_file: $BATS_TEST_TMPDIR/secret
	      max_concurrent_scans: 1
	YAML
}

# Flushes the shared Redis of the file between tests.
redis_flush() {
	redis-cli -s "$REDIS_SOCK" flushall > /dev/null
}

# Scan-path helpers: a fake Nessus per file, configs pointing at it.
FAKE_DIR=${FAKE_DIR:-}

# scan_servers [NAME CONFIG]...: the usual setup_file of a scan-path
# test: a private redis-server, and a fake Nessus in $FAKE_DIR per NAME
# and its JSON CONFIG.
scan_servers() {
	redis_start "" || return 1
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	export FAKE_DIR
	while [ $# -ge 2 ]; do
		fake_start "$1" "$FAKE_DIR" "$2" || return 1
		shift 2
	done
}

# fake NAME METHOD PATH [BODY]: talks to a fake's control routes.
fake() {
	local url
	url=$(cat "$FAKE_DIR/$1.url")
	if [ -n "${4:-}" ]; then
		curl -sk -X "$2" -H 'Content-Type: application/json' -d "$4" "$url$3"
	else
		curl -sk -X "$2" "$url$3"
	fi
}

# fake_reset NAME: back to the fake's start config, no scans, no log.
fake_reset() {
	fake "$1" POST /__fake/reset '{"all":true}' > /dev/null
}

# fake_requests NAME [JQ]: the fake's request log, one line per request,
# each passed through the jq filter.
fake_requests() {
	fake "$1" GET /__fake/requests | jq -c ".requests[] | ${2:-.}"
}

# scan_env: NP_CONFIG and NP_DATA_DIR of this test.
scan_env() {
	export NP_DATA_DIR=$BATS_TEST_TMPDIR/data NP_CONFIG=$BATS_TEST_TMPDIR/np.yaml
	mkdir -p "$NP_DATA_DIR"
}

# scan_config [EXTRA_SETTINGS] < scanners: a config with fast settings and
# the pool "nessus" made of the scanners on stdin (YAML list items).
# It may run in a pipeline's subshell: the paths it writes are fixed, and
# scan_env (called by setup) exports them.
scan_config() {
	scan_env
	printf 'secretkey\n' > "$BATS_TEST_TMPDIR/api.secret"
	printf 'nessus\n' > "$BATS_TEST_TMPDIR/user.password"
	chmod 600 "$BATS_TEST_TMPDIR/api.secret" "$BATS_TEST_TMPDIR/user.password"
	local extra=${1:-} k
	{
		printf 'settings:\n'
		# Defaults for fast tests; a setting in EXTRA_SETTINGS replaces one.
		for k in "poll_interval: 100ms" "lease_ttl: 1s" "retry_attempts: 3" \
			"retry_backoff: 50ms" "request_timeout: 2s" "connect_timeout: 1s" \
			"breaker_threshold: 3" "breaker_cooldown: 1s" "max_attempts: 2"; do
			grep -q "^  ${k%%:*}:" <<< "$extra" || printf '  %s\n' "$k"
		done
		printf '%s' "$extra"
		printf 'pools:\n  nessus:\n'
		sed 's/^/    /'
	} | np_config "$BATS_TEST_TMPDIR/np.yaml"
}

# keys_scanner NAME [MAX] [EXTRA]: a YAML scanner item using API keys.
keys_scanner() {
	printf -- '- instance_id: %s\n  url: %s\n  ca_file: %s\n' "$1" \
		"$(cat "$FAKE_DIR/$1.url")" "$FAKE_DIR/tls/cert.pem"
	printf '  access_key: accesskey\n  secret_key_file: %s\n' \
		"$BATS_TEST_TMPDIR/api.secret"
	printf '  max_concurrent_scans: %s\n' "${2:-2}"
	[ -n "${3:-}" ] && printf '%s\n' "$3"
	return 0
}

# drain [ARGS]: runs np-worker --drain, bounded in time.
drain() {
	timeout 60 np-worker --drain "$@"
}

# task FIELD ID: one field of a task record.
task() {
	jq -r ".$1" "$NP_DATA_DIR/tasks/$2/task.json"
}

# within SECONDS CMD...: runs CMD every 50ms until it succeeds; fails
# when SECONDS pass first.
within() {
	local end=$((SECONDS + $1 + 1)) t=$1
	shift
	while ! "$@"; do
		[ "$SECONDS" -lt "$end" ] || { echo "not within ${t}s: $*" >&2; return 1; }
		sleep 0.05
	done
}
