/* api_search: the event log filtered, the recipients table sorted, a recipient's timeline. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_SEARCH_H
#define SP_API_SEARCH_H

#include "http.h"
#include "store_ops.h"

/* GET /api/v1/campaigns/ID/events?recipient=&class=&kind=&country=&client=&from=&to=
 * &before=&limit=: the campaign's events, newest first, filtered, paged by ID. */
enum MHD_Result sp_api_events(sp_request_t *req, sp_store_t *store, const char *id);

/* GET /api/v1/recipients/ADDR: the recipient's opens and clicks in every campaign, newest
 * first, with the same filters and paging. */
enum MHD_Result sp_api_recipient(sp_request_t *req, sp_store_t *store, const char *recipient);

/* GET /api/v1/campaigns/ID/recipients-table?sort=&order=&limit=&next=: the campaign's
 * recipients sorted by any column, paged by an opaque cursor. */
enum MHD_Result sp_api_recipients_table(sp_request_t *req, sp_store_t *store, const char *id);

#endif
