/* store_pg: the PostgreSQL backend, for several servers sharing one database. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_STORE_PG_H
#define SP_STORE_PG_H

#include <stddef.h>

#include "store_ops.h"

/* Connects with CONNINFO (libpq's keyword=value or URI form), creating and migrating the
 * schema (one server at a time). NULL + ERR on failure. */
sp_store_t *sp_store_pg_open(const char *conninfo, char *err, size_t errlen);

#endif
