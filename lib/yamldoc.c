/*
 * yamldoc.c: a config file's text to a libyaml document tree, checked.
 *
 * Refused before anything looks at the tree: aliases (billion laughs),
 * more than one document, nesting deeper than 32. Plain block YAML, the
 * form of every np.yaml(5) example, takes a fast path (a line scanner
 * building the same nodes); anything else goes to libyaml, whose errors
 * and their wording are then the ones reported.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "np.h"
#include "yamldoc.h"

/*
 * The stream is parsed once: the same pass checks it and builds the
 * document, as libyaml's scanner is most of the cost of a big config
 * (1,000 scanners) and np-metrics must stay fast. Refused before the
 * loader looks at the tree: aliases (billion laughs), more than one
 * document, and nesting deeper than 32 (np's config is 4 levels deep;
 * dupcheck recurses). The first of these in the stream is the one
 * reported, even past the first document, as when the checks had a pass
 * of their own.
 */
#define DEPTH_MAX 32

typedef struct {
	const char *file;
	yaml_document_t *doc;
	np_error *err;
	int open[DEPTH_MAX];	/* ids of the open collections, outermost first */
	int key[DEPTH_MAX];	/* per open mapping: a key waiting for its value */
	int depth, docs;
	bool anchored;		/* an anchor was seen: see compose() */
} composer;

static int
check_event(composer *m, const yaml_event_t *ev)
{
	unsigned long line = (unsigned long)ev->start_mark.line + 1;

	if (ev->type == YAML_ALIAS_EVENT)
		return np_seterr(m->err, NP_ECONFIG,
		    "%s:%lu: YAML aliases are not supported", m->file, line);
	if (ev->type == YAML_DOCUMENT_START_EVENT && ++m->docs > 1)
		return np_seterr(m->err, NP_ECONFIG,
		    "%s:%lu: more than one YAML document", m->file, line);
	if ((ev->type == YAML_SEQUENCE_START_EVENT ||
	    ev->type == YAML_MAPPING_START_EVENT) && m->depth >= DEPTH_MAX)
		return np_seterr(m->err, NP_ECONFIG,
		    "%s:%lu: nested too deeply", m->file, line);
	return 0;
}

static void
oom(int ok)
{
	if (!ok)
		np_die(NP_ESOFTWARE, "out of memory");
}

/* Adds node id to the innermost open collection, if any. */
static void
attach(composer *m, int id)
{
	int top = m->depth - 1, p;

	if (top < 0)
		return;		/* the root */
	p = m->open[top];
	if (yaml_document_get_node(m->doc, p)->type == YAML_SEQUENCE_NODE)
		oom(yaml_document_append_sequence_item(m->doc, p, id));
	else if (m->key[top] == 0)
		m->key[top] = id;
	else {
		oom(yaml_document_append_mapping_pair(m->doc, p, m->key[top], id));
		m->key[top] = 0;
	}
}

/*
 * One node event into the document. Tags are left to libyaml's
 * defaults: nothing in np reads them. Marks are kept for the file:line
 * of errors.
 */
static void
compose_event(composer *m, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL;
	int id;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		oom(id = yaml_document_add_scalar(m->doc, NULL,
		    ev->data.scalar.value, (int)ev->data.scalar.length,
		    ev->data.scalar.style));
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		oom(id = yaml_document_add_sequence(m->doc, NULL,
		    ev->data.sequence_start.style));
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		oom(id = yaml_document_add_mapping(m->doc, NULL,
		    ev->data.mapping_start.style));
		anchor = ev->data.mapping_start.anchor;
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		m->depth--;
		yaml_document_get_node(m->doc, m->open[m->depth])->end_mark =
		    ev->end_mark;
		return;
	default:
		return;
	}
	yaml_document_get_node(m->doc, id)->start_mark = ev->start_mark;
	yaml_document_get_node(m->doc, id)->end_mark = ev->end_mark;
	if (anchor)
		m->anchored = true;
	attach(m, id);
	if (ev->type != YAML_SCALAR_EVENT) {
		m->open[m->depth] = id;
		m->key[m->depth++] = 0;
	}
}

/* The old way, for the rare stream with anchors: yaml_parser_load has
 * its own word on them (a repeated anchor is an error). */
static int
load_anchored(const char *file, const char *buf, size_t len,
    yaml_document_t *doc, np_error *err)
{
	yaml_parser_t p;
	int rc = 0;

	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&p, doc))
		rc = np_seterr(err, NP_ECONFIG, "%s:%lu: %s", file,
		    (unsigned long)p.problem_mark.line + 1,
		    p.problem ? p.problem : "YAML syntax error");
	yaml_parser_delete(&p);
	return rc;
}

