/* serialize: events, campaigns and recipients as JSON and CSV, for the API, live streams and
 * webhooks. */
/* SPDX-License-Identifier: MIT */
#include "serialize.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
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

/* ---- JSON text, as jansson writes it --------------------------------------------------- */

/*
 * The export's JSON without jansson's objects: building each event as a json_t, parsing its
 * stored headers and cookies back into objects and dumping them again cost most of an
 * export. The text is what json_dumps(sp_serialize_event(row), JSON_INDENT(1)) writes (jansson
 * 2.14's dump.c: ": " after a key, a newline and one space per level before each member,
 * strings with '"', '\\' and the control characters escaped, \u%04X for those without a short
 * form, reals by "%.17g" with ".0" added to an integral one), which the tests compare byte for
 * byte. A stored object this reader does not take exactly as jansson would (anything but an
 * object of distinct string keys whose values are strings or arrays of strings, well-formed
 * UTF-8, no NUL) goes through jansson as before.
 */

static void put_indent(FILE *f, int depth)
{
    fputc_unlocked('\n', f);
    for (int i = 0; i < depth; i++)
        fputc_unlocked(' ', f);
}

/* S (N bytes, well-formed UTF-8) as a JSON string. */
static void put_string(FILE *f, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    fputc_unlocked('"', f);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && '"' != c && '\\' != c)
            continue;
        fwrite_unlocked(s + run, 1, i - run, f);
        run = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
        }
        fputs_unlocked(esc, f);
    }
    fwrite_unlocked(s + run, 1, n - run, f);
    fputc_unlocked('"', f);
}

static void put_text(FILE *f, const char *s)
{
    char *clean = sp_utf8_clean(s);
    const char *t = clean ? clean : s;
    put_string(f, t, strlen(t));
    free(clean);
}

/* jansson's jsonp_dtostr at its default precision. */
static void put_real(FILE *f, double v)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof(buf) - 3)
        abort();
    if (!strpbrk(buf, ".eE")) {
        memcpy(buf + n, ".0", 3);
    } else {
        char *e = strchr(buf, 'e');
        if (e) { /* "1e+05" -> "1e5", "1e-05" -> "1e-5" */
            char *d = e + 1, *from = d;
            if ('-' == *from)
                d++, from++;
            else if ('+' == *from)
                from++;
            while ('0' == *from && from[1])
                from++;
            memmove(d, from, strlen(from) + 1);
        }
    }
    fputs_unlocked(buf, f);
}

/* A stored JSON object read as jansson reads it, kept as spans of the text. */
typedef struct {
    const char *p, *end;
} scan_t;

