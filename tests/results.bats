#!/usr/bin/env bats
# Tests for np-results: the findings of a finished task as NDJSON. Tasks
# are made with np-enqueue, then finished by hand: status set in
# task.json and an export copied in as scan.nessus (the fixture, a real
# Nessus 10.10 export: 1 host, 40 findings, 16/1/3/9/11 by severity 0..4).
# shellcheck disable=SC2154

load helpers

FIXTURE=$BATS_TEST_DIRNAME/fixtures/sample_scan.nessus

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

# finished FILE [STATUS [REASON [np-enqueue flags]]]: a task in STATUS
# (completed by default) whose export is FILE (none when FILE is "");
# prints its id.
finished() {
	local file=$1 status=${2:-completed} reason=${3:-} id f
	shift $(($# < 3 ? $# : 3))
	id=$(np-enqueue -n x -T 10.0.0.1 "$@" | jq -er .task_id) || return 1
	f=$NP_DATA_DIR/tasks/$id/task.json
	jq --arg s "$status" --arg r "$reason" '.status = $s |
	    if $r != "" then .failure_reason = $r else . end' "$f" > "$f.new" &&
	    mv "$f.new" "$f" || return 1
	if [ -n "$file" ]; then
		cp "$file" "$NP_DATA_DIR/tasks/$id/scan.nessus" || return 1
	fi
	echo "$id"
}

# The lines of $output of one type, compact.
of_type() {
	jq -c --arg t "$1" 'select(.type == $t)' <<< "$output"
}

# The number of findings in $output.
count() {
	of_type vulnerability | grep -c . || true
}

# finding PLUGIN_ID: that finding of $output.
finding() {
	of_type vulnerability | jq -c --arg p "$1" 'select(.plugin_id == $p)'
}

# has_fields LIST: between them, the findings of $output have exactly the
# fields of LIST (comma-separated), each finding after "type" and in
# LIST's order.
has_fields() {
	of_type vulnerability | jq -se --arg f "$1" '($f | split(",")) as $p |
	    ([.[] | keys_unsorted[]] | unique) == (["type"] + $p | unique) and
	    all(.[]; keys_unsorted as $k | $k[0] == "type" and
	    $k[1:] == [$p[] | select(. as $x | $k | index($x))])'
}

# agrees FILTER JQ: np-results -f FILTER picks, in order, the findings
# that the jq condition JQ picks from the full output in $BATS_TEST_TMPDIR/full.
agrees() {
	local want got
	want=$(jq -c "select(.type == \"vulnerability\") | select($2) |
	    .plugin_id" "$BATS_TEST_TMPDIR/full" | paste -sd, -)
	got=$(np-results -p 0 -P minimal -f "$1" "$id" | jq -c 'select(.type ==
	    "vulnerability") | .plugin_id' | paste -sd, -)
	assert_equal "$got" "$want"
}

# A small export: one host, items as given on stdin (XML).
small_export() {
	{
		printf '<?xml version="1.0" encoding="UTF-8"?>\n'
		printf '%s\n' "${2:-}"
		printf '<NessusClientData_v2>\n<Report name="small" '
		printf 'xmlns:cm="http://www.nessus.org/cm">\n'
		printf '<ReportHost name="h1"><HostProperties>\n'
		printf '<tag name="host-ip">10.0.0.9</tag></HostProperties>\n'
		cat
		printf '</ReportHost>\n</Report>\n</NessusClientData_v2>\n'
	} > "$1"
}

# big_export N FILE: the fixture with its ReportHost repeated N times.
big_export() {
	local s e host i
	s=$(grep -n '<ReportHost' "$FIXTURE" | cut -d: -f1)
	e=$(grep -n '</ReportHost>' "$FIXTURE" | cut -d: -f1)
	host=$(sed -n "${s},${e}p" "$FIXTURE")
	{
		head -n $((s - 1)) "$FIXTURE"
		for ((i = 0; i < $1; i++)); do
			printf '%s\n' "$host"
		done
		tail -n +$((e + 1)) "$FIXTURE"
	} > "$2"
}

BRIEF=host,plugin_id,severity,cve,cvss3_base_score,cvss_base_score,exploit_available,plugin_name,synopsis,port,protocol,risk_factor,vpr_score,epss_score,description,solution,see_also

# ---------------------------------------------------------------- output

@test "default: schema, scan_metadata, 40 findings (brief), pagination" {
	local id
	id=$(finished "$FIXTURE")
	run --separate-stderr -0 np-results "$id"
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 43 ]
	jq -e --arg f "$BRIEF" '.type == "schema" and .profile == "brief" and
	    (.fields | join(",")) == $f and .filters_applied == [] and
	    .page == 1 and .page_size == 40' <<< "${lines[0]}"
	jq -e --arg id "$id" '.type == "scan_metadata" and .task_id == $id and
	    .task_name == "x" and
	    .scan_name == "Integration Test - Complete Scan 172.32.0.215" and
	    .scan_type == "untrusted" and .targets == "10.0.0.1" and
	    .status == "completed" and .scanner_pool == "nessus" and
	    .policy_name == "Advanced Scan" and
	    .scan_start == "2025-11-07T18:25:52.000Z" and
	    .scan_end == "2025-11-07T18:28:10.000Z"' <<< "${lines[1]}"
	jq -e '.type == "pagination" and .page == 1 and .page_size == 40 and
	    .total_findings == 40 and .total_pages == 1 and .has_next == false and
	    .next_page == null' <<< "${lines[42]}"
	[ "$(count)" -eq 40 ]
	# The first finding, in full brief form.
	jq -e '.type == "vulnerability" and .host == "172.32.0.215" and
	    .plugin_id == "45590" and .severity == 0 and .port == 0 and
	    .protocol == "tcp" and .risk_factor == "None" and
	    .see_also == ["http://cpe.mitre.org/",
	    "https://nvd.nist.gov/products/cpe"]' <<< "${lines[2]}"
	# Severity counts of the fixture.
	assert_equal "$(of_type vulnerability | jq -r .severity | sort |
	    uniq -c | awk '{print $2 ":" $1}' | paste -sd, -)" \
	    0:16,1:1,2:3,3:9,4:11
}

@test "every line is one JSON object: | jq -c . works line by line" {
	local id line n=0
	id=$(finished "$FIXTURE")
	run -0 bash -c "np-results -p 0 -P full '$id' | jq -c ."
	[ "${#lines[@]}" -eq 43 ]
	np-results -p 0 -P full "$id" > "$BATS_TEST_TMPDIR/out"
	while IFS= read -r line; do
		jq -e 'type == "object" and (.type | type) == "string"' \
		    <<< "$line" > /dev/null
		n=$((n + 1))
	done < "$BATS_TEST_TMPDIR/out"
	[ "$n" -eq 43 ]
}

# -------------------------------------------------------------- profiles

@test "profiles: minimal, summary, brief field sets exactly, in order" {
	local id min sum
	id=$(finished "$FIXTURE")
	min=host,plugin_id,severity,cve,cvss3_base_score,cvss_base_score,exploit_available
	sum=$min,plugin_name,synopsis,port,protocol,risk_factor,vpr_score,epss_score
	run -0 np-results -P minimal "$id"
	jq -e --arg f "$min" '.profile == "minimal" and
	    (.fields | join(",")) == $f' <<< "${lines[0]}"
	[ "$(count)" -eq 40 ]
	has_fields "$min"
	run -0 np-results --profile summary "$id"
	jq -e --arg f "$sum" '.profile == "summary" and
	    (.fields | join(",")) == $f' <<< "${lines[0]}"
	[ "$(count)" -eq 40 ]
	has_fields "$sum"
	run -0 np-results --profile=brief "$id"
	[ "$(count)" -eq 40 ]
	has_fields "$BRIEF"
	# Not just any order: the profile's.
	run -1 has_fields "${BRIEF#host,},host"
}

@test "profile full: every field, attributes first, then children in file order" {
	local id rec
	id=$(finished "$FIXTURE")
	run -0 np-results -P full -p 0 "$id"
	jq -e '.profile == "full" and .fields == "all"' <<< "${lines[0]}"
	[ "$(count)" -eq 40 ]
	rec=$(of_type vulnerability | jq -c 'select(.plugin_id == "187315")')
	assert_equal "$(jq -r 'keys_unsorted | join(",")' <<< "$rec")" \
	    "type,host,host_ip,plugin_id,plugin_name,plugin_family,severity,port,svc_name,protocol,age_of_vuln,cpe,cve,cvss3_base_score,cvss3_temporal_score,cvss3_temporal_vector,cvss3_vector,cvssV3_impactScore,cvss_base_score,cvss_score_source,cvss_temporal_score,cvss_temporal_vector,cvss_vector,description,epss_score,exploit_available,exploit_code_maturity,exploitability_ease,fname,patch_publication_date,plugin_modification_date,plugin_publication_date,plugin_type,product_coverage,risk_factor,script_version,see_also,solution,synopsis,threat_intensity_last_28,threat_recency,threat_sources_last_28,vpr_score,vuln_publication_date,plugin_output"
	jq -e '.host_ip == "172.32.0.215" and .svc_name == "ssh" and
	    .port == 22 and .severity == 2 and .plugin_family == "Misc." and
	    .exploit_available == true and .cvss3_base_score == 5.9 and
	    .cpe == ["cpe:/a:openbsd:openssh"] and .script_version == "1.4" and
	    (.plugin_output | startswith("Supports following"))' <<< "$rec"
	# Text keeps its leading newline (plugin 45590's output has one).
	finding 45590 | jq -e '.plugin_output |
	    startswith("\nFollowing application CPE")'
	# Every child element of every ReportItem shows up somewhere.
	[ "$(of_type vulnerability | jq -r 'keys[]' | sort -u | wc -l)" -eq 59 ]
}

@test "the default profile is the task's schema_profile" {
	local id
	id=$(finished "$FIXTURE" completed "" -s minimal)
	run -0 np-results "$id"
	jq -e '.profile == "minimal"' <<< "${lines[0]}"
	has_fields host,plugin_id,severity,cve,cvss3_base_score,cvss_base_score,exploit_available
	# An option still wins.
	run -0 np-results -P summary "$id"
	jq -e '.profile == "summary"' <<< "${lines[0]}"
}

@test "--fields: a custom set, in the order given, absent names absent" {
	local id
	id=$(finished "$FIXTURE")
	run -0 np-results -F plugin_name,host,no_such,cve,host,type "$id"
	jq -e '.profile == "custom" and
	    .fields == ["plugin_name", "host", "no_such", "cve"]' <<< "${lines[0]}"
	[ "$(count)" -eq 40 ]
	has_fields plugin_name,host,cve
	run -0 np-results --fields=cm:compliance-result,cvssV3_impactScore "$id"
	has_fields cvssV3_impactScore
	local bad
	for bad in '' 'a b' 'x,,y' 'host,' $'caf\xc3\xa9' 'a"b' \
	    "$(printf 'a%.0s' {1..129})"; do
		run --separate-stderr -64 np-results -F "$bad" "$id"
		[ -z "$output" ]
		[[ $stderr == *--fields* ]]
	done
}

# --------------------------------------------------------------- filters

@test "filters: numeric, substring, boolean; counts on the fixture" {
	local id
	id=$(finished "$FIXTURE")
	np-results -p 0 -P full "$id" > "$BATS_TEST_TMPDIR/full"
	run -0 np-results -p 0 -f 'severity>=3' "$id"
	[ "$(count)" -eq 20 ]	# 11 critical + 9 high
	jq -e '.filters_applied == ["severity>=3"]' <<< "${lines[0]}"
	jq -e '.total_findings == 20' <<< "${lines[-1]}"
	of_type vulnerability | jq -se 'all(.[]; .severity >= 3)'
	run -0 np-results -p 0 -f severity==4 "$id"
	[ "$(count)" -eq 11 ]
	run -0 np-results -p 0 -f cve=CVE-2023-48795 "$id"
	[ "$(count)" -eq 1 ]
	finding 187315 | jq -e '.cve == ["CVE-2023-48795"]'
	run -0 np-results -p 0 -f exploit_available=true "$id"
	[ "$(count)" -eq 14 ]
	run -0 np-results -p 0 -f 'cvss3_base_score>9' "$id"
	[ "$(count)" -eq 9 ]
	of_type vulnerability | jq -se 'all(.[]; .cvss3_base_score > 9)'
	# Each form picks what the same condition picks in jq.
	agrees severity=4 '.severity == 4'
	agrees 'severity<1' '.severity < 1'
	agrees 'severity<=1' '.severity <= 1'
	agrees 'severity>3' '.severity > 3'
	agrees 'cvss3_base_score<=5.9' '.cvss3_base_score != null and .cvss3_base_score <= 5.9'
	agrees cvss_base_score==7.5 '.cvss_base_score == 7.5'
	agrees 'epss_score>=0.9' '.epss_score != null and .epss_score >= 0.9'
	agrees 'port>=80' '.port >= 80'
	# Case-insensitive substring, in any element of a list.
	agrees cve=cve-2024-3847 '.cve // [] | any(test("cve-2024-3847"; "i"))'
	agrees plugin_name=APACHE '.plugin_name | test("apache"; "i")'
	agrees svc_name=http '.svc_name | test("http")'
	agrees exploit_available=FALSE '.exploit_available == false'
	agrees exploit_available=true '.exploit_available == true'
	# A text that is a number compares as one.
	agrees plugin_id==19506 '.plugin_id == "19506"'
	agrees 'plugin_id>200000' '.plugin_id | tonumber > 200000'
	# Text that is not a number never matches a numeric filter.
	agrees 'synopsis>0' false
	agrees 'exploit_available>=0' false
	# "=" with an empty text: the findings that have the field.
	agrees see_also= 'has("see_also")'
	agrees 'description=' true
}

@test "filters are ANDed, and see the whole finding before projection" {
	local id want
	id=$(finished "$FIXTURE")
	want=$(np-results -p 0 -P full "$id" | jq -c 'select(.type ==
	    "vulnerability" and .severity == 3 and .exploit_available == true and
	    (.plugin_name | test("mod_"))) | .plugin_id' | paste -sd, -)
	assert_equal "$want" '"193424","153585"'
	run -0 np-results -p 0 -P minimal -f 'severity>=3' -f 'severity<4' \
	    -f exploit_available=true -f plugin_name=mod_ "$id"
	assert_equal "$(of_type vulnerability | jq -c .plugin_id | paste -sd, -)" \
	    "$want"
	# plugin_name is not in minimal, yet it filtered.
	has_fields host,plugin_id,severity,cve,cvss3_base_score,cvss_base_score,exploit_available
	jq -e '.filters_applied == ["severity>=3", "severity<4",
	    "exploit_available=true", "plugin_name=mod_"]' <<< "${lines[0]}"
	# A missing field never matches.
	run -0 np-results -p 0 -f no_such=x "$id"
	[ "$(count)" -eq 0 ]
	jq -e '.total_findings == 0 and .total_pages == 1' <<< "${lines[-1]}"
}

