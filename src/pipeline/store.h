/* store: opens the configured storage backend; what every store does is in store_ops.h. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stddef.h>

#include "config.h"
#include "store_ops.h"

/* Opens the backend CFG names (SQLite in the data folder, or PostgreSQL), creating and
 * migrating its schema, with CFG's limits for opens of campaigns that do not exist. Each call
 * is a new connection, for one thread at a time. NULL + ERR on failure. */
sp_store_t *sp_store_open(const sp_config_t *cfg, char *err, size_t errlen);

/* Closes S; NULL is a no-op. */
void sp_store_close(sp_store_t *s);

#endif
