#!/usr/bin/env bats
# np-mcp: the MCP server on stdio. Pipe tests of the protocol (framing,
# JSON-RPC errors, notifications, EOF, cancellation, timeouts, floods,
# concurrency, SIGTERM, argument validation, credentials), most with stub
# commands in a temp dir that NP_BIN points at; then the real commands,
# and real clients: the TypeScript SDK (tests/mcp/client.mjs) and the
# Inspector CLI, against Redis, a fake Nessus and a running np-worker.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031

load helpers

SDK_VERSION=1.32.2
INSPECTOR_VERSION=2.12.0
MCP=$NP_BIN/np-mcp
INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bats","version":"0"}}}'
INITED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
TASK=20261123T190110Z-018af8b4a99e5f53

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
	FAKE_DIR=$BATS_FILE_TMPDIR/fakes
	# The SSH password of the tests: unique, so a grep for it means a
	# leak. Kept in a file, not exported: no environment may hold it.
	local secret=Mcp-Pw-$RANDOM$RANDOM-$$
	printf '%s\n' "$secret" > "$BATS_FILE_TMPDIR/secret"
	export FAKE_DIR
	fake_start s1 "$FAKE_DIR" "{\"pending_seconds\":0.05,\"running_seconds\":0.3,
		\"accounts\":[{\"username\":\"scanuser\",\"password\":\"$secret\",\"privileged\":false}]}"
}

teardown_file() {
	fake_stop "$FAKE_DIR"
	redis_stop
}

setup() {
	redis_flush
	fake_reset s1
	scan_env
	keys_scanner s1 4 | scan_config
	SECRET=$(cat "$BATS_FILE_TMPDIR/secret")
	STUB=$BATS_TEST_TMPDIR/stub
	mkdir -p "$STUB"
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2> /dev/null || true
	done
	[ -f "$BATS_TEST_TMPDIR/child.pid" ] && kill "$(cat "$BATS_TEST_TMPDIR/child.pid")" 2> /dev/null
	return 0
}

# call ID TOOL [ARGS]: a tools/call request line (ARGS made one line).
call() {
	printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":%s}}' \
		"$1" "$2" "$(jq -c . <<< "${3:-"{}"}")"
}

# mcp LINE...: pipes the lines into np-mcp and closes its input.
mcp() {
	printf '%s\n' "$@" | "$MCP"
}

# stub NAME SCRIPT: a fake command; NP_BIN=$STUB makes np-mcp run it.
stub() {
	printf '#!/bin/bash\n%s\n' "$2" > "$STUB/$1"
	chmod +x "$STUB/$1"
}

# answer ID: the response to request ID in $output.
answer() {
	jq -c "select(.id == $1)" <<< "$output"
}

# body ID: the JSON body of a tool result: structuredContent or the
# error text.
body() {
	jq -c "select(.id == $1) | .result | .structuredContent // (.content[0].text | fromjson)" <<< "$output"
}

# every_line_json: each stdout line is one JSON-RPC 2.0 object.
every_line_json() {
	local l
	while IFS= read -r l; do
		jq -e 'type == "object" and .jsonrpc == "2.0"' <<< "$l" > /dev/null || {
			echo "not a JSON-RPC line: $l"
			return 1
		}
	done <<< "$output"
}

# session_start [ENV...]: np-mcp reading a FIFO in the background; send
# writes to it, wait_for polls its output.
session_start() {
	IN=$BATS_TEST_TMPDIR/in OUT=$BATS_TEST_TMPDIR/out ERR=$BATS_TEST_TMPDIR/err
	mkfifo "$IN"
	env "$@" "$MCP" < "$IN" > "$OUT" 2> "$ERR" 3>&- &
	MCP_PID=$!
	PIDS+=("$MCP_PID")
	exec 7> "$IN"
}

send() {
	printf '%s\n' "$1" >&7
}

# wait_for JQ_CONDITION: up to 10 s for an output line that matches.
wait_for() {
	local i
	for i in $(seq 200); do
		[ -n "$(jq -c "select($1)" "$OUT" 2> /dev/null)" ] && return 0
		sleep 0.05
	done
	echo "no line matching $1 in: $(cat "$OUT")"
	return 1
}

# session_end: closes np-mcp's input; its exit status in $status.
session_end() {
	exec 7>&-
	status=0
	wait "$MCP_PID" || status=$?
}

