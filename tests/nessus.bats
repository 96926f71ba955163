#!/usr/bin/env bats
# The Nessus REST client (lib/nessus.c), through its test driver x_nessus,
# against the fake Nessus: one instance over HTTPS (certificate from
# mkcert.sh), one over plain HTTP. Assertions read the fake's request log.
# shellcheck disable=SC2154

load helpers

FAKE=$BATS_TEST_DIRNAME/fake-nessus
AK=AKnp-access-31f0
SK=SKnp-secret-5e4c1b9d
PW=PWnp-pass-77aa0c
ADV=ad629e16-03b6-8c1d-cef6-ef8c9dd3c658d24bd260ef5f9e66

setup_file() {
	local d=$BATS_FILE_TMPDIR n
	X=${NP_UNIT:-$BATS_TEST_DIRNAME/../build/rel/tests}/x_nessus
	export X
	if [ ! -x "$X" ]; then
		echo "$X is not built (make build/rel/tests/x_nessus)" >&2
		return 1
	fi
	"$FAKE/mkcert.sh" "$d/tls"
	jq -n --arg ak "$AK" --arg sk "$SK" --arg pw "$PW" \
		'{pending_seconds: 0.05, running_seconds: 0.3, stop_seconds: 0.05,
		  api_keys: [{access_key: $ak, secret_key: $sk}],
		  users: [{username: "npuser", password: $pw}]}' > "$d/fake.json"
	start_fake https --tls --cert "$d/tls/cert.pem" --key "$d/tls/key.pem"
	start_fake http
	for n in https http; do
		for _ in $(seq 100); do
			[ -s "$d/$n.port" ] && break
			sleep 0.05
		done
		[ -s "$d/$n.port" ] || { cat "$d/$n.err" >&2; return 1; }
	done
}

teardown_file() {
	local n
	for n in https http; do
		kill "$(cat "$BATS_FILE_TMPDIR/$n.pid")" 2>/dev/null || true
	done
}

start_fake() { # NAME ARGS...: a fake on a free port, pid in NAME.pid
	local name=$1 d=$BATS_FILE_TMPDIR
	shift
	python3 "$FAKE/fake_nessus.py" --port 0 --port-file "$d/$name.port" \
		--config "$d/fake.json" "$@" 2> "$d/$name.err" 3>&- &
	echo "$!" > "$d/$name.pid"
}

setup() {
	local t=$BATS_TEST_TMPDIR
	HTTPS=https://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/https.port")
	HTTP=http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/http.port")
	CA=$BATS_FILE_TMPDIR/tls/cert.pem
	ctl "$HTTPS" /__fake/reset '{"all": true}' > /dev/null
	ctl "$HTTP" /__fake/reset '{"all": true}' > /dev/null
	printf '%s\n' "$SK" > "$t/sk"
	printf '%s\n' "$PW" > "$t/pw"
	printf 'not-the-key\n' > "$t/bad"
	chmod 600 "$t/sk" "$t/pw" "$t/bad"
	mkcfg
}

# mkcfg [REQUEST_TIMEOUT [OTHER_URL]]: the np config of the test: one pool
# "p" with a scanner per case (plus "other" at OTHER_URL when given).
mkcfg() {
	np_config "$BATS_TEST_TMPDIR/np.yaml" < <(cfg_yaml "$@")
}

