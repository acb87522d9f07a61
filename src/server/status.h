/* status: how the server is: GET /healthz for load balancers, GET /metrics for Prometheus. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_STATUS_H
#define SP_STATUS_H

#include "enrich.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"

/* What the answers are read from, borrowed for the server's life. */
typedef struct sp_status {
    const sp_config_t *cfg;
    sp_journal_t *journal;
    sp_ingest_t *ingest;
    sp_enrich_t *enrich;
} sp_status_t;

/* Adds GET and HEAD of /healthz (200 while every answered open is kept and indexed, else
 * 503 with the problems) and /metrics (Prometheus text; for loopback clients and API tokens
 * unless --metrics-public). */
void sp_status_routes(sp_http_routes_t *routes, sp_status_t *status);

#endif