# gone PID: waits up to 5 s for the process to die.
gone() {
	local i
	for i in $(seq 100); do
		kill -0 "$1" 2> /dev/null || return 0
		sleep 0.05
	done
	return 1
}

@test "framing: one compact JSON line per message, flushed at once" {
	session_start
	send "$INIT"
	# Answered while stdin is still open: written and flushed per message.
	wait_for '.id == 0'
	send "$INITED"
	send '{"jsonrpc":"2.0","id":"p","method":"ping"}'
	wait_for '.id == "p"'
	session_end
	[ "$status" -eq 0 ]
	output=$(cat "$OUT")
	every_line_json
	[ "$(wc -l < "$OUT")" -eq 2 ]
	answer 0 | jq -e '.result.protocolVersion == "2025-11-25" and
		.result.serverInfo.name == "np-mcp" and .result.capabilities.tools.listChanged == false'
	answer '"p"' | jq -e '.result == {}'
	# Quiet by default: nothing on stderr.
	[ ! -s "$ERR" ]
}

@test "lines of any length: a 5 MiB request is read whole" {
	big=$(head -c 5242880 /dev/zero | tr '\0' x)
	run -0 mcp "$(printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_untrusted_scan","arguments":{"targets":"10.0.0.1","name":"n","description":"%s"}}}' "$big")" \
		'{"jsonrpc":"2.0","id":2,"method":"ping"}'
	body 1 | jq -e '.field == "description" and (.message | test("longer than 4096 bytes"))'
	answer 2 | jq -e '.result == {}'
}

@test "initialize echoes a supported protocol version, else the latest" {
	local v
	for v in 2025-11-25 2025-06-18 2025-03-26 2024-11-05; do
		run -0 mcp "${INIT/2025-11-25/$v}"
		jq -e --arg v "$v" '.result.protocolVersion == $v' <<< "$output"
	done
	run -0 mcp "${INIT/2025-11-25/1999-01-01}"
	jq -e '.result.protocolVersion == "2025-11-25"' <<< "$output"
	run -0 mcp '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'
	jq -e '.error.code == -32602' <<< "$output"
}

@test "-32700 and -32600: malformed input is answered without an id, and the server goes on" {
	run -0 mcp "$INIT" 'not json' "$(printf '{"a":"\xff"}')" '[1,2]' '42' '"x"' \
		'{"jsonrpc":"2.0","id":null,"method":"ping"}' \
		'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}' \
		'{"jsonrpc":"1.0","id":5,"method":"ping"}' \
		'{"jsonrpc":"2.0","id":6}' \
		'{"jsonrpc":"2.0","id":7,"method":"ping"}'
	every_line_json
	[ "${#lines[@]}" -eq 11 ]
	[ "$(jq -c 'select(.error.code == -32700)' <<< "$output" | wc -l)" -eq 2 ]
	[ "$(jq -c 'select(.error.code == -32600)' <<< "$output" | wc -l)" -eq 7 ]
	# The TS SDK rejects "id": null, so an unknown id is left out.
	[ "$(jq -c 'select(.error and .error.code != -32600 and .error.code != -32700)' <<< "$output")" = "" ]
	[ "$(jq -c 'select(.error.code == -32700 and has("id"))' <<< "$output")" = "" ]
	# A readable id is echoed.
	answer 5 | jq -e '.error.code == -32600'
	answer 6 | jq -e '.error.code == -32600'
	answer 7 | jq -e '.result == {}'
}

@test "-32601 for unknown methods, before and after initialize" {
	run -0 mcp '{"jsonrpc":"2.0","id":"server-discover-probe-1","method":"server/discover","params":{}}' \
		"$INIT" "$INITED" '{"jsonrpc":"2.0","id":2,"method":"resources/list"}' \
		'{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}'
	answer '"server-discover-probe-1"' | jq -e '.error.code == -32601'
	answer 2 | jq -e '.error.code == -32601 and (.error.message | test("resources/list"))'
	answer 3 | jq -e '.error.code == -32601'
	answer 0 | jq -e '.result.protocolVersion'
}

@test "-32602: unknown tool, arguments not an object, a cursor, params not an object" {
	run -0 mcp "$INIT" "$(call 1 no_such_tool)" \
		'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_pools","arguments":[1]}}' \
		'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}' \
		'{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"abc"}}' \
		'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":[1]}'
	answer 1 | jq -e '.error.code == -32602 and .error.message == "Unknown tool: no_such_tool"'
	answer 2 | jq -e '.error.code == -32602 and (.error.message | test("arguments"))'
	answer 3 | jq -e '.error.code == -32602'
	answer 4 | jq -e '.error.code == -32602 and (.error.message | test("cursor"))'
	answer 5 | jq -e '.error.code == -32602'
}

