#!/usr/bin/env bats
# The operator documentation: np(7) and np.yaml(5) pass mandoc's lint,
# every command's usage agrees with its man page, and the cookbook
# helpers of np(7) (scripts/np-retry-failed-auth, scripts/np-critical-csv)
# do what it says, against a real Redis.
# shellcheck disable=SC2154

load helpers

ROOT=$BATS_TEST_DIRNAME/..
FIXTURE=$BATS_TEST_DIRNAME/fixtures/sample_scan.nessus

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
	redis_flush
	PATH=$ROOT/scripts:$PATH
	# Times of death in the DLQs: 2023-11-14T22:13:20.000Z, then 1 ms on.
	DEATH=1700000000000
}

rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# dead POOL REASON N: N tasks of POOL made dead by hand, as bury() in
# tests/dlq.bats does: record failed with REASON, then a DLQ entry, each
# death 1 ms after the last. Sets D to their ids, in order of death.
dead() {
	local pool=$1 reason=$2 i id f
	D=()
	for i in $(seq "$3"); do
		id=$(np-enqueue -p "$pool" -n "$reason $i" -T "10.9.0.$i" | jq -er .task_id) || return 1
		rcli lrem "np:{$pool}:queue" 0 "$id" > /dev/null
		f=$NP_DATA_DIR/tasks/$id/task.json
		jq --arg r "$reason" '.status = "failed" | .failure_reason = $r |
		    .error = "boom" | .attempts = 2' "$f" > "$f.new" && mv "$f.new" "$f" || return 1
		rcli zadd "np:{$pool}:dlq" "$DEATH" "$id" > /dev/null
		DEATH=$((DEATH + 1))
		D+=("$id")
	done
}