/* Parses buf into *doc, checked; on error *doc holds nothing. */
static int
compose(const char *file, const char *buf, size_t len, yaml_document_t *doc,
    np_error *err)
{
	composer m = { .file = file, .doc = doc, .err = err };
	yaml_parser_t p;
	yaml_event_t ev;
	bool end;
	int rc = 0;

	oom(yaml_document_initialize(doc, NULL, NULL, NULL, 1, 1));
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = np_seterr(err, NP_ECONFIG, "%s:%lu: %s", file,
			    (unsigned long)p.problem_mark.line + 1,
			    p.problem ? p.problem : "YAML syntax error");
			break;
		}
		if ((rc = check_event(&m, &ev)) == 0)
			compose_event(&m, &ev);
		end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
		if (end || rc)
			break;
	}
	yaml_parser_delete(&p);
	if (rc == 0 && m.docs == 0)
		rc = np_seterr(err, NP_ECONFIG, "%s: empty config", file);
	if (rc || m.anchored)
		yaml_document_delete(doc);
	if (rc == 0 && m.anchored)
		rc = load_anchored(file, buf, len, doc, err);
	return rc;
}

/*
 * The fast path. Most configs are plain block YAML: "key: value" lines,
 * "- " lists of mappings, comments. A line scanner reads those ten
 * times faster than libyaml (a 1,000-scanner config: 1 ms instead of
 * 8) and builds the document yaml_parser_load would: the same nodes,
 * values, styles and line marks (tags are left out: nothing reads
 * them). Anything else, it gives up on, and libyaml reads the file:
 * quotes, flow collections, tags, anchors, aliases, tabs, CR, non-ASCII,
 * document markers, empty values, scalars on several lines, keys other
 * than [A-Za-z0-9_][A-Za-z0-9_-]*, values not starting with
 * [A-Za-z0-9_/.$], unusual indentation. So every error, and its
 * wording, is still libyaml's.
 *
 * Nodes point into the text, NUL-terminated in place once all of it is
 * read (libyaml gets it as it was otherwise); a mapping's pairs (a
 * list's items) are gathered in one array at the end.
 */
#define FAST_DEPTH 16

typedef struct {
	int col, id;
	int key;		/* a mapping's key waiting for a block value */
	bool seq;
} fast_level;

typedef struct {
	np_yaml *pd;
	char *text;
	yaml_node_t *nodes;
	int nnodes;
	int (*pair)[3];		/* mapping, key, value; in document order */
	int (*item)[2];		/* sequence, item */
	int npairs, nitems;
	fast_level lv[FAST_DEPTH];
	int depth;
	bool root;
	size_t line;		/* 0-based, as libyaml's marks */
	char *bol;		/* beginning of the line */
} fast;

static int
fast_node(fast *f, yaml_node_type_t type, char *at)
{
	yaml_node_t *n = &f->nodes[f->nnodes++];

	memset(n, 0, sizeof(*n));
	n->type = type;
	n->start_mark.index = (size_t)(at - f->text);
	n->start_mark.line = f->line;
	n->start_mark.column = (size_t)(at - f->bol);
	n->end_mark = n->start_mark;
	if (type == YAML_MAPPING_NODE)
		n->data.mapping.style = YAML_BLOCK_MAPPING_STYLE;
	else if (type == YAML_SEQUENCE_NODE)
		n->data.sequence.style = YAML_BLOCK_SEQUENCE_STYLE;
	return f->nnodes;
}

static int
fast_scalar(fast *f, char *at, size_t len)
{
	int id = fast_node(f, YAML_SCALAR_NODE, at);
	yaml_node_t *n = &f->nodes[id - 1];

	n->data.scalar.value = (yaml_char_t *)at;
	n->data.scalar.length = len;
	n->data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
	return id;
}

static void
fast_pair(fast *f, int map, int key, int value)
{
	f->pair[f->npairs][0] = map;
	f->pair[f->npairs][1] = key;
	f->pair[f->npairs++][2] = value;
}

/* Opens a collection at column col; the caller attaches it. */
static int
fast_open(fast *f, bool seq, char *at)
{
	fast_level *l;

	if (f->depth == FAST_DEPTH)
		return 0;
	l = &f->lv[f->depth++];
	l->col = (int)(at - f->bol);
	l->seq = seq;
	l->key = 0;
	l->id = fast_node(f, seq ? YAML_SEQUENCE_NODE : YAML_MAPPING_NODE, at);
	return l->id;
}