@test "notifications never get a reply, known or not" {
	run -0 mcp "$INITED" \
		'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}' \
		'{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}' \
		'{"jsonrpc":"2.0","method":"no/such/notification","params":{"x":1}}' \
		'{"jsonrpc":"2.0","method":"notifications/progress","params":[]}' \
		'{"jsonrpc":"2.0","id":1,"result":{}}' \
		'{"jsonrpc":"2.0","id":9,"method":"ping"}'
	[ "${#lines[@]}" -eq 1 ]
	answer 9 | jq -e '.result == {}'
}

@test "tools/list: eleven tools, flat schemas, output schemas, annotations" {
	run -0 mcp "$INIT" '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
	t=$(answer 1 | jq -c '.result.tools')
	jq -e '[.[].name] | sort == ["cancel_scan","get_pool_status","get_queue_status",
		"get_scan_results","get_scan_status","list_dead_letters","list_pools",
		"list_scanners","list_tasks","run_authenticated_scan","run_untrusted_scan"]' <<< "$t"
	jq -e 'all(.[]; (.description | length) > 20 and .inputSchema.type == "object"
		and .outputSchema.type == "object" and (.name | test("^[a-z_]{1,64}$")))' <<< "$t"
	# No unions anywhere; required is an array or absent, never null.
	jq -e '[.. | objects | select(has("anyOf") or has("oneOf") or has("allOf"))] == []' <<< "$t"
	jq -e '[.. | objects | .type? | arrays] == []' <<< "$t"
	jq -e 'all(.[].inputSchema; has("required") == false or (.required | type == "array"))' <<< "$t"
	# The reference's parameters, with its required ones.
	jq -e '.[] | select(.name == "run_authenticated_scan") | .inputSchema.required ==
		["targets","name","scan_type","ssh_username","ssh_password"]' <<< "$t"
	jq -e '.[] | select(.name == "get_scan_results") | .inputSchema.properties |
		(keys == ["custom_fields","filters","page","page_size","schema_profile","task_id"])
		and .page.default == 1 and .page_size.default == 40' <<< "$t"
	jq -e '.[] | select(.name == "list_tasks") | .inputSchema.properties | keys ==
		["limit","scanner_pool","status_filter","target_filter"]' <<< "$t"
	jq -e 'all(.[] | select(.name | test("^(get|list)_")); .annotations.readOnlyHint == true)' <<< "$t"
	jq -e 'all(.[] | select(.name | test("^run_")); .annotations.readOnlyHint == false and
		.annotations.destructiveHint == false)' <<< "$t"
	jq -e '.[] | select(.name == "cancel_scan") | .annotations |
		.destructiveHint == true and .idempotentHint == true and .readOnlyHint == false' <<< "$t"
}

@test "arguments are checked before any command runs: isError naming the field" {
	local s
	for s in np-status np-results np-enqueue np-select np-cancel np-dlq; do
		stub "$s" "touch '$BATS_TEST_TMPDIR/ran'; exit 70"
	done
	export NP_BIN=$STUB
	run -0 mcp "$INIT" \
		"$(call 1 get_scan_status)" \
		"$(call 2 get_scan_status '{"task_id":"../../etc/passwd"}')" \
		"$(call 3 get_scan_results "{\"task_id\":\"$TASK\",\"page\":\"x\"}")" \
		"$(call 4 get_scan_results "{\"task_id\":\"$TASK\",\"page_size\":-1}")" \
		"$(call 5 list_tasks '{"limit":5,"colour":"red"}')" \
		"$(call 6 list_tasks '{"status_filter":"done"}')" \
		"$(call 7 list_tasks '{"target_filter":"10.0.0.0/33"}')" \
		"$(call 8 run_authenticated_scan '{"targets":"10.0.0.1","name":"n","scan_type":"root","ssh_username":"u","ssh_password":"p"}')" \
		"$(call 9 get_scan_results "{\"task_id\":\"$TASK\",\"schema_profile\":\"full\",\"custom_fields\":[\"host\"]}")" \
		"$(call 10 run_authenticated_scan '{"targets":"10.0.0.1","name":"n","scan_type":"authenticated_privileged","ssh_username":"u","ssh_password":"p"}')" \
		"$(call 11 run_untrusted_scan '{"targets":"10.0.0.1"}')" \
		"$(call 12 list_scanners '{"scanner_pool":"a/b"}')" \
		"$(call 13 get_scan_results "{\"task_id\":\"$TASK\",\"filters\":{\"severity\":[1]}}")" \
		"$(call 14 get_scan_results "{\"task_id\":\"$TASK\",\"custom_fields\":[\"a b\"]}")" \
		"$(call 15 run_untrusted_scan '{"targets":"10.0.0.1","name":7}')" \
		"$(call 16 get_scan_status '{"task_id":null}')"
	every_line_json
	local i f fields=(x task_id task_id page page_size colour status_filter target_filter
		scan_type custom_fields elevate_privileges_with name scanner_pool filters
		custom_fields name task_id)
	for i in $(seq 16); do
		f=${fields[$i]}
		answer "$i" | jq -e '.result.isError == true and (.result | has("structuredContent") | not)'
		body "$i" | jq -e --arg f "$f" '.field == $f and .status_code == 400 and
			.error == "Invalid argument" and (.message | startswith($f + ": "))'
	done
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
}

