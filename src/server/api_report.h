/* api_report: the report routes of the JSON API (GET /api/v1/campaigns/ID/report). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_REPORT_H
#define SP_API_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "store_ops.h"
#include "tz.h"

/* GET /api/v1/campaigns/ID/report: answers REQ from STORE for campaign ID (a valid ID). */
enum MHD_Result sp_api_report(sp_request_t *req, sp_store_t *store, const char *id);

/* PUT /api/v1/campaigns/ID/recipients: replaces ID's list with the body's (a JSON list, or CSV
 * or text with one address a line). */
enum MHD_Result sp_api_put_recipients(sp_request_t *req, sp_store_t *store, const char *id);

/* GET /api/v1/campaigns/ID/not-opened (JSON, paged) or, with CSV, not-opened.csv (all). */
enum MHD_Result sp_api_not_opened(sp_request_t *req, sp_store_t *store, const char *id, bool csv);

/* Sets campaign ID's rates over all time in J (sp_serialize_rates), read from STORE. 0, or -1 +
 * ERR. */
int sp_api_campaign_rates(sp_store_t *store, const char *id, json_t *j, char *err, size_t errlen);

/* ISO 8601 time S (a date, a time, an offset or Z; without one, a wall-clock time in TZ) into
 * *MS (UTC ms). 0, or -1 when it is not one or not within 1970-9999. */
int sp_api_report_time(const char *s, const sp_tz_t *tz, int64_t *ms);

#endif
