#!/usr/bin/env bats
# Tests for np-validate: the checks and their exit statuses, the exact
# statistics of the real export in fixtures/ and of generated ones
# (tests/gen-nessus), the per-host and per-scan authentication verdicts,
# hostile XML (XXE, entity bombs) and the memory used on a 1 GiB export.
# shellcheck disable=SC2154

load helpers

GEN=$BATS_TEST_DIRNAME/gen-nessus
SAMPLE=$BATS_TEST_DIRNAME/fixtures/sample_scan.nessus

setup_file() {
	local d=$BATS_FILE_TMPDIR a
	for a in success failed privilege none; do
		"$GEN" --hosts 2 --items-per-host 8 --auth "$a" > "$d/$a.nessus"
	done
	"$GEN" --hosts 3 --items-per-host 8 --auth partial --seed 7 \
		> "$d/partial.nessus"
}

# gen NAME ARGS...: a generated export in the test's directory; prints
# its path.
gen() {
	local f=$BATS_TEST_TMPDIR/$1.nessus
	shift
	"$GEN" "$@" > "$f" && printf '%s\n' "$f"
}

# is COND: COND (a jq expression) holds for the JSON answer in $output.
is() {
	jq -e "$1" <<< "$output" > /dev/null || {
		echo "not true: $1" >&2
		jq . <<< "$output" >&2
		return 1
	}
}

# host N FIELD: a field of the Nth host (from 0) of the answer.
host() {
	jq -c ".hosts[$1].$2" <<< "$output"
}

# xml BODY: a file with BODY inside the root and Report elements.
xml() {
	local f
	f=$(mktemp --suffix=.nessus -p "$BATS_TEST_TMPDIR")
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<NessusClientData_v2>' > "$f"
	printf '<Report name="t">%s</Report></NessusClientData_v2>\n' "$1" >> "$f"
	printf '%s\n' "$f"
}

# rhost NAME ITEMS [TAGS]: a ReportHost holding ITEMS and the tags.
rhost() {
	printf '<ReportHost name="%s"><HostProperties>%s</HostProperties>%s' \
		"$1" "${3:-}" "$2"
	printf '</ReportHost>'
}

# ritem ID SEV [OUTPUT]: a ReportItem.
ritem() {
	printf '<ReportItem port="0" severity="%s" pluginID="%s"><plugin_output>' \
		"$2" "$1"
	printf '%s</plugin_output></ReportItem>' "${3:-}"
}

# peak_kb OUT CMD...: runs CMD, its stdout to OUT.out, and writes its peak
# RSS in KiB to OUT; /usr/bin/time when present, else python3's
# getrusage.
peak_kb() {
	local out=$1 rc
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -v -o "$out.time" "$@" > "$out.out"
		rc=$?
		awk -F': *' '/Maximum resident set size/ { print $2 }' \
			"$out.time" > "$out"
		return $rc
	fi
	python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1] + ".out", "w"))
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write("%d\n" % kb)
sys.exit(rc)' "$out" "$@"
}

# ------------------------------------------------------------ usage

@test "--help prints the usage on stdout; --version the version" {
	run -0 --separate-stderr np-validate --help
	assert_output --partial "usage: np-validate [-t scan_type]"
	[ -z "$stderr" ]
	run -0 np-validate -h
	assert_output --partial "usage:"
	run -0 np-validate --version
	assert_output --regexp '^np-validate [0-9]+\.[0-9]+'
}

@test "usage errors exit 64 and print nothing on stdout" {
	local f=$BATS_FILE_TMPDIR/success.nessus
	run -64 --separate-stderr np-validate
	[ -z "$output" ]
	assert_equal "${stderr_lines[0]}" \
		"usage: np-validate [-t scan_type] [-e expected_hosts] file"
	run -64 --separate-stderr np-validate "$f" "$f"
	[ -z "$output" ]
	run -64 np-validate --bogus "$f"
	run -64 --separate-stderr np-validate --scan-type trusted_basic "$f"
	[ -z "$output" ]
	assert_equal "$stderr" "np-validate: --scan-type: no scan type \
'trusted_basic' (untrusted, authenticated, authenticated_privileged)"
	run -64 np-validate -t '' "$f"
	local n
	for n in -1 abc 1.5 '' 10000001; do
		run -64 --separate-stderr np-validate --expected-hosts "$n" "$f"
		[ -z "$output" ]
		assert_equal "$stderr" \
			"np-validate: --expected-hosts: expected 0 to 10000000"
	done
	run -0 np-validate -e 0 -t untrusted "$f"
	run -0 np-validate --expected-hosts=2 --scan-type=authenticated "$f"
}

