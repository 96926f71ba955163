/*
 * yamldoc.h: yamldoc.c's interface, for config.c only (np.h stays free of
 * libyaml's types).
 */
#ifndef NP_YAMLDOC_H
#define NP_YAMLDOC_H

#include <stdbool.h>
#include <yaml.h>

typedef struct {
	yaml_document_t doc;
	bool fast;		/* built by the fast path, not libyaml */
	yaml_node_pair_t *pairs;
	yaml_node_item_t *items;
} np_yaml;

/* Parses buf (len bytes and a NUL; it must outlive y, whose scalars may
 * point into it) into y->doc; on error (78, "file:line: problem") y holds
 * nothing. */
int np_yaml_load(const char *file, char *buf, size_t len, np_yaml *y,
    np_error *err);
void np_yaml_free(np_yaml *y);

#endif
