/* serialize: events, campaigns and recipients as JSON and CSV, for the API, live streams and
 * webhooks. */
/* SPDX-License-Identifier: MIT */
#include "serialize.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "utf8.h"

static json_t *ts_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[32];
    sp_format_ts(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* Well-formed in a row made by sp_event_row; a store may hold text from before that. */
static json_t *text_json(const char *s)
{
    if (!s)
        return json_null();
    char *clean = sp_utf8_clean(s);
    json_t *j = json_string(clean ? clean : s);
    free(clean);
    return j;
}

static const char *kind_name(int64_t kind)
{
    return sp_event_kind_name(kind);
}

static json_t *field_json(const sp_event_row_t *row, const sp_event_field_t *f)
{
    switch (f->kind) {
    case SP_FIELD_ID:
        return json_integer(sp_event_row_int(row, f));
    case SP_FIELD_TIME:
        return ts_json(sp_event_row_int(row, f));
    case SP_FIELD_KIND:
        return json_string(kind_name(sp_event_row_int(row, f)));
    case SP_FIELD_CLASS:
        return json_string(sp_class_name((sp_class_t)sp_event_row_int(row, f)));
    case SP_FIELD_TEXT:
    case SP_FIELD_TEXT_OR_NULL:
        return text_json(sp_event_row_text(row, f));
    case SP_FIELD_OBJECT: {
        const char *text = sp_event_row_text(row, f);
        json_t *o = json_loads(text ? text : "{}", 0, NULL);
        return o ? o : json_object();
    }
    case SP_FIELD_COORD: {
        double v = sp_event_row_coord(row, f);
        return isnan(v) ? json_null() : json_real(v);
    }
    case SP_FIELD_DURATION: {
        int64_t v = sp_event_row_int(row, f);
        return v < 0 ? json_null() : json_integer(v);
    }
    }
    abort(); /* a kind without its JSON */
}

json_t *sp_serialize_event(const sp_event_row_t *row)
{
    json_t *j = json_object();
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
        json_object_set_new(j, sp_event_fields[i].name, field_json(row, &sp_event_fields[i]));
    return j;
}

/* ---- CSV ------------------------------------------------------------------------------ */

/* The fields with a CSV column, in column order. */
static const sp_event_field_t *csv_fields[SP_EVENT_N_FIELDS];
static size_t n_csv;
static pthread_once_t csv_once = PTHREAD_ONCE_INIT;

/* The CSV columns are numbered 1..N without a gap or a repeat: anything else is a slip in
 * event_fields.h, caught by the first export (and the tests). */
static void csv_order(void)
{
    for (int column = 1; column <= SP_EVENT_N_FIELDS; column++) {
        size_t found = 0;
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
            if (sp_event_fields[i].csv == column) {
                csv_fields[n_csv] = &sp_event_fields[i];
                found++;
            }
        if (!found)
            break;
        if (found > 1)
            abort();
        n_csv++;
    }
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
        if (sp_event_fields[i].csv < 0 || sp_event_fields[i].csv > (int)n_csv)
            abort();
}

static void csv_field(FILE *f, const char *s, bool last)
{
    fputc('"', f);
    if (s && s[0] && strchr("=+-@\t\r", s[0]))
        fputc('\'', f);
    char *clean = s ? sp_utf8_clean(s) : NULL;
    for (const char *p = clean ? clean : s; p && *p; p++) {
        if ('"' == *p)
            fputc('"', f);
        fputc(*p, f);
    }
    free(clean);
    fputc('"', f);
    fputc(last ? '\n' : ',', f);
}

void sp_serialize_csv_header(FILE *out)
{
    pthread_once(&csv_once, csv_order);
    for (size_t i = 0; i < n_csv; i++) {
        fputs(csv_fields[i]->name, out);
        fputc(i + 1 == n_csv ? '\n' : ',', out);
    }
}

void sp_serialize_csv_row(FILE *out, const sp_event_row_t *row)
{
    pthread_once(&csv_once, csv_order);
    for (size_t i = 0; i < n_csv; i++) {
        const sp_event_field_t *f = csv_fields[i];
        char buf[32] = "";
        const char *text = buf;
        switch (f->kind) {
        case SP_FIELD_ID:
            snprintf(buf, sizeof(buf), "%lld", (long long)sp_event_row_int(row, f));
            break;
        case SP_FIELD_TIME:
            sp_format_ts(sp_event_row_int(row, f), buf, sizeof(buf));
            break;
        case SP_FIELD_KIND:
            text = kind_name(sp_event_row_int(row, f));
            break;
        case SP_FIELD_CLASS:
            text = sp_class_name((sp_class_t)sp_event_row_int(row, f));
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_TEXT_OR_NULL:
        case SP_FIELD_OBJECT:
            text = sp_event_row_text(row, f);
            break;
        case SP_FIELD_COORD:
            if (!isnan(sp_event_row_coord(row, f)))
                snprintf(buf, sizeof(buf), "%.4f", sp_event_row_coord(row, f));
            break;
        case SP_FIELD_DURATION:
            if (sp_event_row_int(row, f) >= 0)
                snprintf(buf, sizeof(buf), "%lld", (long long)sp_event_row_int(row, f));
            break;
        }
        csv_field(out, text, i + 1 == n_csv);
    }
}

/* ---- campaigns, recipients, unknown campaigns
 * ----------------------------------------------------------- */

json_t *sp_serialize_campaign(const sp_campaign_t *c)
{
    json_t *by_class = json_object();
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        json_object_set_new(by_class, sp_class_name((sp_class_t)i), json_integer(c->by_class[i]));
    return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:I}", "id", c->id, "total_views",
                     (json_int_t)c->total_views, "unique_views", (json_int_t)c->unique_views,
                     "last_view_at", ts_json(c->last_view_at), "created_at", ts_json(c->created_at),
                     "by_class", by_class, "clicks", (json_int_t)c->clicks);
}

json_t *sp_serialize_engagement(const sp_engagement_t *e)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "glanced", (json_int_t)e->glanced, "skimmed",
                     (json_int_t)e->skimmed, "read", (json_int_t)e->read, "unmeasured",
                     (json_int_t)e->unmeasured, "prints", (json_int_t)e->prints, "forwards",
                     (json_int_t)e->forwards);
}

json_t *sp_serialize_recipient(const sp_recipient_t *r)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "recipient", r->recipient, "views",
                     (json_int_t)r->views, "machine", (json_int_t)r->by_class[SP_CLASS_MACHINE],
                     "self", (json_int_t)r->by_class[SP_CLASS_SELF], "clicks",
                     (json_int_t)r->clicks, "first_view_at", ts_json(r->first_at), "last_view_at",
                     ts_json(r->last_at));
}

json_t *sp_serialize_unknown(const sp_unknown_campaign_t *u)
{
    return json_pack("{s:s, s:I, s:o, s:o}", "id", u->id, "opens", (json_int_t)u->opens, "first_at",
                     ts_json(u->first_at), "last_at", ts_json(u->last_at));
}