static void skip_ws(scan_t *sc)
{
    while (sc->p < sc->end && (' ' == *sc->p || '\t' == *sc->p || '\n' == *sc->p || '\r' == *sc->p))
        sc->p++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at SC->p decoded into OUT (LEN bytes at most, NUL-terminated); its decoded length,
 * or -1 when it is not one jansson takes (or longer than LEN). */
static long scan_string(scan_t *sc, char *out, size_t len)
{
    if (sc->p >= sc->end || '"' != *sc->p)
        return -1;
    sc->p++;
    size_t n = 0;
    while (sc->p < sc->end && '"' != *sc->p) {
        unsigned char c = (unsigned char)*sc->p;
        if (c < 0x20)
            return -1;
        if ('\\' != c) {
            if (n + 1 >= len)
                return -1;
            out[n++] = (char)c;
            sc->p++;
            continue;
        }
        if (sc->p + 1 >= sc->end)
            return -1;
        char e = sc->p[1];
        sc->p += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *simple = e ? strchr(from, e) : NULL;
        if (simple) {
            if (n + 1 >= len)
                return -1;
            out[n++] = to[simple - from];
            continue;
        }
        if ('u' != e || sc->end - sc->p < 4)
            return -1;
        long cp = hex4(sc->p);
        sc->p += 4;
        if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1; /* NUL, or a lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (sc->end - sc->p < 6 || '\\' != sc->p[0] || 'u' != sc->p[1])
                return -1;
            long lo = hex4(sc->p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return -1;
            sc->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (n + 4 >= len)
            return -1;
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | (cp >> 6));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | (cp >> 12));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | (cp >> 18));
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (sc->p >= sc->end)
        return -1;
    sc->p++;
    out[n] = '\0';
    return (long)n;
}

#define OBJECT_KEYS_MAX 128

/* TEXT, an object of distinct string keys whose values are strings or arrays of strings, into
 * F at DEPTH as jansson writes it. False, with nothing written, when it is anything else: the
 * caller goes through jansson. Two passes: the first only checks. */
static bool put_object_fast(FILE *f, const char *text, int depth)
{
    size_t len = strlen(text);
    if (!sp_utf8_valid(text, len))
        return false;
    char *buf = malloc(len + 8);
    const char *keys[OBJECT_KEYS_MAX];
    size_t key_len[OBJECT_KEYS_MAX], n_keys = 0;
    char *keybuf = malloc(len + OBJECT_KEYS_MAX + 8), *kp = keybuf;
    if (!buf || !keybuf)
        abort();
    bool ok = false;
    for (int pass = 0; pass < 2; pass++) {
        scan_t sc = {text, text + len};
        skip_ws(&sc);
        if (sc.p >= sc.end || '{' != *sc.p++)
            goto out;
        skip_ws(&sc);
        bool empty = sc.p < sc.end && '}' == *sc.p;
        if (empty) {
            sc.p++;
            if (pass)
                fputs_unlocked("{}", f);
        } else if (pass) {
            fputc_unlocked('{', f);
        }
        for (size_t member = 0; !empty; member++) {
            skip_ws(&sc);
            long kn = scan_string(&sc, buf, len + 8);
            if (kn < 0)
                goto out;
            if (!pass) {
                for (size_t k = 0; k < n_keys; k++)
                    if (key_len[k] == (size_t)kn && 0 == memcmp(keys[k], buf, (size_t)kn))
                        goto out; /* jansson keeps the last value of a repeated key */
                if (n_keys == OBJECT_KEYS_MAX || memchr(buf, '\0', (size_t)kn))
                    goto out;
                memcpy(kp, buf, (size_t)kn);
                keys[n_keys] = kp;
                key_len[n_keys++] = (size_t)kn;
                kp += kn;
            } else {
                if (member)
                    fputc_unlocked(',', f);
                put_indent(f, depth + 1);
                put_string(f, buf, (size_t)kn);
                fputs_unlocked(": ", f);
            }
            skip_ws(&sc);
            if (sc.p >= sc.end || ':' != *sc.p++)
                goto out;
            skip_ws(&sc);
            if (sc.p < sc.end && '[' == *sc.p) {
                sc.p++;
                skip_ws(&sc);
                if (sc.p < sc.end && ']' == *sc.p) {
                    sc.p++;
                    if (pass)
                        fputs_unlocked("[]", f);
                } else {
                    if (pass)
                        fputc_unlocked('[', f);
                    for (size_t item = 0;; item++) {
                        skip_ws(&sc);
                        long vn = scan_string(&sc, buf, len + 8);
                        if (vn < 0 || memchr(buf, '\0', (size_t)vn))
                            goto out;
                        if (pass) {
                            if (item)
                                fputc_unlocked(',', f);
                            put_indent(f, depth + 2);
                            put_string(f, buf, (size_t)vn);
                        }
                        skip_ws(&sc);
                        if (sc.p < sc.end && ',' == *sc.p) {
                            sc.p++;
                            continue;
                        }
                        if (sc.p >= sc.end || ']' != *sc.p++)
                            goto out;
                        break;
                    }
                    if (pass) {
                        put_indent(f, depth + 1);
                        fputc_unlocked(']', f);
                    }
                }
            } else {
                long vn = scan_string(&sc, buf, len + 8);
                if (vn < 0 || memchr(buf, '\0', (size_t)vn))
                    goto out;
                if (pass)
                    put_string(f, buf, (size_t)vn);
            }
            skip_ws(&sc);
            if (sc.p < sc.end && ',' == *sc.p) {
                sc.p++;
                continue;
            }
            if (sc.p >= sc.end || '}' != *sc.p++)
                goto out;
            if (pass) {
                put_indent(f, depth);
                fputc_unlocked('}', f);
            }
            break;
        }
        skip_ws(&sc);
        if (sc.p != sc.end)
            goto out;
    }
    ok = true;
out:
    free(buf);
    free(keybuf);
    return ok;
}

/* J dumped at DEPTH: its own dump with every line after the first DEPTH spaces further in
 * (a newline is never inside a JSON string). */
static void put_json_at(FILE *f, json_t *j, int depth)
{
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_ENCODE_ANY);
    if (!text)
        abort();
    for (const char *c = text, *nl; *c; c = nl + 1) {
        if (!(nl = strchr(c, '\n'))) {
            fputs_unlocked(c, f);
            break;
        }
        fwrite_unlocked(c, 1, (size_t)(nl - c), f);
        put_indent(f, depth);
    }
    free(text);
}

void sp_serialize_event_text(FILE *f, const sp_event_row_t *row, int depth)
{
    fputc_unlocked('{', f);
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *fd = &sp_event_fields[i];
        if (i)
            fputc_unlocked(',', f);
        put_indent(f, depth + 1);
        put_string(f, fd->name, strlen(fd->name));
        fputs_unlocked(": ", f);
        switch (fd->kind) {
        case SP_FIELD_ID:
            fprintf(f, "%lld", (long long)sp_event_row_int(row, fd));
            break;
        case SP_FIELD_TIME: {
            int64_t ms = sp_event_row_int(row, fd);
            char buf[32];
            if (ms <= 0) {
                fputs_unlocked("null", f);
                break;
            }
            sp_format_ts(ms, buf, sizeof(buf));
            put_string(f, buf, strlen(buf));
            break;
        }
        case SP_FIELD_KIND:
            put_text(f, kind_name(sp_event_row_int(row, fd)));
            break;
        case SP_FIELD_CLASS:
            put_text(f, sp_class_name((sp_class_t)sp_event_row_int(row, fd)));
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_TEXT_OR_NULL: {
            const char *t = sp_event_row_text(row, fd);
            if (t)
                put_text(f, t);
            else
                fputs_unlocked("null", f);
            break;
        }
        case SP_FIELD_OBJECT: {
            const char *t = sp_event_row_text(row, fd);
            if (!put_object_fast(f, t ? t : "{}", depth + 1)) {
                json_t *o = field_json(row, fd);
                put_json_at(f, o, depth + 1);
                json_decref(o);
            }
            break;
        }
        case SP_FIELD_COORD: {
            double v = sp_event_row_coord(row, fd);
            if (isnan(v))
                fputs_unlocked("null", f);
            else
                put_real(f, v);
            break;
        }
        case SP_FIELD_DURATION: {
            int64_t v = sp_event_row_int(row, fd);
            if (v < 0)
                fputs_unlocked("null", f);
            else
                fprintf(f, "%lld", (long long)v);
            break;
        }
        }
    }
    put_indent(f, depth);
    fputc_unlocked('}', f);
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

/* TEXT cells a spreadsheet would run as a formula get a leading apostrophe (OWASP's CSV
 * injection advice); numbers and times are written by us and never prefixed, so that a
 * negative coordinate stays a number. A run of text is written at a time, not a character:
 * an export writes a few hundred bytes a row. */
static void csv_field(FILE *f, const char *s, bool guard, bool last)
{
    fputc_unlocked('"', f);
    if (guard && s && s[0] && strchr("=+-@\t\r", s[0]))
        fputc_unlocked('\'', f);
    char *clean = s ? sp_utf8_clean(s) : NULL;
    for (const char *p = clean ? clean : s; p && *p;) {
        size_t n = strcspn(p, "\"");
        fwrite_unlocked(p, 1, n, f);
        p += n;
        if ('"' == *p) {
            fwrite_unlocked("\"\"", 1, 2, f);
            p++;
        }
    }
    free(clean);
    fputc_unlocked('"', f);
    fputc_unlocked(last ? '\n' : ',', f);
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
        bool guard = false;
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
            guard = true;
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
        csv_field(out, text, guard, i + 1 == n_csv);
    }
}

/* ---- campaigns, recipients, unknown campaigns
 * ----------------------------------------------------------- */

json_t *sp_serialize_campaign(const sp_campaign_t *c)
{
    json_t *by_class = json_object();
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        json_object_set_new(by_class, sp_class_name((sp_class_t)i), json_integer(c->by_class[i]));
    return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:I, s:b}", "id", c->id, "total_views",
                     (json_int_t)c->total_views, "unique_views", (json_int_t)c->unique_views,
                     "last_view_at", ts_json(c->last_view_at), "created_at", ts_json(c->created_at),
                     "by_class", by_class, "clicks", (json_int_t)c->clicks, "archived",
                     c->archived);
}

json_t *sp_serialize_engagement(const sp_engagement_t *e)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "glanced", (json_int_t)e->glanced,
                     "skimmed", (json_int_t)e->skimmed, "read", (json_int_t)e->read, "unmeasured",
                     (json_int_t)e->unmeasured, "prints", (json_int_t)e->prints, "forwards",
                     (json_int_t)e->forwards, "likely_forwards", (json_int_t)e->likely_forwards);
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

static json_t *ratio(int64_t a, int64_t b)
{
    return b > 0 ? json_real((double)a / (double)b) : json_null();
}

void sp_serialize_rates(json_t *j, const sp_store_sent_t *s)
{
    bool list = s->sent > 0;
    json_object_set_new(j, "sent", list ? json_integer(s->sent) : json_null());
    json_object_set_new(j, "sent_opened", list ? json_integer(s->openers) : json_null());
    json_object_set_new(j, "sent_clicked", list ? json_integer(s->clickers) : json_null());
    json_object_set_new(j, "open_rate", ratio(s->openers, s->sent));
    json_object_set_new(j, "click_rate", ratio(s->clickers, s->sent));
    json_object_set_new(j, "click_to_open_rate",
                        list ? ratio(s->clickers, s->openers) : json_null());
}
