#!/usr/bin/env bats
# Tests for np-select: the choice of a scanner (--pool), the scanner list
# (--list), pool totals (--pools, --pool-status), the human tables, and
# the exit statuses. Slots and breakers are set up by writing the Redis
# keys directly (lib/lease.c has the layout).
# shellcheck disable=SC2154

load helpers

setup_file() {
	redis_start
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
	redis_flush
}

rc() { # redis-cli against the file's private server
	redis-cli -s "$REDIS_SOCK" "$@"
}

now_ms() {
	date +%s%3N
}

# lease INST N [POOL] [OFFSET_MS]: N slots on INST, deadline now+OFFSET
# (default one hour ahead; a negative offset makes expired slots).
lease() {
	local inst=$1 n=$2 pool=${3:-nessus} off=${4:-3600000} i dl
	dl=$(($(now_ms) + off))
	for ((i = 1; i <= n; i++)); do
		LEASES=$((${LEASES:-0} + 1))
		rc ZADD "np:{$pool}:slots:$inst" "$dl" "task-$inst-$LEASES" > /dev/null
	done
}

# pick POOL: runs np-select --pool POOL, expects 0, prints the instance.
pick() {
	run --separate-stderr -0 np-select --pool "${1:-nessus}"
	[ -z "$stderr" ] || { echo "stderr: $stderr" >&2; return 1; }
	jq -r .instance_id <<< "$output"
}

# scanner FIELD INST: a field of INST in the --list output in $output.
scanner() {
	jq -c --arg i "$2" "select(.instance_id == \$i) | .$1" <<< "$output"
}

# is INST COND: exactly one object in $output (NDJSON) has
# instance_id (or pool, for a pool name) INST, and COND holds for it.
is() {
	jq -se --arg i "$1" "map(select(.instance_id == \$i or
	    (has(\"instance_id\") | not) and .pool == \$i)) |
	    length == 1 and (.[0] | $2)" <<< "$output"
}

# A full picture of Redis: every key, its type and its contents.
redis_dump() {
	local k
	for k in $(rc --scan | sort); do
		printf '%s %s\n' "$k" "$(rc TYPE "$k")"
		case $(rc TYPE "$k") in
		zset) rc ZRANGE "$k" 0 -1 WITHSCORES ;;
		hash) rc HGETALL "$k" ;;
		list) rc LRANGE "$k" 0 -1 ;;
		set) rc SMEMBERS "$k" | sort ;;
		string) rc GET "$k" ;;
		esac
	done
}

# ---------------------------------------------------------------- --pool

@test "--pool on an empty pool picks the first scanner of the config" {
	run --separate-stderr -0 np-select --pool nessus
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e '.pool == "nessus" and .instance_id == "s1" and
	    .url == "https://127.0.0.1:8834" and .active_scans == 0 and
	    .max_concurrent_scans == 2 and .available_capacity == 2 and
	    .breaker == "closed"' <<< "$output"
	run -0 pick dmz
	assert_output d1
}

@test "--pool moves to the least utilised scanner (active/max)" {
	lease s1 1 # s1 1/2, s2 0/3
	run -0 pick
	assert_output s2
	lease s2 1 # s1 1/2, s2 1/3
	run -0 pick
	assert_output s2
	lease s2 1 # s1 1/2, s2 2/3
	run -0 pick
	assert_output s1
	lease s1 1 # s1 2/2 full, s2 2/3
	run -0 pick
	assert_output s2
}

@test "--pool counts the slots in use: deadline ahead, or past it but still claimed" {
	lease s1 2 nessus -5000 # two expired leases, unclaimed
	run -0 pick
	assert_output s1
	run -0 np-select --list --pool nessus
	[ "$(scanner active_scans s1)" = 0 ]
	[ "$(scanner available_capacity s1)" = 2 ]
	# A late holder's scan still runs until recovery takes its claim.
	lease s2 1 nessus -5000
	rc ZADD 'np:{nessus}:claims' "$(($(now_ms) - 5000))" "task-s2-$LEASES" > /dev/null
	run -0 np-select --list --pool nessus
	[ "$(scanner active_scans s2)" = 1 ]
}

@test "--pool breaks ties by the least recently picked scanner" {
	local now
	now=$(now_ms)
	rc HSET 'np:{nessus}:lru' s1 "$((now - 1000))" s2 "$((now - 5000))" > /dev/null
	run -0 pick
	assert_output s2
	rc HSET 'np:{nessus}:lru' s1 "$((now - 9000))" > /dev/null
	run -0 pick
	assert_output s1
	# Never picked counts as least recent.
	rc HDEL 'np:{nessus}:lru' s2 > /dev/null
	run -0 pick
	assert_output s2
}

