#!/usr/bin/env bats
# Tests for the fake Nessus server used by the np-* test suite:
# tests/fake-nessus/fake_nessus.py and tests/fake-nessus/mkcert.sh.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

FAKE_DIR="$BATS_TEST_DIRNAME/fake-nessus"
ADV=ad629e16-03b6-8c1d-cef6-ef8c9dd3c658d24bd260ef5f9e66
BASIC=731a8e52-3ea6-a291-ec0a-d2ff0619c19d7bd788d6be818b65
SAMPLE=/work/shared/fixtures/sample_scan.nessus
KEYS="X-ApiKeys: accessKey=accesskey; secretKey=secretkey"

start_fake() { # NAME ARGS... : start an instance on a free port, pid in NAME.pid
    local name=$1 d=$BATS_FILE_TMPDIR
    shift
    python3 "$FAKE_DIR/fake_nessus.py" --port 0 --port-file "$d/$name.port" \
        --log "$d/$name.log" "$@" 2>"$d/$name.err" 3>&- &
    echo "$!" >"$d/$name.pid"
}

wait_port() { # NAME : print the port once the instance listens
    local f=$BATS_FILE_TMPDIR/$1.port
    for _ in $(seq 100); do
        if [ -s "$f" ]; then cat "$f"; return 0; fi
        sleep 0.05
    done
    echo "fake $1 did not start: $(cat "$BATS_FILE_TMPDIR/$1.err")" >&2
    return 1
}

setup_file() {
    local d=$BATS_FILE_TMPDIR
    "$FAKE_DIR/mkcert.sh" "$d/tls"
    cat >"$d/cfg.json" <<'EOF'
{"pending_seconds": 0.05, "running_seconds": 0.25, "stop_seconds": 0.1,
 "accounts": [{"username": "scanuser", "password": "scanpass", "privileged": false},
              {"username": "root", "password": "rootpass", "privileged": true},
              {"username": "sudoer", "password": "sudopass", "privileged": true, "needs_escalation": true},
              {"username": "half", "password": "halfpass", "targets": ["10.9.0.1"]}]}
EOF
    jq '. + {essentials: true}' "$d/cfg.json" >"$d/ess.json"
    start_fake https --tls --cert "$d/tls/cert.pem" --key "$d/tls/key.pem" --config "$d/cfg.json"
    start_fake http --config "$d/cfg.json"
    start_fake ess --config "$d/ess.json"
    local n
    for n in https http ess; do wait_port "$n" >/dev/null; done
}

teardown_file() {
    local n
    for n in https http ess; do
        kill "$(cat "$BATS_FILE_TMPDIR/$n.pid")" 2>/dev/null || true
    done
}

setup() {
    HTTPS="https://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/https.port")"
    HTTP="http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/http.port")"
    ESS="http://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/ess.port")"
    CA=$BATS_FILE_TMPDIR/tls/cert.pem
    BASE=$HTTP
    AUTH=(-H "$KEYS")
    local b
    for b in "$HTTP" "$ESS"; do ctl "$b" /__fake/reset '{"config": true}' >/dev/null; done
}

ctl() { # BASE PATH [BODY] : control route (POST when BODY given)
    if [ $# -gt 2 ]; then
        curl -sS --cacert "$CA" -X POST --data "$3" "$1$2"
    else
        curl -sS --cacert "$CA" "$1$2"
    fi
}

call() { # METHOD PATH [BODY] [CURL-ARGS...] : JSON call against $BASE with ${AUTH[@]}
    local m=$1 p=$2 data=()
    shift 2
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then data=(--data "$1"); shift; fi
    curl -sS --cacert "$CA" -X "$m" -H 'Content-Type: application/json' "${AUTH[@]}" "${data[@]}" \
        "$@" "$BASE$p"
}

code() { # METHOD PATH [BODY] : HTTP status code only
    local m=$1 p=$2
    shift 2
    curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' -X "$m" -H 'Content-Type: application/json' \
        "${AUTH[@]}" ${1:+--data "$1"} "$BASE$p"
}

api_token() { curl -sS --cacert "$CA" "$BASE/nessus6.js" | sed -nE 's/.*getApiToken[^}]+return"([A-Fa-f0-9-]+)".*/\1/p'; }

use_session() { # log in as nessus/nessus on $BASE, with X-API-Token
    local tok
    tok=$(call POST /session '{"username": "nessus", "password": "nessus"}' | jq -r .token)
    AUTH=(-H "X-Cookie: token=$tok" -H "X-API-Token: $(api_token)")
}

creds() { # USER PASS [ESCALATION] : credentials block as the np client sends it
    jq -nc --arg u "$1" --arg p "$2" --arg e "${3:-Nothing}" \
        '{add: {Host: {SSH: [{auth_method: "password", username: $u, password: $p,
          elevate_privileges_with: $e, custom_password_prompt: "", target_priority_list: ""}]}},
          edit: {}, delete: []}'
}

