/* api_manage: archiving and deleting a campaign, and what was made for it, through the API. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_MANAGE_H
#define SP_API_MANAGE_H

#include "http.h"
#include "store_ops.h"

/* PATCH /api/v1/campaigns/ID {"archived": true|false}, DELETE /api/v1/campaigns/ID (its events
 * erased): answers REQ from STORE for campaign ID (a valid ID). */
enum MHD_Result sp_api_campaign_manage(sp_request_t *req, sp_store_t *store, const char *id);

/* GET /api/v1/campaigns/ID/links: each link destination with its clicks. */
enum MHD_Result sp_api_links(sp_request_t *req, sp_store_t *store, const char *id);

/* GET /api/v1/campaigns/ID/trackers?limit=N&before=TRACKER_ID: the pixels, links and images
 * made for campaign ID, newest first. */
enum MHD_Result sp_api_trackers(sp_request_t *req, sp_store_t *store, const char *id);

/* Records in STORE that a tracker of KIND ("pixel", "link", "image") for CAMPAIGN and RECIPIENT
 * ("" for none), to TARGET ("" but for links), was made as URL. 0, or -1 + ERR. */
int sp_api_record_tracker(sp_store_t *store, const char *kind, const char *campaign,
                          const char *recipient, const char *target, const char *url, char *err,
                          size_t errlen);

#endif
