/* report: a campaign's figures over a time range and zone, from the store's rollups. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_REPORT_H
#define SP_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "classify.h"
#include "rollup.h"
#include "store_ops.h"
#include "tz.h"

typedef enum sp_report_bucket { SP_REPORT_HOUR, SP_REPORT_DAY, SP_REPORT_WEEK } sp_report_bucket_t;

#define SP_REPORT_SERIES_MAX    10000 /* buckets in a series; more is refused */
#define SP_REPORT_BREAKDOWN_MAX 100   /* names listed per breakdown; the rest are summed */

/* Far enough for every date a store holds: 9999-12-31T23:59:59.999Z. */
#define SP_REPORT_TIME_MAX 253402300799999LL

/* One bucket of the series: it starts at T (UTC ms), at a local hour, midnight or Monday. */
typedef struct sp_report_point {
    int64_t t;
    int64_t counted, machine, self, clicks;
} sp_report_point_t;

typedef struct sp_report_name {
    char *name; /* malloc'd */
    int64_t count;
} sp_report_name_t;

typedef struct sp_report_breakdown {
    sp_report_name_t *names; /* malloc'd, by count descending */
    size_t n;
    int64_t others; /* counted opens of the names past SP_REPORT_BREAKDOWN_MAX */
} sp_report_breakdown_t;

/* What sp_report_run is asked (from, to, tz, bucket: set by the caller) and what it finds. */
typedef struct sp_report {
    int64_t from, to; /* UTC ms, [from, to); 0 and SP_REPORT_TIME_MAX: all time */
    sp_tz_t tz;       /* loaded by the caller, freed by sp_report_free */
    sp_report_bucket_t bucket;
    bool scan; /* every figure from the events themselves, not the rollups (to compare) */

    int64_t by_class[SP_CLASS_COUNT]; /* opens */
    int64_t clicks;                   /* counted clicks */
    int64_t unique_views, unique_clickers;
    sp_report_point_t *series; /* malloc'd */
    size_t n_series;
    sp_report_breakdown_t breakdowns[SP_ROLLUP_DIMS]; /* dims 1-6 */
    int64_t hour_of_day[24], day_of_week[7]; /* counted opens by local hour, Monday first */
    /* The campaign's list of the people it was sent to: how many (0: no list), and how many of
     * them had a counted open, a counted click in the range. */
    int64_t sent, sent_openers, sent_clickers;
} sp_report_t;

/* Reads campaign CAMPAIGN's report from S into R. 0; 1 when the series would have more than
 * SP_REPORT_SERIES_MAX buckets (ERR says so, for the user); -1 + ERR when the store failed. */
int sp_report_run(sp_store_t *s, const char *campaign, sp_report_t *r, char *err, size_t errlen);

/* The start (UTC ms) of the bucket that holds T in R's zone. */
int64_t sp_report_bucket_start(const sp_report_t *r, int64_t t);

/* Frees what R holds (its zone too). */
void sp_report_free(sp_report_t *r);

#endif
