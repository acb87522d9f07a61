/* enrich: derives browser, OS, device, architecture, location and class of an event. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_ENRICH_H
#define SP_ENRICH_H

#include "config.h"
#include "event.h"

typedef struct sp_enrich sp_enrich_t;

/* Loads the user-agent rules, the GeoIP databases (CFG's, else the default DB-IP files)
 * and the class rules. NULL + ERR on failure. */
sp_enrich_t *sp_enrich_open(const sp_config_t *cfg, char *err, size_t errlen);
void sp_enrich_close(sp_enrich_t *e);

/* Fills the derived fields of EV. Thread-safe; parses are cached. */
void sp_enrich_event(sp_enrich_t *e, sp_event_t *ev);

/* One line about what was loaded, for the start-up log. */
void sp_enrich_describe(const sp_enrich_t *e, char *buf, size_t len);

/* User-agent cache hits and misses. */
void sp_enrich_ua_stats(sp_enrich_t *e, uint64_t *hits, uint64_t *misses);

#endif