# ended STATUS REASON COMPLETED_AT [EXPORT [np-enqueue args]]: a task ended
# by hand (status, failure_reason unless "", completed_at), with EXPORT
# (the fixture by default, none when "") as its scan.nessus. Sets ID.
ended() {
	local st=$1 reason=$2 at=$3 export=${4-$FIXTURE} f
	shift $(($# < 4 ? $# : 4))
	ID=$(np-enqueue -T 10.0.0.1 "$@" | jq -er .task_id) || return 1
	f=$NP_DATA_DIR/tasks/$ID/task.json
	jq --arg s "$st" --arg r "$reason" --arg at "$at" '.status = $s |
	    .completed_at = $at |
	    if $r != "" then .failure_reason = $r else . end' "$f" > "$f.new" &&
	    mv "$f.new" "$f" || return 1
	if [ -n "$export" ]; then
		cp "$export" "$NP_DATA_DIR/tasks/$ID/scan.nessus" || return 1
	fi
}

ago() {
	date -u -d "$1 ago" +%Y-%m-%dT%H:%M:%S.000Z
}

# rows ID NAME COMPLETED_AT: the CSV rows of the fixture's 11 critical
# findings (checked against the export with xmllint) for that task.
rows() {
	local body
	while IFS= read -r body; do
		printf '"%s","%s","%s",%s\n' "$1" "$2" "$3" "$body"
	done <<-'CSV'
	"172.32.0.215",80,"tcp","150280","Apache 2.4.x < 2.4.47 Multiple Vulnerabilities",9.8,"CVE-2019-17567 CVE-2020-13938 CVE-2020-13950 CVE-2020-35452 CVE-2021-26690 CVE-2021-26691 CVE-2021-30641"
	"172.32.0.215",80,"tcp","153584","Apache < 2.4.49 Multiple Vulnerabilities",9.8,"CVE-2021-34798 CVE-2021-39275"
	"172.32.0.215",80,"tcp","156255","Apache 2.4.x >= 2.4.7 / < 2.4.52 Forward Proxy DoS / SSRF",9.8,"CVE-2021-44224 CVE-2021-44790"
	"172.32.0.215",80,"tcp","158900","Apache 2.4.x < 2.4.53 Multiple Vulnerabilities",9.8,"CVE-2022-22719 CVE-2022-22720 CVE-2022-22721 CVE-2022-23943"
	"172.32.0.215",80,"tcp","161454","Apache 2.4.x < 2.4.52 mod_lua Buffer Overflow",9.8,"CVE-2021-44790"
	"172.32.0.215",80,"tcp","170113","Apache 2.4.x < 2.4.55 Multiple Vulnerabilities",9,"CVE-2006-20001 CVE-2022-36760 CVE-2022-37436"
	"172.32.0.215",80,"tcp","172186","Apache 2.4.x < 2.4.56 Multiple Vulnerabilities",9.8,"CVE-2023-25690 CVE-2023-27522"
	"172.32.0.215",80,"tcp","193421","Apache 2.4.x < 2.4.54 Authentication Bypass",9.8,"CVE-2022-31813"
	"172.32.0.215",80,"tcp","161948","Apache 2.4.x < 2.4.54 Multiple Vulnerabilities",9.1,"CVE-2022-28614 CVE-2022-28615"
	"172.32.0.215",80,"tcp","201198","Apache 2.4.x < 2.4.60 Multiple Vulnerabilities",9.8,"CVE-2024-36387 CVE-2024-38472 CVE-2024-38473 CVE-2024-38474 CVE-2024-38475 CVE-2024-38476 CVE-2024-38477 CVE-2024-39573"
	"172.32.0.215",80,"tcp","153583","Apache < 2.4.49 Multiple Vulnerabilities",9,"CVE-2021-40438"
	CSV
}

HEADER=task_id,task_name,completed_at,host,port,protocol,plugin_id,plugin_name,cvss3_base_score,cve

# ---------------------------------------------------------------- man pages

@test "np(7) and np.yaml(5) pass mandoc -T lint -W warning" {
	run -0 mandoc -T lint -W warning "$ROOT/man/np.7" "$ROOT/man/np.yaml.5"
	assert_output ""
}

@test "the cookbook helpers pass shellcheck" {
	run -0 shellcheck "$ROOT/scripts/np-retry-failed-auth" "$ROOT/scripts/np-critical-csv"
	assert_output ""
}

# opts_agree CMD: the options of `CMD --help` and those of its man page
# agree. The usage shows short options (-x) and, for a few, the long form
# alone (--json). Documented options are the Fl words of the man page's
# .It lines (its option lists), short and long, paired when on one line.
# Every usage option must be documented; every documented short option
# (but -h and -V, which the usage leaves out) must be in the usage, as
# itself or as the long option it is paired with. Prints each mismatch.
opts_agree() {
	local cmd=$1 page w prev line bad=0 x words
	local -A use=() doc=() pair=()
	page=$(ls "$ROOT"/man/"$cmd".[1-8]) || return 1
	read -ra words -d '' < <("$NP_BIN/$cmd" --help | tr '[]|' '   ') || true
	for w in "${words[@]}"; do
		[[ $w =~ ^-[A-Za-z]$ || $w =~ ^--[a-z][a-z-]*$ ]] && use[$w]=1
	done
	while IFS= read -r line; do
		local shorts=() longs=()
		prev=
		read -ra words <<< "$line"
		for w in "${words[@]}"; do
			if [ "$prev" = Fl ]; then
				if [[ $w =~ ^[A-Za-z]$ ]]; then
					shorts+=("-$w")
				elif [[ $w =~ ^\\-[a-z] ]]; then
					longs+=("-${w//\\/}")
				fi
			fi
			prev=$w
		done
		for x in "${shorts[@]}" "${longs[@]}"; do doc[$x]=1; done
		for x in "${shorts[@]}"; do pair[$x]="${longs[*]}"; done
	done < <(grep '^\.It .*Fl ' "$page")
	for x in "${!use[@]}"; do
		if [ -z "${doc[$x]:-}" ]; then
			echo "$cmd: $x is in the usage but not documented in $(basename "$page")"
			bad=1
		fi
	done
	for x in "${!doc[@]}"; do
		[[ $x =~ ^-[A-Za-z]$ ]] || continue
		[ "$x" = -h ] || [ "$x" = -V ] || [ -n "${use[$x]:-}" ] && continue
		local found=0 l
		for l in ${pair[$x]}; do [ -n "${use[$l]:-}" ] && found=1; done
		if [ "$found" -eq 0 ]; then
			echo "$cmd: $x is documented in $(basename "$page") but not in the usage"
			bad=1
		fi
	done
	return "$bad"
}

@test "the option checks cover every command" {
	local c want=() got=()
	for c in "$NP_BIN"/np-*; do got+=("$(basename "$c")"); done
	want=(np-cancel np-dlq np-enqueue np-housekeep np-mcp np-metrics
	    np-results np-scan np-select np-status np-validate np-worker)
	assert_equal "${got[*]}" "${want[*]}"
}

@test "np-cancel: usage and man page agree on the options" { opts_agree np-cancel; }
@test "np-dlq: usage and man page agree on the options" { opts_agree np-dlq; }
@test "np-enqueue: usage and man page agree on the options" { opts_agree np-enqueue; }
@test "np-housekeep: usage and man page agree on the options" { opts_agree np-housekeep; }
@test "np-mcp: usage and man page agree on the options" { opts_agree np-mcp; }
@test "np-metrics: usage and man page agree on the options" { opts_agree np-metrics; }
@test "np-results: usage and man page agree on the options" { opts_agree np-results; }
@test "np-scan: usage and man page agree on the options" { opts_agree np-scan; }
@test "np-select: usage and man page agree on the options" { opts_agree np-select; }
@test "np-status: usage and man page agree on the options" { opts_agree np-status; }
@test "np-validate: usage and man page agree on the options" { opts_agree np-validate; }
@test "np-worker: usage and man page agree on the options" { opts_agree np-worker; }

# ---------------------------------------------------- np-retry-failed-auth

@test "np-retry-failed-auth: retries the pool's auth_failed dead tasks, newest death first" {
	dead nessus auth_failed 2
	a1=${D[0]} a2=${D[1]}
	dead nessus scanner_error 1
	e1=${D[0]}
	dead nessus auth_failed 1
	a3=${D[0]}
	dead dmz auth_failed 1
	d1=${D[0]}
	run -0 --separate-stderr np-retry-failed-auth nessus
	assert_output "$(printf '{"task_id":"%s","status":"queued"}\n' "$a3" "$a2" "$a1")"
	assert_equal "$stderr" ""
	# Each at the front of the line in turn: the last retried runs first.
	run -0 rcli lrange 'np:{nessus}:queue' 0 -1
	assert_output "$(printf '%s\n' "$a3" "$a2" "$a1")"
	run -0 rcli zrange 'np:{nessus}:dlq' 0 -1
	assert_output "$e1"
	run -0 rcli zrange 'np:{dmz}:dlq' 0 -1
	assert_output "$d1"
	for id in "$a1" "$a2" "$a3"; do
		[ "$(task status "$id")" = queued ]
		[ "$(task attempts "$id")" = 0 ]
		[ "$(task failure_reason "$id")" = null ]
	done
	[ "$(task status "$e1")" = failed ]
	[ "$(task status "$d1")" = failed ]
	# Nothing left to retry.
	run -0 np-retry-failed-auth nessus
	assert_output ""
}

@test "np-retry-failed-auth -n changes nothing; -r picks another reason" {
	dead nessus auth_failed 2
	a1=${D[0]} a2=${D[1]}
	dead nessus privilege_insufficient 1
	p1=${D[0]}
	run -0 np-retry-failed-auth -n nessus
	assert_output "$(printf '%s\n' \
	    "{\"task_id\":\"$a2\",\"reason\":\"auth_failed\",\"failed_at\":\"2023-11-14T22:13:20.001Z\"}" \
	    "{\"task_id\":\"$a1\",\"reason\":\"auth_failed\",\"failed_at\":\"2023-11-14T22:13:20.000Z\"}")"
	run -0 rcli zcard 'np:{nessus}:dlq'
	assert_output 3
	run -0 rcli llen 'np:{nessus}:queue'
	assert_output 0
	[ "$(task status "$a1")" = failed ]
	run -0 np-retry-failed-auth -r privilege_insufficient nessus
	assert_output "{\"task_id\":\"$p1\",\"status\":\"queued\"}"
	run -0 rcli zrange 'np:{nessus}:dlq' 0 -1
	assert_output "$(printf '%s\n' "$a1" "$a2")"
}

@test "np-retry-failed-auth: a task that cannot go back exits 1, the others are retried" {
	dead nessus auth_failed 3
	a1=${D[0]} a2=${D[1]} a3=${D[2]}
	f=$NP_DATA_DIR/tasks/$a2/task.json
	jq '.status = "completed"' "$f" > "$f.new" && mv "$f.new" "$f"
	run -1 --separate-stderr np-retry-failed-auth nessus
	assert_output "$(printf '{"task_id":"%s","status":"queued"}\n' "$a3" "$a1")"
	[[ $stderr == *"$a2"* ]]
	run -0 rcli zrange 'np:{nessus}:dlq' 0 -1
	assert_output "$a2"
}

@test "np-retry-failed-auth: usage 64, unknown pool 64, Redis down 75" {
	run -0 np-retry-failed-auth -h
	assert_output "usage: np-retry-failed-auth [-n] [-r reason] pool"
	run -64 np-retry-failed-auth
	run -64 np-retry-failed-auth nessus dmz
	run -64 np-retry-failed-auth -x nessus
	run -64 np-retry-failed-auth ../nessus
	run -64 np-retry-failed-auth -r 'a b' nessus
	run -64 np-retry-failed-auth nope
	assert_output --partial "nope"
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 np-retry-failed-auth nessus
}

# --------------------------------------------------------- np-critical-csv

@test "np-critical-csv: the critical findings of the last week, exactly" {
	# Created in this order; np-status --list gives the newest first.
	ended completed "" "$(ago '2 hours')" "$FIXTURE" -n "web tier, \"east\""
	c1=$ID
	ended failed auth_failed "$(ago '2 days')" "$FIXTURE" -p dmz -n dmz
	c2=$ID
	ended completed "" "$(ago '30 days')" "$FIXTURE" -n old
	c3=$ID
	ended failed scanner_error "$(ago '1 hour')" "$FIXTURE" -n broken
	ended completed "" "$(ago '1 hour')" "" -n no-export
	np-enqueue -n waiting -T 10.0.0.9 > /dev/null
	run -0 --separate-stderr np-critical-csv
	assert_output "$(printf '%s\n' "$HEADER"
	    rows "$c2" dmz "$(task completed_at "$c2")"
	    rows "$c1" 'web tier, ""east""' "$(task completed_at "$c1")")"
	assert_equal "$stderr" ""
	[ "${#lines[@]}" -eq 23 ]

	run -0 np-critical-csv 1
	assert_output "$(printf '%s\n' "$HEADER"
	    rows "$c1" 'web tier, ""east""' "$(task completed_at "$c1")")"
	run -0 np-critical-csv 31
	assert_output "$(printf '%s\n' "$HEADER"
	    rows "$c3" old "$(task completed_at "$c3")"
	    rows "$c2" dmz "$(task completed_at "$c2")"
	    rows "$c1" 'web tier, ""east""' "$(task completed_at "$c1")")"
	run -0 np-critical-csv -p dmz
	assert_output "$(printf '%s\n' "$HEADER"
	    rows "$c2" dmz "$(task completed_at "$c2")")"
}