@test "bad filters -> 64 naming the filter" {
	local id bad
	id=$(finished "$FIXTURE")
	for bad in severity '=3' '>=3' 'severity>=' 'severity>=high' \
	    'severity==3x' 'severity<nan' 'exploit_available=yes' \
	    'exploit_available=' 'sev erity=1' 'a/b=1'; do
		run --separate-stderr -64 np-results -f "$bad" "$id"
		[ -z "$output" ]
		[[ $stderr == *"--filter '$bad'"* ]]
		[ "${#stderr_lines[@]}" -eq 1 ]
	done
	# Checked before the task id.
	run -64 np-results -f severity ../x
}

# ---------------------------------------------------------- field values

@test "list fields keep every value; see_also and cpe split into lines" {
	local id
	id=$(finished "$FIXTURE")
	run -0 np-results -p 0 -P full "$id"
	finding 201198 | jq -e '.cve == ["CVE-2024-36387", "CVE-2024-38472", "CVE-2024-38473",
	    "CVE-2024-38474", "CVE-2024-38475", "CVE-2024-38476",
	    "CVE-2024-38477", "CVE-2024-39573"]'
	# Every value of the file, across all findings.
	[ "$(of_type vulnerability | jq -r '.cve[]?' | wc -l)" -eq 56 ]
	[ "$(of_type vulnerability | jq -r '.cve[]?' | wc -l)" -eq \
	    "$(grep -c '<cve>' "$FIXTURE")" ]
	[ "$(of_type vulnerability | jq -r '.xref[]?' | wc -l)" -eq \
	    "$(grep -c '<xref>' "$FIXTURE")" ]
	[ "$(of_type vulnerability | jq -r '.iava[]?' | wc -l)" -eq \
	    "$(grep -c '<iava>' "$FIXTURE")" ]
	[ "$(of_type vulnerability | jq -r '.iavt[]?' | wc -l)" -eq 4 ]
	# Lists are arrays even with one value.
	finding 187315 | jq -e '.cve == ["CVE-2023-48795"] and
	    .see_also == ["https://terrapin-attack.com/"]'
	finding 150280 | jq -e '.cpe == ["cpe:/a:apache:httpd", "cpe:/a:apache:http_server"]'
	finding 153584 | jq -e '.see_also == ["https://downloads.apache.org/httpd/CHANGES_2.4",
	    "https://httpd.apache.org/security/vulnerabilities_24.html"]'
}

