/* api_report: the report routes of the JSON API (GET /api/v1/campaigns/ID/report). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_REPORT_H
#define SP_API_REPORT_H

#include <stdint.h>

#include "http.h"
#include "store_ops.h"
#include "tz.h"

/* GET /api/v1/campaigns/ID/report: answers REQ from STORE for campaign ID (a valid ID). */
enum MHD_Result sp_api_report(sp_request_t *req, sp_store_t *store, const char *id);

/* ISO 8601 time S (a date, a time, an offset or Z; without one, a wall-clock time in TZ) into
 * *MS (UTC ms). 0, or -1 when it is not one or not within 1970-9999. */
int sp_api_report_time(const char *s, const sp_tz_t *tz, int64_t *ms);

#endif
