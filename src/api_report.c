/* api_report: the report routes of the JSON API (GET /api/v1/campaigns/ID/report). */
/* SPDX-License-Identifier: MIT */
#include "api_report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "event.h"
#include "log.h"
#include "report.h"

#define TIME_ARG_MAX 40 /* "2026-12-04T19:32:38.123+01:00" is 29 */

static enum MHD_Result send_json(sp_request_t *req, json_t *j)
{
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body)
        return sp_http_error(req, 500, "cannot encode the answer");
    enum MHD_Result rc = sp_http_respond(req, 200, "application/json", body, strlen(body));
    free(body);
    return rc;
}

static enum MHD_Result store_error(sp_request_t *req, const char *err)
{
    sp_log_error("store error", "error=\"%s\"", err);
    return sp_http_error(req, 500, "the store failed; see the server log");
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *out = *out * 10 + (s[i] - '0');
    }
    return true;
}

/* ISO 8601: YYYY-MM-DD, then optionally THH:MM, :SS, .fraction, and Z or an offset (+HH:MM,
 * +HHMM, +HH); without an offset it is a wall-clock time in TZ. 0 with *MS, or -1. */
int sp_api_report_time(const char *s, const sp_tz_t *tz, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (strlen(s) < 10 || !digits(s, 4, &y) || '-' != s[4] || !digits(s + 5, 2, &mo) ||
        '-' != s[7] || !digits(s + 8, 2, &d))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (0 == y % 4 && 0 != y % 100) || 0 == y % 400;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (2 == mo && 29 == d && !leap))
        return -1;
    const char *p = s + 10;
    if ('T' == *p || 't' == *p || ' ' == *p) {
        if (!digits(p + 1, 2, &h) || ':' != p[3] || !digits(p + 4, 2, &mi) || h > 23 || mi > 59)
            return -1;
        p += 6;
        if (':' == *p) {
            if (!digits(p + 1, 2, &sec) || sec > 59)
                return -1;
            p += 3;
            if ('.' == *p || ',' == *p) {
                int n = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, n++)
                    if (n < 3)
                        frac = frac * 10 + (*p - '0');
                if (!n)
                    return -1;
                for (; n < 3; n++)
                    frac *= 10;
            }
        }
    }
    int64_t local =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    int64_t t;
    if (!*p) {
        t = sp_tz_from_local(tz, local);
    } else if (('Z' == *p || 'z' == *p) && !p[1]) {
        t = local;
    } else if ('+' == *p || '-' == *p) {
        int oh, om = 0;
        const char *o = p + 1;
        if (!digits(o, 2, &oh))
            return -1;
        o += 2;
        if (':' == *o)
            o++;
        if (*o && (!digits(o, 2, &om) || o[2]))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        int off = oh * 3600 + om * 60;
        t = local - ('+' == *p ? off : -off);
    } else {
        return -1;
    }
    *ms = t * 1000 + frac;
    return *ms >= 0 && *ms <= SP_REPORT_TIME_MAX ? 0 : -1;
}

/* UTC ms T as ISO 8601 in zone TZ, with its offset ("2026-03-29T00:00:00+01:00"). */
static void local_iso(const sp_tz_t *tz, int64_t t, char *buf, size_t len)
{
    int64_t s = t / 1000;
    int32_t off = sp_tz_offset(tz, s);
    time_t local = (time_t)(s + off);
    struct tm tm;
    gmtime_r(&local, &tm);
    int a = off < 0 ? -off : off;
    if (0 == off)
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else {
        char head[32];
        strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, len, "%s%c%02d:%02d", head, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
    }
}

