/* store: opens the configured storage backend; what every store does is in store_ops.h. */
/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "store_pg.h"
#include "tally.h"
#include "store_sqlite.h"

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
    if (s)
        s->likely_forward_ms =
            (int64_t)(cfg->likely_forward_after > 0 ? cfg->likely_forward_after : 0) * 1000;
    return s;
}

void sp_store_close(sp_store_t *s)
{
    if (s)
        s->ops->close(s);
}

void sp_store_engagement_add(sp_engagement_t *e, int64_t kind, int64_t klass,
                             const char *engagement, int64_t count)
{
    if (!sp_tally_engagement_counted((int)kind, (int)klass))
        return;
    if (SP_EVENT_PRINT == kind)
        e->prints += count;
    else if (SP_EVENT_FORWARD == kind && engagement &&
             0 == strcmp(engagement, SP_TALLY_FORWARD_RULE))
        e->likely_forwards += count;
    else if (SP_EVENT_FORWARD == kind)
        e->forwards += count;
    else if (SP_EVENT_OPEN != kind || !engagement)
        return;
    else if (0 == strcmp(engagement, "glanced"))
        e->glanced += count;
    else if (0 == strcmp(engagement, "skimmed"))
        e->skimmed += count;
    else if (0 == strcmp(engagement, "read"))
        e->read += count;
    else if (0 == strcmp(engagement, "unmeasured"))
        e->unmeasured += count;
}