# ------------------------------------------------------------ the real export

@test "the real export, untrusted: exact statistics, valid, not_applicable" {
	run -0 --separate-stderr np-validate "$SAMPLE"
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 1 ]
	jq -e --arg f "$SAMPLE" '. == {
	    valid: true, reason: null, file: $f, scan_type: "untrusted",
	    stats: {file_size_bytes: 2063924, hosts_scanned: 1,
	        total_plugins: 40,
	        severity_breakdown: {critical: 11, high: 9, medium: 3, low: 1,
	            info: 16},
	        total_vulnerabilities: 24,
	        scan_start: "2025-11-07T18:25:52.000Z",
	        scan_end: "2025-11-07T18:28:09.000Z",
	        hosts_by_authentication: {authenticated: 0, failed: 0,
	            privilege_insufficient: 0, not_attempted: 1}},
	    authentication_status: "not_applicable",
	    hosts: [{host: "172.32.0.215", authentication: "not_attempted",
	        reason: "19506: Credentialed checks : no",
	        signals: ["Credentialed_Scan", "19506"]}],
	    warnings: [], error: null}' <<< "$output"
	# The keys come in the documented order.
	[ "$(jq -c 'keys_unsorted' <<< "$output")" = \
'["valid","reason","file","scan_type","stats","authentication_status","hosts","warnings","error"]' ]
}

@test "the real export as authenticated: auth_failed (Credentialed checks : no), exit 1" {
	run -1 --separate-stderr np-validate --scan-type authenticated "$SAMPLE"
	[ -z "$stderr" ]
	is '.valid == false and .reason == "auth_failed" and
	    .authentication_status == "failed" and .scan_type == "authenticated"'
	is '.stats.total_plugins == 40 and .stats.total_vulnerabilities == 24'
	is '.hosts == [{host: "172.32.0.215", authentication: "failed",
	    reason: "19506: Credentialed checks : no",
	    signals: ["Credentialed_Scan", "19506"]}]'
	is '.error == "authentication failed on every host of this authenticated scan (1 of 1): 172.32.0.215 (19506: Credentialed checks : no)"'
	# Its Patch Report (66334) and other network findings prove nothing.
	grep -q 'pluginID="66334"' "$SAMPLE"
	run -1 np-validate -t authenticated_privileged "$SAMPLE"
	is '.reason == "auth_failed"'
}

# ------------------------------------------------------------ generated

@test "generated, authenticated success: valid, per-host verdicts and exact stats" {
	local f=$BATS_FILE_TMPDIR/success.nessus
	run -0 np-validate -t authenticated "$f"
	is '.valid and .reason == null and .error == null and
	    .authentication_status == "success" and .warnings == []'
	is '.stats == {file_size_bytes: 32568, hosts_scanned: 2,
	    total_plugins: 16,
	    severity_breakdown: {critical: 1, high: 2, medium: 0, low: 3,
	        info: 10},
	    total_vulnerabilities: 6,
	    scan_start: "2025-11-07T18:25:52.000Z",
	    scan_end: "2025-11-07T18:36:02.000Z",
	    hosts_by_authentication: {authenticated: 2, failed: 0,
	        privilege_insufficient: 0, not_attempted: 0}}'
	is '.hosts[1] == {host: "10.0.0.2", authentication: "authenticated",
	    reason: "19506: Credentialed checks : yes, as '\''scanuser'\'' via ssh",
	    credentialed_user: "scanuser",
	    signals: ["Credentialed_Scan", "19506", "141118", "110095"]}'
	# The counts agree with a plain count of the file.
	local s
	for s in 0 1 2 3 4; do
		is "([.stats.severity_breakdown[]] | reverse)[$s] == \
$(grep -c "severity=\"$s\"" "$f")"
	done
	# The same file is valid, privileged or not.
	run -0 np-validate -t authenticated_privileged "$f"
	is '.authentication_status == "success"'
	run -0 np-validate "$f"
	is '.authentication_status == "not_applicable" and
	    .hosts[0].authentication == "authenticated"'
}

