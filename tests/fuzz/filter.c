/*
 * Fuzz target "filter": np-results' query parsers (lib/results.c
 * np_results_filter, np_results_fields, np_results_profile,
 * np_results_page) and the matching of the filters against findings.
 *
 * The input is one query per line, as np-results' options are:
 *   FILTER              np_results_filter (-f), e.g. severity>=3
 *   @fields LIST        np_results_fields (-F)
 *   @profile NAME       np_results_profile (-P)
 *   @page N SIZE        np_results_page (-p, -s)
 * When every line is accepted, np_results_write runs the query on a
 * small fixed export whose findings hold every kind of field (text,
 * integer, number, boolean, list, lines, attributes and children), and
 * its output is checked to be NDJSON ending with the pagination line.
 */
#include "fuzz.h"

static np_config *cfg;
static char nessus[PATH_MAX + 32], task_json[PATH_MAX + 32];

static const char record[] =
    "{\"task_id\":\"" FZ_TASK "\",\"name\":\"x\",\"targets\":\"10.0.0.1\","
    "\"scan_type\":\"untrusted\",\"scanner_pool\":\"nessus\","
    "\"status\":\"completed\",\"schema_profile\":\"brief\"}\n";

static const char export_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<NessusClientData_v2>\n<Policy><policyName>Advanced Scan</policyName>"
    "<Preferences><ServerPreferences><preference><name>scan_start_timestamp"
    "</name><value>1762539952</value></preference></ServerPreferences>"
    "</Preferences></Policy>\n"
    "<Report name=\"small\" xmlns:cm=\"http://www.nessus.org/cm\">\n"
    "<ReportHost name=\"h1\"><HostProperties>\n"
    "<tag name=\"host-ip\">10.0.0.9</tag><tag name=\"host-fqdn\">h1.example"
    "</tag><tag name=\"operating-system\">Linux</tag></HostProperties>\n"
    "<ReportItem port=\"80\" svc_name=\"www\" protocol=\"tcp\" severity=\"4\" "
    "pluginID=\"150280\" pluginName=\"Apache 2.4.x &lt; 2.4.47\" "
    "pluginFamily=\"Web Servers\">\n"
    "<cpe>cpe:/a:apache:httpd\ncpe:/a:apache:http_server</cpe>\n"
    "<cve>CVE-2019-17567</cve><cve>CVE-2021-26691</cve>\n"
    "<cvss3_base_score>9.8</cvss3_base_score><cvss_base_score>7.5"
    "</cvss_base_score><epss_score>0.7159</epss_score>"
    "<vpr_score>6.7</vpr_score>\n"
    "<exploit_available>true</exploit_available>"
    "<description>The version of Apache httpd.</description>\n"
    "<see_also>https://downloads.apache.org/httpd/CHANGES_2.4\n"
    "https://httpd.apache.org/security/vulnerabilities_24.html</see_also>\n"
    "<synopsis>Multiple vulnerabilities.</synopsis><risk_factor>High"
    "</risk_factor><solution>Upgrade.</solution>\n"
    "<plugin_output>\n  URL : http://10.0.0.9/\n</plugin_output>\n"
    "</ReportItem>\n"
    "<ReportItem port=\"22\" svc_name=\"ssh\" protocol=\"tcp\" severity=\"2\" "
    "pluginID=\"187315\" pluginName=\"SSH Terrapin (CVE-2023-48795)\" "
    "pluginFamily=\"Misc.\"><cve>CVE-2023-48795</cve>"
    "<cvss3_base_score>5.9</cvss3_base_score><cvss_base_score>5.0"
    "</cvss_base_score><exploit_available>false</exploit_available>"
    "<in_the_news>maybe</in_the_news><iava>2024-A-0001</iava>"
    "<xref>CWE:354</xref><cm:compliance-result>PASSED"
    "</cm:compliance-result></ReportItem>\n"
    "<ReportItem port=\" 0 \" svc_name=\"general\" protocol=\"icmp\" "
    "severity=\"022\" pluginID=\"10114\" pluginName=\"Caf&#233; &amp; "
    "&quot;\xe6\xbc\xa2\xe5\xad\x97&quot;\" pluginFamily=\"General\">"
    "<plugin_output>caf\xc3\xa9 na\xc3\xafve\ttab\nback\\slash \"q\" &#13;"
    "</plugin_output><cvss_base_score>N/A</cvss_base_score>"
    "<plugin_type>remote</plugin_type><plugin_type>local</plugin_type>"
    "<description><![CDATA[<b>raw</b> & kept]]></description>"
    "<cve/><cve> CVE-1 </cve><port>9</port></ReportItem>\n"
    "<ReportItem pluginID=\"19506\" severity=\"+0\" port=\"x\">"
    "<plugin_output>Credentialed checks : no</plugin_output></ReportItem>\n"
    "</ReportHost>\n"
    "<ReportHost name=\"empty\"/>\n"
    "<ReportHost name=\"b\"><ReportItem pluginID=\"3\" severity=\"1\">"
    "<port>9</port><epss_score>1e-3</epss_score></ReportItem></ReportHost>\n"
    "</Report>\n</NessusClientData_v2>\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[PATH_MAX];

	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("filter");
	cfg = fz_test_config();
	fz_task_dir(cfg, dir, sizeof(dir));
	snprintf(task_json, sizeof(task_json), "%s/task.json", dir);
	snprintf(nessus, sizeof(nessus), "%s/scan.nessus", dir);
	fz_write_str(nessus, export_xml, 0600);
	return 0;
}

