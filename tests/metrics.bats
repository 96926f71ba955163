#!/usr/bin/env bats
# np-metrics: every metric, right values, promtool-clean, atomic writes,
# escaping, Redis down.
# shellcheck disable=SC2154

load helpers

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	export FAKE_DIR
	fake_start s1 "$FAKE_DIR" '{"pending_seconds":0.05,"running_seconds":0.2}'
	fake_start s2 "$FAKE_DIR" '{"pending_seconds":0.05,"running_seconds":0.2,
	  "inject":{"errors":[{"route":"POST /scans","status":503,"count":null}]}}'
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	fake_reset s1
	fake_reset s2
	scan_env
	{ keys_scanner s1 2; keys_scanner s2 1; } | scan_config
}

rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# metric NAME LABELS: the value of one sample.
metric() {
	awk -v k="$1$2" '$1 == k { print $2 }' "$BATS_TEST_TMPDIR/out.prom"
}

@test "after a run: every metric present with the right values" {
	np-enqueue -n a -T 10.0.0.1 -i s1 > /dev/null
	np-enqueue -n b -T 10.0.0.2 -i s1 > /dev/null
	np-enqueue -n c -T 10.0.0.3 -i s2 > /dev/null
	run -0 drain
	np-enqueue -n d -T 10.0.0.4 -i s1 > /dev/null
	np-metrics > "$BATS_TEST_TMPDIR/out.prom"
	[ "$(metric nessus_scans_total '{pool="nessus",scan_type="untrusted",result="completed"}')" = 2 ]
	[ "$(metric nessus_scans_total '{pool="nessus",scan_type="untrusted",result="failed"}')" = 1 ]
	[ "$(metric nessus_scans_total '{pool="nessus",scan_type="authenticated",result="completed"}')" = 0 ]
	[ "$(metric nessus_pool_dlq_depth '{pool="nessus"}')" = 1 ]
	[ "$(metric nessus_pool_queue_depth '{pool="nessus"}')" = 1 ]
	[ "$(metric nessus_pool_processing '{pool="nessus"}')" = 0 ]
	[ "$(metric nessus_tasks '{pool="nessus",status="completed"}')" = 2 ]
	[ "$(metric nessus_tasks '{pool="nessus",status="failed"}')" = 1 ]
	[ "$(metric nessus_tasks '{pool="nessus",status="queued"}')" = 1 ]
	[ "$(metric nessus_tasks '{pool="nessus",status="running"}')" = 0 ]
	[ "$(metric nessus_scanner_capacity '{pool="nessus",scanner_instance="s1"}')" = 2 ]
	[ "$(metric nessus_scanner_active_scans '{pool="nessus",scanner_instance="s1"}')" = 0 ]
	[ "$(metric nessus_scanner_utilization_pct '{pool="nessus",scanner_instance="s1"}')" = 0 ]
	[ "$(metric nessus_scanner_up '{pool="nessus",scanner_instance="s1"}')" = 1 ]
	[ "$(metric nessus_scanner_up '{pool="nessus",scanner_instance="s2"}')" = 0 ]
	[ "$(metric nessus_scanner_circuit_breaker_open '{pool="nessus",scanner_instance="s1"}')" = 0 ]
	[ "$(metric nessus_scan_duration_seconds_count '{pool="nessus"}')" = 2 ]
	[ "$(metric nessus_scan_duration_seconds_bucket '{pool="nessus",le="60"}')" = 2 ]
	[ "$(metric nessus_scan_duration_seconds_bucket '{pool="nessus",le="+Inf"}')" = 2 ]
	[ "$(metric nessus_validation_failures_total '{pool="nessus",reason="auth_failed"}')" = 0 ]
	[ "$(metric nessus_auth_failures_total '{pool="nessus",scan_type="authenticated"}')" = 0 ]
	[ "$(metric nessus_ttl_deletions_total '')" = 0 ]
	[ "$(metric nessus_dlq_retries_total '{pool="nessus"}')" = 0 ]
	age=$(metric nessus_oldest_queued_seconds '{pool="nessus"}')
	[ "$age" -ge 0 ] && [ "$age" -lt 60 ]
	grep -q '^nessus_worker_last_heartbeat_timestamp_seconds{pool="nessus",worker="' "$BATS_TEST_TMPDIR/out.prom"
	now=$(date +%s)
	last=$(metric np_metrics_last_run_timestamp_seconds '')
	[ "${last%.*}" -ge $((now - 5)) ]
	# Counters grow: a DLQ retry shows.
	id=$(np-dlq list | jq -r .task_id)
	np-dlq retry "$id" > /dev/null
	np-metrics > "$BATS_TEST_TMPDIR/out.prom"
	[ "$(metric nessus_dlq_retries_total '{pool="nessus"}')" = 1 ]
	[ "$(metric nessus_pool_dlq_depth '{pool="nessus"}')" = 0 ]
}

@test "a scanner with a breaker open and slots in use" {
	rcli hset 'np:{nessus}:breaker:s2' open_until 99999999999999 failures 5 > /dev/null
	rcli zadd 'np:{nessus}:slots:s1' 99999999999999 x > /dev/null
	np-metrics > "$BATS_TEST_TMPDIR/out.prom"
	[ "$(metric nessus_scanner_circuit_breaker_open '{pool="nessus",scanner_instance="s2"}')" = 1 ]
	[ "$(metric nessus_scanner_active_scans '{pool="nessus",scanner_instance="s1"}')" = 1 ]
	[ "$(metric nessus_scanner_utilization_pct '{pool="nessus",scanner_instance="s1"}')" = 50 ]
}