@test "scores are printed exactly as in the file" {
	local id got want
	id=$(finished "$FIXTURE")
	run -0 np-results -p 0 -P full "$id"
	assert_output --partial '"cvss3_base_score":5.9,'
	assert_output --partial '"cvss_base_score":5.0,'
	assert_output --partial '"cvss_base_score":10.0,'
	assert_output --partial '"epss_score":0.0004,'
	refute_output --partial 00000000
	local tag
	for tag in cvss_base_score cvss3_base_score cvss_temporal_score \
	    cvss3_temporal_score vpr_score epss_score cvssV3_impactScore; do
		want=$(grep -o "<$tag>[^<]*" "$FIXTURE" | sed 's/.*>//' | sort)
		got=$(grep -o "\"$tag\":[^,}]*" <<< "$output" | sed 's/.*://' | sort)
		assert_equal "$got" "$want"
	done
	# Numbers and booleans are JSON numbers and booleans.
	of_type vulnerability | jq -se 'all(.[]; (.severity | type) == "number"
	    and (.port | type) == "number" and (.plugin_id | type) == "string"
	    and (.cvss3_base_score | type) != "string")'
	[ "$(of_type vulnerability | jq -r '.exploit_available | type' |
	    sort | uniq -c | awk '{print $2 $1}' | paste -sd, -)" = \
	    boolean19,null21 ]
}

