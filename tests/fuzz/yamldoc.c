/*
 * Fuzz target "yamldoc": lib/yamldoc.c's fast path against libyaml.
 * Whenever the fast path takes an input, the tree it builds must be the
 * one libyaml's checked pass builds (node types, scalar values and
 * styles, positions, pairs and items in order); when it declines, the
 * text must be untouched. The statics are reached by including the file.
 */
#include "fuzz.h"
#include "../../lib/yamldoc.c"

static void
same(yaml_document_t *a, int ia, yaml_document_t *b, int ib)
{
	yaml_node_t *x = yaml_document_get_node(a, ia);
	yaml_node_t *y = yaml_document_get_node(b, ib);
	long i, n;

	if (!x || !y || x->type != y->type ||
	    x->start_mark.line != y->start_mark.line ||
	    x->start_mark.column != y->start_mark.column)
		abort();
	if (x->type == YAML_SCALAR_NODE) {
		if (x->data.scalar.length != y->data.scalar.length ||
		    memcmp(x->data.scalar.value, y->data.scalar.value,
		    x->data.scalar.length) ||
		    x->data.scalar.style != y->data.scalar.style)
			abort();
	} else if (x->type == YAML_MAPPING_NODE) {
		n = x->data.mapping.pairs.top - x->data.mapping.pairs.start;
		if (n != y->data.mapping.pairs.top - y->data.mapping.pairs.start)
			abort();
		for (i = 0; i < n; i++) {
			same(a, x->data.mapping.pairs.start[i].key, b,
			    y->data.mapping.pairs.start[i].key);
			same(a, x->data.mapping.pairs.start[i].value, b,
			    y->data.mapping.pairs.start[i].value);
		}
	} else {
		n = x->data.sequence.items.top - x->data.sequence.items.start;
		if (n != y->data.sequence.items.top - y->data.sequence.items.start)
			abort();
		for (i = 0; i < n; i++)
			same(a, x->data.sequence.items.start[i], b,
			    y->data.sequence.items.start[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	yaml_document_t doc;
	np_yaml y;
	np_error err;
	char *text;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (fast_parse(text, size, &y) != 0) {
		if (memcmp(text, data, size) != 0 || text[size] != '\0')
			abort();
		free(text);
		return 0;
	}
	if (compose("f", (const char *)data, size, &doc, &err) != 0)
		abort();
	if (doc.nodes.top - doc.nodes.start !=
	    y.doc.nodes.top - y.doc.nodes.start)
		abort();
	same(&y.doc, 1, &doc, 1);
	yaml_document_delete(&doc);
	np_yaml_free(&y);
	free(text);
	return 0;
}
