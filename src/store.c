/* store: chooses the backend; helpers shared by the backends. */
/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <stdio.h>
#include <string.h>

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
