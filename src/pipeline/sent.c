/* sent: a campaign's list of the people it was sent to, read from CSV, lines or JSON. */
/* SPDX-License-Identifier: MIT */
#include "sent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event.h"

#define INVALID_SHOWN 10

static void list_take(sp_sent_list_t *l, const char *s, size_t len)
{
    while (len && (' ' == *s || '\t' == *s)) { /* spaces around a cell are not the address */
        s++;
        len--;
    }
    while (len && (' ' == s[len - 1] || '\t' == s[len - 1]))
        len--;
    if (!len)
        return; /* an empty line or cell */
    char *a = strndup(s, len);
    if (!a)
        abort();
    if (len > SP_ID_MAX || strlen(a) != len || !sp_event_id_valid(a)) {
        if (l->n_invalid++ < INVALID_SHOWN) {
            json_t *v = json_stringn(s, len > 200 ? 200 : len);
            json_array_append_new(l->invalid, v ? v : json_string("(not UTF-8)"));
        }
        free(a);
        return;
    }
    l->addrs[l->n++] = a;
}

/* One CSV row (RFC 4180: quoted cells with "" inside) from *P (END its end): its cells' bounds
 * into CELLS (unquoted copies in BUF), at most MAX. Returns the cells found. */
typedef struct {
    const char *s;
    size_t len;
} cell_t;

static size_t csv_row(const char **p, const char *end, cell_t *cells, size_t max, char *buf,
                      size_t buflen)
{
    size_t n = 0, at = 0;
    const char *c = *p;
    for (;;) {
        size_t start = at;
        if (c < end && '"' == *c) {
            for (c++; c < end; c++) {
                if ('"' == *c && c + 1 < end && '"' == c[1])
                    c++;
                else if ('"' == *c) {
                    c++;
                    break;
                }
                if (at + 1 < buflen)
                    buf[at++] = *c;
            }
        }
        for (; c < end && ',' != *c && '\n' != *c && '\r' != *c; c++)
            if (at + 1 < buflen)
                buf[at++] = *c;
        if (n < max)
            cells[n++] = (cell_t){buf + start, at - start};
        if (c < end && ',' == *c) {
            c++;
            continue;
        }
        break;
    }
    if (c < end && '\r' == *c)
        c++;
    if (c < end && '\n' == *c)
        c++;
    *p = c;
    return n;
}

#define CSV_COLUMNS 64

static bool is_address_header(const cell_t *c)
{
    static const char *const names[] = {"email",     "e-mail",  "email address",
                                        "recipient", "address", "mail"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == c->len && 0 == strncasecmp(names[i], c->s, c->len))
            return true;
    return false;
}

static int parse_csv(sp_sent_list_t *l, const char *body, size_t len, char *msg, size_t msglen)
{
    const char *p = body, *end = body + len;
    cell_t cells[CSV_COLUMNS];
    char *buf = malloc(len + 1);
    if (!buf)
        abort();
    size_t col = 0;
    bool first = true;
    while (p < end) {
        size_t n = csv_row(&p, end, cells, CSV_COLUMNS, buf, len + 1);
        if (first) {
            first = false;
            /* A header names the column (email, recipient...); a first row whose first cell
             * is no address at all (Name, ...) is a header too. */
            bool header = false;
            for (size_t i = 0; i < n && !header; i++)
                if (is_address_header(&cells[i])) {
                    col = i;
                    header = true;
                }
            if (header)
                continue;
            char probe[SP_ID_MAX + 1];
            if (n && cells[0].len && cells[0].len <= SP_ID_MAX) {
                memcpy(probe, cells[0].s, cells[0].len);
                probe[cells[0].len] = '\0';
                if (!strchr(probe, '@') && !sp_event_id_valid(probe))
                    continue;
            }
        }
        if (col < n) {
            if (l->n == SP_SENT_MAX) {
                snprintf(msg, msglen, "at most %d addresses", SP_SENT_MAX);
                free(buf);
                return -1;
            }
            list_take(l, cells[col].s, cells[col].len);
        }
    }
    free(buf);
    return 0;
}

static int parse_json(sp_sent_list_t *l, const char *body, size_t len, char *msg, size_t msglen)
{
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_array(j)) {
        json_decref(j);
        snprintf(msg, msglen, "the body must be a JSON list of addresses, or CSV");
        return -1;
    }
    if (json_array_size(j) > SP_SENT_MAX) {
        json_decref(j);
        snprintf(msg, msglen, "at most %d addresses", SP_SENT_MAX);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if (json_is_string(v))
            list_take(l, json_string_value(v), json_string_length(v));
        else if (l->n_invalid++ < INVALID_SHOWN)
            json_array_append_new(l->invalid, json_string("(not a string)"));
    }
    json_decref(j);
    return 0;
}

int sp_sent_parse(sp_sent_list_t *l, const char *body, size_t len, bool json, char *msg,
                  size_t msglen)
{
    *l = (sp_sent_list_t){.addrs = calloc(SP_SENT_MAX, sizeof(char *)), .invalid = json_array()};
    if (!l->addrs)
        abort();
    return json ? parse_json(l, body, len, msg, msglen) : parse_csv(l, body, len, msg, msglen);
}

void sp_sent_free(sp_sent_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->addrs[i]);
    free(l->addrs);
    json_decref(l->invalid);
    *l = (sp_sent_list_t){0};
}