static json_t *time_json(const sp_tz_t *tz, int64_t t, bool bound)
{
    if (!bound)
        return json_null();
    char buf[64];
    local_iso(tz, t, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *report_json(const char *id, const sp_report_t *r, const sp_campaign_t *camp)
{
    static const char *const buckets[] = {"hour", "day", "week"};
    static const char *const classes[] = {"human", "proxy", "machine", "self"};
    _Static_assert(4 == SP_CLASS_COUNT, "a class needs its name here");
    json_t *j = json_object(), *by = json_object(), *series = json_array(), *bd = json_object(),
           *others = json_object(), *hod = json_array(), *dow = json_array();
    json_object_set_new(j, "id", json_string(id));
    json_object_set_new(j, "from", time_json(&r->tz, r->from, r->from > 0));
    json_object_set_new(j, "to", time_json(&r->tz, r->to, r->to < SP_REPORT_TIME_MAX));
    json_object_set_new(j, "tz", json_string(r->tz.name));
    json_object_set_new(j, "bucket", json_string(buckets[r->bucket]));
    json_object_set_new(j, "total_views",
                        json_integer(r->by_class[SP_CLASS_HUMAN] + r->by_class[SP_CLASS_PROXY]));
    json_object_set_new(j, "unique_views", json_integer(r->unique_views));
    for (int k = 0; k < SP_CLASS_COUNT; k++)
        json_object_set_new(by, classes[k], json_integer(r->by_class[k]));
    json_object_set_new(j, "by_class", by);
    json_object_set_new(j, "clicks", json_integer(r->clicks));
    json_object_set_new(j, "unique_clickers", json_integer(r->unique_clickers));
    for (size_t i = 0; i < r->n_series; i++) {
        const sp_report_point_t *p = &r->series[i];
        char t[64];
        local_iso(&r->tz, p->t, t, sizeof(t));
        json_array_append_new(series, json_pack("{s:s, s:I, s:I, s:I, s:I}", "t", t, "counted",
                                                (json_int_t)p->counted, "machine",
                                                (json_int_t)p->machine, "self", (json_int_t)p->self,
                                                "clicks", (json_int_t)p->clicks));
    }
    json_object_set_new(j, "series", series);
    for (int d = SP_ROLLUP_CLIENT; d <= SP_ROLLUP_VIA; d++) {
        const sp_report_breakdown_t *b = &r->breakdowns[d];
        json_t *arr = json_array();
        for (size_t i = 0; i < b->n; i++) {
            /* Stored text is UTF-8 (repaired on the way in); a value that is not is dropped by
             * jansson, so it is named by its bytes' length rather than lost from the sums. */
            json_t *name = json_string(b->names[i].name);
            json_array_append_new(arr, json_pack("{s:o, s:I}", "name",
                                                 name ? name : json_string("(not UTF-8)"), "count",
                                                 (json_int_t)b->names[i].count));
        }
        json_object_set_new(bd, sp_rollup_dim_name(d), arr);
        json_object_set_new(others, sp_rollup_dim_name(d), json_integer(b->others));
    }
    json_object_set_new(j, "breakdowns", bd);
    json_object_set_new(j, "breakdowns_others", others);
    for (int h = 0; h < 24; h++)
        json_array_append_new(hod, json_integer(r->hour_of_day[h]));
    for (int d = 0; d < 7; d++)
        json_array_append_new(dow, json_integer(r->day_of_week[d]));
    json_object_set_new(j, "hour_of_day", hod);
    json_object_set_new(j, "day_of_week", dow);
    (void)camp;
    sp_api_report_rates(j, r->sent, r->sent_openers, r->sent_clickers);
    return j;
}

static json_t *ratio(int64_t a, int64_t b)
{
    return b > 0 ? json_real((double)a / (double)b) : json_null();
}

void sp_api_report_rates(json_t *j, int64_t sent, int64_t openers, int64_t clickers)
{
    json_object_set_new(j, "sent", sent > 0 ? json_integer(sent) : json_null());
    json_object_set_new(j, "sent_opened", sent > 0 ? json_integer(openers) : json_null());
    json_object_set_new(j, "sent_clicked", sent > 0 ? json_integer(clickers) : json_null());
    json_object_set_new(j, "open_rate", ratio(openers, sent));
    json_object_set_new(j, "click_rate", ratio(clickers, sent));
    json_object_set_new(j, "click_to_open_rate", sent > 0 ? ratio(clickers, openers) : json_null());
}

int sp_api_campaign_rates(sp_store_t *store, const char *id, json_t *j, char *err, size_t errlen)
{
    sp_store_sent_t s;
    if (0 != store->ops->sent_stats(store, id, &s, err, errlen))
        return -1;
    sp_api_report_rates(j, s.sent, s.openers, s.clickers);
    return 0;
}

/* ---- the people a campaign was sent to ------------------------------------------------------ */

bool sp_api_report_big_body(const char *path)
{
    size_t n = strlen(path);
    return 0 == strncmp(path, "campaigns/", 10) && n > 11 &&
           0 == strcmp(path + n - 11, "/recipients");
}

#define INVALID_SHOWN 10

typedef struct {
    char **addrs; /* malloc'd, each */
    size_t n;
    json_t *invalid; /* the first INVALID_SHOWN */
    size_t n_invalid;
} list_t;

static void list_take(list_t *l, const char *s, size_t len)
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

static int parse_csv(list_t *l, const char *body, size_t len, char *msg, size_t msglen)
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
            if (l->n == SP_API_SENT_MAX) {
                snprintf(msg, msglen, "at most %d addresses", SP_API_SENT_MAX);
                free(buf);
                return -1;
            }
            list_take(l, cells[col].s, cells[col].len);
        }
    }
    free(buf);
    return 0;
}