cfg_yaml() {
	local t=$BATS_TEST_TMPDIR
	{
		cat <<-YAML
		settings:
		  retry_attempts: 3
		  retry_backoff: 50ms
		  connect_timeout: 2s
		  request_timeout: ${1:-5s}
		pools:
		  p:
		    - instance_id: ca
		      url: $HTTPS/
		      ca_file: $CA
		      access_key: $AK
		      secret_key_file: $t/sk
		    - instance_id: casess
		      url: $HTTPS
		      ca_file: $CA
		      username: npuser
		      password_file: $t/pw
		    - instance_id: noca
		      url: $HTTPS
		      access_key: $AK
		      secret_key_file: $t/sk
		    - instance_id: insecure
		      url: $HTTPS
		      insecure: true
		      access_key: $AK
		      secret_key_file: $t/sk
		    - instance_id: keys
		      url: $HTTP
		      insecure: true
		      access_key: $AK
		      secret_key_file: $t/sk
		    - instance_id: sess
		      url: $HTTP
		      insecure: true
		      username: npuser
		      password_file: $t/pw
		    - instance_id: badkey
		      url: $HTTP
		      insecure: true
		      access_key: $AK
		      secret_key_file: $t/bad
		    - instance_id: down
		      url: http://127.0.0.1:1
		      insecure: true
		      access_key: $AK
		      secret_key_file: $t/sk
		YAML
		if [ -n "${2:-}" ]; then
			cat <<-YAML
			    - instance_id: other
			      url: $2
			      insecure: true
			      access_key: $AK
			      secret_key_file: $t/sk
			YAML
		fi
	}
}