@test "generated, authentication failed on every host: auth_failed, exit 1" {
	run -1 np-validate -t authenticated "$BATS_FILE_TMPDIR/failed.nessus"
	is '.reason == "auth_failed" and .authentication_status == "failed"'
	is '[.hosts[].authentication] == ["failed", "failed"]'
	is '.hosts[0] == {host: "10.0.0.1", authentication: "failed",
	    reason: "104410: failure for provided credentials",
	    signals: ["Credentialed_Scan", "19506", "104410", "21745"]}'
	is '.stats.hosts_by_authentication.failed == 2'
	is '.error == "authentication failed on every host of this authenticated scan (2 of 2): 10.0.0.1, 10.0.0.2 (104410: failure for provided credentials)"'
	# Untrusted, the same file is valid: nothing needed to log in.
	run -0 np-validate -t untrusted "$BATS_FILE_TMPDIR/failed.nessus"
	is '.authentication_status == "not_applicable"'
}

@test "generated, partial (multi-host): valid with a warning naming the failed host" {
	run -0 np-validate -t authenticated "$BATS_FILE_TMPDIR/partial.nessus"
	is '.valid and .authentication_status == "partial"'
	is '[.hosts[] | [.host, .authentication]] == [["10.0.0.1",
	    "authenticated"], ["10.0.0.2", "failed"], ["10.0.0.3",
	    "authenticated"]]'
	is '.warnings == ["partial authentication: 1 of 3 hosts not authenticated: 10.0.0.2 (104410: failure for provided credentials)"]'
	is '.stats.hosts_by_authentication == {authenticated: 2, failed: 1,
	    privilege_insufficient: 0, not_attempted: 0}'
	is '.stats.severity_breakdown == {critical: 1, high: 2, medium: 4,
	    low: 1, info: 16} and .stats.total_plugins == 24'
	run -0 np-validate -t authenticated_privileged \
		"$BATS_FILE_TMPDIR/partial.nessus"
	is '.authentication_status == "partial"'
}

@test "warnings and errors name at most ten hosts" {
	local f
	f=$(gen many --hosts 30 --items-per-host 3 --auth partial)
	run -0 np-validate -t authenticated "$f"
	is '.warnings == ["partial authentication: 15 of 30 hosts not authenticated: 10.0.0.2, 10.0.0.4, 10.0.0.6, 10.0.0.8, 10.0.0.10, 10.0.0.12, 10.0.0.14, 10.0.0.16, 10.0.0.18, 10.0.0.20 (104410: failure for provided credentials), and 5 more"]'
	run -1 np-validate -t authenticated_privileged "$(gen many2 --hosts 12 \
		--items-per-host 3 --auth privilege)"
	is '.error == "12 of 12 hosts logged in without sufficient privilege (110385): 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9, 10.0.0.10 (110385: insufficient privilege), and 2 more"'
}

@test "generated, logged in without privilege (110385)" {
	local f=$BATS_FILE_TMPDIR/privilege.nessus
	run -1 np-validate -t authenticated_privileged "$f"
	is '.reason == "privilege_insufficient" and .valid == false'
	is '.authentication_status == "success"'
	is '.hosts[0] == {host: "10.0.0.1",
	    authentication: "privilege_insufficient",
	    reason: "110385: insufficient privilege",
	    credentialed_user: "scanuser",
	    signals: ["Credentialed_Scan", "19506", "141118", "110385"]}'
	is '.error == "2 of 2 hosts logged in without sufficient privilege (110385): 10.0.0.1, 10.0.0.2 (110385: insufficient privilege)"'
	# Without the need for privilege, it is a warning only.
	run -0 np-validate -t authenticated "$f"
	is '.valid and .warnings == ["2 of 2 hosts logged in without sufficient privilege (110385): 10.0.0.1, 10.0.0.2 (110385: insufficient privilege)"]'
}

@test "generated, untrusted scan: hosts not_attempted (110723)" {
	local f=$BATS_FILE_TMPDIR/none.nessus
	run -0 np-validate "$f"
	is '.authentication_status == "not_applicable" and .warnings == []'
	is '.hosts[1] == {host: "10.0.0.2", authentication: "not_attempted",
	    reason: "110723: no credentials provided",
	    signals: ["Credentialed_Scan", "19506", "110723"]}'
	# Credentials that never reached a host are a failed authentication.
	run -1 np-validate -t authenticated "$f"
	is '.reason == "auth_failed"'
}