static int parse_json(list_t *l, const char *body, size_t len, char *msg, size_t msglen)
{
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_array(j)) {
        json_decref(j);
        snprintf(msg, msglen, "the body must be a JSON list of addresses, or CSV");
        return -1;
    }
    if (json_array_size(j) > SP_API_SENT_MAX) {
        json_decref(j);
        snprintf(msg, msglen, "at most %d addresses", SP_API_SENT_MAX);
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

enum MHD_Result sp_api_put_recipients(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512], msg[160];
    sp_campaign_t camp;
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found < 0)
        return store_error(req, err);
    if (found > 0)
        return sp_http_error(req, 404, "no such campaign");
    const char *type = sp_http_header(req, "Content-Type");
    bool json = type && 0 == strncasecmp(type, "application/json", 16);
    bool csv =
        type && (0 == strncasecmp(type, "text/csv", 8) || 0 == strncasecmp(type, "text/plain", 10));
    if (!json && !csv)
        return sp_http_error(req, 415, "send application/json (a list of addresses) or text/csv");
    list_t l = {.addrs = calloc(SP_API_SENT_MAX, sizeof(char *)), .invalid = json_array()};
    if (!l.addrs)
        abort();
    const char *body = req->body ? req->body : "";
    int rc = json ? parse_json(&l, body, req->body_len, msg, sizeof(msg))
                  : parse_csv(&l, body, req->body_len, msg, sizeof(msg));
    enum MHD_Result ret;
    int64_t stored = 0;
    if (rc)
        ret = sp_http_error(req, 400, msg);
    else if (0 != store->ops->sent_put(store, id, (const char *const *)l.addrs, l.n, &stored, err,
                                       sizeof(err)))
        ret = store_error(req, err);
    else
        ret = send_json(req,
                        json_pack("{s:s, s:I, s:O, s:I}", "id", id, "sent", (json_int_t)stored,
                                  "invalid", l.invalid, "invalid_count", (json_int_t)l.n_invalid));
    for (size_t i = 0; i < l.n; i++)
        free(l.addrs[i]);
    free(l.addrs);
    json_decref(l.invalid);
    return ret;
}

typedef struct {
    json_t *arr;
    FILE *csv;
    char last[SP_ID_MAX + 1];
    int64_t n;
} names_t;

static int add_name(void *ctx, const char *name)
{
    names_t *p = ctx;
    if (p->csv) {
        /* A cell a spreadsheet would run as a formula is led by a quote (OWASP, "CSV
         * Injection"); IDs hold no quote or comma. */
        bool formula = '=' == name[0] || '+' == name[0] || '-' == name[0] || '@' == name[0];
        fprintf(p->csv, "\"%s%s\"\r\n", formula ? "'" : "", name);
    } else {
        json_array_append_new(p->arr, json_string(name));
    }
    snprintf(p->last, sizeof(p->last), "%s", name);
    p->n++;
    return 0;
}