@test "non-ASCII text round-trips as UTF-8; controls and quotes escaped" {
	local id f
	f=$BATS_TEST_TMPDIR/utf8.nessus
	small_export "$f" <<-'XML'
	<ReportItem port="80" svc_name="www" protocol="tcp" severity="2" pluginID="9" pluginName="Caf&#233; &amp; &quot;漢字&quot;" pluginFamily="Web">
	<plugin_output>café 漢字 naïve	tab
	back\slash "q" &#13;</plugin_output>
	<cvss3_base_score> 7.50 </cvss3_base_score>
	<cvss_base_score>N/A</cvss_base_score>
	<in_the_news>maybe</in_the_news>
	<exploit_available>True</exploit_available>
	<plugin_type>remote</plugin_type><plugin_type>local</plugin_type>
	<description><![CDATA[<b>raw</b> & kept]]></description>
	<cm:compliance-result>PASSED</cm:compliance-result>
	<cve/><cve> CVE-1 </cve>
	</ReportItem>
	XML
	id=$(finished "$f")
	run --separate-stderr -0 np-results -P full "$id"
	[ -z "$stderr" ]
	[ "$(count)" -eq 1 ]
	# UTF-8 as is, not \u escapes.
	assert_output --partial '"plugin_output":"café 漢字 naïve\ttab\nback\\slash \"q\" \r"'
	assert_output --partial '"cvss3_base_score":7.50,'
	of_type vulnerability | jq -e '
	    .plugin_output == "café 漢字 naïve\ttab\nback\\slash \"q\" \r" and
	    .plugin_name == "Café & \"漢字\"" and .host_ip == "10.0.0.9" and
	    .cvss_base_score == null and .in_the_news == null and
	    .exploit_available == true and
	    .plugin_type == ["remote", "local"] and
	    .description == "<b>raw</b> & kept" and
	    ."cm:compliance-result" == "PASSED" and .cve == ["CVE-1"]'
	run -0 bash -c "np-results -P full '$id' | jq -r 'select(.type ==
	    \"vulnerability\") | .plugin_output'"
	assert_output "$(printf 'café 漢字 naïve\ttab\nback\\slash "q" \r')"
	run -0 np-results -p 0 -f plugin_output=NAÏVE "$id"
	[ "$(count)" -eq 0 ]	# only ASCII letters fold
	run -0 np-results -p 0 -f plugin_output=naïve "$id"
	[ "$(count)" -eq 1 ]
}