@test "privilege_insufficient on one host of many is enough to refuse" {
	local f
	f=$(xml "$(rhost a "$(ritem 141118 0)$(ritem 110095 0)")$(rhost b \
		"$(ritem 141118 0)$(ritem 110385 0)")")
	run -1 np-validate -t authenticated_privileged "$f"
	is '.reason == "privilege_insufficient"'
	is '[.hosts[].authentication] == ["authenticated",
	    "privilege_insufficient"]'
	is '.hosts[0].reason == "141118: valid credentials provided"'
	is '.error == "1 of 2 hosts logged in without sufficient privilege (110385): b (110385: insufficient privilege)"'
}

@test "no credential signal at all: unknown, valid with a warning" {
	local f
	# SSL findings (21643, 51192) and Patch Report (66334) are visible
	# from the network: they prove nothing about a login.
	f=$(xml "$(rhost h1 "$(ritem 21643 0)$(ritem 51192 2)$(ritem 66334 0)")")
	run -0 np-validate -t authenticated "$f"
	is '.authentication_status == "unknown"'
	is '.hosts == [{host: "h1", authentication: "not_attempted",
	    reason: "no credential signal", signals: []}]'
	is '.warnings == ["authentication unknown: no host carries a credential signal (19506, Credentialed_Scan, 141118, 110095, 110385, 104410, 21745, 110723)"]'
	run -0 np-validate "$f"
	is '.authentication_status == "not_applicable" and .warnings == []'
}

@test "the 19506 line is parsed exactly" {
	local f n=$'\n' t='<tag name="Credentialed_Scan">true</tag>'
	# Only the key "Credentialed checks" counts, and only yes/no as the
	# value's first word; the first such line decides.
	f=$(xml "$(rhost a "$(ritem 19506 0 "Previous credentialed checks : yes${n}Credentialed checks : partial${n}  Credentialed checks  :  no  ${n}Credentialed checks : yes")")$(rhost b \
		"$(ritem 19506 0 "${n}Credentialed checks : yes, as 'CORP\\admin' via SMB${n}")" "$t")$(rhost c \
		"$(ritem 19506 0 "Credentialed checks : nobody")" "$t")$(rhost d \
		"$(ritem 19506 0 "Credentialed checks : yes")$(ritem 21745 0)")")
	run -0 np-validate -t authenticated "$f"
	is '.hosts[0] == {host: "a", authentication: "failed",
	    reason: "19506: Credentialed checks : no", signals: ["19506"]}'
	is '.hosts[1] == {host: "b", authentication: "authenticated",
	    reason: "19506: Credentialed checks : yes, as '\''CORP\\admin'\'' via SMB",
	    credentialed_user: "CORP\\admin",
	    signals: ["Credentialed_Scan", "19506"]}'
	# "nobody" is no "no": the tag decides.
	is '.hosts[2] == {host: "c", authentication: "authenticated",
	    reason: "Credentialed_Scan: true", signals: ["Credentialed_Scan"]}'
	# 19506 outranks a patch assessment failure.
	is '.hosts[3].authentication == "authenticated" and
	    .hosts[3].signals == ["19506", "21745"]'
	is '.authentication_status == "partial"'
}

@test "the signals in order of strength" {
	local f
	f=$(xml "$(rhost a "$(ritem 104410 0)")$(rhost b "$(ritem 21745 0)")$(rhost c \
		"$(ritem 110095 0)")$(rhost d "" '<tag name="Credentialed_Scan">false</tag>')$(rhost e \
		"$(ritem 141118 0)" '<tag name="Credentialed_Scan">FALSE</tag>')$(rhost f \
		"$(ritem 110723 0)" '<tag name="Credentialed_Scan">false</tag><tag name="ssh-login-used">x</tag>')")
	run -0 np-validate -t authenticated "$f"
	is '[.hosts[] | [.host, .authentication, .reason]] == [
	    ["a", "failed", "104410: failure for provided credentials"],
	    ["b", "failed", "21745: OS security patch assessment failed"],
	    ["c", "authenticated", "110095: no credential issues found"],
	    ["d", "failed", "Credentialed_Scan: false"],
	    ["e", "failed", "Credentialed_Scan: false"],
	    ["f", "not_attempted", "110723: no credentials provided"]]'
	is '.authentication_status == "partial"'
	is '.hosts[5].credentialed_user == "x"'
	run -0 np-validate -t untrusted "$f"
	is '.hosts[3].authentication == "not_attempted"'
}