@test "exit statuses map to the reference's error shape; the message is the command's" {
	local pair code http
	export NP_BIN=$STUB
	for pair in 1:409 64:400 65:400 66:404 69:503 70:500 74:500 75:503 77:403 78:500; do
		code=${pair%%:*} http=${pair#*:}
		stub np-status "echo 'np-status: warning: noise' >&2; echo 'np-status: boom $code' >&2; exit $code"
		run -0 mcp "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
		answer 1 | jq -e '.result.isError == true'
		body 1 | jq -e --argjson c "$code" --argjson h "$http" \
			'.status_code == $h and .exit_status == $c and .message == "boom \($c)" and (.error | length > 0)'
	done
	stub np-status 'kill -SEGV $$'
	run -0 mcp "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
	body 1 | jq -e '.status_code == 500 and (.message | test("signal 11"))'
	stub np-status 'echo "not json"'
	run -0 mcp "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
	body 1 | jq -e '.status_code == 500'
	# A command found nowhere: not in NP_BIN, beside np-mcp or in PATH.
	mkdir "$BATS_TEST_TMPDIR/alone"
	cp "$MCP" "$BATS_TEST_TMPDIR/alone/"
	run -0 env -u NP_BIN PATH=/usr/bin:/bin "$BATS_TEST_TMPDIR/alone/np-mcp" <<< "$(call 1 list_pools)"
	body 1 | jq -e '.status_code == 500 and .exit_status == 127 and .error == "Command not found"'

}

@test "real commands: an unknown task is 404, an idempotency conflict 409, an unknown pool 404" {
	run -0 mcp "$INIT" \
		"$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")" \
		"$(call 2 run_untrusted_scan '{"targets":"10.0.0.1","name":"a","idempotency_key":"k1"}')" \
		"$(call 3 get_pool_status '{"scanner_pool":"nope"}')"
	body 1 | jq -e '.status_code == 404 and .error == "Task not found"'
	answer 2 | jq -e '.result.isError == false'
	run -0 mcp "$(call 4 run_untrusted_scan '{"targets":"10.0.0.2","name":"b","idempotency_key":"k1"}')" \
		"$(call 5 run_untrusted_scan '{"targets":"10.0.0.2","name":"b","scanner_instance":"zz"}')" \
		"$(call 6 run_untrusted_scan '{"targets":"10.0.0.300","name":"b"}')"
	body 4 | jq -e '.status_code == 409 and .error == "Conflict" and (.message | test("idempotency_key"))'
	body 5 | jq -e '.status_code == 404'
	body 6 | jq -e '.status_code == 400 and (.message | test("10.0.0.300"))'
}

@test "stdin EOF with a call in flight: the answer still comes, then exit 0" {
	stub np-status 'sleep 1; printf "{\"task_id\":\"%s\",\"status\":\"running\"}\n" "$1"'
	export NP_BIN=$STUB
	run -0 mcp "$INIT" "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
	answer 1 | jq -e --arg t "$TASK" '.result.isError == false and .result.structuredContent.task_id == $t
		and (.result.content[0].text | fromjson) == .result.structuredContent'
}

