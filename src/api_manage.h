/* api_manage: archiving and deleting a campaign through the JSON API. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_MANAGE_H
#define SP_API_MANAGE_H

#include "http.h"
#include "store_ops.h"

/* PATCH /api/v1/campaigns/ID {"archived": true|false}, DELETE /api/v1/campaigns/ID (its events
 * erased): answers REQ from STORE for campaign ID (a valid ID). */
enum MHD_Result sp_api_campaign_manage(sp_request_t *req, sp_store_t *store, const char *id);

#endif