@test "a bad severity is a warning naming the item, counted by no severity" {
	local f
	f=$(xml "$(rhost h1 "$(ritem 1 2)$(ritem 2 9)$(ritem 3 high)$(ritem 4 '')<ReportItem pluginID=\"5\"/>$(ritem 6 4)")")
	run -0 np-validate "$f"
	is '.stats.total_plugins == 6 and .stats.total_vulnerabilities == 2'
	is '.stats.severity_breakdown == {critical: 1, high: 0, medium: 1,
	    low: 0, info: 0}'
	is '.warnings == [
	    "host h1: ReportItem pluginID 2: severity '\''9'\'' is not 0 to 4; not counted by severity",
	    "host h1: ReportItem pluginID 3: severity '\''high'\'' is not 0 to 4; not counted by severity",
	    "host h1: ReportItem pluginID 4: severity '\'''\'' is not 0 to 4; not counted by severity",
	    "host h1: ReportItem pluginID 5 has no severity; not counted by severity"]'
	# Past ten, one warning counts the rest.
	f=$(xml "$(rhost h "$(for i in $(seq 25); do ritem "$i" x; done)")")
	run -0 np-validate "$f"
	is '(.warnings | length) == 11 and
	    .warnings[10] == "15 more ReportItems without a severity 0 to 4"'
}

@test "fewer hosts than expected is a warning" {
	local f=$BATS_FILE_TMPDIR/success.nessus
	run -0 np-validate -t authenticated -e 3 "$f"
	is '.valid and .warnings == ["2 hosts scanned, fewer than the 3 expected"]'
	run -0 np-validate -t authenticated -e 2 "$f"
	is '.warnings == []'
}

@test "the host list stops at 10000 hosts; the counts do not" {
	local f
	f=$(gen lots --hosts 10001 --items-per-host 3)
	run -0 np-validate "$f"
	is '(.hosts | length) == 10000 and .stats.hosts_scanned == 10001'
	is '.stats.total_plugins == 30003 and
	    .stats.hosts_by_authentication.not_attempted == 10001'
	is '.warnings == ["hosts lists the first 10000 of 10001 hosts"]'
}

# ------------------------------------------------------------ broken files

@test "a truncated download: xml_invalid, exit 1" {
	local f=$BATS_TEST_TMPDIR/trunc.nessus
	head -c 20000 "$BATS_FILE_TMPDIR/success.nessus" > "$f"
	run -1 --separate-stderr np-validate -t authenticated "$f"
	[ -z "$stderr" ]
	is '.valid == false and .reason == "xml_invalid"'
	is ".error == \"$f is truncated: the file ends before </NessusClientData_v2> (incomplete download?)\""
	is '.stats.file_size_bytes == 20000 and .stats.hosts_scanned == null'
	is '.authentication_status == null and .hosts == []'
	# One byte short is still truncated.
	head -c -2 "$SAMPLE" > "$f"
	run -1 np-validate "$f"
	is '.reason == "xml_invalid" and (.error | contains("truncated"))'
}

@test "not XML, not an export, trailing garbage" {
	local f=$BATS_TEST_TMPDIR/f
	printf 'This is a plain text file, and it is not XML at all.\n' > "$f"
	run -1 np-validate "$f"
	is '.reason == "xml_invalid" and .stats.file_size_bytes == 53'
	is ".error == \"$f is not well-formed XML: line 1: Document is empty\""
	head -c 4096 /dev/urandom > "$f"
	run -1 np-validate "$f"
	is '.reason == "xml_invalid"'
	printf '<?xml version="1.0"?>\n<html><body>502 Bad Gateway</body></html>\n' > "$f"
	run -1 np-validate "$f"
	is '.reason == "not_nessus"'
	is ".error == \"$f: the root element is <html>, not <NessusClientData_v2>\""
	{ cat "$BATS_FILE_TMPDIR/success.nessus"; echo '<more/>'; } > "$f"
	run -1 np-validate "$f"
	is '.reason == "xml_invalid" and (.error | contains("Extra content"))'
}

