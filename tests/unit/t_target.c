/* Unit tests: the target grammar and CIDR-aware matching. */
#include <string.h>

#include "np.h"
#include "tap.h"

static int
parses(const char *s)
{
	np_target *t;
	size_t n;
	np_error err;
	int rc = np_targets_parse(s, &t, &n, &err);

	if (rc == 0)
		np_targets_free(t, n);
	return rc == 0;
}

static char *
canon(const char *s)
{
	static char buf[512];
	np_target *t;
	size_t n;
	char *c;

	if (np_targets_parse(s, &t, &n, NULL) != 0)
		return "(error)";
	c = np_targets_canon(t, n);
	snprintf(buf, sizeof(buf), "%s", c);
	free(c);
	np_targets_free(t, n);
	return buf;
}

static int
overlap(const char *a, const char *b)
{
	np_target *ta, *tb;
	size_t na, nb;
	int r;

	if (np_targets_parse(a, &ta, &na, NULL) || np_targets_parse(b, &tb,
	    &nb, NULL))
		return -1;
	r = np_targets_overlap(ta, na, tb, nb);
	np_targets_free(ta, na);
	np_targets_free(tb, nb);
	return r;
}

int
main(void)
{
	np_error err;
	np_target *t;
	size_t n;

	plan(34);
	ok(parses("10.0.0.1"), "ipv4");
	ok(parses("10.0.0.0/24"), "cidr");
	ok(parses("10.0.0.1-10.0.0.20"), "full range");
	ok(parses("10.0.0.1-20"), "short range");
	ok(parses("2001:db8::1"), "ipv6");
	ok(parses("2001:db8::/64"), "ipv6 cidr");
	ok(parses("host-1.example.COM"), "hostname");
	ok(parses("a, b  c,d\te"), "mixed separators");
	ok(!parses("10.0.0.256"), "octet 256");
	ok(!parses("10.0.0.0/33"), "prefix 33");
	ok(!parses("10.0.0.0/"), "empty prefix");
	ok(!parses("10.0.0.9-10.0.0.1"), "backwards range");
	ok(!parses("10.0.0.1-256"), "short range past 255");
	ok(!parses("10.0.0.1-2001:db8::1"), "mixed family range");
	ok(!parses("-host"), "leading hyphen");
	ok(!parses("host_name"), "underscore");
	ok(!parses("a;rm -rf /"), "shell metacharacters");
	ok(!parses("$(id)"), "command substitution");
	ok(!parses(""), "empty");
	ok(!parses(" , "), "only separators");
	ok(np_targets_parse("10.0.0.1 bad!tok", &t, &n, &err) == NP_EDATA &&
	    strstr(err.msg, "'bad!tok'"), "error names the token: %s", err.msg);
	ok(!strcmp(canon("10.0.0.5/24"), "10.0.0.0/24"), "cidr host bits cleared");
	ok(!strcmp(canon("Host.Example.com."), "host.example.com"),
	    "hostname lower-cased, trailing dot dropped");
	ok(!strcmp(canon("10.0.0.1, 10.0.0.1 10.0.0.2"), "10.0.0.1,10.0.0.2"),
	    "duplicates dropped");
	ok(!strcmp(canon("2001:DB8:0::1"), "2001:db8::1"), "ipv6 canonical");

	ok(overlap("10.1.2.3", "10.1.0.0/16") == 1, "ip in cidr");
	ok(overlap("10.1.0.0/16", "10.1.2.3") == 1, "cidr holds ip");
	ok(overlap("10.1.0.0/16", "10.1.255.0/24") == 1, "overlapping cidrs");
	ok(overlap("10.1.0.0/16", "10.2.0.0/16") == 0, "disjoint cidrs");
	ok(overlap("10.0.0.5", "10.0.0.1-10") == 1, "ip in range");
	ok(overlap("HOST.example.com", "host.EXAMPLE.com") == 1,
	    "hostnames case-insensitive");
	ok(overlap("host.example.com", "10.0.0.1") == 0, "host never matches ip");
	ok(overlap("2001:db8::5", "2001:db8::/64") == 1, "ipv6 in cidr");
	ok(overlap("10.0.0.1", "::ffff:10.0.0.2") == 0, "families kept apart");
	done();
}