ctl() { # BASE PATH [BODY]: a control route of the fake (POST with BODY)
	if [ $# -gt 2 ]; then
		curl -sS --cacert "$CA" -X POST --data "$3" "$1$2"
	else
		curl -sS --cacert "$CA" "$1$2"
	fi
}

inject() { ctl "$1" /__fake/inject "$2" > /dev/null; }

xn() { "$X" p "$@"; }

requests() { ctl "$1" /__fake/requests; }

count() { # BASE METHOD PATH: how many such requests the fake saw
	requests "$1" | jq --arg m "$2" --arg p "$3" \
		'[.requests[] | select(.method == $m and .path == $p)] | length'
}

new_scan() { # INSTANCE NAME: create a scan, print its id
	xn "$1" create "$2" 10.30.0.1 | jq -er .scan_id
}

xml_ok() {
	if command -v xmllint > /dev/null; then
		xmllint --noout "$1"
	else
		python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$1"
	fi
}

@test "lifecycle over HTTPS with ca_file and API keys: X-ApiKeys, no session" {
	out=$BATS_TEST_TMPDIR/r.nessus
	run -0 --separate-stderr xn ca run "np life" "10.20.0.1, 10.20.0.2" "$out"
	id=$(jq -r .scan_id <<< "$output")
	[ "$(jq -r .status <<< "$output")" = completed ]
	xml_ok "$out"
	[ "$(grep -c '<ReportHost ' "$out")" = 2 ]
	[ ! -e "$out.part" ]
	run -0 --separate-stderr xn ca status "$id"
	[ "$(jq -c '[.status, .progress, (.uuid | length > 0)]' <<< "$output")" = \
		'["completed",100,true]' ]
	run -0 requests "$HTTPS"
	[ "$(jq '[.requests[] | select(.path | test("session|nessus6"))] | length' <<< "$output")" = 0 ]
	[ "$(jq --arg h "accessKey=$AK; secretKey=$SK" \
		'[.requests[] | select(.path != "/server/status") |
		  .headers["X-ApiKeys"] == $h and .auth == "api_keys"] | all' <<< "$output")" = true ]
	[ "$(jq -c '.requests[] | select(.method == "POST" and .path == "/scans") | .body |
		[.uuid, .settings.name, .settings.text_targets, .settings.folder_id,
		 .settings.launch_now, .settings.enabled, has("credentials")]' <<< "$output")" = \
		"[\"$ADV\",\"np life\",\"10.20.0.1, 10.20.0.2\",3,false,true,false]" ]
	[ "$(jq -c '[.requests[] | select(.method == "POST") | .headers["Content-Type"]] | unique' \
		<<< "$output")" = '["application/json"]' ]
}

@test "session mode over HTTPS: nessus6.js, login, X-Cookie and X-API-Token, logout" {
	run -0 --separate-stderr xn casess run "np sess" 10.20.1.1 "$BATS_TEST_TMPDIR/s.nessus"
	xml_ok "$BATS_TEST_TMPDIR/s.nessus"
	tok=$(ctl "$HTTPS" /__fake/config | jq -r .config.api_token)
	run -0 requests "$HTTPS"
	[ "$(jq -c '[.requests[] | .method + " " + .path][0:3]' <<< "$output")" = \
		'["GET /nessus6.js","POST /session","GET /editor/scan/templates"]' ]
	[ "$(jq -r '.requests[-1] | .method + " " + .path + " " + (.status | tostring)' \
		<<< "$output")" = "DELETE /session 200" ]
	[ "$(jq '.requests[0].headers | has("X-Cookie") or has("X-API-Token")' <<< "$output")" = false ]
	[ "$(jq '.requests[1].body' <<< "$output")" = "$(jq -n --arg p "$PW" \
		'{username: "npuser", password: $p}')" ]
	[ "$(jq --arg t "$tok" '[.requests[2:][] | .auth == "session" and
		.headers["X-API-Token"] == $t and (.headers["X-Cookie"] | startswith("token="))
		and (.headers | has("X-ApiKeys") | not)] | all' <<< "$output")" = true ]
	[ "$(jq '[.requests[] | select(.path == "/session")] | length' <<< "$output")" = 2 ]
}

@test "create with an SSH credentials file sends it in add.Host.SSH[0]" {
	jq -n '{auth_method: "password", username: "scanuser", password: "scanpass",
		elevate_privileges_with: "Nothing"}' > "$BATS_TEST_TMPDIR/c.json"
	run -0 --separate-stderr xn keys create "np creds" 10.20.2.1 "$BATS_TEST_TMPDIR/c.json"
	id=$(jq -r .scan_id <<< "$output")
	[ "$id" -gt 0 ]
	run -0 ctl "$HTTP" /__fake/scans
	[ "$(jq -c --argjson id "$id" '.scans[] | select(.id == $id) |
		.credentials.add.Host.SSH[0] | [.username, .password]' <<< "$output")" = \
		'["scanuser","scanpass"]' ]
}

@test "TLS: refused without ca_file (78, not retried), accepted with insecure: true" {
	NP_LOG_LEVEL=info run -78 --separate-stderr xn noca server-status
	[[ $stderr == *"scanner noca: GET /server/status: TLS certificate not trusted (set ca_file)"* ]]
	[[ $stderr != *retrying* ]]
	assert_output ""
	run -0 --separate-stderr xn insecure server-status
	assert_output '{"status":"ready"}'
	[[ $stderr == *"scanner insecure: TLS verification is off (insecure: true)"* ]]
	run -0 --separate-stderr xn ca server-status
	[[ $stderr != *insecure* ]]
}

@test "essentials: API keys get 69 on create, also when the body is cut; 412 is not retried" {
	ctl "$HTTP" /__fake/config '{"essentials": true}' > /dev/null
	run -69 --separate-stderr xn keys create "np ess" 10.20.3.1
	[[ $stderr == *"scanner keys: POST /scans: API is not available (Nessus Professional/Essentials refuse scan writes made with API keys"* ]]
	[ "$(count "$HTTP" POST /scans)" = 1 ]
	ctl "$HTTP" /__fake/config '{"essentials_drop_body": true}' > /dev/null
	run -69 --separate-stderr xn keys create "np ess" 10.20.3.1
	[[ $stderr == *"API is not available"* ]]
	[ "$(count "$HTTP" POST /scans)" = 2 ]
	[ "$(requests "$HTTP" | jq -r '.requests[-1].injected')" = essentials_drop_body ]
}

@test "essentials: a session with the X-API-Token creates; without one it gets 69" {
	ctl "$HTTP" /__fake/config '{"essentials": true}' > /dev/null
	run -0 --separate-stderr xn sess create "np ess" 10.20.3.2
	[ "$(jq -r .scan_id <<< "$output")" -gt 0 ]
	run -0 requests "$HTTP"
	[ "$(jq -c '.requests[] | select(.method == "POST" and .path == "/scans") |
		[.status, .auth, .api_token_ok]' <<< "$output")" = '[200,"session",true]' ]
	inject "$HTTP" '{"nessus6_js": "no_token"}'
	run -69 --separate-stderr env NP_LOG_LEVEL=info "$X" p sess create "np ess2" 10.20.3.3
	[[ $stderr == *"no X-API-Token in /nessus6.js; going on without it"* ]]
	[[ $stderr == *"without the web UI's X-API-Token"* ]]
}

@test "session expiry: one re-login per refused call, then success" {
	inject "$HTTP" '{"session_expire_after": 3}'
	run -0 --separate-stderr xn sess run "np expiry" 10.20.4.1 "$BATS_TEST_TMPDIR/e.nessus"
	xml_ok "$BATS_TEST_TMPDIR/e.nessus"
	run -0 requests "$HTTP"
	logins=$(jq '[.requests[] | select(.method == "POST" and .path == "/session")] | length' <<< "$output")
	refused=$(jq '[.requests[] | select(.status == 401 and .path != "/session")] | length' <<< "$output")
	[ "$logins" -ge 3 ]
	[ "$refused" = $((logins - 1)) ]
	[ "$(jq '[.requests[] | select(.path == "/nessus6.js")] | length' <<< "$output")" = "$logins" ]
}

@test "a session refused again after re-login is 78; login refused is 78 at once" {
	inject "$HTTP" '{"session_expire_after": 0}'
	run -78 --separate-stderr xn sess find x
	[[ $stderr == *"scanner sess: GET /scans: login refused (HTTP 401)"* ]]
	[ "$(count "$HTTP" POST /session)" = 2 ]
	[ "$(count "$HTTP" GET /scans)" = 2 ]
	[ "$(count "$HTTP" DELETE /session)" = 0 ]
	ctl "$HTTP" /__fake/reset '{"all": true}' > /dev/null
	inject "$HTTP" '{"login_fail": true}'
	run -78 --separate-stderr xn sess find x
	[[ $stderr == *"scanner sess: POST /session: login refused (HTTP 401)"* ]]
	[ "$(count "$HTTP" POST /session)" = 1 ]
	[ "$(count "$HTTP" GET /scans)" = 0 ]
	run -78 --separate-stderr xn badkey find x
	[[ $stderr == *"scanner badkey: GET /scans: API keys refused (HTTP 401)"* ]]
	[ "$(count "$HTTP" GET /scans)" = 1 ]
}

@test "500 twice, then OK: retried with backoff, logged" {
	id=$(new_scan keys "np 500")
	inject "$HTTP" "{\"errors\": [{\"route\": \"GET /scans/$id\", \"status\": 500, \"count\": 2}]}"
	NP_LOG_LEVEL=info run -0 --separate-stderr xn keys status "$id"
	[ "$(jq -r .status <<< "$output")" = empty ]
	[ "$(count "$HTTP" GET "/scans/$id")" = 3 ]
	[[ $stderr == *"scanner keys: GET /scans/$id: HTTP 500: Internal Server Error; attempt 1 of 3, retrying in"* ]]
	[[ $stderr == *"attempt 2 of 3, retrying in"* ]]
	[[ $stderr == *"scanner keys: GET /scans/$id -> 200 ("* ]]
}

@test "503 forever: 75 after exactly retry_attempts attempts" {
	id=$(new_scan keys "np 503")
	inject "$HTTP" "{\"errors\": [{\"route\": \"GET /scans/$id\", \"status\": 503, \"count\": null}]}"
	run -75 --separate-stderr xn keys status "$id"
	[[ $stderr == *"scanner keys: GET /scans/$id: HTTP 503: Service Unavailable (gave up after 3 attempts)"* ]]
	[ "$(count "$HTTP" GET "/scans/$id")" = 3 ]
}

@test "a Retry-After on 503 sets the wait" {
	python3 - "$BATS_TEST_TMPDIR/ra.port" 3>&- <<-'EOF' &
	import http.server, os, sys
	n = [0]
	class H(http.server.BaseHTTPRequestHandler):
	    def do_GET(self):
	        n[0] += 1
	        busy = n[0] == 1
	        body = b'{"error":"busy"}' if busy else b'{"status":"ready"}'
	        self.send_response(503 if busy else 200)
	        if busy:
	            self.send_header("Retry-After", "1")
	        self.send_header("Content-Length", str(len(body)))
	        self.end_headers()
	        self.wfile.write(body)
	    def log_message(self, *a):
	        pass
	s = http.server.HTTPServer(("127.0.0.1", 0), H)
	with open(sys.argv[1] + ".tmp", "w") as f:
	    f.write(str(s.server_address[1]))
	os.rename(sys.argv[1] + ".tmp", sys.argv[1])
	s.serve_forever()
	EOF
	pid=$!
	for _ in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/ra.port" ] && break; sleep 0.05; done
	mkcfg 5s "http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/ra.port")"
	NP_LOG_LEVEL=info run --separate-stderr xn other server-status
	kill "$pid"
	assert_success
	assert_output '{"status":"ready"}'
	[[ $stderr == *"HTTP 503: busy; attempt 1 of 3, retrying in 1000 ms"* ]]
}

@test "a dropped connection on a GET is retried; a scanner that is down gives 75" {
	id=$(new_scan keys "np drop")
	inject "$HTTP" "{\"drop\": [{\"route\": \"GET /scans/$id\", \"count\": 1}]}"
	run -0 --separate-stderr xn keys status "$id"
	[ "$(count "$HTTP" GET "/scans/$id")" = 2 ]
	[ "$(requests "$HTTP" | jq -r '[.requests[] | select(.injected == "drop")] | length')" = 1 ]
	run -75 --separate-stderr xn down server-status
	[[ $stderr == *"scanner down: GET /server/status: "*"(gave up after 3 attempts)"* ]]
}

@test "an answer slower than request_timeout is retried, then 75" {
	mkcfg 300ms
	id=$(new_scan keys "np slow")
	inject "$HTTP" "{\"slow\": [{\"route\": \"GET /scans/$id\", \"seconds\": 1, \"count\": null}]}"
	t0=$(date +%s%N)
	run -75 --separate-stderr xn keys status "$id"
	t1=$(date +%s%N)
	[[ $stderr == *"scanner keys: GET /scans/$id: Operation timed out after"*"(gave up after 3 attempts)"* ]]
	[ $(((t1 - t0) / 1000000)) -lt 2500 ]
	sleep 1.1	# the fake logs a slow request once it has answered it
	[ "$(count "$HTTP" GET "/scans/$id")" = 3 ]
}

@test "create whose answer is lost: 75, not retried; find then finds the scan" {
	inject "$HTTP" '{"drop_after_write": true}'
	run -75 --separate-stderr xn keys create "np lost tag-7f3a" 10.20.5.1
	[[ $stderr == *"scanner keys: POST /scans: "*"(the scan may have been created: look for it before creating it again)"* ]]
	[ "$(count "$HTTP" POST /scans)" = 1 ]
	want=$(ctl "$HTTP" /__fake/scans | jq '.scans[] | select(.name == "np lost tag-7f3a") | .id')
	run -0 --separate-stderr xn keys find tag-7f3a
	assert_output "{\"scan_id\":$want}"
}

@test "find: the highest id whose name contains the part, trash left out; 66 when none" {
	run -66 --separate-stderr xn keys find tag-x1
	[[ $stderr == *"scanner keys: no scan named like 'tag-x1'"* ]]
	a=$(new_scan keys "np a tag-x1")
	b=$(new_scan keys "np b tag-x1")
	new_scan keys "np c tag-x2" > /dev/null
	run -0 --separate-stderr xn keys find tag-x1
	assert_output "{\"scan_id\":$b}"
	curl -sS -X PUT -H "X-ApiKeys: accessKey=$AK; secretKey=$SK" --data '{"folder_id": 2}' \
		"$HTTP/scans/$b" > /dev/null
	run -0 --separate-stderr xn keys find tag-x1
	assert_output "{\"scan_id\":$a}"
}

@test "template: the advanced uuid; an unknown name is 66" {
	run -0 --separate-stderr xn keys template advanced
	assert_output "{\"uuid\":\"$ADV\"}"
	run -66 --separate-stderr xn keys template nosuch
	[[ $stderr == *"no scan template named 'nosuch'"* ]]
}

@test "status: progress while running, 66 once the scan is deleted mid-poll" {
	ctl "$HTTP" /__fake/config '{"running_seconds": 2}' > /dev/null
	inject "$HTTP" '{"delete_after_polls": 2}'
	id=$(new_scan keys "np vanish")
	run -0 --separate-stderr xn keys launch "$id"
	sleep 0.5
	run -0 --separate-stderr xn keys status "$id"
	[ "$(jq -r .status <<< "$output")" = running ]
	p=$(jq .progress <<< "$output")
	[ "$p" -ge 5 ] && [ "$p" -le 60 ]
	run -0 --separate-stderr xn keys status "$id"
	run -66 --separate-stderr xn keys status "$id"
	[[ $stderr == *"scanner keys: GET /scans/$id: HTTP 404 not found"* ]]
	[ "$(count "$HTTP" GET "/scans/$id")" = 3 ]
}

@test "stop, pause, resume, launch, delete: 409 and 404 answers" {
	ctl "$HTTP" /__fake/config '{"running_seconds": 5}' > /dev/null
	id=$(new_scan keys "np ctl")
	run -0 --separate-stderr xn keys stop "$id"	# never launched: 409, stopped already
	run -65 --separate-stderr xn keys pause "$id"
	[[ $stderr == *"scanner keys: POST /scans/$id/pause: HTTP 409: "* ]]
	run -0 --separate-stderr xn keys launch "$id"
	run -65 --separate-stderr xn keys launch "$id"
	[[ $stderr == *"POST /scans/$id/launch: HTTP 409: Scan is already running"* ]]
	# The first attempt's answer is lost; the retry's 409 means it launched.
	inject "$HTTP" "{\"drop\": [{\"route\": \"POST /scans/$id/launch\", \"count\": 1}]}"
	run -0 --separate-stderr xn keys launch "$id"
	[ "$(count "$HTTP" POST "/scans/$id/launch")" = 4 ]
	sleep 0.2
	run -0 --separate-stderr xn keys pause "$id"
	run -0 --separate-stderr xn keys resume "$id"
	run -65 --separate-stderr xn keys delete "$id"
	run -0 --separate-stderr xn keys stop "$id"
	run -0 --separate-stderr xn keys stop "$id"
	sleep 0.2
	run -0 --separate-stderr xn keys delete "$id"
	run -0 --separate-stderr xn keys delete "$id"	# 404: gone already
	[ "$(count "$HTTP" DELETE "/scans/$id")" = 3 ]
	run -66 --separate-stderr xn keys launch "$id"
	run -64 --separate-stderr xn keys frobnicate "$id"
}

@test "export: file id, status ready; an export error reads error" {
	run -0 --separate-stderr xn keys run "np export" 10.20.6.1 "$BATS_TEST_TMPDIR/x.nessus"
	id=$(jq -r .scan_id <<< "$output")
	run -0 --separate-stderr xn keys export "$id"
	file=$(jq -r .file <<< "$output")
	run -0 --separate-stderr xn keys export-status "$id" "$file"
	assert_output '{"status":"ready"}'
	inject "$HTTP" '{"export_error": true}'
	run -0 --separate-stderr xn keys export "$id"
	file=$(jq -r .file <<< "$output")
	run -0 --separate-stderr xn keys export-status "$id" "$file"
	assert_output '{"status":"error"}'
	run -66 --separate-stderr xn keys export-status "$id" 999
}

@test "download: truncated is kept, dropped once is retried, dropped always leaves nothing" {
	d=$BATS_TEST_TMPDIR
	run -0 --separate-stderr xn keys run "np dl" 10.20.7.1 "$d/first.nessus"
	id=$(jq -r .scan_id <<< "$output")
	file=$(jq -r .file <<< "$output")
	route="/scans/$id/export/$file/download"
	inject "$HTTP" '{"download": {"value": "truncated", "count": 1}}'
	run -0 --separate-stderr xn keys download "$id" "$file" "$d/t.nessus"
	[ "$(stat -c %s "$d/t.nessus")" -gt 1000 ]
	run ! xml_ok "$d/t.nessus"
	inject "$HTTP" "{\"drop\": [{\"route\": \"GET $route\", \"count\": 1}]}"
	run -0 --separate-stderr xn keys download "$id" "$file" "$d/r.nessus"
	xml_ok "$d/r.nessus"
	cmp "$d/first.nessus" "$d/r.nessus"
	[ "$(stat -c %a "$d/r.nessus")" = 600 ]
	inject "$HTTP" "{\"drop\": [{\"route\": \"GET $route\", \"count\": null}]}"
	run -75 --separate-stderr xn keys download "$id" "$file" "$d/gone.nessus"
	[ ! -e "$d/gone.nessus" ] && [ ! -e "$d/gone.nessus.part" ]
	[ "$(count "$HTTP" GET "$route")" = 7 ]	# run, truncated, 1 + 1, 3
	ls "$d"/*.part 2> /dev/null && return 1
	run -66 --separate-stderr xn keys download "$id" 12345 "$d/none.nessus"
	[ ! -e "$d/none.nessus" ] && [ ! -e "$d/none.nessus.part" ]
}

@test "a signal ends a call that is waiting for its answer: 75 interrupted" {
	id=$(new_scan keys "np sig")
	inject "$HTTP" "{\"slow\": [{\"route\": \"GET /scans/$id\", \"seconds\": 3}]}"
	t0=$(date +%s%N)
	"$X" p keys status "$id" > "$BATS_TEST_TMPDIR/o" 2> "$BATS_TEST_TMPDIR/e" 3>&- &
	pid=$!
	sleep 0.4
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	t1=$(date +%s%N)
	[ "$rc" = 75 ]
	grep -q "scanner keys: GET /scans/$id: interrupted" "$BATS_TEST_TMPDIR/e"
	[ $(((t1 - t0) / 1000000)) -lt 2000 ]
}

@test "no secret in the output, even at NP_LOG_LEVEL=debug" {
	o=$BATS_TEST_TMPDIR/all.out
	export NP_LOG_LEVEL=debug
	{
		xn sess run "np s" 10.20.8.1 "$BATS_TEST_TMPDIR/a.nessus"
		xn casess run "np t" 10.20.8.2 "$BATS_TEST_TMPDIR/b.nessus"
		xn keys run "np k" 10.20.8.3 "$BATS_TEST_TMPDIR/c.nessus"
		xn badkey find x
		inject "$HTTP" '{"session_expire_after": 2}'
		xn sess find x
		ctl "$HTTP" /__fake/config '{"essentials": true}' > /dev/null
		xn keys create "np e" 10.20.8.4
		inject "$HTTP" '{"login_fail": true}'
		xn sess find x
	} > "$o" 2>&1 || true
	grep -q 'GET /scans' "$o"
	secrets=("$SK" "$PW" "not-the-key")
	for b in "$HTTP" "$HTTPS"; do
		secrets+=("$(ctl "$b" /__fake/config | jq -r .config.api_token)")
		while read -r t; do secrets+=("$t"); done < <(requests "$b" |
			jq -r '.requests[].headers["X-Cookie"] // empty | sub("token="; "")' | sort -u)
	done
	[ "${#secrets[@]}" -ge 7 ]
	for s in "${secrets[@]}"; do
		[ -n "$s" ]
		if grep -qF -- "$s" "$o"; then
			echo "secret found in the output: ${s:0:4}..." >&2
			return 1
		fi
	done
}

@test "no leak under valgrind (a whole session-mode lifecycle)" {
	command -v valgrind > /dev/null || skip "no valgrind"
	case $X in */san/*) skip "sanitizer build" ;; esac
	run -0 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 "$X" p sess run "np vg" 10.20.9.1 "$BATS_TEST_TMPDIR/v.nessus"
}