@test "output passes promtool check metrics; HELP and TYPE once per family; no timestamps" {
	command -v promtool > /dev/null || skip "promtool not installed (scripts/deps installs it)"
	np-enqueue -n a -T 10.0.0.1 -i s1 > /dev/null
	run -0 drain
	np-metrics > "$BATS_TEST_TMPDIR/out.prom"
	run -0 promtool check metrics < "$BATS_TEST_TMPDIR/out.prom"
	assert_output ""
	[ -z "$(grep '^# TYPE' "$BATS_TEST_TMPDIR/out.prom" | awk '{print $3}' | sort | uniq -d)" ]
	# name{labels} value: exactly two fields, never a timestamp.
	[ -z "$(grep -v '^#' "$BATS_TEST_TMPDIR/out.prom" | awk '{ if (NF != 2) print }')" ]
	# Every series once.
	[ -z "$(grep -v '^#' "$BATS_TEST_TMPDIR/out.prom" | awk '{print $1}' | sort | uniq -d)" ]
}

@test "label values with quotes, backslashes and newlines are escaped" {
	rcli hset 'np:{nessus}:workers' "$(printf 'a"b\\c\nd')" 1700000000000 > /dev/null
	np-metrics > "$BATS_TEST_TMPDIR/out.prom"
	grep -qF 'worker="a\"b\\c\nd"} 1700000000' "$BATS_TEST_TMPDIR/out.prom"
	if command -v promtool > /dev/null; then
		promtool check metrics < "$BATS_TEST_TMPDIR/out.prom"
	fi
}

@test "--textfile-dir writes np.prom atomically, mode 0644; a reader never sees a partial file" {
	d=$BATS_TEST_TMPDIR/textfile
	mkdir "$d"
	np-metrics --textfile-dir "$d"
	[ "$(stat -c %a "$d/np.prom")" = 644 ]
	(
		while [ ! -e "$d/stop" ]; do
			if [ -e "$d/np.prom" ] && ! tail -n 1 "$d/np.prom" | grep -q '^np_metrics_last_run_timestamp_seconds '; then
				echo partial >> "$d/bad"
			fi
		done
	) &
	reader=$!
	for _ in $(seq 200); do np-metrics --textfile-dir "$d"; done
	touch "$d/stop"
	wait "$reader"
	[ ! -e "$d/bad" ]
	[ "$(find "$d" -name '*.tmp*' | wc -l)" -eq 0 ]
}

@test "Redis down: exit 75, the last file left as it was" {
	d=$BATS_TEST_TMPDIR/textfile
	mkdir "$d"
	np-metrics --textfile-dir "$d"
	before=$(stat -c %Y.%s "$d/np.prom")
	sleep 1
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 np-metrics --textfile-dir "$d"
	assert_output --partial "redis"
	[ "$(stat -c %Y.%s "$d/np.prom")" = "$before" ]
}

@test "--prefix renames the nessus_ families; usage errors 64" {
	np-metrics --prefix scan > "$BATS_TEST_TMPDIR/out.prom"
	grep -q '^scan_pool_queue_depth{pool="nessus"} 0$' "$BATS_TEST_TMPDIR/out.prom"
	run -1 grep -q '^nessus_' "$BATS_TEST_TMPDIR/out.prom"
	run -64 np-metrics --prefix 'a-b'
	run -64 np-metrics extra
}

@test "np-status --health: healthy with persistence, workers and scanners up" {
	rcli config set appendonly yes > /dev/null
	np-worker 2> /dev/null &
	w=$!
	sleep 0.5
	run -0 --separate-stderr np-status --health
	kill -TERM "$w"
	wait "$w"
	rcli config set appendonly no > /dev/null
	jq -e '.status == "healthy" and .redis.ok and .data_dir.ok and
	    (.scanners | length) == 2 and all(.scanners[]; .ok and .server_status == "ready") and
	    all(.pools[]; .ok)' <<< "$output"
}

@test "np-status --health: degraded names each problem; Redis down is 75" {
	keys_scanner s1 2 | scan_config
	printf '    - instance_id: gone\n      url: https://127.0.0.1:1\n      insecure: true\n      access_key: a\n      secret_key_file: %s\n' \
		"$BATS_TEST_TMPDIR/api.secret" >> "$NP_CONFIG"
	sed -i 's/connect_timeout: 1s/connect_timeout: 300ms/; s/retry_attempts: 3/retry_attempts: 1/' "$NP_CONFIG"
	run -1 --separate-stderr np-status --health
	jq -e '.status == "degraded"' <<< "$output"
	jq -e '.problems | any(test("appendonly yes"))' <<< "$output"
	jq -e '.problems | any(test("no worker heartbeat"))' <<< "$output"
	jq -e '.problems | any(test("scanner nessus/gone"))' <<< "$output"
	jq -e '.scanners[] | select(.instance_id == "s1") | .ok' <<< "$output"
	NP_REDIS_URL=unix://$BATS_TEST_TMPDIR/no.sock run -75 --separate-stderr np-status --health
	jq -e '.status == "unavailable" and (.redis.ok | not)' <<< "$output"
}

@test "systemd units: np-metrics.service and .timer verify clean and are hardened" {
	command -v systemd-analyze > /dev/null || skip "systemd-analyze not installed"
	u=$BATS_TEST_TMPDIR/units
	mkdir "$u"
	sed "s|/usr/local/bin/np-metrics|$NP_BIN/np-metrics|" "$BATS_TEST_DIRNAME/../systemd/np-metrics.service" > "$u/np-metrics.service"
	cp "$BATS_TEST_DIRNAME/../systemd/np-metrics.timer" "$u/"
	run -0 systemd-analyze verify --man=no "$u/np-metrics.service" "$u/np-metrics.timer"
	assert_output ""
	run -0 systemd-analyze security --offline=true --threshold=20 "$u/np-metrics.service"
}
