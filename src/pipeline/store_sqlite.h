/* store_sqlite: the embedded backend, one SQLite file in WAL mode in the data folder. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_STORE_SQLITE_H
#define SP_STORE_SQLITE_H

#include <stdbool.h>
#include <stddef.h>

#include "store_ops.h"

/* Opens DATA_DIR/spypixel.db (making the folder private: sp_datadir_private), creating and
 * migrating its schema; SYNC_FULL syncs every commit to disk. NULL + ERR on failure. */
sp_store_t *sp_store_sqlite_open(const char *data_dir, bool sync_full, char *err, size_t errlen);

#endif