@test "np-critical-csv: no task, only the header" {
	np-enqueue -n waiting -T 10.0.0.9 > /dev/null
	run -0 np-critical-csv
	assert_output "$HEADER"
}

@test "np-critical-csv: a corrupt export is left out, named, and sets the status" {
	head -c 200000 "$FIXTURE" > "$BATS_TEST_TMPDIR/cut.nessus"
	ended completed "" "$(ago '1 hour')" "$FIXTURE" -n good
	good=$ID
	ended completed "" "$(ago '1 hour')" "$BATS_TEST_TMPDIR/cut.nessus" -n cut
	cut=$ID
	run -74 --separate-stderr np-critical-csv
	assert_output "$(printf '%s\n' "$HEADER"
	    rows "$good" good "$(task completed_at "$good")")"
	[[ $stderr == *"task $cut: np-results exited 74"* ]]
}

@test "np-critical-csv: usage 64, unknown pool 64, Redis down 75" {
	run -0 np-critical-csv -h
	assert_output "usage: np-critical-csv [-p pool] [days]"
	run -64 np-critical-csv x
	run -64 np-critical-csv 0
	run -64 np-critical-csv 07
	run -64 np-critical-csv 36501
	run -64 np-critical-csv 1 2
	run -64 np-critical-csv -q
	run -64 np-critical-csv -p nope
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 np-critical-csv
	refute_output --partial "$HEADER"
}