create() { # NAME TARGETS [CREDS_JSON] : print the new scan id
    local body id
    body=$(jq -nc --arg uuid "$ADV" --arg n "$1" --arg t "$2" --argjson c "${3:-null}" \
        '{uuid: $uuid, settings: {name: $n, text_targets: $t, description: $n, enabled: true,
          folder_id: 3, scanner_id: 1, launch_now: false}} + (if $c then {credentials: $c} else {} end)')
    id=$(call POST /scans "$body" | jq -r '.scan.id // empty')
    [ -n "$id" ] && echo "$id"
}

status_of() { # ID : info.status (sed, not jq: this is polled)
    call GET "/scans/$1" | sed -nE 's/.*"info":\{[^}]*"status":"([^"]*)".*/\1/p'
}

wait_status() { # ID STATUS : poll until info.status == STATUS (max ~5 s)
    local s
    for _ in $(seq 100); do
        s=$(status_of "$1")
        [ "$s" = "$2" ] && return 0
        sleep 0.02
    done
    echo "scan $1 stuck in '$s' (wanted '$2')" >&2
    return 1
}

run_scan() { # NAME TARGETS [CREDS] : create, launch, wait completed; print id
    local id
    id=$(create "$@") || return 1
    call POST "/scans/$id/launch" '{}' | jq -e .scan_uuid >/dev/null || return 1
    wait_status "$id" completed || return 1
    echo "$id"
}

download() { # ID FILE : export, wait ready, download
    local file
    file=$(call POST "/scans/$1/export" '{"format": "nessus"}' | jq -er .file) || return 1
    for _ in $(seq 50); do
        [ "$(call GET "/scans/$1/export/$file/status")" = '{"status":"ready"}' ] && break
        sleep 0.02
    done
    call GET "/scans/$1/export/$file/download" -o "$2"
}

xml_ok() {
    if command -v xmllint >/dev/null; then
        xmllint --noout "$1"
    else
        python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$1"
    fi
}

hosts_in() { grep -c '<ReportHost ' "$1"; }

@test "instances listen on distinct ports chosen by the OS" {
    run cat "$BATS_FILE_TMPDIR"/{https,http,ess}.port
    assert_success
    [ "$(sort -u <<<"$output" | wc -l)" -eq 3 ]
}

