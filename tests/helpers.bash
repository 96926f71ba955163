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