static bool
key_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_' || (!first && ch == '-');
}

/*
 * The value of "key: value" from p to the end of the line (e), comment
 * and trailing blanks cut; NULL for what libyaml would read otherwise
 * (": " inside, a trailing ':', an indicator first).
 */
static char *
fast_value(char *p, char *e, char **end)
{
	char *q, *v = p;

	if (!(key_char(*p, true) || *p == '/' || *p == '.' || *p == '$'))
		return NULL;
	for (q = p; q < e; q++) {
		if (*q > ':') {
			v = q + 1;	/* not ' ', '#' nor ':': the usual */
			continue;
		}
		if (*q == '#' && q[-1] == ' ')
			break;		/* a comment */
		if (*q == ':' && (q + 1 == e || q[1] == ' '))
			return NULL;
		if (*q != ' ')
			v = q + 1;
	}
	*end = v;
	return p;
}

/* "key: value", "key:" (a block value follows) in the mapping on top. */
static int
fast_key(fast *f, char *p, char *e)
{
	fast_level *l = &f->lv[f->depth - 1];
	char *k = p, *v, *ve;
	int kid;

	if (!key_char(*p, true))
		return 1;
	while (p < e && key_char(*p, false))
		p++;
	if (p == e || *p != ':' || p - k > 128 || (p + 1 < e && p[1] != ' '))
		return 1;
	kid = fast_scalar(f, k, (size_t)(p++ - k));
	while (p < e && *p == ' ')
		p++;
	if (p == e || *p == '#') {
		l->key = kid;	/* the value is the block that follows */
		return 0;
	}
	if ((v = fast_value(p, e, &ve)) == NULL)
		return 1;
	fast_pair(f, l->id, kid, fast_scalar(f, v, (size_t)(ve - v)));
	return 0;
}

/* "- key: ..." in the list on top: the item is a mapping. */
static int
fast_item(fast *f, char *p, char *e)
{
	int seq = f->lv[f->depth - 1].id, id;

	if (p + 1 == e || p[1] != ' ')
		return 1;
	for (p++; p < e && *p == ' '; p++)
		;
	if (p == e || (id = fast_open(f, false, p)) == 0)
		return 1;
	f->item[f->nitems][0] = seq;
	f->item[f->nitems++][1] = id;
	return fast_key(f, p, e);
}

/* One line with content, p its first non-blank at column col. */
static int
fast_line(fast *f, char *p, char *e, int col)
{
	fast_level *l = f->depth ? &f->lv[f->depth - 1] : NULL;
	int id;

	if (l && l->key) {
		/* A key's block value: a mapping or list, more indented. */
		if (col <= l->col || (id = fast_open(f, *p == '-', p)) == 0)
			return 1;
		fast_pair(f, l->id, l->key, id);
		l->key = 0;
	} else {
		while (f->depth && f->lv[f->depth - 1].col > col)
			f->depth--;
		if (f->depth == 0) {
			if (f->root || *p == '-')
				return 1;	/* a second root; a list root */
			f->root = true;
			fast_open(f, false, p);
		} else if (f->lv[f->depth - 1].col != col)
			return 1;
	}
	l = &f->lv[f->depth - 1];
	if (l->seq != (*p == '-'))
		return 1;
	return l->seq ? fast_item(f, p, e) : fast_key(f, p, e);
}

/* Gathers each collection's pairs and items, in document order. */
static void
fast_gather(fast *f)
{
	yaml_node_t *n;
	int i, *at = np_xcalloc((size_t)f->nnodes + 1, sizeof(*at));
	int pairs = 0, items = 0;	/* where the next collection's go */

	f->pd->pairs = np_xcalloc((size_t)f->npairs + 1, sizeof(*f->pd->pairs));
	f->pd->items = np_xcalloc((size_t)f->nitems + 1, sizeof(*f->pd->items));
	for (i = 0; i < f->npairs; i++)
		at[f->pair[i][0]]++;
	for (i = 0; i < f->nitems; i++)
		at[f->item[i][0]]++;
	for (i = 1; i <= f->nnodes; i++) {
		n = &f->nodes[i - 1];
		if (n->type == YAML_MAPPING_NODE) {
			n->data.mapping.pairs.start = n->data.mapping.pairs.top =
			    n->data.mapping.pairs.end = f->pd->pairs + pairs;
			pairs += at[i];
		} else if (n->type == YAML_SEQUENCE_NODE) {
			n->data.sequence.items.start = n->data.sequence.items.top =
			    n->data.sequence.items.end = f->pd->items + items;
			items += at[i];
		}
	}
	for (i = 0; i < f->npairs; i++) {
		n = &f->nodes[f->pair[i][0] - 1];
		n->data.mapping.pairs.top->key = f->pair[i][1];
		n->data.mapping.pairs.top++->value = f->pair[i][2];
		n->data.mapping.pairs.end = n->data.mapping.pairs.top;
	}
	for (i = 0; i < f->nitems; i++) {
		n = &f->nodes[f->item[i][0] - 1];
		*n->data.sequence.items.top++ = f->item[i][1];
		n->data.sequence.items.end = n->data.sequence.items.top;
	}
	free(at);
}

