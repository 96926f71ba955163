#!/usr/bin/env bats
# scripts/np-alerts.yml: promtool-clean, the expected alerts, and unit
# tests (promtool test rules) of when each one fires, with its labels and
# annotations.
# shellcheck disable=SC2154

load helpers

RULES=$(cd "$BATS_TEST_DIRNAME/.." && pwd)/scripts/np-alerts.yml

need_promtool() {
	command -v promtool > /dev/null ||
		skip "promtool not installed (scripts/deps installs it)"
}

# rules_test NAME: writes a promtool unit test file for the rules, its
# tests read from stdin (YAML items under "tests:"), and runs it.
rules_test() {
	local f=$BATS_TEST_TMPDIR/$1.yml
	{
		printf 'rule_files:\n  - "%s"\n' "$RULES"
		printf 'evaluation_interval: 1m\n'
		printf 'tests:\n'
		cat
	} > "$f"
	promtool test rules "$f"
}

@test "promtool check rules passes" {
	need_promtool
	run -0 promtool check rules "$RULES"
	assert_output --partial "SUCCESS: 4 rules found"
}

@test "group np holds exactly the four alerts, each with severity, summary and description" {
	run -0 grep -E '^  - name: ' "$RULES"
	assert_output "  - name: np"
	run -0 grep -oE '^      - alert: [A-Za-z]+$' "$RULES"
	assert_output "$(printf '      - alert: %s\n' NpScannerBreakerOpen \
		NpDeadLetterQueueGrowing NpNoSuccessfulScan NpMetricsStale)"
	[ "$(grep -c '^          severity: \(warning\|critical\)$' "$RULES")" -eq 4 ]
	[ "$(grep -c '^          summary: ' "$RULES")" -eq 4 ]
	[ "$(grep -c '^          description: ' "$RULES")" -eq 4 ]
}

# The annotations of NpScannerBreakerOpen for POOL and INSTANCE.
breaker_alert() {
	cat <<-EOF
	          - exp_labels:
	              severity: warning
	              pool: $1
	              scanner_instance: $2
	            exp_annotations:
	              summary: "Nessus scanner $2 (pool $1): circuit breaker open"
	              description: "The circuit breaker of scanner $2 in pool $1 has not been closed for 10 minutes: it gets no new task. Check it with np-status --health and np-select."
	EOF
}

@test "NpScannerBreakerOpen fires after 10m of breaker_open 1, not before" {
	need_promtool
	# s2: open from 0. d1: open, closed at 5m, open again from 6m.
	# s1: closed throughout.
	rules_test breaker <<-EOF
	  - interval: 1m
	    input_series:
	      - series: 'nessus_scanner_circuit_breaker_open{pool="nessus",scanner_instance="s1"}'
	        values: '0x30'
	      - series: 'nessus_scanner_circuit_breaker_open{pool="nessus",scanner_instance="s2"}'
	        values: '1x30'
	      - series: 'nessus_scanner_circuit_breaker_open{pool="dmz",scanner_instance="d1"}'
	        values: '1 1 1 1 1 0 1x24'
	    alert_rule_test:
	      - eval_time: 5m
	        alertname: NpScannerBreakerOpen
	        exp_alerts: []
	      - eval_time: 9m
	        alertname: NpScannerBreakerOpen
	        exp_alerts: []
	      - eval_time: 10m
	        alertname: NpScannerBreakerOpen
	        exp_alerts:
	$(breaker_alert nessus s2)
	      - eval_time: 15m
	        alertname: NpScannerBreakerOpen
	        exp_alerts:
	$(breaker_alert nessus s2)
	      - eval_time: 16m
	        alertname: NpScannerBreakerOpen
	        exp_alerts:
	$(breaker_alert nessus s2)
	$(breaker_alert dmz d1)
	EOF
}

@test "the unit tests can fail: NpScannerBreakerOpen expected at 9m is an error" {
	need_promtool
	run -1 rules_test wrong <<-EOF
	  - interval: 1m
	    input_series:
	      - series: 'nessus_scanner_circuit_breaker_open{pool="nessus",scanner_instance="s2"}'
	        values: '1x30'
	    alert_rule_test:
	      - eval_time: 9m
	        alertname: NpScannerBreakerOpen
	        exp_alerts:
	$(breaker_alert nessus s2)
	EOF
	assert_output --partial "FAILED"
}