@test "HTTPS certificate from mkcert.sh verifies for 127.0.0.1 and localhost" {
    run curl -sS --cacert "$CA" "$HTTPS/server/status"
    assert_success
    assert_output '{"code":200,"status":"ready","progress":null}'
    port=${HTTPS##*:}
    run curl -sS --cacert "$CA" "https://localhost:$port/server/status"
    assert_success
    run curl -sS "$HTTPS/server/status"
    assert_failure 60
    run shellcheck "$FAKE_DIR/mkcert.sh"
    assert_success
}

@test "nessus6.js carries the X-API-Token in the web UI shape" {
    run curl -sS -D - "$HTTP/nessus6.js"
    assert_output --partial "Content-Type: text/javascript"
    assert_output --regexp '\{key:"getApiToken",value:function\(\)\{return"[0-9a-f-]{36}"\}\}'
    tok=$(api_token)
    [ "$(ctl "$HTTP" /__fake/config | jq -r .config.api_token)" = "$tok" ]
}

@test "API keys: valid, invalid, missing; header name and spacing tolerant" {
    run call GET /scans
    assert_output --partial '"folders":'
    [ "$(curl -s -H 'x-apikeys:accessKey = accesskey ;secretKey=secretkey' -o /dev/null \
        -w '%{http_code}' "$HTTP/scans")" = 200 ]
    AUTH=(-H "X-ApiKeys: accessKey=accesskey; secretKey=nope")
    run call GET /scans
    assert_output '{"error":"Invalid Credentials"}'
    [ "$(code GET /scans)" = 401 ]
    AUTH=()
    [ "$(code GET /scans)" = 401 ]
    [ "$(code GET /editor/scan/templates)" = 401 ]
}

@test "session: bad password 401, login gives 64-hex token, logout invalidates" {
    AUTH=()
    [ "$(code POST /session '{"username": "nessus", "password": "bad"}')" = 401 ]
    tok=$(call POST /session '{"username": "nessus", "password": "nessus"}' | jq -r .token)
    [[ $tok =~ ^[0-9a-f]{64}$ ]]
    AUTH=(-H "X-Cookie: token=$tok")
    [ "$(code GET /scans)" = 200 ]
    [ "$(code DELETE /session)" = 200 ]
    [ "$(code GET /scans)" = 401 ]
}

@test "templates and server properties (scan_api true outside essentials mode)" {
    run call GET /editor/scan/templates
    [ "$(jq -r '.templates[] | select(.name == "advanced") | .uuid' <<<"$output")" = "$ADV" ]
    [ "$(jq -r '.templates[] | select(.name == "basic") | .uuid' <<<"$output")" = "$BASIC" ]
    [ "$(call GET /server/properties | jq .license.features.scan_api)" = true ]
    [ "$(curl -sS "$ESS/server/properties" | jq .license.features.scan_api)" = false ]
}

@test "full lifecycle over HTTPS: session + X-API-Token, valid SSH credentials" {
    BASE=$HTTPS
    ctl "$HTTPS" /__fake/config '{"pending_seconds": 0.5}' >/dev/null
    use_session
    id=$(create "np https" "10.9.0.1, 10.9.0.2" "$(creds scanuser scanpass)")
    run call GET "/scans/$id"
    [ "$(jq -r .info.status <<<"$output")" = empty ]
    [ "$(jq '.hosts | length' <<<"$output")" = 0 ]
    uuid=$(call POST "/scans/$id/launch" '{}' | jq -r .scan_uuid)
    [ "$(status_of "$id")" = pending ]
    wait_status "$id" running
    run call GET "/scans/$id"
    [ "$(jq '.hosts | length' <<<"$output")" = 2 ]
    [ "$(jq '.hosts[0].scanprogresstotal' <<<"$output")" = 100 ]
    wait_status "$id" completed
    run call GET "/scans/$id"
    [ "$(jq -r .info.uuid <<<"$output")" = "$uuid" ]
    [ "$(jq '[.hosts[].scanprogresscurrent] | add' <<<"$output")" = 200 ]
    [ "$(jq '.vulnerabilities | length > 5' <<<"$output")" = true ]
    exp=$(call POST "/scans/$id/export" '{"format": "nessus"}')
    file=$(jq -r .file <<<"$exp")
    token=$(jq -r .token <<<"$exp")
    [ "$(call GET "/scans/$id/export/$file/status" | jq -r .status)" = ready ]
    run call GET "/scans/$id/export/$file/download" -D "$BATS_TEST_TMPDIR/h" -o "$BATS_TEST_TMPDIR/r.nessus"
    assert_success
    grep -qi 'content-disposition: attachment; filename="np_https.nessus"' "$BATS_TEST_TMPDIR/h"
    xml_ok "$BATS_TEST_TMPDIR/r.nessus"
    [ "$(hosts_in "$BATS_TEST_TMPDIR/r.nessus")" = 2 ]
    [ "$(grep -c "Credentialed checks : yes, as 'scanuser' via ssh" "$BATS_TEST_TMPDIR/r.nessus")" = 2 ]
    grep -q 'pluginID="141118"' "$BATS_TEST_TMPDIR/r.nessus"
    grep -q 'pluginID="22869"' "$BATS_TEST_TMPDIR/r.nessus"
    grep -q '<tag name="Credentialed_Scan">true</tag>' "$BATS_TEST_TMPDIR/r.nessus"
    grep -q '<Report name="np https"' "$BATS_TEST_TMPDIR/r.nessus"
    # the token routes serve the same document without authentication
    [ "$(curl -sS --cacert "$CA" "$HTTPS/tokens/$token/status" | jq -r .status)" = ready ]
    curl -sS --cacert "$CA" "$HTTPS/tokens/$token/download" | cmp - "$BATS_TEST_TMPDIR/r.nessus"
}

@test "wrong SSH password: 19506 says no, 104410 and 21745 present" {
    id=$(run_scan "np bad creds" 10.9.0.3 "$(creds scanuser wrong)")
    download "$id" "$BATS_TEST_TMPDIR/r.nessus"
    xml_ok "$BATS_TEST_TMPDIR/r.nessus"
    grep -q 'Credentialed checks : no$' "$BATS_TEST_TMPDIR/r.nessus"
    grep -q 'pluginID="104410"' "$BATS_TEST_TMPDIR/r.nessus"
    grep -q 'pluginID="21745"' "$BATS_TEST_TMPDIR/r.nessus"
    run ! grep -q 'pluginID="141118"' "$BATS_TEST_TMPDIR/r.nessus"
}

@test "no credentials; privilege issues give 110385; per-target accounts give partial results" {
    d=$BATS_TEST_TMPDIR
    none=$(create "np untrusted" 10.9.0.4)
    priv=$(create "np priv" 10.9.0.5 "$(creds scanuser scanpass sudo)")
    esc=$(create "np sudoer" 10.9.0.5 "$(creds sudoer sudopass)")
    root=$(create "np root" 10.9.0.5 "$(creds root rootpass)")
    half=$(create "np half" "10.9.0.1 10.9.0.2" "$(creds half halfpass)")
    for id in "$none" "$priv" "$esc" "$root" "$half"; do call POST "/scans/$id/launch" '{}' >/dev/null; done
    wait_status "$half" completed
    download "$none" "$d/none.nessus"
    grep -q 'Credentialed checks : no$' "$d/none.nessus"
    run ! grep -q 'pluginID="104410"' "$d/none.nessus"
    download "$priv" "$d/priv.nessus"
    grep -q "Credentialed checks : yes, as 'scanuser' via ssh" "$d/priv.nessus"
    grep -q 'pluginID="110385"' "$d/priv.nessus"
    download "$esc" "$d/esc.nessus"
    grep -q 'pluginID="110385"' "$d/esc.nessus"
    download "$root" "$d/root.nessus"
    grep -q 'pluginID="110095"' "$d/root.nessus"
    run ! grep -q 'pluginID="110385"' "$d/root.nessus"
    download "$half" "$d/half.nessus"
    run grep -E 'Credentialed checks :|name="Credentialed_Scan"' "$d/half.nessus"
    assert_line --index 0 '<tag name="Credentialed_Scan">true</tag>'
    assert_line --index 1 "Credentialed checks : yes, as 'half' via ssh"
    assert_line --index 2 '<tag name="Credentialed_Scan">false</tag>'
    assert_line --index 3 "Credentialed checks : no"
}

@test "targets: CIDR and ranges expand, hostnames kept, capped at 256 hosts" {
    id=$(create "np expand" "10.1.0.0/30,10.1.1.1-3 web.example 10.1.2.5-10.1.2.6")
    run ctl "$HTTP" /__fake/scans
    [ "$(jq -c --argjson id "$id" '.scans[] | select(.id == $id) | .hosts' <<<"$output")" = \
        '["10.1.0.1","10.1.0.2","10.1.1.1","10.1.1.2","10.1.1.3","web.example","10.1.2.5","10.1.2.6"]' ]
    id=$(run_scan "np big" 10.2.0.0/16)
    [ "$(call GET "/scans/$id" | jq '.hosts | length')" = 256 ]
    download "$id" "$BATS_TEST_TMPDIR/big.nessus"
    [ "$(hosts_in "$BATS_TEST_TMPDIR/big.nessus")" = 256 ]
}

@test "stop, pause, resume; 409 and 404 answers; delete" {
    ctl "$HTTP" /__fake/config '{"running_seconds": 3, "stop_seconds": 0.5}' >/dev/null
    id=$(create "np ctl" 10.3.0.1)
    [ "$(code POST "/scans/$id/stop" '{}')" = 409 ]
    [ "$(code POST "/scans/$id/export" '{"format": "nessus"}')" = 409 ]
    [ "$(code POST "/scans/$id/launch" '{}')" = 200 ]
    [ "$(code POST "/scans/$id/launch" '{}')" = 409 ]
    wait_status "$id" running
    [ "$(code POST "/scans/$id/pause" '{}')" = 200 ]
    [ "$(status_of "$id")" = paused ]
    [ "$(code DELETE "/scans/$id")" = 409 ]
    [ "$(code POST "/scans/$id/resume" '{}')" = 200 ]
    [ "$(status_of "$id")" = running ]
    [ "$(code POST "/scans/$id/stop" '{}')" = 200 ]
    [ "$(status_of "$id")" = stopping ]
    wait_status "$id" canceled
    [ "$(code PUT "/scans/$id" '{"folder_id": 2}')" = 200 ]
    [ "$(call GET "/scans?folder_id=2" | jq --argjson id "$id" '[.scans[].id] | index($id) != null')" = true ]
    [ "$(code DELETE "/scans/$id")" = 200 ]
    [ "$(code GET "/scans/$id")" = 404 ]
    [ "$(code POST /scans/99999/launch '{}')" = 404 ]
    [ "$(code POST /scans '{"uuid": "nope", "settings": {"name": "x", "text_targets": "1.2.3.4"}}')" = 400 ]
}

@test "essentials: 412 for writes with API keys or without X-API-Token, OK with session + token" {
    BASE=$ESS
    body=$(jq -nc --arg u "$ADV" '{uuid: $u, settings: {name: "ess", text_targets: "10.4.0.1"}}')
    run call POST /scans "$body"
    assert_output '{"error":"API is not available"}'
    [ "$(code POST /scans "$body")" = 412 ]
    [ "$(code GET /scans)" = 200 ]
    tok=$(call POST /session '{"username": "nessus", "password": "nessus"}' | jq -r .token)
    AUTH=(-H "X-Cookie: token=$tok")
    [ "$(code POST /scans "$body")" = 412 ]
    AUTH=(-H "X-Cookie: token=$tok" -H "X-API-Token: 00000000-0000-0000-0000-000000000000")
    [ "$(code POST /scans "$body")" = 412 ]
    AUTH=(-H "X-Cookie: token=$tok" -H "X-API-Token: $(api_token)")
    id=$(create "np ess" 10.4.0.1)
    [ "$(code POST "/scans/$id/launch" '{}')" = 200 ]
    wait_status "$id" completed
    download "$id" "$BATS_TEST_TMPDIR/e.nessus"
    grep -q 'Scanner edition used : Nessus Home' "$BATS_TEST_TMPDIR/e.nessus"
    run ctl "$ESS" /__fake/requests
    [ "$(jq '[.requests[] | select(.status == 412)] | length' <<<"$output")" = 4 ]
}

@test "essentials early close: 412 status line, Content-Length 32, no body" {
    BASE=$ESS
    ctl "$ESS" /__fake/config '{"essentials_drop_body": true}' >/dev/null
    run curl -sS -D "$BATS_TEST_TMPDIR/h" -o /dev/null -w '%{http_code}' -X POST -H "$KEYS" \
        --data '{}' "$ESS/scans"
    assert_failure 18
    assert_output --partial 412
    grep -qi '^Connection: close' "$BATS_TEST_TMPDIR/h"
    grep -qi '^Content-Length: 32' "$BATS_TEST_TMPDIR/h"
}

@test "inject: 500 twice on a route pattern, then OK" {
    ctl "$HTTP" /__fake/inject '{"errors": [{"route": "GET /scans", "status": 503, "count": 2}]}' >/dev/null
    [ "$(code GET /scans)" = 503 ]
    [ "$(code GET /server/status)" = 200 ]
    [ "$(code GET /scans)" = 503 ]
    [ "$(code GET /scans)" = 200 ]
    ctl "$HTTP" /__fake/inject '{"errors": [{"route": "POST /scans/*/launch", "count": 1}]}' >/dev/null
    id=$(create "np 500" 10.5.0.1)
    [ "$(code POST "/scans/$id/launch" '{}')" = 500 ]
    [ "$(code POST "/scans/$id/launch" '{}')" = 200 ]
}

@test "inject: session expires after N calls, re-login recovers; login_fail" {
    ctl "$HTTP" /__fake/inject '{"session_expire_after": 2}' >/dev/null
    use_session
    [ "$(code GET /scans)" = 200 ]
    [ "$(code GET /scans)" = 200 ]
    [ "$(code GET /scans)" = 401 ]
    [ "$(code GET /scans)" = 401 ]
    use_session
    [ "$(code GET /scans)" = 200 ]
    ctl "$HTTP" /__fake/inject '{"login_fail": {"value": true, "count": 1}}' >/dev/null
    [ "$(code POST /session '{"username": "nessus", "password": "nessus"}')" = 401 ]
    [ "$(code POST /session '{"username": "nessus", "password": "nessus"}')" = 200 ]
}

@test "inject: scan stuck paused until resumed; aborted; unknown status word" {
    ctl "$HTTP" /__fake/inject '{"end_state": {"value": "paused", "count": 1}}' >/dev/null
    id=$(create "np stuck" 10.6.0.1)
    call POST "/scans/$id/launch" '{}' >/dev/null
    wait_status "$id" paused
    sleep 0.3
    [ "$(status_of "$id")" = paused ]
    [ "$(call GET "/scans/$id" | jq '.hosts[0].scanprogresscurrent')" = 50 ]
    call POST "/scans/$id/resume" '{}' >/dev/null
    wait_status "$id" completed
    a=$(create "np aborted" 10.6.0.2)
    p=$(create "np processing" 10.6.0.3)
    ctl "$HTTP" /__fake/inject '{"end_state": "aborted"}' >/dev/null
    call POST "/scans/$a/launch" '{}' >/dev/null
    ctl "$HTTP" /__fake/inject '{"end_state": "processing"}' >/dev/null
    call POST "/scans/$p/launch" '{}' >/dev/null
    wait_status "$a" aborted
    wait_status "$p" processing
}

@test "inject: scan deleted mid-poll answers 404" {
    ctl "$HTTP" /__fake/inject '{"delete_after_polls": 2}' >/dev/null
    id=$(create "np vanish" 10.7.0.1)
    call POST "/scans/$id/launch" '{}' >/dev/null
    [ "$(code GET "/scans/$id")" = 200 ]
    [ "$(code GET "/scans/$id")" = 200 ]
    [ "$(code GET "/scans/$id")" = 404 ]
    [ "$(ctl "$HTTP" /__fake/scans | jq --argjson id "$id" '.scans[] | select(.id == $id) | .deleted')" = true ]
}

@test "inject: export loading for N polls, export error" {
    id=$(run_scan "np export" 10.8.0.1)
    ctl "$HTTP" /__fake/inject '{"export_loading_polls": 2}' >/dev/null
    file=$(call POST "/scans/$id/export" '{"format": "nessus"}' | jq -r .file)
    run call GET "/scans/$id/export/$file/status"
    assert_output '{"status":"loading"}'
    [ "$(code GET "/scans/$id/export/$file/download")" = 409 ]
    [ "$(call GET "/scans/$id/export/$file/status" | jq -r .status)" = loading ]
    [ "$(call GET "/scans/$id/export/$file/status" | jq -r .status)" = ready ]
    ctl "$HTTP" /__fake/inject '{"export_loading_polls": null, "export_error": true}' >/dev/null
    file=$(call POST "/scans/$id/export" '{"format": "nessus"}' | jq -r .file)
    [ "$(call GET "/scans/$id/export/$file/status" | jq -r .status)" = error ]
    [ "$(code GET "/scans/$id/export/999/status")" = 404 ]
    [ "$(code POST "/scans/$id/export" '{"format": "pdf"}')" = 400 ]
}

@test "inject: broken downloads (truncated, not XML, tiny, zero ReportHost)" {
    id=$(run_scan "np broken" 10.8.0.2)
    f=$BATS_TEST_TMPDIR/d.nessus
    ctl "$HTTP" /__fake/inject '{"download": {"value": "truncated", "count": 1}}' >/dev/null
    download "$id" "$f"
    [ "$(stat -c %s "$f")" -gt 1000 ]
    run ! xml_ok "$f" 2>/dev/null
    download "$id" "$f"
    xml_ok "$f"
    ctl "$HTTP" /__fake/inject '{"download": "not_xml"}' >/dev/null
    download "$id" "$f"
    [ "$(stat -c %s "$f")" -ge 50 ]
    run ! xml_ok "$f" 2>/dev/null
    ctl "$HTTP" /__fake/inject '{"download": "tiny"}' >/dev/null
    download "$id" "$f"
    [ "$(stat -c %s "$f")" -lt 50 ]
    ctl "$HTTP" /__fake/inject '{"download": "no_hosts"}' >/dev/null
    download "$id" "$f"
    xml_ok "$f"
    grep -q '<Report name=' "$f"
    [ "$(hosts_in "$f")" = 0 ]
}

@test "inject: dropped connection; write succeeds but the response is lost; slow; server loading" {
    ctl "$HTTP" /__fake/inject '{"drop": [{"route": "GET /scans", "count": 1}]}' >/dev/null
    run call GET /scans
    assert_failure 52
    [ "$(code GET /scans)" = 200 ]
    ctl "$HTTP" /__fake/inject '{"drop_after_write": true}' >/dev/null
    run create "np lost" 10.10.0.1
    assert_failure
    [ "$(call GET /scans | jq '[.scans[] | select(.name == "np lost")] | length')" = 1 ]
    ctl "$HTTP" /__fake/inject '{"slow": [{"route": "GET /server/*", "seconds": 0.6}]}' >/dev/null
    run curl -s -m 0.3 "$HTTP/server/status"
    assert_failure 28
    ctl "$HTTP" /__fake/inject '{"server_status": "loading"}' >/dev/null
    [ "$(curl -sS "$HTTP/server/status" | jq -r .status)" = loading ]
    ctl "$HTTP" /__fake/inject '{"scans_null": true}' >/dev/null
    [ "$(call GET /scans | jq .scans)" = null ]
}

@test "fixture mode serves sample_scan.nessus verbatim; huge generator" {
    [ -r "$SAMPLE" ] || skip "no $SAMPLE"
    ctl "$HTTP" /__fake/config "{\"fixture\": \"$SAMPLE\"}" >/dev/null
    id=$(run_scan "np fixture" 10.11.0.1)
    download "$id" "$BATS_TEST_TMPDIR/f.nessus"
    cmp "$SAMPLE" "$BATS_TEST_TMPDIR/f.nessus"
    ctl "$HTTP" /__fake/config '{"fixture": null, "huge": {"hosts": 40, "items_per_host": 60}}' >/dev/null
    download "$id" "$BATS_TEST_TMPDIR/h.nessus"
    xml_ok "$BATS_TEST_TMPDIR/h.nessus"
    [ "$(hosts_in "$BATS_TEST_TMPDIR/h.nessus")" = 40 ]
    [ "$(grep -c '<ReportItem ' "$BATS_TEST_TMPDIR/h.nessus")" -ge 2400 ]
}

@test "request log: bodies verbatim (SSH block), auth mode, NDJSON file" {
    BASE=$HTTPS
    ctl "$HTTPS" /__fake/reset '{"requests": true}' >/dev/null
    use_session
    create "np logged" 10.12.0.1 "$(creds root rootpass sudo)" >/dev/null
    run ctl "$HTTPS" /__fake/requests
    r=$(jq -c '.requests[] | select(.method == "POST" and .path == "/scans")' <<<"$output")
    [ "$(jq -r .auth <<<"$r")" = session ]
    [ "$(jq -r .api_token_ok <<<"$r")" = true ]
    [ "$(jq -r .status <<<"$r")" = 200 ]
    [ "$(jq -c '.body.credentials.add.Host.SSH[0] | [.username, .password, .elevate_privileges_with]' \
        <<<"$r")" = '["root","rootpass","sudo"]' ]
    [ "$(jq -c '[.requests[].path][0:3]' <<<"$output")" = '["/session","/nessus6.js","/scans"]' ]
    last=$(tail -n 1 "$BATS_FILE_TMPDIR/https.log")
    [ "$(jq -r '.method + " " + .path' <<<"$last")" = "POST /scans" ]
    jq -e . "$BATS_FILE_TMPDIR/https.log" >/dev/null
}

@test "max_concurrent_running and running intervals" {
    ctl "$HTTP" /__fake/reset '{"scans": true}' >/dev/null
    ctl "$HTTP" /__fake/config '{"running_seconds": 0.8}' >/dev/null
    a=$(create "np c1" 10.13.0.1)
    b=$(create "np c2" 10.13.0.2)
    c=$(create "np c3" 10.13.0.3)
    for id in "$a" "$b" "$c"; do call POST "/scans/$id/launch" '{}' >/dev/null; done
    wait_status "$c" completed
    run ctl "$HTTP" /__fake/scans
    [ "$(jq .max_concurrent_running <<<"$output")" = 3 ]
    [ "$(jq '.running_intervals | length' <<<"$output")" = 3 ]
    [ "$(jq '[.running_intervals[] | .end > .start] | all' <<<"$output")" = true ]
    ctl "$HTTP" /__fake/reset '{"scans": true, "config": true}' >/dev/null
    run_scan "np s1" 10.13.0.4 >/dev/null
    run_scan "np s2" 10.13.0.5 >/dev/null
    [ "$(ctl "$HTTP" /__fake/scans | jq .max_concurrent_running)" = 1 ]
}
