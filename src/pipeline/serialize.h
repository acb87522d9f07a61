/* serialize: events, campaigns and recipients as JSON and CSV, for the API, live streams and
 * webhooks. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SERIALIZE_H
#define SP_SERIALIZE_H

#include <jansson.h>
#include <stdio.h>

#include "event.h"
#include "store_ops.h"

/* The JSON of a stored event: each field of event_fields.h under its name, in its order. Text
 * a store kept from before text was repaired on the way in is repaired here the same way. New
 * reference. */
json_t *sp_serialize_event(const sp_event_row_t *row);

/* Bytes being made, appended to: DATA (malloc'd, NULL until the first append; the holder frees
 * it with sp_outbuf_free) holds LEN bytes of CAP. Zero it to start. */
typedef struct sp_outbuf {
    char *data;
    size_t len, cap;
} sp_outbuf_t;

/* Room for N more bytes; out of memory aborts. */
void sp_outbuf_reserve(sp_outbuf_t *b, size_t n);
void sp_outbuf_put(sp_outbuf_t *b, const char *s, size_t n);
void sp_outbuf_free(sp_outbuf_t *b);

/* The same event as json_dumps(sp_serialize_event(ROW), JSON_INDENT(1)) writes it, byte for
 * byte, nested DEPTH levels in (1: an element of an indented array), appended to B without
 * building it: an export's form. The FILE form writes the same bytes to OUT. */
void sp_serialize_event_buf(sp_outbuf_t *b, const sp_event_row_t *row, int depth);
void sp_serialize_event_text(FILE *out, const sp_event_row_t *row, int depth);

/* The CSV export's header line, and ROW as one line of it: the fields with a CSV column, in
 * that order, every value quoted (RFC 4180), one that a spreadsheet would run as a formula
 * (starting with = + - @, a tab or a carriage return) led by a single quote (OWASP, "CSV
 * Injection"). Appended to B, or written to OUT. */
void sp_serialize_csv_header_buf(sp_outbuf_t *b);
void sp_serialize_csv_row_buf(sp_outbuf_t *b, const sp_event_row_t *row);
void sp_serialize_csv_header(FILE *out);
void sp_serialize_csv_row(FILE *out, const sp_event_row_t *row);

/* A campaign and a recipient as the API and the command line's --json show them. New
 * references. */
json_t *sp_serialize_campaign(const sp_campaign_t *c);
/* A campaign's engagement: {"glanced","skimmed","read","unmeasured","prints","forwards",
 * "likely_forwards"}. */
json_t *sp_serialize_engagement(const sp_engagement_t *e);

json_t *sp_serialize_recipient(const sp_recipient_t *r);

/* Sets "sent", "sent_opened", "sent_clicked", "open_rate", "click_rate" and
 * "click_to_open_rate" in J from S (each null without a list: S->sent 0). */
void sp_serialize_rates(json_t *j, const sp_store_sent_t *s);

/* A campaign that does not exist but was opened, as the API lists them. New reference. */
json_t *sp_serialize_unknown(const sp_unknown_campaign_t *u);

#endif