enum MHD_Result sp_api_not_opened(sp_request_t *req, sp_store_t *store, const char *id, bool csv)
{
    char err[512];
    sp_campaign_t camp;
    int64_t limit = 100;
    const char *after = sp_http_arg(req, "after"), *lim = sp_http_arg(req, "limit");
    if (lim) {
        char *end;
        long long v = strtoll(lim, &end, 10);
        if (end == lim || *end || v < 1 || v > 100000)
            return sp_http_error(req, 400, "limit must be 1-100000; after a recipient ID");
        limit = v;
    }
    if (after && strlen(after) > SP_ID_MAX)
        return sp_http_error(req, 400, "limit must be 1-100000; after a recipient ID");
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found < 0)
        return store_error(req, err);
    if (found > 0)
        return sp_http_error(req, 404, "no such campaign");
    names_t p = {.arr = csv ? NULL : json_array()};
    char *buf = NULL;
    size_t len = 0;
    if (csv) {
        p.csv = open_memstream(&buf, &len);
        if (!p.csv)
            abort();
        fputs("\"recipient\"\r\n", p.csv);
    }
    int rc = store->ops->not_opened(store, id, csv ? "" : (after ? after : ""), csv ? -1 : limit,
                                    add_name, &p, err, sizeof(err));
    if (csv) {
        fclose(p.csv);
        if (rc) {
            free(buf);
            return store_error(req, err);
        }
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
        char disposition[256];
        MHD_add_response_header(resp, "Content-Type", "text/csv; charset=utf-8");
        snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s-not-opened.csv\"",
                 id);
        MHD_add_response_header(resp, "Content-Disposition", disposition);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        sp_http_secure_headers(resp, false);
        enum MHD_Result r = MHD_queue_response(req->conn, 200, resp);
        MHD_destroy_response(resp);
        return r;
    }
    if (rc) {
        json_decref(p.arr);
        return store_error(req, err);
    }
    return send_json(req, json_pack("{s:s, s:o, s:o}", "id", id, "recipients", p.arr, "next_after",
                                    p.n == limit ? json_string(p.last) : json_null()));
}

enum MHD_Result sp_api_report(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512], msg[160];
    sp_report_t r = {.from = 0, .to = SP_REPORT_TIME_MAX, .bucket = SP_REPORT_DAY};
    const char *from = sp_http_arg(req, "from"), *to = sp_http_arg(req, "to"),
               *tz = sp_http_arg(req, "tz"), *bucket = sp_http_arg(req, "bucket");
    if (0 != sp_tz_load(&r.tz, tz ? tz : "UTC", msg, sizeof(msg)))
        return sp_http_error(req, 400, msg);
    enum MHD_Result rc;
    if (bucket && 0 == strcmp(bucket, "hour"))
        r.bucket = SP_REPORT_HOUR;
    else if (bucket && 0 == strcmp(bucket, "week"))
        r.bucket = SP_REPORT_WEEK;
    else if (bucket && 0 != strcmp(bucket, "day")) {
        rc = sp_http_error(req, 400, "bucket must be hour, day or week");
        goto done;
    }
    if ((from && (strlen(from) > TIME_ARG_MAX || 0 != sp_api_report_time(from, &r.tz, &r.from))) ||
        (to && (strlen(to) > TIME_ARG_MAX || 0 != sp_api_report_time(to, &r.tz, &r.to)))) {
        rc = sp_http_error(req, 400,
                           "from and to must be ISO 8601 times (2026-12-01, 2026-12-01T08:00, "
                           "2026-12-01T08:00:00Z or with an offset), from 1970 to 9999");
        goto done;
    }
    if (r.from > r.to) {
        rc = sp_http_error(req, 400, "from must not be after to");
        goto done;
    }
    const char *scan = sp_http_arg(req, "source");
    if (scan && 0 == strcmp(scan, "events"))
        r.scan = true;
    sp_campaign_t camp;
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found < 0) {
        rc = store_error(req, err);
        goto done;
    }
    if (found > 0) {
        rc = sp_http_error(req, 404, "no such campaign");
        goto done;
    }
    int ran = sp_report_run(store, id, &r, err, sizeof(err));
    if (ran < 0)
        rc = store_error(req, err);
    else if (ran > 0)
        rc = sp_http_error(req, 400, err);
    else
        rc = send_json(req, report_json(id, &r, &camp));
done:
    sp_report_free(&r);
    return rc;
}