@test "--pool never picks a disabled scanner; all enabled full -> 69" {
	lease s1 2
	lease s2 3
	run --separate-stderr -69 np-select --pool nessus
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_equal "${stderr_lines[0]:0:11}" "np-select: "
	[[ $stderr == *nessus* ]]
	lease d1 1 dmz
	run --separate-stderr -69 np-select --pool dmz
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "an open breaker is shown as open and skipped by --pool" {
	local until=$(($(now_ms) + 600000))
	rc HSET 'np:{nessus}:breaker:s1' open_until "$until" failures 5 > /dev/null
	run -0 np-select --list --pool nessus
	[ "$(scanner breaker s1)" = '"open"' ]
	[ "$(scanner consecutive_failures s1)" = 5 ]
	is s1 '.breaker_open_until | test("^20[0-9-]+T[0-9:.]+Z$")'
	is s2 'has("breaker_open_until") | not'
	[ "$(scanner breaker s2)" = '"closed"' ]
	run -0 pick
	assert_output s2
	# With s2 full and s1 open there is nothing left.
	lease s2 3
	run --separate-stderr -69 np-select --pool nessus
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "a breaker past open_until is half_open and s1 can be picked again" {
	local past=$(($(now_ms) - 1000))
	rc HSET 'np:{nessus}:breaker:s1' open_until "$past" failures 5 > /dev/null
	run -0 np-select --list --pool nessus
	[ "$(scanner breaker s1)" = '"half_open"' ]
	run -0 pick
	assert_output s1
	# A probe already out (probe_until in the future): s1 waits.
	rc HSET 'np:{nessus}:breaker:s1' probe_until "$(($(now_ms) + 60000))" > /dev/null
	run -0 pick
	assert_output s2
}

@test "--pools leaves an open breaker's scanner out of available_capacity" {
	rc HSET 'np:{nessus}:breaker:s1' open_until "$(($(now_ms) + 600000))" \
	    failures 5 > /dev/null
	run -0 np-select --pools
	is nessus '.available_capacity == 3 and .total_capacity == 5'
	is dmz '.available_capacity == 1'
}

# ---------------------------------------------------------------- --list

@test "--list: one NDJSON line per scanner with the documented fields" {
	lease s1 1
	lease s2 2
	lease off 1 # a leftover slot on the disabled scanner
	run --separate-stderr -0 np-select --list
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 4 ]
	local l
	for l in "${lines[@]}"; do
		jq -e 'has("pool") and has("instance_id") and has("name") and
		    has("url") and has("enabled") and has("max_concurrent_scans")
		    and has("active_scans") and has("available_capacity") and
		    has("utilization_pct") and has("breaker")' <<< "$l"
	done
	run -0 jq -sc 'map([.pool, .instance_id, .enabled]) ' <<< "$output"
	assert_output '[["nessus","s1",true],["nessus","s2",true],["nessus","off",false],["dmz","d1",true]]'
	run -0 np-select --list
	is s1 '.active_scans == 1 and
	    .max_concurrent_scans == 2 and .available_capacity == 1 and
	    .utilization_pct == 50 and .url == "https://127.0.0.1:8834" and
	    .name == "s1" and .breaker == "closed"'
	is s2 '.active_scans == 2 and
	    .max_concurrent_scans == 3 and .available_capacity == 1 and
	    .utilization_pct == 66.7'
	is off '.enabled == false and .available_capacity == 0 and
	    .active_scans == 1'
	is d1 '.pool == "dmz" and
	    .active_scans == 0 and .available_capacity == 1 and
	    .utilization_pct == 0 and .url == "https://127.0.0.1:8837"'
}

@test "--list --pool dmz lists only dmz" {
	run -0 np-select --list --pool dmz
	[ "${#lines[@]}" -eq 1 ]
	jq -e '.pool == "dmz" and .instance_id == "d1"' <<< "$output"
	run -0 np-select --list --pool nessus
	[ "${#lines[@]}" -eq 3 ]
	run -0 jq -r .pool <<< "$output"
	refute_output --partial dmz
}

# ----------------------------------------------------- --pools, --pool-status

@test "--pools: one line per pool; a disabled scanner adds no capacity" {
	lease s1 2
	lease s2 1
	lease off 1
	run --separate-stderr -0 np-select --pools
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 2 ]
	jq -e '.pool == "nessus" and .total_scanners == 3 and
	    .enabled_scanners == 2 and .total_capacity == 5 and
	    .total_active == 3 and .available_capacity == 2 and
	    .utilization_pct == 60 and .queue_depth == 0' <<< "${lines[0]}"
	jq -e '.pool == "dmz" and .total_scanners == 1 and
	    .enabled_scanners == 1 and .total_capacity == 1 and
	    .total_active == 0 and .available_capacity == 1 and
	    .utilization_pct == 0' <<< "${lines[1]}"
	jq -e 'has("scanners") | not' <<< "${lines[0]}"
}

@test "--pool-status: totals, scanners and queue_depth after 3 enqueues" {
	local i
	for i in 1 2 3; do
		np-enqueue --pool nessus --name "t$i" --targets "10.0.0.$i" > /dev/null
	done
	np-enqueue --pool dmz --name d --targets 10.9.0.1 > /dev/null
	lease s2 1
	run --separate-stderr -0 np-select --pool-status nessus
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e '.pool == "nessus" and .total_scanners == 3 and
	    .enabled_scanners == 2 and .total_capacity == 5 and
	    .total_active == 1 and .available_capacity == 4 and
	    .utilization_pct == 20 and .queue_depth == 3 and
	    .processing == 0 and .dlq_depth == 0' <<< "$output"
	run -0 jq -c '[.scanners[] | [.instance_id, .active_scans, .enabled]]' <<< "$output"
	assert_output '[["s1",0,true],["s2",1,true],["off",0,false]]'
	run -0 np-select --pool-status dmz
	jq -e '.queue_depth == 1 and (.scanners | length) == 1' <<< "$output"
}