@test "several hosts, empty ones, odd attributes" {
	local id f
	f=$BATS_TEST_TMPDIR/hosts.nessus
	cat > "$f" <<-'XML'
	<?xml version="1.0"?>
	<NessusClientData_v2><Report name="r">
	<ReportHost name="empty"/>
	<ReportHost name="a"><HostProperties><tag name="host-fqdn">a.example</tag>
	<tag name="netbios-name">A</tag></HostProperties>
	<ReportItem port=" 22 " severity="3" pluginID="1" pluginName="one" pluginFamily="f" protocol="tcp" svc_name="ssh"><plugin_name>ignored</plugin_name><severity>0</severity></ReportItem>
	<ReportItem port="x" severity="022" pluginID="2"><plugin_name>child</plugin_name></ReportItem>
	</ReportHost>
	<ReportHost name="b"><ReportItem pluginID="3" severity="+4"><port>9</port></ReportItem></ReportHost>
	</Report></NessusClientData_v2>
	XML
	id=$(finished "$f")
	run --separate-stderr -0 np-results -P full "$id"
	[ -z "$stderr" ]
	[ "$(count)" -eq 3 ]
	# A child never overrides an attribute's field.
	finding 1 | jq -e '.host == "a" and .host_fqdn == "a.example" and
	    .netbios_name == "A" and .port == 22 and .severity == 3 and
	    .plugin_name == "one"'
	# 022 is no JSON number: printed again as 22; a port "x" is null.
	# With no attribute, a child of that name gives the field.
	finding 2 | jq -e '.host == "a" and .port == null and .severity == 22 and
	    .plugin_name == "child"'
	finding 3 | jq -e '.host == "b" and .host_fqdn == null and
	    .severity == 4 and .port == 9'
	run -0 np-results -f 'port==22' "$id"
	[ "$(count)" -eq 1 ]
}