@test "an export without hosts: empty_scan" {
	local f
	f=$(gen empty --hosts 0 --items-per-host 3)
	run -1 np-validate -t authenticated "$f"
	is '.reason == "empty_scan" and .authentication_status == null'
	is '.stats.hosts_scanned == 0 and .stats.total_plugins == 0'
	is ".error == \"$f: no ReportHost, the scan found no live host\""
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<NessusClientData_v2/>\n' > "$f"
	run -1 np-validate "$f"
	is '.reason == "empty_scan"'
	# A ReportHost outside Report is no host.
	printf '<NessusClientData_v2><ReportHost name="x"/><Report/></NessusClientData_v2>' > "$f"
	run -1 np-validate "$f"
	is '.reason == "empty_scan"'
}

@test "under 50 bytes: too_small, before any parsing" {
	local f=$BATS_TEST_TMPDIR/small.nessus
	: > "$f"
	run -1 np-validate "$f"
	is '.reason == "too_small" and .stats.file_size_bytes == 0'
	is ".error == \"$f: 0 bytes, too small for a .nessus export\""
	printf '%-49s' '<NessusClientData_v2/>' > "$f"
	[ "$(stat -c %s "$f")" -eq 49 ]
	run -1 np-validate "$f"
	is '.reason == "too_small" and .stats.file_size_bytes == 49'
	printf '%-50s' '<NessusClientData_v2/>' > "$f"
	run -1 np-validate "$f"
	is '.reason == "empty_scan"'
}

@test "a missing file, a directory, a pipe: 66 with the JSON answer" {
	run -66 --separate-stderr np-validate -t authenticated "$BATS_TEST_TMPDIR/nope"
	is '.valid == false and .reason == "file_not_found"'
	is '.stats.file_size_bytes == null and .authentication_status == null'
	is ".error == \"$BATS_TEST_TMPDIR/nope: No such file or directory\""
	assert_equal "$stderr" "np-validate: $BATS_TEST_TMPDIR/nope: No such file or directory"
	run -66 --separate-stderr np-validate "$BATS_TEST_TMPDIR"
	is ".reason == \"file_not_found\" and .error == \"$BATS_TEST_TMPDIR: Is a directory\""
	run -66 --separate-stderr np-validate /dev/null
	is '.error == "/dev/null: not a regular file"'
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	run -66 --separate-stderr timeout 5 np-validate "$BATS_TEST_TMPDIR/fifo"
}

@test "an unreadable file: 66" {
	local d=$BATS_TEST_TMPDIR/r f
	mkdir "$d"
	chmod 755 "$BATS_TEST_TMPDIR" "$d"
	f=$d/secret.nessus
	cp "$BATS_FILE_TMPDIR/success.nessus" "$f"
	chmod 000 "$f"
	if [ "$(id -u)" -eq 0 ]; then
		command -v setpriv > /dev/null || skip "root, and no setpriv"
		run -66 --separate-stderr setpriv --reuid=65534 --regid=65534 \
			--clear-groups np-validate "$f"
	else
		run -66 --separate-stderr np-validate "$f"
	fi
	is '.reason == "file_not_found"'
	is '.error | endswith("secret.nessus: Permission denied")'
}

# ------------------------------------------------------------ hostile XML

@test "XXE: an external entity is never read" {
	local f=$BATS_TEST_TMPDIR/xxe.nessus n
	{
		echo '<?xml version="1.0" encoding="UTF-8"?>'
		echo '<!DOCTYPE NessusClientData_v2 [<!ENTITY e SYSTEM "file:///etc/passwd">'
		echo '<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
		tail -n +2 "$BATS_FILE_TMPDIR/success.nessus" |
			sed -e 's/Credentialed checks : yes/\&e;&/' \
			    -e 's|<tag name="os">linux</tag>|<tag name="ssh-login-used">\&e;</tag>|'
	} > "$f"
	grep -q '&e;Credentialed checks : yes' "$f"
	run -0 --separate-stderr timeout 10 np-validate -t authenticated "$f"
	[ -z "$stderr" ]
	refute_output --partial "root:"
	refute_output --partial "/bin/"
	is '.valid and .authentication_status == "success"'
	is '.hosts[0].reason == "19506: Credentialed checks : yes, as '\''scanuser'\'' via ssh"'
	is 'any(.warnings[]; . == "the document has a DOCTYPE: its entities were not expanded")'
	# In an attribute, an external entity is not even well-formed.
	sed -i 's/severity="0" pluginID="141118"/severity="\&e;" pluginID="141118"/' "$f"
	run -1 timeout 10 np-validate -t authenticated "$f"
	refute_output --partial "root:"
	is '.reason == "xml_invalid"'
	n=$(grep -n 'severity="&e;"' "$f" | head -1 | cut -d: -f1)
	is ".error == \"$f is not well-formed XML: line $n: Attribute references external entity 'e'\""
	# An external DTD is not loaded either.
	{
		echo '<?xml version="1.0"?>'
		echo '<!DOCTYPE NessusClientData_v2 SYSTEM "file:///etc/passwd">'
		tail -n +2 "$BATS_FILE_TMPDIR/success.nessus"
	} > "$f"
	run -0 timeout 10 np-validate "$f"
	refute_output --partial "root:"
}

