#!/usr/bin/env bats
# The Redis connection: URL forms, AUTH (password and ACL user), database
# selection, and failing fast with 75 when Redis is down or stuck.
# shellcheck disable=SC2154

load helpers

setup_file() {
	PORT=$((20000 + RANDOM % 20000))
	REDIS_ARGS="--port $PORT --bind 127.0.0.1 --requirepass top-pw --enable-debug-command local --user np on >np-pw ~* &* +@all --user ro on >ro-pw ~* &* +@read +auth +ping"
	export REDIS_ARGS PORT
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
}

rcli() {
	redis-cli --no-auth-warning -a top-pw -s "$REDIS_SOCK" "$@"
}

@test "unix socket with a password" {
	NP_REDIS_URL="unix://:top-pw@$REDIS_SOCK" run -0 np-enqueue -n a -T 10.0.0.1
	NP_REDIS_URL="unix://top-pw@$REDIS_SOCK" run -0 np-enqueue -n a -T 10.0.0.1
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 2
}

@test "TCP with an ACL user and a database number" {
	NP_REDIS_URL="redis://np:np-pw@127.0.0.1:$PORT/3" run -0 np-enqueue -n a -T 10.0.0.1
	run -0 rcli -n 3 llen 'np:{nessus}:queue'
	assert_output 1
	NP_REDIS_URL="redis://np:np%2Dpw@127.0.0.1:$PORT/3" run -0 np-select --pools
}

@test "no or wrong password: a clear error that does not print it" {
	NP_REDIS_URL="unix://$REDIS_SOCK" run -78 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "NOAUTH"
	NP_REDIS_URL="unix://:wrong-pw@$REDIS_SOCK" run -78 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "authentication failed"
	refute_output --partial "wrong-pw"
	[ -z "$(ls -A "$NP_DATA_DIR")" ] || [ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}

@test "a user Redis refuses writes to: 77 (permission), nothing left behind" {
	NP_REDIS_URL="redis://ro:ro-pw@127.0.0.1:$PORT/0" run -77 np-enqueue -n a -T 10.0.0.1
	assert_output --partial "NOPERM"
	[ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}

@test "a stuck Redis fails commands in bounded time with 75" {
	printf 'settings:\n  redis_timeout: 300ms\n' >> "$NP_CONFIG"
	rcli debug sleep 3 > /dev/null &
	sleep 0.3
	start=$(date +%s%N)
	NP_REDIS_URL="unix://:top-pw@$REDIS_SOCK" run -75 np-enqueue -n a -T 10.0.0.1
	end=$(date +%s%N)
	wait
	assert_output --partial "redis"
	[ $(( (end - start) / 1000000 )) -lt 2500 ]
	[ -z "$(ls -A "$NP_DATA_DIR/tasks")" ]
}