@test "entities are never expanded, external ones never fetched" {
	local id f
	f=$BATS_TEST_TMPDIR/xxe.nessus
	small_export "$f" '<!DOCTYPE NessusClientData_v2 [
	<!ENTITY a "AAAAAAAAAA">
	<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
	<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
	<!ENTITY x SYSTEM "file:///etc/passwd">
	]>' <<-'XML'
	<ReportItem port="0" severity="0" pluginID="1" pluginName="n" pluginFamily="f" protocol="tcp" svc_name="general">
	<plugin_output>[&b;][&x;]</plugin_output>
	</ReportItem>
	XML
	id=$(finished "$f")
	run -0 np-results -P full "$id"
	of_type vulnerability | jq -e '.plugin_output == "[][]"'
	refute_output --partial AAAA
	refute_output --partial root:
}

# ------------------------------------------------------------ pagination

@test "pagination: sizes clamped, pages, has_next, next_page" {
	local id all paged p
	id=$(finished "$FIXTURE")
	run -0 np-results -s 5 "$id"
	jq -e '.page == 1 and .page_size == 10' <<< "${lines[0]}"
	[ "$(count)" -eq 10 ]
	jq -e '.page == 1 and .page_size == 10 and .total_findings == 40 and
	    .total_pages == 4 and .has_next == true and .next_page == 2' \
	    <<< "${lines[-1]}"
	run -0 np-results -p 3 -s 10 "$id"
	jq -e '.has_next == true and .next_page == 4' <<< "${lines[-1]}"
	run -0 np-results -p 4 --page-size 10 "$id"
	[ "$(count)" -eq 10 ]
	jq -e '.page == 4 and .has_next == false and .next_page == null and
	    .total_pages == 4' <<< "${lines[-1]}"
	run -0 np-results -s 1000 "$id"
	jq -e '.page_size == 100 and .total_pages == 1' <<< "${lines[-1]}"
	run -0 np-results -p 2 -s 15 "$id"
	[ "$(count)" -eq 15 ]
	run -0 np-results -p 3 -s 15 "$id"
	[ "$(count)" -eq 10 ]
	jq -e '.total_pages == 3 and .has_next == false' <<< "${lines[-1]}"
	# Page 0 is everything at once.
	run -0 np-results -p 0 "$id"
	[ "$(count)" -eq 40 ]
	jq -e '.page == 0 and .page_size == null' <<< "${lines[0]}"
	jq -e '.page == 0 and .page_size == null and .total_findings == 40 and
	    .total_pages == 1 and .has_next == false and .next_page == null' \
	    <<< "${lines[-1]}"
	# The pages, put together, are page 0.
	all=$(of_type vulnerability)
	paged=$(for p in 1 2 3 4; do
		np-results -p "$p" -s 10 "$id" | jq -c 'select(.type == "vulnerability")'
	done)
	assert_equal "$paged" "$all"
	# Filters count before paging.
	run -0 np-results -f 'severity>=3' -s 10 -p 2 "$id"
	[ "$(count)" -eq 10 ]
	jq -e '.total_findings == 20 and .total_pages == 2 and
	    .has_next == false' <<< "${lines[-1]}"
}

@test "a page past the end: schema, metadata, pagination, no finding, 0" {
	local id
	id=$(finished "$FIXTURE")
	run --separate-stderr -0 np-results -p 5 -s 10 "$id"
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 3 ]
	jq -e '.type == "schema" and .page == 5' <<< "${lines[0]}"
	jq -e '.type == "scan_metadata"' <<< "${lines[1]}"
	jq -e '.type == "pagination" and .page == 5 and .total_findings == 40 and
	    .total_pages == 4 and .has_next == false and .next_page == null' \
	    <<< "${lines[2]}"
	run -0 np-results -p 99999999 "$id"
	[ "${#lines[@]}" -eq 3 ]
}

# ------------------------------------------------------------ task states

