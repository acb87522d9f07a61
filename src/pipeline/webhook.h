/* webhook: notifications of stored opens and clicks, POSTed as JSON by a delivery thread. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_WEBHOOK_H
#define SP_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"

#define SP_WEBHOOK_QUEUE_MAX 10000 /* notifications waiting; older ones are dropped beyond */
#define SP_WEBHOOK_TRIES     4     /* deliveries of one notification to one URL */

typedef struct sp_webhook sp_webhook_t;

typedef struct sp_webhook_options {
    char *const *urls; /* borrowed for the hook's life */
    size_t n_urls;
    bool first_only;    /* only each recipient's (or client's) first counted open */
    const char *secret; /* signs each body (HMAC-SHA256) when non-empty */
    int timeout_ms;     /* per delivery */
} sp_webhook_options_t;

/* Starts the delivery thread. NULL + ERR when a URL is not http(s) or libcurl fails. */
sp_webhook_t *sp_webhook_start(const sp_webhook_options_t *opt, char *err, size_t errlen);

/* The ingest's commit callback: queues a notification per stored event. Never blocks on
 * the network. */
void sp_webhook_on_commit(void *ctx, sp_event_t *const *evs, size_t n);

/* Delivers what is queued (for at most DRAIN_MS), then stops. NULL is a no-op. */
void sp_webhook_stop(sp_webhook_t *w, int drain_ms);

#endif
