/*
 * report.c: reading .nessus (v2) exports as a stream with libxml2's
 * xmlReader, so memory stays flat whatever the file size. Entities are
 * never substituted and nothing is fetched from the network (XXE-inert).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <libxml/xmlreader.h>

#include "np.h"

static void
quiet(void *arg, const char *msg, xmlParserSeverities sev,
    xmlTextReaderLocatorPtr loc)
{
	(void)arg;
	(void)msg;
	(void)sev;
	(void)loc;
}

/*
 * Checks that path is a well-formed .nessus v2 file with at least one
 * ReportHost. 0 when it is; NP_NO with a reason word in err->msg
 * ("xml_invalid: ...", "not_nessus", "empty_scan") when not; NP_ENOINPUT
 * when the file is missing.
 */
int
np_report_check(const char *path, long *hosts, np_error *err)
{
	xmlTextReaderPtr r;
	struct stat st;
	int ret, depth0 = 1;
	long n = 0;

	*hosts = 0;
	if (stat(path, &st) == -1)
		return np_seterr(err, NP_ENOINPUT, "%s: %s", path, strerror(errno));
	r = xmlReaderForFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
	    XML_PARSE_NOWARNING | XML_PARSE_HUGE);
	if (r == NULL)
		return np_seterr(err, NP_NO, "xml_invalid: cannot read %s", path);
	xmlTextReaderSetErrorHandler(r, quiet, NULL);
	while ((ret = xmlTextReaderRead(r)) == 1) {
		const xmlChar *name;

		if (xmlTextReaderNodeType(r) != XML_READER_TYPE_ELEMENT)
			continue;
		name = xmlTextReaderConstLocalName(r);
		if (depth0) {
			depth0 = 0;
			if (!xmlStrEqual(name, BAD_CAST "NessusClientData_v2")) {
				xmlFreeTextReader(r);
				return np_seterr(err, NP_NO, "not_nessus: root element "
				    "is not NessusClientData_v2");
			}
		} else if (xmlStrEqual(name, BAD_CAST "ReportHost"))
			n++;
	}
	xmlFreeTextReader(r);
	if (ret != 0)
		return np_seterr(err, NP_NO, "xml_invalid: %s is not well-formed "
		    "XML (truncated download?)", path);
	if (depth0)
		return np_seterr(err, NP_NO, "xml_invalid: %s holds no XML", path);
	*hosts = n;
	if (n == 0)
		return np_seterr(err, NP_NO, "empty_scan: no ReportHost in %s", path);
	return 0;
}