@test "tasks without results -> 1, naming the state; nothing on stdout" {
	local id st
	id=$(finished "" running)
	run --separate-stderr -1 np-results "$id"
	[ -z "$output" ]
	assert_equal "$stderr" "np-results: task $id is running (no results yet)"
	id=$(finished "$FIXTURE" queued)
	run --separate-stderr -1 np-results "$id"
	[[ $stderr == *"task $id is queued (no results yet)"* ]]
	id=$(finished "$FIXTURE" failed scanner_unreachable)
	run --separate-stderr -1 np-results "$id"
	[ -z "$output" ]
	[[ $stderr == *"task $id failed (scanner_unreachable)"* ]]
	id=$(finished "$FIXTURE" failed download_invalid)
	run -1 np-results "$id"
	for st in timeout cancelled; do
		id=$(finished "$FIXTURE" "$st")
		run --separate-stderr -1 np-results "$id"
		[ -z "$output" ]
		[[ $stderr == *"task $id "*"no results"* ]]
	done
	[[ $stderr == *cancelled* ]]
	# Completed, but the export is gone.
	id=$(finished "" completed)
	run --separate-stderr -1 np-results "$id"
	[ -z "$output" ]
	[[ $stderr == *"no export (scan.nessus)"* ]]
}

@test "failed validation (auth_failed, privilege_insufficient, empty_scan) still has results" {
	local id r f
	for r in auth_failed privilege_insufficient; do
		id=$(finished "$FIXTURE" failed "$r")
		run --separate-stderr -0 np-results -f 'severity>=3' "$id"
		[ -z "$stderr" ]
		[ "$(count)" -eq 20 ]
		jq -e --arg r "$r" '.status == "failed" and .failure_reason == $r' \
		    <<< "${lines[1]}"
	done
	f=$BATS_TEST_TMPDIR/empty.nessus
	printf '<?xml version="1.0"?>\n<NessusClientData_v2><Report name="e">' > "$f"
	printf '</Report></NessusClientData_v2>\n' >> "$f"
	id=$(finished "$f" failed empty_scan)
	run -0 np-results "$id"
	[ "${#lines[@]}" -eq 3 ]
	jq -e '.scan_name == "e"' <<< "${lines[1]}"
	jq -e '.total_findings == 0 and .total_pages == 1' <<< "${lines[2]}"
}

@test "reading results updates last_accessed_at" {
	local id f before
	id=$(finished "$FIXTURE")
	f=$NP_DATA_DIR/tasks/$id/task.json
	before=$(jq -er .last_accessed_at "$f")
	sleep 0.05
	run -0 np-results "$id"
	[[ $(jq -er .last_accessed_at "$f") > $before ]]
	# A record it may not write is still read (root may write anything).
	if [ "$(id -u)" -ne 0 ]; then
		chmod 500 "$NP_DATA_DIR/tasks/$id"
		run -0 np-results "$id"
		chmod 700 "$NP_DATA_DIR/tasks/$id"
	fi
}

@test "unknown id -> 66, malformed -> 65" {
	local bad
	run --separate-stderr -66 np-results 20261123T185000Z-0123456789abcdef
	[ -z "$output" ]
	[[ $stderr == *20261123T185000Z-0123456789abcdef* ]]
	for bad in ../x a/b "" 20261123T185000Z-../../etc/pass \
	    20261123T185000Z-0123456789ABCDEF; do
		run --separate-stderr -65 np-results "$bad"
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
	done
}

@test "usage errors -> 64; --help -> 0 on stdout" {
	local id
	id=$(finished "$FIXTURE")
	run --separate-stderr -64 np-results
	[ -z "$output" ]
	[[ $stderr == *usage:* ]]
	run --separate-stderr -64 np-results -P brief -F host "$id"
	[ -z "$output" ]
	[[ $stderr == *--profile*--fields* ]]
	run -64 np-results -F host -P brief "$id"
	run -64 np-results -P brief -P full "$id"
	run --separate-stderr -64 np-results -P huge "$id"
	[[ $stderr == *huge* ]]
	run -64 np-results "$id" extra
	run -64 np-results -p -1 "$id"
	run -64 np-results -p x "$id"
	run -64 np-results -s x "$id"
	run -64 np-results --no-such "$id"
	# Before the id is looked at.
	run -64 np-results -P huge 20261123T185000Z-0123456789abcdef
	run -64 np-results -P huge ../x
	run --separate-stderr -0 np-results --help
	[ -z "$stderr" ]
	[[ $output == *usage:*np-results* ]]
	run -0 np-results -V
	[[ $output == np-results\ * ]]
}