@test "notifications/cancelled kills the child, and no answer is sent for it" {
	stub np-status "echo \$\$ > '$BATS_TEST_TMPDIR/child.pid'; exec sleep 30"
	session_start NP_BIN="$STUB"
	send "$INIT"
	send "$(call 7 get_scan_status "{\"task_id\":\"$TASK\"}")"
	for _ in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/child.pid" ] && break; sleep 0.05; done
	child=$(cat "$BATS_TEST_TMPDIR/child.pid")
	kill -0 "$child"
	send '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}'
	gone "$child"
	send '{"jsonrpc":"2.0","id":8,"method":"ping"}'
	wait_for '.id == 8'
	session_end
	[ "$status" -eq 0 ]
	output=$(cat "$OUT")
	[ "$(answer 7)" = "" ]
	[ "$(wc -l < "$OUT")" -eq 2 ]
}

@test "a call past NP_MCP_TIMEOUT is killed and answered 504" {
	stub np-status "echo \$\$ > '$BATS_TEST_TMPDIR/child.pid'; exec sleep 30"
	export NP_BIN=$STUB NP_MCP_TIMEOUT=1
	SECONDS=0
	run -0 mcp "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
	[ "$SECONDS" -lt 10 ]
	body 1 | jq -e '.status_code == 504 and .error == "Timeout"'
	gone "$(cat "$BATS_TEST_TMPDIR/child.pid")"
	NP_MCP_TIMEOUT=0 run -78 "$MCP" < /dev/null
	NP_MCP_TIMEOUT=abc run -78 "$MCP" < /dev/null
}

@test "a child writing 1 MiB to stderr hangs nothing; its last line is the message" {
	stub np-status 'head -c 1048576 /dev/zero | tr "\0" x >&2; echo >&2
		printf "{\"task_id\":\"%s\",\"status\":\"queued\"}\n" "$1"'
	stub np-cancel 'head -c 1048576 /dev/zero | tr "\0" y >&2; echo >&2
		echo "np-cancel: task is completed: nothing to cancel" >&2; exit 1'
	export NP_BIN=$STUB
	run -0 timeout 20 "$MCP" <<< "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")
$(call 2 cancel_scan "{\"task_id\":\"$TASK\"}")"
	answer 1 | jq -e '.result.isError == false and .result.structuredContent.status == "queued"'
	body 2 | jq -e '.status_code == 409 and .message == "task is completed: nothing to cancel"'
}