@test "NpDeadLetterQueueGrowing fires 15m after the DLQ depth grows; steady or shrinking queues do not" {
	need_promtool
	# nessus: 0 until 29m, 1 from 30m, 2 from 40m, then steady.
	# dmz: steady at 3. internal: 5, then 4 from 30m (a retry).
	rules_test dlq <<-EOF
	  - interval: 1m
	    input_series:
	      - series: 'nessus_pool_dlq_depth{pool="nessus"}'
	        values: '0x29 1x9 2x140'
	      - series: 'nessus_pool_dlq_depth{pool="dmz"}'
	        values: '3x180'
	      - series: 'nessus_pool_dlq_depth{pool="internal"}'
	        values: '5x29 4x150'
	    alert_rule_test:
	      - eval_time: 29m
	        alertname: NpDeadLetterQueueGrowing
	        exp_alerts: []
	      - eval_time: 44m
	        alertname: NpDeadLetterQueueGrowing
	        exp_alerts: []
	      - eval_time: 45m
	        alertname: NpDeadLetterQueueGrowing
	        exp_alerts:
	          - exp_labels:
	              severity: warning
	              pool: nessus
	            exp_annotations:
	              summary: "Pool nessus: dead-letter queue growing"
	              description: "More tasks of pool nessus are in the dead-letter queue than an hour ago. See np-dlq list, then np-dlq retry once the cause is fixed."
	      - eval_time: 90m
	        alertname: NpDeadLetterQueueGrowing
	        exp_alerts:
	          - exp_labels:
	              severity: warning
	              pool: nessus
	            exp_annotations:
	              summary: "Pool nessus: dead-letter queue growing"
	              description: "More tasks of pool nessus are in the dead-letter queue than an hour ago. See np-dlq list, then np-dlq retry once the cause is fixed."
	      - eval_time: 110m
	        alertname: NpDeadLetterQueueGrowing
	        exp_alerts: []
	EOF
}

@test "NpNoSuccessfulScan fires for a pool with work and no completed scan in 6h, not for an idle one" {
	need_promtool
	# Every pool completes a scan a minute until 60m, then none.
	# busy: 2 queued, 1 processing. idle: nothing to do.
	# failing: nothing queued now, but a scan fails every 10 minutes.
	rules_test noscan <<-EOF
	  - interval: 1m
	    input_series:
	      - series: 'nessus_scans_total{pool="busy",scan_type="untrusted",result="completed"}'
	        values: '0+1x60 60x420'
	      - series: 'nessus_scans_total{pool="idle",scan_type="untrusted",result="completed"}'
	        values: '0+1x60 60x420'
	      - series: 'nessus_scans_total{pool="failing",scan_type="untrusted",result="completed"}'
	        values: '0+1x60 60x420'
	      - series: 'nessus_scans_total{pool="failing",scan_type="untrusted",result="failed"}'
	        values: '0+0.1x480'
	      - series: 'nessus_pool_queue_depth{pool="busy"}'
	        values: '2x480'
	      - series: 'nessus_pool_processing{pool="busy"}'
	        values: '1x480'
	      - series: 'nessus_pool_queue_depth{pool="idle"}'
	        values: '0x480'
	      - series: 'nessus_pool_processing{pool="idle"}'
	        values: '0x480'
	      - series: 'nessus_pool_queue_depth{pool="failing"}'
	        values: '0x480'
	      - series: 'nessus_pool_processing{pool="failing"}'
	        values: '0x480'
	    alert_rule_test:
	      - eval_time: 6h
	        alertname: NpNoSuccessfulScan
	        exp_alerts: []
	      - eval_time: 430m
	        alertname: NpNoSuccessfulScan
	        exp_alerts: []
	      - eval_time: 440m
	        alertname: NpNoSuccessfulScan
	        exp_alerts:
	          - exp_labels:
	              severity: critical
	              pool: busy
	            exp_annotations:
	              summary: "Pool busy: no completed scan in 6 hours"
	              description: "Pool busy has work but no scan completed in the last 6 hours. Check the workers and scanners with np-status --health and the queues with np-status -q."
	          - exp_labels:
	              severity: critical
	              pool: failing
	            exp_annotations:
	              summary: "Pool failing: no completed scan in 6 hours"
	              description: "Pool failing has work but no scan completed in the last 6 hours. Check the workers and scanners with np-status --health and the queues with np-status -q."
	EOF
}

@test "NpMetricsStale fires 5m after the last run is over 300s old" {
	need_promtool
	# np-metrics runs until 10m (the value follows the clock), then stops.
	rules_test stale <<-EOF
	  - interval: 1m
	    input_series:
	      - series: 'np_metrics_last_run_timestamp_seconds{instance="scan1:9100",job="node"}'
	        values: '0+60x10 600x30'
	    alert_rule_test:
	      - eval_time: 15m
	        alertname: NpMetricsStale
	        exp_alerts: []
	      - eval_time: 20m
	        alertname: NpMetricsStale
	        exp_alerts: []
	      - eval_time: 21m
	        alertname: NpMetricsStale
	        exp_alerts:
	          - exp_labels:
	              severity: warning
	              instance: scan1:9100
	              job: node
	            exp_annotations:
	              summary: "np metrics on scan1:9100 are stale"
	              description: "np-metrics last read Redis 11m 0s ago on scan1:9100: the np metrics no longer move. Check journalctl -u np-metrics.service (exit 75: Redis unreachable)."
	EOF
}
