/* store: chooses the backend; helpers shared by the backends. */
/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

sp_store_t *sp_store_open(const sp_config_t *cfg, char *err, size_t errlen)
{
    sp_store_t *s;
    if (0 == strcmp(cfg->store, "postgres")) {
        if (!cfg->pg[0]) {
            snprintf(err, errlen, "--store postgres needs --pg CONNINFO");
            return NULL;
        }
        s = sp_store_pg_open(cfg->pg, err, errlen);
    } else {
        s = sp_store_sqlite_open(cfg->data_dir, cfg->sync_full, err, errlen);
    }
    if (s)
        s->unknown = (sp_store_unknown_t){
            .auto_create = cfg->auto_create_campaigns,
            .max_campaigns = cfg->unknown_campaigns_max,
            .max_opens = cfg->unknown_opens_max,
        };
    return s;
}

void sp_store_close(sp_store_t *s)
{
    if (s)
        s->ops->close(s);
}

void sp_store_client_key(const sp_event_t *ev, char *buf, size_t len)
{
    /* The pixel handler always fills the visitor: the cookie, or the keyed hash of
     * address and agent that the cookie was set to. */
    snprintf(buf, len, "v:%s", ev->visitor);
}

int sp_store_secret_key(sp_store_t *s, unsigned char *key, bool *made, char *err, size_t errlen)
{
    char hex[2 * SP_STORE_KEY_BYTES + 1];
    int rc = s->ops->meta_get(s, "secret_key", hex, sizeof(hex), err, errlen);
    if (rc < 0)
        return -1;
    if (made)
        *made = rc > 0;
    if (rc > 0) {
        unsigned char fresh[SP_STORE_KEY_BYTES];
        char fresh_hex[sizeof(hex)];
        randombytes_buf(fresh, sizeof(fresh));
        sodium_bin2hex(fresh_hex, sizeof(fresh_hex), fresh, sizeof(fresh));
        sodium_memzero(fresh, sizeof(fresh));
        /* Kept when another server made one first: then that one is read back. */
        if (0 != s->ops->meta_put_new(s, "secret_key", fresh_hex, err, errlen) ||
            0 != s->ops->meta_get(s, "secret_key", hex, sizeof(hex), err, errlen))
            return -1;
    }
    if (0 != sodium_hex2bin(key, SP_STORE_KEY_BYTES, hex, strlen(hex), NULL, NULL, NULL)) {
        snprintf(err, errlen, "the stored secret key is damaged");
        return -1;
    }
    return 0;
}

int sp_store_data_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (0 == mkdir(dir, 0700)) {
        /* 0700 whatever the umask took away or left. */
        if (0 != chmod(dir, 0700)) {
            snprintf(err, errlen, "data folder %s: %s", dir, strerror(errno));
            return -1;
        }
    } else if (EEXIST != errno) {
        snprintf(err, errlen, "data folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (0 != stat(dir, &st)) {
        snprintf(err, errlen, "data folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "data folder %s: not a folder", dir);
        return -1;
    }
    /* The signing key, the sessions and every open are in there: like PostgreSQL with its
     * data directory, refuse a folder other users may read or enter. */
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "data folder %s is open to other users (mode %04o); it holds the signing key, "
                 "the sessions and every open: make it private with 'chmod 700 %s'",
                 dir, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

int sp_store_private_path(const char *path, char *err, size_t errlen)
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
