/*
 * keys.c: the names of np's Redis keys, all in one place (np(7) lists
 * them). Per-pool keys carry the pool as a hash tag, np:{pool}:..., so
 * one Lua script over a pool touches one Redis Cluster slot.
 */
#include "np.h"

void
np_key_pool(char *buf, const np_config *cfg, const char *pool,
    const char *what)
{
	snprintf(buf, NP_KEYMAX, "%s:{%s}:%s", cfg->key_prefix, pool, what);
}

void
np_key_inst(char *buf, const np_config *cfg, const char *pool,
    const char *what, const char *inst)
{
	snprintf(buf, NP_KEYMAX, "%s:{%s}:%s:%s", cfg->key_prefix, pool, what,
	    inst);
}

void
np_key_global(char *buf, const np_config *cfg, const char *what)
{
	snprintf(buf, NP_KEYMAX, "%s:%s", cfg->key_prefix, what);
}
