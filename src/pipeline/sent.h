/* sent: a campaign's list of the people it was sent to, read from CSV, lines or JSON. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SENT_H
#define SP_SENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SP_SENT_MAX 200000 /* addresses in a list */

typedef struct sp_sent_list {
    char **addrs; /* the valid addresses (IDs), each malloc'd, as they came (repeats kept) */
    size_t n;
    json_t *invalid; /* the first 10 that are not addresses, as JSON strings */
    size_t n_invalid;
} sp_sent_list_t;

/* Reads the LEN bytes of BODY into L (freed with sp_sent_free, also on failure): with JSON, a
 * JSON list of strings; else CSV (RFC 4180), of which the column named email, e-mail, email
 * address, recipient, address or mail in a header row, else the first column (a first row
 * whose first cell is no address is a header), so that one address a line is CSV too. 0, or -1
 * with a message for the user in MSG (not a list, more than SP_SENT_MAX). */
int sp_sent_parse(sp_sent_list_t *l, const char *body, size_t len, bool json, char *msg,
                  size_t msglen);

void sp_sent_free(sp_sent_list_t *l);

#endif
