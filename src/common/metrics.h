/* metrics: process-wide counters, served in Prometheus text format at /metrics. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "classify.h"

/* X-macro: name, help. One place lists every counter. */
#define SP_METRICS(X)                                                                              \
    X(http_requests, "HTTP requests answered")                                                     \
    X(pixel_requests, "tracking pixel and image requests")                                         \
    X(click_requests, "tracked link requests")                                                     \
    X(opens_journaled, "opens and clicks written to the journal (and answered)")                   \
    X(opens_recorded, "opens and clicks committed to the store")                                   \
    X(reads_recorded, "read times of the tracking block folded into their opens")                  \
    X(reads_over_cap, "read-time images answered at once: the held ones were at the cap")          \
    X(opens_unknown_campaign, "opens of campaigns that do not exist, kept apart")                  \
    X(opens_unknown_refused,                                                                       \
      "opens of campaigns that do not exist, not kept: too many such campaigns")                   \
    X(opens_unknown_dropped,                                                                       \
      "kept opens of a campaign that does not exist, dropped for newer ones beyond the limit")     \
    X(opens_adopted, "kept opens adopted by their campaign once it was created")                   \
    X(campaigns_auto_created, "campaigns created by their first open (--auto-create-campaigns)")   \
    X(opens_invalid, "tracking requests with a malformed ID or token, not recorded")               \
    X(opens_failed, "tracking requests the store could not record")                                \
    X(store_batches, "group commits")                                                              \
    X(store_batch_events, "events in group commits")                                               \
    X(store_errors, "failed commits, each retried")                                                \
    X(login_failures, "failed dashboard logins")                                                   \
    X(api_errors, "API requests answered with an error")                                           \
    X(retention_deleted, "events deleted by the retention period")                                 \
    X(webhooks_sent, "webhook notifications delivered")                                            \
    X(webhooks_failed, "webhook notifications given up after retries")                             \
    X(webhooks_dropped, "webhook notifications dropped (queue full or shutdown)")                  \
    X(http_early_refusals, "requests refused from their head, before any of their body was read")  \
    X(http_body_budget_refusals, "uploads refused (503): bodies in flight had used their memory")  \
    X(http_head_timeouts, "connections whose request did not arrive in time (408)")                \
    X(http_shed, "waiting connections closed to make room near the connection limit (503)")        \
    X(http_address_refusals, "connections refused: their address held too many already")           \
    X(geo_walks, "GeoIP lookups of a public address not remembered: the files' trees walked")

typedef struct sp_metrics {
#define SP_METRIC_FIELD(name, help) atomic_uint_fast64_t name;
    SP_METRICS(SP_METRIC_FIELD)
#undef SP_METRIC_FIELD
    atomic_uint_fast64_t class_events[SP_CLASS_COUNT]; /* by sp_class_t */
} sp_metrics_t;

extern sp_metrics_t sp_metrics;

#define sp_metric_inc(name) atomic_fetch_add_explicit(&sp_metrics.name, 1, memory_order_relaxed)
#define sp_metric_add(name, n)                                                                     \
    atomic_fetch_add_explicit(&sp_metrics.name, (n), memory_order_relaxed)

/* Renders every counter as Prometheus text into a malloc'd string; caller frees. EXTRA
 * (may be NULL) is appended as is. */
char *sp_metrics_render(const char *extra);

#endif