# ---------------------------------------------------------------- --human

@test "-H prints aligned tables with a header" {
	lease s1 1
	run --separate-stderr -0 np-select --list -H
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 5 ]
	[[ ${lines[0]} == POOL*INSTANCE*ENABLED*ACTIVE*MAX*BREAKER*URL ]]
	run -0 grep -c '^POOL' <<< "$output"
	assert_output 1
	run -0 np-select --list -H
	[[ ${lines[1]} =~ ^nessus\ +s1\ +yes\ +1\ +2\ +50\.0\ +closed\ +https://127\.0\.0\.1:8834$ ]]
	[[ ${lines[3]} =~ ^nessus\ +off\ +no\  ]]
	# Human output is not JSON.
	run ! jq -e . <<< "${lines[1]}"
	run -0 np-select --pools --human
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} == POOL*SCANNERS*CAPACITY* ]]
	[[ ${lines[1]} =~ ^nessus\ +2\ +5\ +1\  ]]
	run -0 np-select --list -H --pool dmz
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == POOL* ]]
	[[ ${lines[1]} == dmz* ]]
}

# ------------------------------------------------------- usage and errors

@test "no arguments -> 64 with usage on stderr" {
	run --separate-stderr -64 np-select
	[ -z "$output" ]
	[[ $stderr == *usage:* ]]
}

@test "conflicting or extra arguments -> 64" {
	run -64 np-select --pools --pool nessus
	run -64 np-select --list --pools
	run -64 np-select --pool-status nessus --pool nessus
	run -64 np-select --pool nessus extra
	run -64 np-select --bogus
}

@test "--help prints usage on stdout and exits 0" {
	run --separate-stderr -0 np-select --help
	[ -z "$stderr" ]
	[[ $output == *usage:*np-select* ]]
	run --separate-stderr -0 np-select -h
	[[ $output == *usage:* ]]
}

@test "an unknown pool -> 64 in every form" {
	run --separate-stderr -64 np-select --pool nope
	[ -z "$output" ]
	[[ $stderr == *nope* ]]
	run -64 np-select --list --pool nope
	run -64 np-select --pool-status nope
}

@test "np-select changes nothing in Redis" {
	lease s1 1
	lease s2 1 nessus -5000 # an expired slot that a lease would sweep
	rc HSET 'np:{nessus}:lru' s1 123 > /dev/null
	rc HSET 'np:{nessus}:breaker:s2' open_until "$(($(now_ms) - 1000))" \
	    failures 3 > /dev/null
	np-enqueue --pool nessus --name t --targets 10.0.0.1 > /dev/null
	local before after
	before=$(redis_dump)
	[[ $before == *'slots:s2 zset'* ]]
	run -0 np-select --pool nessus
	run -0 np-select --pool dmz
	run -0 np-select --list
	run -0 np-select --list -H
	run -0 np-select --pools
	run -0 np-select --pools -H
	run -0 np-select --pool-status nessus
	# Still read-only when the choice is not the first scanner.
	rc ZADD 'np:{nessus}:slots:s1' "$(($(now_ms) + 60000))" extra > /dev/null
	run -0 np-select --pool nessus # s1 is now 2/2 -> s2
	assert_equal "$(jq -r .instance_id <<< "$output")" s2
	rc ZREM 'np:{nessus}:slots:s1' extra > /dev/null
	after=$(redis_dump)
	assert_equal "$after" "$before"
	[ "$(rc ZCARD 'np:{nessus}:slots:s2')" -eq 1 ]
	[ "$(rc HGET 'np:{nessus}:lru' s1)" = 123 ]
	[ "$(rc HEXISTS 'np:{nessus}:lru' s2)" = 0 ]
}

@test "Redis down -> 75 with a message on stderr" {
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no-such.sock
	run --separate-stderr -75 np-select --pool nessus
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == np-select:* ]]
	run --separate-stderr -75 np-select --list
	[ -z "$output" ]
	run -75 np-select --pools
	run -75 np-select --pool-status nessus
}

@test "a bad config -> 78, naming the file" {
	np_config "$BATS_TEST_TMPDIR/bad.yaml" <<-'YAML'
	default_pool: nessus
	pools:
	  nessus: [ {instance_id: s1
	YAML
	run --separate-stderr -78 np-select --pool nessus
	[ -z "$output" ]
	[[ $stderr == *bad.yaml* ]]
	run -78 np-select --list
	export NP_CONFIG=$BATS_TEST_TMPDIR/missing.yaml
	run --separate-stderr -78 np-select --pools
	[[ $stderr == *missing.yaml* ]]
}
