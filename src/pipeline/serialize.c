/* serialize: events, campaigns and recipients as JSON and CSV, for the API, live streams and
 * webhooks. */
/* SPDX-License-Identifier: MIT */
#include "serialize.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
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

/* ---- the output buffer ------------------------------------------------------------------ */

void sp_outbuf_reserve(sp_outbuf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    if (!(b->data = realloc(b->data, cap)))
        abort();
    b->cap = cap;
}

void sp_outbuf_put(sp_outbuf_t *b, const char *s, size_t n)
{
    sp_outbuf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void sp_outbuf_free(sp_outbuf_t *b)
{
    free(b->data);
    *b = (sp_outbuf_t){0};
}

/* The same, inline where a row is written. */
static inline void room(sp_outbuf_t *b, size_t n)
{
    if (b->cap - b->len < n)
        sp_outbuf_reserve(b, n);
}

static inline void put(sp_outbuf_t *b, const char *s, size_t n)
{
    room(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static inline void put_char(sp_outbuf_t *b, char c)
{
    room(b, 1);
    b->data[b->len++] = c;
}

#define PUT_LIT(b, lit) put((b), "" lit, sizeof(lit) - 1)

/* Eight bytes at a time: the bytes of W (little-endian) with their top bit set, below 0x20, or
 * equal to '"' or '\\', each marked by its top bit (the bit hacks of Sean Anderson's "Bit
 * Twiddling Hacks": hasless, haszero). A borrow can mark a byte above a marked one that needs
 * nothing, never one below: the lowest mark is exact, and the bytes under it are copied as
 * they are. */
#define ONES  0x0101010101010101u
#define HIGHS 0x8080808080808080u

static inline uint64_t has_zero(uint64_t w)
{
    return (w - ONES) & ~w & HIGHS;
}

static inline uint64_t json_marks(uint64_t w)
{
    return (w & HIGHS) | ((w - ONES * 0x20) & ~w & HIGHS) | has_zero(w ^ (ONES * '"')) |
           has_zero(w ^ (ONES * '\\'));
}

static inline uint64_t csv_marks(uint64_t w)
{
    return (w & HIGHS) | has_zero(w ^ (ONES * '"'));
}

/* The bytes before the first mark of M (not 0). The first byte is the word's lowest on a
 * little-endian machine; on a big-endian one its first mark may be a borrow's, so none is
 * skipped there. */
static inline size_t plain_bytes(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    (void)m;
    return 0;
#else
    return (size_t)__builtin_ctzll(m) >> 3;
#endif
}

/* V's decimal digits as "%lld" writes them into OUT (24 bytes at least), NUL-terminated; their
 * length. */
static size_t format_int(int64_t v, char *out)
{
    char buf[24], *e = buf + sizeof(buf), *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(e - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

static void put_int(sp_outbuf_t *b, int64_t v)
{
    char buf[24];
    put(b, buf, format_int(v, buf));
}

static void put_2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* sp_format_ts's text into BUF (32 bytes), its length. Years 1970-9999 are made here (days to
 * a civil date: Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms"), the rest by
 * sp_format_ts itself. */
static size_t format_ts(int64_t ms, char *buf)
{
    if (ms < 0 || ms >= INT64_C(253402300800000)) {
        sp_format_ts(ms, buf, 32);
        return strlen(buf);
    }
    int64_t z = ms / 86400000 + 719468, rem = ms % 86400000;
    int64_t era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400 + (m <= 2));
    int secs = (int)(rem / 1000), milli = (int)(rem % 1000);
    memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
    put_2(buf, y / 100);
    put_2(buf + 2, y % 100);
    put_2(buf + 5, m);
    put_2(buf + 8, d);
    put_2(buf + 11, secs / 3600);
    put_2(buf + 14, secs / 60 % 60);
    put_2(buf + 17, secs % 60);
    buf[20] = (char)('0' + milli / 100);
    put_2(buf + 21, milli % 100);
    return 24;
}

/* Coordinates repeat (a city's): each thread keeps the text of the last ones it formatted, in
 * a slot per hash of the number. A large campaign's export meets tens of thousands of cities
 * (27,000 for the largest at ten million events): with 256 slots most missed, and formatting
 * (snprintf "%.17g") was 6% of a JSON export's CPU. 4,096 slots: 192 KiB a thread, each cache. */
#define REAL_CACHE_BITS 12
#define REAL_CACHE      (1 << REAL_CACHE_BITS)

typedef struct {
    uint64_t bits;
    bool used;
    uint8_t len;
    char text[32];
} real_cached_t;

static _Thread_local real_cached_t csv_reals[REAL_CACHE], json_reals[REAL_CACHE];

static real_cached_t *real_slot(real_cached_t *cache, double v, bool *hit)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    real_cached_t *c = &cache[(bits * 0x9E3779B97F4A7C15u) >> (64 - REAL_CACHE_BITS)];
    *hit = c->used && c->bits == bits;
    c->bits = bits;
    c->used = true;
    return c;
}

/* jansson's jsonp_dtostr at its default precision. */
static void put_real(sp_outbuf_t *b, double v)
{
    bool hit;
    real_cached_t *c = real_slot(json_reals, v, &hit);
    if (!hit) {
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
        c->len = (uint8_t)strlen(buf);
        if (c->len >= sizeof(c->text))
            abort(); /* "%.17g" is 24 bytes at most */
        memcpy(c->text, buf, c->len);
    }
    put(b, c->text, c->len);
}

/* The CSV's "%.4f" in a cell of 31 bytes at most, as the export always wrote it. */
static size_t csv_real(double v, char *out)
{
    bool hit;
    real_cached_t *c = real_slot(csv_reals, v, &hit);
    if (!hit) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%.4f", v);
        c->len = (uint8_t)strlen(buf);
        memcpy(c->text, buf, c->len);
    }
    memcpy(out, c->text, c->len);
    out[c->len] = '\0';
    return c->len;
}

/* ---- JSON text, as jansson writes it --------------------------------------------------- */

/*
 * The export's JSON without jansson's objects: building each event as a json_t, parsing its
 * stored headers and cookies back into objects and dumping them again cost most of an
 * export. The text is what json_dumps(sp_serialize_event(row), JSON_INDENT(1)) writes (jansson
 * 2.14's dump.c: ": " after a key, a newline and one space per level before each member,
 * strings with '"', '\\' and the control characters escaped, \u%04X for those without a short
 * form, reals by "%.17g" with ".0" added to an integral one), which the tests compare byte for
 * byte. A stored object is copied token by token when its strings are already escaped as
 * jansson escapes them (the writer stores them so); one escaped otherwise is decoded and
 * escaped again; anything else this reader does not take exactly as jansson would (but an
 * object of distinct string keys whose values are strings or arrays of strings, well-formed
 * UTF-8, no NUL) goes through jansson.
 */

static void put_indent(sp_outbuf_t *b, int depth)
{
    room(b, (size_t)depth + 1);
    char *o = b->data + b->len;
    *o++ = '\n';
    memset(o, ' ', (size_t)depth);
    b->len += (size_t)depth + 1;
}

/* S (N bytes) as a JSON string. With CHECK, text that is not well-formed UTF-8 is repaired
 * first (sp_utf8_clean_n); without, S must be well-formed. Runs of eight bytes that need no
 * escape are copied as they are. */
static void put_json_text(sp_outbuf_t *b, const char *s, size_t n, bool check)
{
    static const char hex[] = "0123456789ABCDEF";
    room(b, 6 * n + 2); /* "\u00XX" for each byte at worst */
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        uint64_t w;
        if (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            memcpy(o, s + i, 8); /* room: 6 bytes a byte */
            uint64_t m = json_marks(w);
            if (!m) {
                o += 8;
                i += 8;
                continue;
            }
            o += plain_bytes(m);
            i += plain_bytes(m);
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t bad, k = 1;
            if (check && !(k = sp_utf8_char((const unsigned char *)s + i, n - i, &bad))) {
                size_t len;
                char *clean = sp_utf8_clean_n(s, n, &len);
                put_json_text(b, clean, len, false);
                free(clean);
                return;
            }
            memcpy(o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        i++;
        if (c >= 0x20 && '"' != c && '\\' != c) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

static void put_string(sp_outbuf_t *b, const char *s, size_t n)
{
    put_json_text(b, s, n, false);
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

/* The string at SC->p when it is exactly as put_string would write what it stands for:
 * well-formed UTF-8, '"', '\\' and the control characters escaped and nothing else, \u00XX in
 * capitals only where there is no short form, no NUL. Then its length with the quotes, SC->p
 * past it; else 0. The same text then stands for the same string, and is copied as it is. */
static size_t canonical_string(scan_t *sc)
{
    const char *s = sc->p, *p = s + 1, *end = sc->end;
    if (s >= end || '"' != *s)
        return 0;
    for (;;) {
        uint64_t w;
        if (end - p >= 8) {
            memcpy(&w, p, 8);
            uint64_t m = json_marks(w);
            if (!m) {
                p += 8;
                continue;
            }
            p += plain_bytes(m);
        }
        if (p >= end)
            return 0;
        unsigned char c = (unsigned char)*p;
        if ('"' == c)
            break;
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            size_t bad, k = sp_utf8_char((const unsigned char *)p, (size_t)(end - p), &bad);
            if (!k)
                return 0;
            p += k;
            continue;
        }
        if ('\\' != c) {
            p++;
            continue;
        }
        if (end - p < 2)
            return 0;
        char e = p[1];
        if ('"' == e || '\\' == e || 'b' == e || 'f' == e || 'n' == e || 'r' == e || 't' == e) {
            p += 2;
            continue;
        }
        /* \u00XX, in capitals, for a control character without a short form */
        if ('u' != e || end - p < 6 || '0' != p[2] || '0' != p[3] || ('0' != p[4] && '1' != p[4]))
            return 0;
        char x = p[5];
        int lo = x >= '0' && x <= '9' ? x - '0' : x >= 'A' && x <= 'F' ? x - 'A' + 10 : -1;
        int v = (p[4] - '0') * 16 + lo;
        if (lo < 0 || 0 == v || '\b' == v || '\t' == v || '\n' == v || '\f' == v || '\r' == v)
            return 0;
        p += 6;
    }
    sc->p = p + 1;
    return (size_t)(sc->p - s);
}

#define OBJECT_KEYS_MAX 128

/* TEXT (LEN bytes), an object of distinct keys whose values are strings or arrays of strings,
 * every string canonical (canonical_string), into B at DEPTH as jansson writes it: each token
 * copied. False, with nothing written, when it is anything else. */
static bool put_object_canonical(sp_outbuf_t *b, const char *text, size_t len, int depth)
{
    size_t start = b->len;
    const char *keys[OBJECT_KEYS_MAX];
    size_t key_len[OBJECT_KEYS_MAX], n_keys = 0, n;
    scan_t sc = {text, text + len};
    skip_ws(&sc);
    if (sc.p >= sc.end || '{' != *sc.p++)
        goto fail;
    skip_ws(&sc);
    if (sc.p < sc.end && '}' == *sc.p) {
        sc.p++;
        PUT_LIT(b, "{}");
    } else {
        put_char(b, '{');
        for (;;) {
            skip_ws(&sc);
            const char *key = sc.p;
            if (!(n = canonical_string(&sc)) || n_keys == OBJECT_KEYS_MAX)
                goto fail;
            for (size_t k = 0; k < n_keys; k++)
                if (key_len[k] == n && 0 == memcmp(keys[k], key, n))
                    goto fail; /* jansson keeps the last value of a repeated key */
            keys[n_keys] = key;
            key_len[n_keys] = n;
            if (n_keys++)
                put_char(b, ',');
            put_indent(b, depth + 1);
            put(b, key, n);
            PUT_LIT(b, ": ");
            skip_ws(&sc);
            if (sc.p >= sc.end || ':' != *sc.p++)
                goto fail;
            skip_ws(&sc);
            if (sc.p < sc.end && '[' == *sc.p) {
                sc.p++;
                skip_ws(&sc);
                if (sc.p < sc.end && ']' == *sc.p) {
                    sc.p++;
                    PUT_LIT(b, "[]");
                } else {
                    put_char(b, '[');
                    for (size_t item = 0;; item++) {
                        skip_ws(&sc);
                        const char *v = sc.p;
                        if (!(n = canonical_string(&sc)))
                            goto fail;
                        if (item)
                            put_char(b, ',');
                        put_indent(b, depth + 2);
                        put(b, v, n);
                        skip_ws(&sc);
                        if (sc.p < sc.end && ',' == *sc.p) {
                            sc.p++;
                            continue;
                        }
                        if (sc.p >= sc.end || ']' != *sc.p++)
                            goto fail;
                        break;
                    }
                    put_indent(b, depth + 1);
                    put_char(b, ']');
                }
            } else {
                const char *v = sc.p;
                if (!(n = canonical_string(&sc)))
                    goto fail;
                put(b, v, n);
            }
            skip_ws(&sc);
            if (sc.p < sc.end && ',' == *sc.p) {
                sc.p++;
                continue;
            }
            if (sc.p >= sc.end || '}' != *sc.p++)
                goto fail;
            put_indent(b, depth);
            put_char(b, '}');
            break;
        }
    }
    skip_ws(&sc);
    if (sc.p == sc.end)
        return true;
fail:
    b->len = start;
    return false;
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

/* TEXT, an object of distinct string keys whose values are strings or arrays of strings, into
 * B at DEPTH as jansson writes it, each string decoded and escaped again. False, with nothing
 * written, when it is anything else: the caller goes through jansson. */
static bool put_object_decoded(sp_outbuf_t *b, const char *text, size_t len, int depth)
{
    if (!sp_utf8_valid(text, len))
        return false;
    size_t start = b->len;
    char *buf = malloc(len + 8);
    const char *keys[OBJECT_KEYS_MAX];
    size_t key_len[OBJECT_KEYS_MAX], n_keys = 0;
    char *keybuf = malloc(len + OBJECT_KEYS_MAX + 8), *kp = keybuf;
    if (!buf || !keybuf)
        abort();
    bool ok = false;
    scan_t sc = {text, text + len};
    skip_ws(&sc);
    if (sc.p >= sc.end || '{' != *sc.p++)
        goto out;
    skip_ws(&sc);
    bool empty = sc.p < sc.end && '}' == *sc.p;
    if (empty) {
        sc.p++;
        PUT_LIT(b, "{}");
    } else {
        put_char(b, '{');
    }
    for (size_t member = 0; !empty; member++) {
        skip_ws(&sc);
        long kn = scan_string(&sc, buf, len + 8);
        if (kn < 0)
            goto out;
        for (size_t k = 0; k < n_keys; k++)
            if (key_len[k] == (size_t)kn && 0 == memcmp(keys[k], buf, (size_t)kn))
                goto out; /* jansson keeps the last value of a repeated key */
        if (n_keys == OBJECT_KEYS_MAX || memchr(buf, '\0', (size_t)kn))
            goto out;
        memcpy(kp, buf, (size_t)kn);
        keys[n_keys] = kp;
        key_len[n_keys++] = (size_t)kn;
        kp += kn;
        if (member)
            put_char(b, ',');
        put_indent(b, depth + 1);
        put_string(b, buf, (size_t)kn);
        PUT_LIT(b, ": ");
        skip_ws(&sc);
        if (sc.p >= sc.end || ':' != *sc.p++)
            goto out;
        skip_ws(&sc);
        if (sc.p < sc.end && '[' == *sc.p) {
            sc.p++;
            skip_ws(&sc);
            if (sc.p < sc.end && ']' == *sc.p) {
                sc.p++;
                PUT_LIT(b, "[]");
            } else {
                put_char(b, '[');
                for (size_t item = 0;; item++) {
                    skip_ws(&sc);
                    long vn = scan_string(&sc, buf, len + 8);
                    if (vn < 0 || memchr(buf, '\0', (size_t)vn))
                        goto out;
                    if (item)
                        put_char(b, ',');
                    put_indent(b, depth + 2);
                    put_string(b, buf, (size_t)vn);
                    skip_ws(&sc);
                    if (sc.p < sc.end && ',' == *sc.p) {
                        sc.p++;
                        continue;
                    }
                    if (sc.p >= sc.end || ']' != *sc.p++)
                        goto out;
                    break;
                }
                put_indent(b, depth + 1);
                put_char(b, ']');
            }
        } else {
            long vn = scan_string(&sc, buf, len + 8);
            if (vn < 0 || memchr(buf, '\0', (size_t)vn))
                goto out;
            put_string(b, buf, (size_t)vn);
        }
        skip_ws(&sc);
        if (sc.p < sc.end && ',' == *sc.p) {
            sc.p++;
            continue;
        }
        if (sc.p >= sc.end || '}' != *sc.p++)
            goto out;
        put_indent(b, depth);
        put_char(b, '}');
        break;
    }
    skip_ws(&sc);
    ok = sc.p == sc.end;
out:
    if (!ok)
        b->len = start;
    free(buf);
    free(keybuf);
    return ok;
}

/* J dumped at DEPTH: its own dump with every line after the first DEPTH spaces further in
 * (a newline is never inside a JSON string). */
static void put_json_at(sp_outbuf_t *b, json_t *j, int depth)
{
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_ENCODE_ANY);
    if (!text)
        abort();
    for (const char *c = text, *nl; *c; c = nl + 1) {
        if (!(nl = strchr(c, '\n'))) {
            put(b, c, strlen(c));
            break;
        }
        put(b, c, (size_t)(nl - c));
        put_indent(b, depth);
    }
    free(text);
}

static void put_text(sp_outbuf_t *b, const char *s)
{
    put_json_text(b, s, strlen(s), true);
}

/* Each field's key as the JSON writes it: the names are plain ASCII, escaped by nothing. */
static const struct {
    const char *text;
    size_t len;
} json_keys[SP_EVENT_N_FIELDS] = {
#define SP_JSON_KEY(member, name, kind, csv, from) {"\"" name "\": ", sizeof("\"" name "\": ") - 1},
    SP_EVENT_FIELDS(SP_JSON_KEY)
#undef SP_JSON_KEY
};

void sp_serialize_event_buf(sp_outbuf_t *b, const sp_event_row_t *row, int depth)
{
    put_char(b, '{');
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *fd = &sp_event_fields[i];
        if (i)
            put_char(b, ',');
        put_indent(b, depth + 1);
        put(b, json_keys[i].text, json_keys[i].len);
        switch (fd->kind) {
        case SP_FIELD_ID:
            put_int(b, sp_event_row_int(row, fd));
            break;
        case SP_FIELD_TIME: {
            int64_t ms = sp_event_row_int(row, fd);
            char buf[32];
            if (ms <= 0) {
                PUT_LIT(b, "null");
                break;
            }
            put_string(b, buf, format_ts(ms, buf));
            break;
        }
        case SP_FIELD_KIND:
            put_text(b, kind_name(sp_event_row_int(row, fd)));
            break;
        case SP_FIELD_CLASS:
            put_text(b, sp_class_name((sp_class_t)sp_event_row_int(row, fd)));
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_TEXT_OR_NULL: {
            const char *t = sp_event_row_text(row, fd);
            if (t)
                put_text(b, t);
            else
                PUT_LIT(b, "null");
            break;
        }
        case SP_FIELD_OBJECT: {
            const char *t = sp_event_row_text(row, fd);
            if (!t)
                t = "{}";
            size_t len = strlen(t);
            if (!put_object_canonical(b, t, len, depth + 1) &&
                !put_object_decoded(b, t, len, depth + 1)) {
                json_t *o = field_json(row, fd);
                put_json_at(b, o, depth + 1);
                json_decref(o);
            }
            break;
        }
        case SP_FIELD_COORD: {
            double v = sp_event_row_coord(row, fd);
            if (isnan(v))
                PUT_LIT(b, "null");
            else
                put_real(b, v);
            break;
        }
        case SP_FIELD_DURATION: {
            int64_t v = sp_event_row_int(row, fd);
            if (v < 0)
                PUT_LIT(b, "null");
            else
                put_int(b, v);
            break;
        }
        }
    }
    put_indent(b, depth);
    put_char(b, '}');
}

/* B's bytes to OUT, B emptied. */
static void flush_to(FILE *out, sp_outbuf_t *b)
{
    fwrite(b->data, 1, b->len, out);
    sp_outbuf_free(b);
}

void sp_serialize_event_text(FILE *out, const sp_event_row_t *row, int depth)
{
    sp_outbuf_t b = {0};
    sp_serialize_event_buf(&b, row, depth);
    flush_to(out, &b);
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

/* One quoted cell of S (N bytes) and its separator. TEXT cells a spreadsheet would run as a
 * formula (GUARD) get a leading apostrophe (OWASP's CSV injection advice); numbers and times
 * are written by us and never prefixed, so that a negative coordinate stays a number. Text
 * that is not well-formed UTF-8 is repaired first; runs of eight bytes without a quote or a
 * byte above ASCII are copied as they are. */
static void csv_cell(sp_outbuf_t *b, const char *s, size_t n, bool guard, bool last)
{
    room(b, 2 * n + 4);
    char *o = b->data + b->len;
    *o++ = '"';
    if (guard && n && strchr("=+-@\t\r", s[0]))
        *o++ = '\'';
    size_t i = 0;
    while (i < n) {
        uint64_t w;
        if (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            memcpy(o, s + i, 8); /* room: 2 bytes a byte */
            uint64_t m = csv_marks(w);
            if (!m) {
                o += 8;
                i += 8;
                continue;
            }
            o += plain_bytes(m);
            i += plain_bytes(m);
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t bad, k = sp_utf8_char((const unsigned char *)s + i, n - i, &bad);
            if (!k) {
                size_t len;
                char *clean = sp_utf8_clean_n(s, n, &len);
                csv_cell(b, clean, len, guard, last);
                free(clean);
                return;
            }
            memcpy(o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        if ('"' == c)
            *o++ = '"';
        *o++ = (char)c;
        i++;
    }
    *o++ = '"';
    *o++ = last ? '\n' : ',';
    b->len = (size_t)(o - b->data);
}

void sp_serialize_csv_header_buf(sp_outbuf_t *b)
{
    pthread_once(&csv_once, csv_order);
    for (size_t i = 0; i < n_csv; i++) {
        put(b, csv_fields[i]->name, strlen(csv_fields[i]->name));
        put_char(b, i + 1 == n_csv ? '\n' : ',');
    }
}

void sp_serialize_csv_row_buf(sp_outbuf_t *b, const sp_event_row_t *row)
{
    pthread_once(&csv_once, csv_order);
    for (size_t i = 0; i < n_csv; i++) {
        const sp_event_field_t *f = csv_fields[i];
        char buf[32];
        const char *text = buf;
        size_t n = 0;
        bool guard = false;
        switch (f->kind) {
        case SP_FIELD_ID:
            n = format_int(sp_event_row_int(row, f), buf);
            break;
        case SP_FIELD_TIME:
            n = format_ts(sp_event_row_int(row, f), buf);
            break;
        case SP_FIELD_KIND:
            text = kind_name(sp_event_row_int(row, f));
            n = strlen(text);
            break;
        case SP_FIELD_CLASS:
            text = sp_class_name((sp_class_t)sp_event_row_int(row, f));
            n = strlen(text);
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_TEXT_OR_NULL:
        case SP_FIELD_OBJECT:
            text = sp_event_row_text(row, f);
            n = text ? strlen(text) : 0;
            guard = true;
            break;
        case SP_FIELD_COORD:
            if (!isnan(sp_event_row_coord(row, f)))
                n = csv_real(sp_event_row_coord(row, f), buf);
            break;
        case SP_FIELD_DURATION:
            if (sp_event_row_int(row, f) >= 0)
                n = format_int(sp_event_row_int(row, f), buf);
            break;
        }
        csv_cell(b, text, n, guard, i + 1 == n_csv);
    }
}

void sp_serialize_csv_header(FILE *out)
{
    sp_outbuf_t b = {0};
    sp_serialize_csv_header_buf(&b);
    flush_to(out, &b);
}

void sp_serialize_csv_row(FILE *out, const sp_event_row_t *row)
{
    sp_outbuf_t b = {0};
    sp_serialize_csv_row_buf(&b, row);
    flush_to(out, &b);
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