# -------------------------------------------------------- broken exports

@test "a truncated export -> 74 after the findings before the cut" {
	local id full cut
	id=$(finished "$FIXTURE")
	full=$(np-results -p 0 -P full "$id" | jq -c 'select(.type ==
	    "vulnerability")' | head -n 20)
	# Cut inside the 21st ReportItem.
	cut=$(grep -b -o '<ReportItem ' "$FIXTURE" | sed -n 21p | cut -d: -f1)
	head -c $((cut + 300)) "$FIXTURE" > "$NP_DATA_DIR/tasks/$id/scan.nessus"
	run --separate-stderr -74 np-results -p 0 -P full "$id"
	[ "${#lines[@]}" -eq 22 ]
	jq -e '.type == "schema"' <<< "${lines[0]}"
	jq -e '.type == "scan_metadata"' <<< "${lines[1]}"
	assert_equal "$(of_type vulnerability)" "$full"
	[ -z "$(of_type pagination)" ]
	[[ $stderr == *scan.nessus*line*truncated\ or\ corrupt* ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
	# Cut in the middle of the policy: no finding, still 74.
	head -c 100000 "$FIXTURE" > "$NP_DATA_DIR/tasks/$id/scan.nessus"
	run --separate-stderr -74 np-results "$id"
	[ "${#lines[@]}" -eq 1 ]
}

@test "an export that is empty, not XML or not Nessus -> 74" {
	local id f
	id=$(finished "$FIXTURE")
	f=$NP_DATA_DIR/tasks/$id/scan.nessus
	: > "$f"
	run --separate-stderr -74 np-results "$id"
	[ -z "$output" ]
	[[ $stderr == *empty* ]]
	printf 'not xml at all\n' > "$f"
	run --separate-stderr -74 np-results "$id"
	[[ $stderr == *scan.nessus* ]]
	printf '<?xml version="1.0"?>\n<html><body/></html>\n' > "$f"
	run --separate-stderr -74 np-results "$id"
	[[ $stderr == *"not a .nessus v2 export"* ]]
	rm "$f"
	mkdir "$f"
	run --separate-stderr -74 np-results "$id"
	[ -z "$output" ]
}

@test "standard output that cannot be written -> 74" {
	local id
	id=$(finished "$FIXTURE")
	[ -w /dev/full ] || skip "no /dev/full"
	run --separate-stderr -74 bash -c "np-results -p 0 '$id' > /dev/full"
	[[ $stderr == *"standard output: No space left on device"* ]]
}

# ------------------------------------------------------------- streaming

@test "streaming: first finding before the end, flat memory on a big export" {
	local id f
	id=$(finished "$FIXTURE")
	f=$NP_DATA_DIR/tasks/$id/scan.nessus
	big_export 440 "$f"	# about 52 MB, 17,600 findings
	[ "$(stat -c %s "$f")" -gt 50000000 ]
	# head exits after 3 lines; np-results must not read on to the end.
	run -0 timeout 20 bash -c "np-results -p 0 -P full '$id' | head -n 3"
	[ "${#lines[@]}" -eq 3 ]
	jq -e '.type == "vulnerability"' <<< "${lines[2]}"
	# Time to the first finding against the whole run, and peak RSS
	# (with no ASan quarantine, which keeps freed memory on purpose).
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0 \
	    run -0 python3 - "$(command -v np-results)" "$id" <<-'PY'
	import resource, subprocess, sys, time
	t0 = time.monotonic()
	p = subprocess.Popen([sys.argv[1], "-p", "0", "-P", "full", sys.argv[2]],
	                     stdout=subprocess.PIPE)
	first, n = None, 0
	for line in p.stdout:
	    if first is None and line.startswith(b'{"type":"vulnerability"'):
	        first = time.monotonic() - t0
	    n += 1
	rc = p.wait()
	total = time.monotonic() - t0
	rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
	print(rc, n, int(first * 1000), int(total * 1000), rss)
	PY
	read -r rc n first total rss <<< "$output"
	echo "first finding ${first} ms of ${total} ms; peak RSS ${rss} KiB" >&3
	[ "$rc" -eq 0 ]
	[ "$n" -eq $((440 * 40 + 3)) ]
	[ "$first" -lt $((total / 4)) ]
	# The export is 52 MB; a tree of it would be several times that.
	[ "$rss" -lt 40000 ]
	run -0 np-results -f 'severity>=3' "$id"
	jq -e '.total_findings == 8800 and .total_pages == 220' <<< "${lines[-1]}"
}