@test "several calls in flight at once, each answered under its own id" {
	stub np-status 'sleep 1; printf "{\"task_id\":\"%s\",\"status\":\"queued\"}\n" "$1"'
	export NP_BIN=$STUB
	local i req=()
	for i in $(seq 10 39); do
		req+=("$(call "$i" get_scan_status "{\"task_id\":\"20261123T190110Z-00000000000000$i\"}")")
	done
	req+=('{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"get_scan_status","arguments":{"task_id":"20261123T190110Z-00000000000000aa"}}}')
	SECONDS=0
	run -0 mcp "$INIT" "${req[@]}"
	# 31 one-second calls, 16 at a time: about 2 s, not 31.
	[ "$SECONDS" -lt 8 ]
	every_line_json
	[ "${#lines[@]}" -eq 32 ]
	for i in $(seq 10 39); do
		answer "$i" | jq -e --arg t "20261123T190110Z-00000000000000$i" '.result.structuredContent.task_id == $t'
	done
	answer '"s"' | jq -e '.result.structuredContent.task_id | endswith("aa")'
}

@test "an answer over 4 MiB is refused with a hint to page" {
	# 3 MiB of findings: under the capture cap, but the answer (text plus
	# structuredContent) would pass 4 MiB.
	stub np-results 'python3 -c "
import json
print(json.dumps({\"type\": \"schema\"}))
for i in range(3000):
    print(json.dumps({\"type\": \"vulnerability\", \"plugin_output\": \"x\" * 1000}))
"'
	export NP_BIN=$STUB
	run -0 mcp "$(call 1 get_scan_results "{\"task_id\":\"$TASK\",\"page\":0}")"
	[ "${#output}" -lt 100000 ]
	body 1 | jq -e '.status_code == 413 and (.message | test("page"))'
	# Past the capture cap: the child is stopped.
	stub np-results 'yes "{\"type\":\"vulnerability\",\"x\":\"$(head -c 1000 /dev/zero | tr "\0" x)\"}"'
	run -0 timeout 20 "$MCP" <<< "$(call 2 get_scan_results "{\"task_id\":\"$TASK\",\"page\":0}")"
	body 2 | jq -e '.status_code == 413 and (.message | test("page"))'
}

@test "get_scan_results passes paging, profile, fields and filters as np-results flags" {
	stub np-results "printf '%s\n' \"\$@\" > '$BATS_TEST_TMPDIR/argv'; echo '{\"type\":\"schema\"}'"
	export NP_BIN=$STUB
	run -0 mcp "$(call 1 get_scan_results "{\"task_id\":\"$TASK\",\"page\":2,\"page_size\":20,
		\"custom_fields\":[\"host\",\"cve\"],\"filters\":{\"severity\":\">= 3\",\"plugin_name\":\"SSH\",
		\"exploit_available\":true,\"port\":22,\"cvss_base_score\":\"<7\",\"x\":null}}")"
	body 1 | jq -e '.lines == [{"type":"schema"}]'
	run -0 cat "$BATS_TEST_TMPDIR/argv"
	assert_output "--fields=host,cve
--filter=severity>=3
--filter=plugin_name=SSH
--filter=exploit_available=true
--filter=port==22
--filter=cvss_base_score<7
--page=2
--page-size=20
$TASK"
	run -0 mcp "$(call 1 get_scan_results "{\"task_id\":\"$TASK\",\"schema_profile\":\"minimal\"}")"
	run -0 cat "$BATS_TEST_TMPDIR/argv"
	assert_output "--profile=minimal
--page=1
--page-size=40
$TASK"
}

@test "credentials go to np-enqueue on stdin only: never in argv, environment, ps, stdout or stderr" {
	# A stub np-enqueue that records what it got and lingers, so that ps
	# sees the whole process tree during the call.
	stub np-enqueue "printf '%s\n' \"\$0\" \"\$@\" > '$BATS_TEST_TMPDIR/argv'
		env > '$BATS_TEST_TMPDIR/env'; cat > '$BATS_TEST_TMPDIR/stdin'; sleep 1
		echo '{\"task_id\":\"$TASK\",\"status\":\"queued\"}'"
	session_start NP_BIN="$STUB" NP_LOG_LEVEL=debug
	send "$INIT"
	send "$(call 1 run_authenticated_scan "{\"targets\":\"10.0.0.1\",\"name\":\"n\",\"scan_type\":\"authenticated_privileged\",
		\"ssh_username\":\"scanuser\",\"ssh_password\":\"$SECRET\",\"elevate_privileges_with\":\"sudo\",
		\"escalation_password\":\"$SECRET-esc\"}")"
	for _ in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/stdin" ] && break; sleep 0.05; done
	ps -eo pid,args > "$BATS_TEST_TMPDIR/ps"
	wait_for '.id == 1'
	session_end
	[ "$status" -eq 0 ]
	grep -q np-enqueue "$BATS_TEST_TMPDIR/ps"
	run -1 grep -F "$SECRET" "$BATS_TEST_TMPDIR/ps" "$BATS_TEST_TMPDIR/argv" \
		"$BATS_TEST_TMPDIR/env" "$OUT" "$ERR"
	# It did reach the command, on its standard input.
	jq -e --arg s "$SECRET" '.ssh_password == $s and .escalation_password == "\($s)-esc" and
		.scan_type == "authenticated_privileged"' "$BATS_TEST_TMPDIR/stdin"
	run -0 cat "$BATS_TEST_TMPDIR/argv"
	assert_output "$STUB/np-enqueue
--json"
	[ -s "$ERR" ]	# the debug log was on
}

@test "credentials through the real np-enqueue: the task and the queue never show them" {
	export NP_LOG_LEVEL=debug
	run -0 --separate-stderr mcp "$INIT" \
		"$(call 1 run_authenticated_scan "{\"targets\":\"10.0.0.1\",\"name\":\"n\",\"scan_type\":\"authenticated\",
			\"ssh_username\":\"scanuser\",\"ssh_password\":\"$SECRET\"}")" \
		"$(call 2 run_authenticated_scan "{\"targets\":\"10.0.0.1\",\"name\":\"n\",\"scan_type\":\"authenticated\",
			\"ssh_username\":\"scanuser\",\"ssh_password\":\"$SECRET\",\"scanner_instance\":\"zz\"}")"
	id=$(body 1 | jq -r .task_id)
	body 2 | jq -e '.status_code == 404'
	[[ "$output$stderr" != *"$SECRET"* ]]
	run -0 --separate-stderr mcp "$(call 3 get_scan_status "{\"task_id\":\"$id\"}")" \
		"$(call 4 get_queue_status)" "$(call 5 list_tasks)"
	body 4 | jq -e --arg id "$id" '.next_task_ids == [$id] and .queue_depth == 1'
	body 3 | jq -e '.scan_type == "authenticated" and .ssh_username == "scanuser"'
	[[ "$output$stderr" != *"$SECRET"* ]]
}

@test "SIGTERM kills the children and exits" {
	stub np-status "echo \$\$ > '$BATS_TEST_TMPDIR/child.pid'; exec sleep 30"
	session_start NP_BIN="$STUB"
	send "$(call 1 get_scan_status "{\"task_id\":\"$TASK\"}")"
	for _ in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/child.pid" ] && break; sleep 0.05; done
	child=$(cat "$BATS_TEST_TMPDIR/child.pid")
	kill -TERM "$MCP_PID"
	gone "$MCP_PID"
	gone "$child"
	session_end
	[ "$status" -eq 0 ]
}

@test "real commands: the list tools wrap NDJSON into objects; pools default" {
	run -0 mcp "$INIT" \
		"$(call 1 run_untrusted_scan '{"targets":"10.0.0.1","name":"a"}')" \
		"$(call 2 run_untrusted_scan '{"targets":"10.0.0.2","name":"b","scanner_instance":"s1"}')"
	a=$(body 1 | jq -r .task_id)
	# Calls run at once: the cancels come after, in their own session.
	run -0 mcp "$(call 3 list_tasks '{"limit":1}')" "$(call 4 list_tasks '{"target_filter":"10.0.0.1"}')" \
		"$(call 5 list_pools)" "$(call 6 list_scanners '{"scanner_pool":"nessus"}')" \
		"$(call 7 get_pool_status)" "$(call 8 get_queue_status)" "$(call 9 list_dead_letters)"
	every_line_json
	body 3 | jq -e '.total == 1 and (.tasks | length) == 1'
	body 4 | jq -e --arg a "$a" '.total == 1 and .tasks[0].task_id == $a'
	body 5 | jq -e '.total == 1 and .pools[0].pool == "nessus" and .default_pool == "nessus"'
	body 6 | jq -e '.total == 1 and .scanners[0].instance_id == "s1" and .pools == ["nessus"]'
	body 7 | jq -e '.pool == "nessus" and (.scanners | length) == 1'
	body 8 | jq -e --arg a "$a" '.pool == "nessus" and .next_task_ids == [$a] and .instance_queues.s1 == 1'
	body 9 | jq -e '.dead_letters == [] and .total == 0'
	run -0 mcp "$(call 10 cancel_scan "{\"task_id\":\"$a\"}")"
	run -0 mcp "$(call 11 cancel_scan "{\"task_id\":\"$a\"}")" "$(call 12 get_queue_status)"
	body 10 | jq -e '.status == "cancelled" and .previous_status == "queued"'
	body 11 | jq -e '.status == "cancelled" and .previous_status == "cancelled"'
	body 12 | jq -e '.next_task_ids == [] and .queue_depth == 0'
}

@test "np-mcp --help, --version, and bad usage" {
	run -0 "$MCP" --help
	assert_output --partial "usage: np-mcp"
	run -0 "$MCP" --version
	assert_output --regexp '^np-mcp [0-9]+\.[0-9]+'
	run -64 "$MCP" --bogus
	run -64 "$MCP" extra
	# No input at all: a clean exit, nothing printed.
	run -0 "$MCP" < /dev/null
	assert_output ""
}

@test "valgrind: no leaks or errors over a short session" {
	command -v valgrind > /dev/null || skip "valgrind is not installed"
	! grep -qa __asan_init "$MCP" || skip "an ASan build: valgrind cannot run it"
	stub np-status 'printf "{\"task_id\":\"%s\",\"status\":\"queued\"}\n" "$1"'
	stub np-select 'echo "np-select: no pool named x" >&2; exit 64'
	stub np-dlq 'exec sleep 30'
	session_start NP_BIN="$STUB" NP_LOG_LEVEL=debug valgrind -q --leak-check=full \
		--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=9
	send "$INIT"
	send "$INITED"
	send '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
	send "$(call 2 get_scan_status "{\"task_id\":\"$TASK\"}")"
	send "$(call 3 list_scanners '{"scanner_pool":"x"}')"
	send "$(call 4 list_tasks '{"limit":"x"}')"
	send "$(call 5 list_dead_letters)"
	send '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}'
	send 'not json'
	send "$(call 6 nope)"
	send "$(call 7 run_authenticated_scan '{"targets":"10.0.0.1","name":"n","scan_type":"authenticated","ssh_username":"u","ssh_password":"p","scanner_pool":"nessus"}')"
	wait_for '.id == 7'
	session_end
	cat "$ERR"
	[ "$status" -eq 0 ]
	output=$(cat "$OUT")
	[ "$(answer 5)" = "" ]
	answer 2 | jq -e '.result.isError == false'
}

# need_node DIR PACKAGE VERSION: installs PACKAGE@VERSION into DIR (a
# cache in /tmp, kept across runs) unless it is there, or skips the test
# saying why.
need_node() {
	command -v node > /dev/null || skip "node is not installed"
	command -v npm > /dev/null || skip "npm is not installed"
	NODE_DIR=$1
	[ -f "$NODE_DIR/node_modules/$2/package.json" ] && return 0
	timeout 300 npm install --prefix "$NODE_DIR" --no-audit --no-fund "$2@$3" \
		> "$BATS_TEST_TMPDIR/npm.log" 2>&1 ||
		skip "npm install $2@$3 failed (offline?): $(grep -m 1 'error' "$BATS_TEST_TMPDIR/npm.log")"
	[ -f "$NODE_DIR/node_modules/$2/package.json" ] ||
		skip "npm install $2@$3 left no package"
}

@test "the TypeScript SDK (Client + StdioClientTransport) drives a whole scan" {
	need_node "/tmp/np-mcp-node-$SDK_VERSION" @modelcontextprotocol/sdk "$SDK_VERSION"
	np-worker 2> "$BATS_TEST_TMPDIR/worker.log" 3>&- &
	PIDS+=($!)
	# The script resolves the SDK from the node_modules beside it.
	ln -s "$NODE_DIR/node_modules" "$BATS_TEST_TMPDIR/node_modules"
	cp "$BATS_TEST_DIRNAME/mcp/client.mjs" "$BATS_TEST_TMPDIR/"
	NP_MCP=$MCP NP_TEST_SECRET=$SECRET run timeout 180 node "$BATS_TEST_TMPDIR/client.mjs"
	echo "$output"
	[ "$status" -eq 0 ]
	assert_line --partial "checks passed"
	refute_line --partial "not ok"
}

@test "the Inspector CLI: tools/list, tools/call, and --strict schema lint" {
	need_node "/tmp/np-mcp-node-inspector-$INSPECTOR_VERSION" @modelcontextprotocol/inspector \
		"$INSPECTOR_VERSION"
	# Not "i": bats' run uses that name.
	local insp=(node "$NODE_DIR/node_modules/.bin/mcp-inspector" --cli)
	local e=(-e "NP_CONFIG=$NP_CONFIG" -e "NP_DATA_DIR=$NP_DATA_DIR" -e "NP_REDIS_URL=$NP_REDIS_URL")
	run -0 --separate-stderr timeout 60 "${insp[@]}" -q --format json "$MCP" "${e[@]}" --method tools/list
	jq -e '.result.tools | length == 11' <<< "$output"
	run -0 --separate-stderr timeout 60 "${insp[@]}" -q --format json "$MCP" "${e[@]}" \
		--method tools/call --tool-name run_untrusted_scan \
		--tool-args-json '{"targets":"10.0.0.5","name":"inspector"}'
	jq -e '.result.isError == false and (.result.structuredContent.task_id | length) == 33' <<< "$output"
	run -0 --separate-stderr timeout 60 "${insp[@]}" -q --format json "$MCP" "${e[@]}" \
		--method tools/call --tool-name list_tasks --tool-args-json '{"limit":5}'
	jq -e '.result.structuredContent.total == 1' <<< "$output"
	# A business error: the CLI exits 5 (tool_is_error) and still prints it.
	run -5 --separate-stderr timeout 60 "${insp[@]}" -q --format json "$MCP" "${e[@]}" \
		--method tools/call --tool-name get_scan_status --tool-args-json "{\"task_id\":\"$TASK\"}"
	jq -e '.result.isError == true and (.result.content[0].text | fromjson | .status_code) == 404' <<< "$output"
	# Schema portability lint: exit 6 on an error, a report on stderr for
	# any finding; np-mcp's schemas give neither.
	run -0 --separate-stderr timeout 60 "${insp[@]}" --format json "$MCP" --method tools/list --strict
	echo "$stderr"
	[[ "$stderr" != *arning* && "$stderr" != *rror* ]]
}
