/* datadir: the data folder (journal, SQLite store, signing key): there, usable and private. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_DATADIR_H
#define SP_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

/* Makes DIR when it is missing (0700 whatever the umask; *CREATED says so, as a command run
 * from another folder would otherwise quietly start a second ./data beside the real one) and
 * checks that it is a folder this user may read, write and enter. 0, or -1 + ERR naming the folder,
 * its owner and mode when they are what stands in the way. */
int sp_datadir_check(const char *dir, bool *created, char *err, size_t errlen);

/* The same, and refuses a folder that group or others may read or enter, as PostgreSQL
 * refuses such a data directory: -1 + ERR, which says how to fix it. */
int sp_datadir_private(const char *dir, char *err, size_t errlen);

/* Sets PATH, when it exists, to 0600 (a file an older version made under a looser umask, or
 * SQLite under any umask). By name: opening and closing a database file that SQLite has open
 * in this process would drop SQLite's locks on it. 0 (also when PATH is missing), or -1 +
 * ERR. */
int sp_datadir_private_file(const char *path, char *err, size_t errlen);

#endif
