/*
 * target.c: the scan target grammar and matching.
 *
 * A target list is tokens separated by commas and/or white space; each
 * token is an IPv4 or IPv6 address, a CIDR block, a dash range
 * (10.0.0.1-10.0.0.9 or 10.0.0.1-9) or a hostname (RFC 1123). Anything
 * else is refused, naming the token: targets end up in a scanner's
 * text_targets, so nothing loose gets through. Every token is kept as an
 * inclusive address interval so that matching is CIDR-aware both ways.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

#define TARGETS_MAX_LEN 65536
#define TARGETS_MAX 4096

static size_t
alen(int kind)
{
	return kind == NP_T_IP4 ? 4 : 16;
}

static int
addr(const char *s, int *kind, unsigned char out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*kind = NP_T_IP4;
		return 0;
	}
	if (strchr(s, ':') && inet_pton(AF_INET6, s, out) == 1) {
		*kind = NP_T_IP6;
		return 0;
	}
	return -1;
}

static bool
hostname_ok(const char *s)
{
	size_t n = strlen(s), lab = 0, i;
	const char *last;
	bool digits = true;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-')
			return false;
		if (c == '-' && lab == 0)
			return false;
		if (++lab > 63)
			return false;
	}
	if (lab == 0 || s[n - 1] == '-')
		return false;
	/* An all-numeric last label is a mistyped address, not a name. */
	last = strrchr(s, '.');
	for (last = last ? last + 1 : s; *last; last++)
		if (!isdigit((unsigned char)*last))
			digits = false;
	return !digits;
}

static void
text_of(np_target *t, int prefix)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN], buf[128];
	int af = t->kind == NP_T_IP4 ? AF_INET : AF_INET6;

	inet_ntop(af, t->lo, a, sizeof(a));
	inet_ntop(af, t->hi, b, sizeof(b));
	if (prefix >= 0)
		snprintf(buf, sizeof(buf), "%s/%d", a, prefix);
	else if (memcmp(t->lo, t->hi, 16) == 0)
		snprintf(buf, sizeof(buf), "%s", a);
	else
		snprintf(buf, sizeof(buf), "%s-%s", a, b);
	t->text = np_xstrdup(buf);
}

static int
parse_one(char *tok, np_target *t)
{
	char *slash, *dash;
	long v;
	size_t i, nb;

	memset(t, 0, sizeof(*t));
	if ((slash = strchr(tok, '/')) != NULL) {
		*slash = '\0';
		if (addr(tok, &t->kind, t->lo) == -1 ||
		    np_parse_int(slash + 1, 0, t->kind == NP_T_IP4 ? 32 : 128,
		    &v) == -1 || !isdigit((unsigned char)slash[1]))
			return -1;
		nb = alen(t->kind);
		/* Host bits set (10.0.0.5/24) mean the whole block, as in Nessus. */
		for (i = 0; i < nb; i++) {
			long bits = v - (long)i * 8;
			unsigned char mask = bits >= 8 ? 0xff : bits <= 0 ? 0 :
			    (unsigned char)(0xff << (8 - bits));
			t->lo[i] &= mask;
			t->hi[i] = t->lo[i] | (unsigned char)~mask;
		}
		text_of(t, (int)v);
		return 0;
	}
	if ((dash = strchr(tok, '-')) != NULL && addr(tok, &t->kind, t->lo) == -1) {
		unsigned char hi[16];
		int k2;

		*dash = '\0';
		if (addr(tok, &t->kind, t->lo) == -1) {
			*dash = '-';
			goto host;
		}
		if (addr(dash + 1, &k2, hi) == 0) {
			if (k2 != t->kind)
				return -1;
		} else if (t->kind == NP_T_IP4 &&
		    np_parse_int(dash + 1, 0, 255, &v) == 0 &&
		    isdigit((unsigned char)dash[1])) {
			memcpy(hi, t->lo, 16);
			hi[3] = (unsigned char)v;
		} else
			return -1;
		if (memcmp(t->lo, hi, 16) > 0)
			return -1;
		memcpy(t->hi, hi, 16);
		text_of(t, -1);
		return 0;
	}
	if (addr(tok, &t->kind, t->lo) == 0) {
		memcpy(t->hi, t->lo, 16);
		text_of(t, -1);
		return 0;
	}
host:
	i = strlen(tok);
	if (i > 1 && tok[i - 1] == '.')
		tok[i - 1] = '\0';
	if (!hostname_ok(tok))
		return -1;
	t->kind = NP_T_HOST;
	t->text = np_xstrdup(tok);
	for (char *p = t->text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

void
np_targets_free(np_target *t, size_t n)
{
	size_t i;

	for (i = 0; t && i < n; i++)
		free(t[i].text);
	free(t);
}

int
np_targets_parse(const char *s, np_target **out, size_t *n, np_error *err)
{
	np_target *t = NULL;
	size_t nt = 0, len;
	char *copy, *p, *tok;
	static const char seps[] = ", \t\r\n";

	*out = NULL;
	*n = 0;
	if (s == NULL || (len = strlen(s)) == 0)
		return np_seterr(err, NP_EDATA, "targets: empty");
	if (len > TARGETS_MAX_LEN)
		return np_seterr(err, NP_EDATA, "targets: longer than %d bytes",
		    TARGETS_MAX_LEN);
	copy = np_xstrdup(s);
	for (p = copy; (tok = strsep(&p, seps)) != NULL;) {
		char shown[80];

		if (*tok == '\0')
			continue;
		if (nt == TARGETS_MAX) {
			np_targets_free(t, nt);
			free(copy);
			return np_seterr(err, NP_EDATA,
			    "targets: more than %d entries", TARGETS_MAX);
		}
		snprintf(shown, sizeof(shown), "%s", tok);
		for (char *q = shown; *q; q++)
			if (!isprint((unsigned char)*q))
				*q = '?';
		t = np_xrealloc(t, (nt + 1) * sizeof(*t));
		if (parse_one(tok, &t[nt]) == -1) {
			np_targets_free(t, nt);
			free(copy);
			return np_seterr(err, NP_EDATA,
			    "targets: bad target '%s' (expected an IP address, "
			    "CIDR, range or hostname)", shown);
		}
		nt++;
	}
	free(copy);
	if (nt == 0) {
		free(t);
		return np_seterr(err, NP_EDATA, "targets: empty");
	}
	*out = t;
	*n = nt;
	return 0;
}

/* The canonical list: tokens in the given order, duplicates dropped. */
char *
np_targets_canon(const np_target *t, size_t n)
{
	size_t i, j, len = 1;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(t[i].text) + 1;
	s = np_xmalloc(len);
	*s = '\0';
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(t[i].text, t[j].text))
				break;
		if (j < i)
			continue;
		if (*s)
			strcat(s, ",");
		strcat(s, t[i].text);
	}
	return s;
}

static bool
overlap1(const np_target *a, const np_target *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == NP_T_HOST)
		return strcmp(a->text, b->text) == 0;
	return memcmp(a->lo, b->hi, 16) <= 0 && memcmp(b->lo, a->hi, 16) <= 0;
}

bool
np_targets_overlap(const np_target *a, size_t na, const np_target *b,
    size_t nb)
{
	size_t i, j;

	for (i = 0; i < na; i++)
		for (j = 0; j < nb; j++)
			if (overlap1(&a[i], &b[j]))
				return true;
	return false;
}
