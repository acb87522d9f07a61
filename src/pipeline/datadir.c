/* datadir: the data folder (journal, SQLite store, signing key): there, usable and private. */
/* SPDX-License-Identifier: MIT */
#include "datadir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* DIR made when missing (*CREATED), 0700 whatever the umask took away or left, and a folder:
 * its status in *ST. 0, or -1 + ERR. */
static int make_folder(const char *dir, bool *created, struct stat *st, char *err, size_t errlen)
{
    *created = 0 == mkdir(dir, 0700);
    if (*created ? 0 != chmod(dir, 0700) : EEXIST != errno) {
        snprintf(err, errlen, "cannot create the data folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (0 != stat(dir, st)) {
        snprintf(err, errlen, "data folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st->st_mode)) {
        snprintf(err, errlen, "data folder %s: not a folder", dir);
        return -1;
    }
    return 0;
}

int sp_datadir_check(const char *dir, bool *created, char *err, size_t errlen)
{
    struct stat st;
    if (0 != make_folder(dir, created, &st, err, errlen))
        return -1;
    if (0 != access(dir, R_OK | W_OK | X_OK)) {
        snprintf(err, errlen,
                 "data folder %s: %s (it belongs to uid %u, mode %03o; this runs as uid %u)", dir,
                 strerror(errno), (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
                 (unsigned)geteuid());
        return -1;
    }
    return 0;
}

int sp_datadir_private(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    bool created;
    if (0 != make_folder(dir, &created, &st, err, errlen))
        return -1;
    /* The signing key, the sessions and every open are in there. */
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "data folder %s is open to other users (mode %04o); it holds the signing key, "
                 "the sessions and every open: make it private with 'chmod 700 %s'",
                 dir, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

int sp_datadir_private_file(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (0 != stat(path, &st)) {
        if (ENOENT == errno)
            return 0;
    } else if ((st.st_mode & 0777) == 0600 || 0 == chmod(path, 0600)) {
        return 0;
    }
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
}