# bomb WHERE: a billion-laughs export, the bomb in text or an attribute.
bomb() {
	local f=$BATS_TEST_TMPDIR/bomb-$1.nessus i e='<!ENTITY l0 "lol">'
	for i in 1 2 3 4 5 6 7 8 9; do
		e+="<!ENTITY l$i \"$(printf "&l$((i - 1));%.0s" 1 2 3 4 5 6 7 8 9 10)\">"
	done
	{
		echo '<?xml version="1.0" encoding="UTF-8"?>'
		echo "<!DOCTYPE NessusClientData_v2 [$e]>"
		tail -n +2 "$BATS_FILE_TMPDIR/success.nessus" | case $1 in
		text) sed 's/Credentialed checks : yes/\&l9;&/' ;;
		attr) sed '0,/severity="0"/s//severity="\&l9;"/' ;;
		host) sed '0,/ReportHost name="10.0.0.1"/s//ReportHost name="\&l9;"/' ;;
		esac
	} > "$f"
	printf '%s\n' "$f"
}

@test "billion laughs: refused or inert, quickly and in little memory" {
	local w f
	for w in text attr host; do
		f=$(bomb "$w")
		SECONDS=0
		run peak_kb "$BATS_TEST_TMPDIR/kb" timeout 10 np-validate "$f"
		[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
		[ "$SECONDS" -le 3 ]
		[ "$(cat "$BATS_TEST_TMPDIR/kb")" -lt 65536 ]
		output=$(cat "$BATS_TEST_TMPDIR/kb.out")
		refute_output --partial "lollollol"
		is '.valid == false and .reason == "xml_invalid" or
		    .valid and .hosts[0].authentication == "not_attempted"'
	done
}

# ------------------------------------------------------------ a big file

@test "a 1 GiB export is validated in flat memory (peak RSS < 32 MiB)" {
	local dir=${BATS_FILE_TMPDIR} f kb free t0 t1
	[ "${NP_SANITIZE:-}" != 1 ] || skip "peak RSS means nothing under ASan's allocator"
	free=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
	if [ "$free" -lt $((3 * 1024 * 1024)) ]; then
		skip "needs 3 GiB free in $dir, has $((free / 1024)) MiB"
	fi
	f=$dir/big.nessus
	t0=$(date +%s%N)
	"$GEN" --hosts 4 --items-per-host 100 --auth partial --size-mb 1024 > "$f"
	t1=$(date +%s%N)
	echo "# generated $(stat -c %s "$f") bytes in $(((t1 - t0) / 1000000)) ms" >&3
	[ "$(stat -c %s "$f")" -ge $((1 << 30)) ]
	t0=$(date +%s%N)
	run -0 peak_kb "$dir/kb" np-validate -t authenticated "$f"
	t1=$(date +%s%N)
	rm -f "$f"
	kb=$(cat "$dir/kb")
	echo "# validated in $(((t1 - t0) / 1000000)) ms, peak RSS $kb KiB" >&3
	[ "$kb" -lt $((32 * 1024)) ]
	output=$(cat "$dir/kb.out")
	is '.authentication_status == "partial" and .stats.hosts_scanned > 7000'
	is '.stats.total_plugins == .stats.hosts_scanned * 100'
	is '.stats.hosts_by_authentication.failed ==
	    (.stats.hosts_scanned / 2 | floor)'
}

teardown_file() {
	rm -f "$BATS_FILE_TMPDIR/big.nessus"
}