/* Scans every line; 1 when the text is not the subset. */
static int
fast_scan(fast *f, char *t, char *end)
{
	char *e, *p;

	for (f->line = 0; t < end; t = e + 1, f->line++) {
		if ((e = memchr(t, '\n', (size_t)(end - t))) == NULL)
			e = end;
		for (p = t; p < e && *p == ' '; p++)
			;
		if (p == e || *p == '#')
			continue;	/* blank or comment */
		f->bol = t;
		if (fast_line(f, p, e, (int)(p - t)) != 0)
			return 1;
	}
	return !f->root || f->lv[f->depth - 1].key != 0;
}

void
np_yaml_free(np_yaml *pd)
{
	if (!pd->fast) {
		yaml_document_delete(&pd->doc);
		return;
	}
	free(pd->doc.nodes.start);
	free(pd->pairs);
	free(pd->items);
	pd->fast = false;
}

/* Each scalar ends where a ':', blank, '#' or newline was, or at the
 * text's own NUL. */
static void
fast_terminate(fast *f)
{
	int i;

	for (i = 0; i < f->nnodes; i++)
		if (f->nodes[i].type == YAML_SCALAR_NODE)
			f->nodes[i].data.scalar.value[
			    f->nodes[i].data.scalar.length] = '\0';
}

/*
 * Whether buf is printable ASCII lines (no tab, CR, control, non-ASCII),
 * counting them. 8 bytes at a time while none is below 0x20 or above
 * 0x7e (exact tests: a borrow or carry only comes from such a byte).
 */
static bool
fast_text(const char *buf, size_t len, size_t *lines)
{
	const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;
	const unsigned char *stop;
	uint64_t w;

	for (*lines = 1; p < end; ) {
		if (end - p >= 8) {
			memcpy(&w, p, 8);
			if (((((w - ones * 0x20) & ~w) | (w + ones) | w) & high) ==
			    0) {
				p += 8;
				continue;
			}
		}
		for (stop = end - p > 8 ? p + 8 : end; p < stop; p++) {
			if (*p == '\n')
				++*lines;
			else if (*p - 0x20u >= 0x5fu)
				return false;	/* not 0x20 to 0x7e */
		}
	}
	return true;
}

/*
 * 0 with pd->doc built, its scalars in buf (len bytes and a NUL), which
 * must outlive it; or 1: not the subset, pd holds nothing, buf is as it
 * was.
 */
static int
fast_parse(char *buf, size_t len, np_yaml *pd)
{
	size_t lines;
	fast f = { .pd = pd, .text = buf };
	int rc;

	memset(pd, 0, sizeof(*pd));
	if (!fast_text(buf, len, &lines))
		return 1;
	pd->fast = true;
	/* A line makes 4 nodes at most (a key's block opened, "- key:
	 * value"), 1 pair (it has 1 key) and 1 item. */
	/* Not zeroed: fast_node clears each node it takes, and the memory
	 * of the nodes never used is never touched. */
	f.nodes = np_xmalloc(4 * lines * sizeof(*f.nodes));
	f.pair = np_xmalloc(lines * sizeof(*f.pair));
	f.item = np_xmalloc(lines * sizeof(*f.item));
	rc = fast_scan(&f, buf, buf + len);
	pd->doc.nodes.start = f.nodes;
	pd->doc.nodes.top = pd->doc.nodes.end = f.nodes + f.nnodes;
	if (rc == 0) {
		fast_gather(&f);
		fast_terminate(&f);
	} else
		np_yaml_free(pd);
	free(f.pair);
	free(f.item);
	return rc;
}

int
np_yaml_load(const char *file, char *buf, size_t len, np_yaml *y,
    np_error *err)
{
	if (fast_parse(buf, len, y) == 0)
		return 0;
	return compose(file, buf, len, &y->doc, err);
}
