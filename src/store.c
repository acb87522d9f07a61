/* store: chooses the backend; helpers shared by the backends. */
/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

sp_store_t *sp_store_open(const sp_config_t *cfg, char *err, size_t errlen)
{
    if (0 == strcmp(cfg->store, "postgres")) {
        if (!cfg->pg[0]) {
            snprintf(err, errlen, "--store postgres needs --pg CONNINFO");
            return NULL;
        }
        return sp_store_pg_open(cfg->pg, err, errlen);
    }
    return sp_store_sqlite_open(cfg->data_dir, cfg->sync_full, err, errlen);
}

void sp_store_close(sp_store_t *s)
{
    if (s)
        s->ops->close(s);
}

void sp_store_client_key(const sp_event_t *ev, char *buf, size_t len)
{
    if (ev->visitor[0]) {
        snprintf(buf, len, "v:%s", ev->visitor);
        return;
    }
    unsigned char h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)ev->ip, strlen(ev->ip));
    crypto_generichash_update(&st, (const unsigned char *)"\n", 1);
    if (ev->user_agent)
        crypto_generichash_update(&st, (const unsigned char *)ev->user_agent,
                                  strlen(ev->user_agent));
    crypto_generichash_final(&st, h, sizeof(h));
    char hex[33];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(buf, len, "c:%s", hex);
}
