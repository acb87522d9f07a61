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
#include "sent.h"
#include "serialize.h"
#include "text.h"

#define TIME_ARG_MAX 40 /* "2026-12-04T19:32:38.123+01:00" is 29 */

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
    sp_serialize_rates(j, &(sp_store_sent_t){r->sent, r->sent_openers, r->sent_clickers});
    return j;
}

int sp_api_campaign_rates(sp_store_t *store, const char *id, json_t *j, char *err, size_t errlen)
{
    sp_store_sent_t s;
    if (0 != store->ops->sent_stats(store, id, &s, err, errlen))
        return -1;
    sp_serialize_rates(j, &s);
    return 0;
}

/* ---- the people a campaign was sent to ------------------------------------------------------ */

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
    bool json = type && sp_has_prefix_ci(type, "application/json");
    bool csv = type && (sp_has_prefix_ci(type, "text/csv") || sp_has_prefix_ci(type, "text/plain"));
    if (!json && !csv)
        return sp_http_error(req, 415, "send application/json (a list of addresses) or text/csv");
    sp_sent_list_t l;
    int rc = sp_sent_parse(&l, req->body ? req->body : "", req->body_len, json, msg, sizeof(msg));
    enum MHD_Result ret;
    int64_t stored = 0;
    if (rc)
        ret = sp_http_error(req, 400, msg);
    else if (0 != store->ops->sent_put(store, id, (const char *const *)l.addrs, l.n, &stored, err,
                                       sizeof(err)))
        ret = store_error(req, err);
    else
        ret =
            sp_http_json(req, 200,
                         json_pack("{s:s, s:I, s:O, s:I}", "id", id, "sent", (json_int_t)stored,
                                   "invalid", l.invalid, "invalid_count", (json_int_t)l.n_invalid));
    sp_sent_free(&l);
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
    return sp_http_json(req, 200,
                        json_pack("{s:s, s:o, s:o}", "id", id, "recipients", p.arr, "next_after",
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
        rc = sp_http_json(req, 200, report_json(id, &r, &camp));
done:
    sp_report_free(&r);
    return rc;
}