static void
check_ndjson(const char *out, size_t len)
{
	const char *p = out, *nl, *end = out + len;
	json_error_t je;
	json_t *v = NULL;

	if (len == 0 || out[len - 1] != '\n')
		abort();
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		json_decref(v);
		v = json_loadb(p, (size_t)(nl - p), 0, &je);
		if (!json_is_object(v)) {
			fprintf(stderr, "a line that is not a JSON object (%s): "
			    "%.*s\n", je.text, (int)(nl - p), p);
			abort();
		}
	}
	if (!type_is(v, "pagination"))
		abort();
	json_decref(v);
}

/* One line of the input; 0 when accepted. */
static int
query(np_results *q, char *line, np_error *err)
{
	long page, size;
	char *end;

	if (strncmp(line, "@fields ", 8) == 0)
		return np_results_fields(q, line + 8, err);
	if (strncmp(line, "@profile ", 9) == 0)
		return np_results_profile(q, line + 9, err);
	if (strncmp(line, "@page ", 6) == 0) {
		errno = 0;
		page = strtol(line + 6, &end, 10);
		size = strtol(end, NULL, 10);
		if (errno)
			return np_seterr(err, NP_EUSAGE, "@page: bad number");
		return np_results_page(q, page, size, err);
	}
	return np_results_filter(q, line, err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fz_strdup(data, size), *p = s, *line, *out = NULL;
	np_results *q = np_results_new();
	size_t len = 0;
	np_error err;
	FILE *f;
	int rc = 0;

	while (rc == 0 && (line = strsep(&p, "\n")) != NULL) {
		memset(&err, 0, sizeof(err));
		rc = query(q, line, &err);
		fz_say("filter: '%s': %d %s", line, rc, rc ? err.msg : "ok");
		if (rc != 0 &&
		    (rc != NP_EUSAGE || err.msg[0] == '\0'))
			abort();
	}
	if (rc == 0) {
		fz_write_str(task_json, record, 0600);
		fz_check((f = open_memstream(&out, &len)) != NULL,
		    "open_memstream");
		rc = np_results_write(q, cfg, FZ_TASK, f, &err);
		fclose(f);
		if (rc != 0) {
			fprintf(stderr, "np_results_write: %d (%s)\n", rc, err.msg);
			abort();
		}
		check_ndjson(out, len);
		free(out);
	}
	np_results_free(q);
	free(s);
	return 0;
}
