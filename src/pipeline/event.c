/* event: one recorded request (an open or a click) and its derived fields. */
/* SPDX-License-Identifier: MIT */
#include "event.h"
#include "slab.h"
#include "utf8.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The bytes of an event of BUF_SIZE bytes of header storage and SLOTS header slots, and the
 * slots' place in its storage (*AT): after the storage, aligned. */
static size_t event_size(size_t buf_size, size_t slots, size_t *at)
{
    size_t align = _Alignof(sp_header_t), base = offsetof(sp_event_t, buf);
    *at = (base + buf_size + align - 1) / align * align - base;
    size_t size = base + *at + slots * sizeof(sp_header_t);
    return size > sizeof(sp_event_t) ? size : sizeof(sp_event_t);
}

/* An event with BUF_SIZE bytes of header storage, made in SLAB (may be NULL). */
static sp_event_t *event_new_in(sp_slab_t *slab, size_t buf_size)
{
    /* The header storage is written before it is read: only the struct is zeroed (the writer
     * makes an event per open, and zeroing its storage too was 6% of its time). */
    size_t at;
    sp_event_t *ev = sp_slab_alloc(slab, event_size(buf_size, SP_HEADERS_MAX, &at));
    memset(ev, 0, sizeof(*ev));
    ev->slab = slab;
    ev->headers = (sp_header_t *)(void *)(ev->buf + at);
    ev->header_slots = SP_HEADERS_MAX;
    ev->target = "";
    ev->buf_size = buf_size;
    ev->read_ms = -1;
    return ev;
}

sp_event_t *sp_event_new(size_t buf_size)
{
    return event_new_in(NULL, buf_size);
}

const char *sp_event_kind_name(int64_t kind)
{
    switch (kind) {
    case SP_EVENT_CLICK:
        return "click";
    case SP_EVENT_PRINT:
        return "print";
    case SP_EVENT_FORWARD:
        return "forward";
    case SP_EVENT_READ:
        return "read";
    default:
        return "open";
    }
}

void sp_event_row_forget(sp_event_t *ev)
{
    sp_slab_free(ev->row_texts);
    ev->row_texts = NULL;
    ev->row_made = false;
    sp_slab_free(ev->headers_set);
    ev->headers_set = ev->headers_apart = NULL;
    ev->headers_split = false;
    ev->keys_made = false;
}

size_t sp_event_held(const sp_event_t *ev)
{
    return sp_slab_size(ev) + sp_slab_size(ev->row_texts) + sp_slab_size(ev->headers_set);
}

/* How much of a row's texts sp_event_prefetch_row fetches: most of a realistic open's, whose
 * longest text is its headers (its agent and enrichment's texts, the rest). */
#define ROW_TEXTS_PREFETCH 2048

/* Fetches the lines of LEN bytes at P. */
static void prefetch_lines(const void *p, size_t len)
{
    const char *at = p;
    for (size_t off = 0; off < len; off += 64)
        __builtin_prefetch(at + off);
}

void sp_event_prefetch_row(const sp_event_t *ev, bool texts)
{
    if (!texts) {
        __builtin_prefetch(&ev->row_texts);
        __builtin_prefetch(&ev->headers_apart);
        return;
    }
    prefetch_lines(&ev->row, sizeof(ev->row));
    /* A fixed span, not the block's size: that is in the block's header, a read that would
     * wait on memory here. */
    if (ev->row_texts)
        prefetch_lines(ev->row_texts, ROW_TEXTS_PREFETCH);
    if (ev->headers_apart)
        prefetch_lines(ev->headers_apart, 256);
}

void sp_event_prefetch_free(const sp_event_t *ev, bool blocks)
{
    if (blocks) {
        sp_slab_prefetch(ev->row_texts);
        sp_slab_prefetch(ev->headers_set);
        return;
    }
    sp_slab_prefetch(ev);
    __builtin_prefetch(&ev->row_made);
    __builtin_prefetch(&ev->row_texts);
    __builtin_prefetch(&ev->headers_set);
}

void sp_event_free(sp_event_t *ev)
{
    if (ev && (ev->row_made || ev->headers_split))
        sp_event_row_forget(ev);
    sp_slab_free(ev);
}

/* ---- the stored form ---------------------------------------------------------------- */

const sp_event_field_t sp_event_fields[SP_EVENT_N_FIELDS] = {
#define FIELD_INFO(member, name, kind, csv, from)                                                  \
    {name, SP_FIELD_##kind, csv, offsetof(sp_event_row_t, member)},
    SP_EVENT_FIELDS(FIELD_INFO)
#undef FIELD_INFO
};

/* The row's texts as sp_event_row makes them, to be packed: the row's members that hold one,
 * each text's length with its NUL, and what was allocated for them (repaired copies, JSON). */
struct row_texts {
    const char **slot[SP_EVENT_N_FIELDS];
    size_t len[SP_EVENT_N_FIELDS], n, total;
    char *owned[SP_EVENT_N_FIELDS];
    size_t n_owned;
};

/* SLOT's text (never NULL), LEN bytes, to be packed; an empty one is the static "" at once. */
static void note_text(struct row_texts *t, const char **slot, size_t len)
{
    if (!len) {
        *slot = "";
        return;
    }
    t->slot[t->n] = slot;
    t->total += t->len[t->n++] = len + 1;
}

/* TEXT well-formed into SLOT: as it is, or a repaired copy. */
static void row_text(struct row_texts *t, const char **slot, const char *text, bool nullable)
{
    if (!text) {
        *slot = nullable ? NULL : "";
        return;
    }
    size_t len = strlen(text);
    char *clean = sp_utf8_clean_n(text, len, &len);
    if (clean)
        t->owned[t->n_owned++] = clean;
    *slot = clean ? clean : text;
    note_text(t, slot, len);
}

/* An OBJECT's JSON (made for the row) into SLOT. */
static void row_object(struct row_texts *t, const char **slot, char *json)
{
    if (json)
        t->owned[t->n_owned++] = json;
    *slot = json ? json : "{}";
    note_text(t, slot, strlen(*slot));
}

#define ROW_SET_ID(member, from)           ev->row.member = (from);
#define ROW_SET_TIME(member, from)         ev->row.member = (from);
#define ROW_SET_KIND(member, from)         ev->row.member = (from);
#define ROW_SET_CLASS(member, from)        ev->row.member = (from);
#define ROW_SET_COORD(member, from)        ev->row.member = (from);
#define ROW_SET_DURATION(member, from)     ev->row.member = (from) < 0 ? -1 : (from);
#define ROW_SET_TEXT(member, from)         row_text(&texts, &ev->row.member, (from), false);
#define ROW_SET_TEXT_OR_NULL(member, from) row_text(&texts, &ev->row.member, (from), true);
#define ROW_SET_OBJECT(member, from)       row_object(&texts, &ev->row.member, (from));

/* Copies the row's texts into one block (ROW_TEXTS), one after the other in the fields' order,
 * and frees what was allocated for them. The writer binds a row a batch after the reader made
 * it, from memory long out of the caches, and in the event each text has a cache line of its
 * own (an array each, empty ones too: some thirty lines a row); packed, a row's texts are a few
 * lines one after the other, and the empty ones the one static "". */
static void pack_texts(sp_event_t *ev, struct row_texts *t)
{
    char *at = ev->row_texts = sp_slab_alloc(ev->slab, t->total ? t->total : 1);
    for (size_t i = 0; i < t->n; i++) {
        memcpy(at, *t->slot[i], t->len[i]);
        *t->slot[i] = at;
        at += t->len[i];
    }
    for (size_t i = 0; i < t->n_owned; i++)
        free(t->owned[i]);
}

const sp_event_row_t *sp_event_row(sp_event_t *ev)
{
    if (!ev->row_made) {
        struct row_texts texts;
        texts.n = texts.total = texts.n_owned = 0;
#define ROW_SET(member, name, kind, csv, from) ROW_SET_##kind(member, from)
        SP_EVENT_FIELDS(ROW_SET)
#undef ROW_SET
        pack_texts(ev, &texts);
        ev->row_made = true;
    }
    ev->row.id = ev->id;
    return &ev->row;
}

/* Appends TEXT at *AT of BUF (LEN bytes); aborts when it does not fit: the buffers are sized
 * for the table, so that would be a bug. */
static void append(char *buf, size_t len, size_t *at, const char *text)
{
    int n = snprintf(buf + *at, len - *at, "%s%s", *at ? ", " : "", text);
    assert(n >= 0 && (size_t)n < len - *at);
    if (n < 0 || (size_t)n >= len - *at)
        abort();
    *at += (size_t)n;
}

void sp_event_fields_sql(char *cols, size_t len, bool with_id, char *params, size_t plen, char mark)
{
    size_t at = 0, pat = 0;
    int number = 0;
    cols[0] = '\0';
    if (params)
        params[0] = '\0';
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *f = &sp_event_fields[i];
        if (SP_FIELD_ID == f->kind && !with_id)
            continue;
        append(cols, len, &at, f->name);
        if (params && SP_FIELD_ID != f->kind) {
            char p[16];
            snprintf(p, sizeof(p), "%c%d", mark, ++number);
            append(params, plen, &pat, p);
        }
    }
}

static const char *copy_in(sp_event_t *ev, const char *s, size_t len)
{
    if (ev->buf_used + len + 1 > ev->buf_size)
        return NULL;
    char *dst = ev->buf + ev->buf_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    ev->buf_used += len + 1;
    return dst;
}

int sp_event_set_target(sp_event_t *ev, const char *text)
{
    size_t len = strnlen(text, SP_TARGET_MAX);
    const char *copy = len ? copy_in(ev, text, len) : "";
    ev->target = copy ? copy : "";
    return copy ? 0 : -1;
}

/* True when header NAME (LEN bytes) is WANT, in any case. */
static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && 0 == strncasecmp(name, want, len);
}

int sp_event_add_header(sp_event_t *ev, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    if (ev->n_headers >= ev->header_slots)
        return -1;
    if (name_len > SP_HEADER_NAME_MAX)
        name_len = SP_HEADER_NAME_MAX;
    if (!value)
        value = "", value_len = 0;
    if (value_len > SP_HEADER_MAX)
        value_len = SP_HEADER_MAX;
    /* Scrubbed here, on the one way into an event: a request thread's copy of the request
     * and the writer's decoding of a journal record (one written by an older version may
     * still hold credentials) both pass through. */
    char scrubbed[SP_HEADER_MAX + 1];
    long kept = sp_event_scrub_header(name, name_len, value, value_len, scrubbed, sizeof(scrubbed));
    if (kept >= 0) {
        value = scrubbed;
        value_len = (size_t)kept;
    }
    size_t used = ev->buf_used;
    const char *n = copy_in(ev, name, name_len);
    const char *v = n ? copy_in(ev, value, value_len) : NULL;
    if (!v) {
        ev->buf_used = used; /* a refused header leaves no name behind */
        return -1;
    }
    ev->headers[ev->n_headers].name = n;
    ev->headers[ev->n_headers].value = v;
    ev->n_headers++;
    /* By length first: most names are none of the three, and this runs for every header of
     * every open the reader decodes (strcasecmp on each was 1.7% of one core's replay). */
    if (!ev->user_agent && name_is(n, name_len, "User-Agent"))
        ev->user_agent = v;
    else if (!ev->referer && name_is(n, name_len, "Referer"))
        ev->referer = v;
    else if (!ev->cookie && name_is(n, name_len, "Cookie"))
        ev->cookie = v;
    return 0;
}

void sp_event_reset(sp_event_t *ev)
{
    /* Not a memset: the struct is kilobytes and this runs for every open. */
    if (ev->row_made)
        sp_event_row_forget(ev);
    ev->n_headers = ev->buf_used = 0;
    ev->user_agent = ev->referer = ev->cookie = NULL;
    ev->self_referer = ev->self_cookie = ev->self_ip = false;
    ev->campaign[0] = ev->recipient[0] = ev->ip[0] = ev->visitor[0] = '\0';
    ev->target = "";
    ev->adopt_row = 0;
    ev->engage = SP_ENGAGE_NONE;
    ev->read_ms = -1;
    ev->engagement[0] = '\0';
}

/* ---- spypixel's own credentials ------------------------------------------------------ */

static const char *const own_cookies[] = {SP_COOKIE_SESSION, SP_COOKIE_SELF, SP_COOKIE_DEVICE};

/* Headers whose whole value is a credential: RFC 9110's two, and the dashboard's CSRF
 * token. */
static const char *const credential_headers[] = {"Authorization", "Proxy-Authorization",
                                                 "X-CSRF-Token"};

/* Index in own_cookies, or -1. Case-insensitive although cookie names are not: removing
 * too much is harmless, keeping a credential is not. */
static int own_cookie_index(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(own_cookies) / sizeof(own_cookies[0]); i++)
        if (name_is(name, len, own_cookies[i]))
            return (int)i;
    return -1;
}

static bool own_cookie(const char *name, size_t len)
{
    return own_cookie_index(name, len) >= 0;
}

/* Appends N bytes of S at *AT in OUT as far as they fit (a NUL's room is kept). */
static void put_cut(char *out, size_t outlen, size_t *at, const char *s, size_t n)
{
    size_t room = *at + 1 < outlen ? outlen - 1 - *at : 0;
    if (n > room)
        n = room;
    memcpy(out + *at, s, n);
    *at += n;
}

/* "a=1; sp_session=X; b=2" -> "a=1; sp_session=[removed]; b=2". Each pair between semicolons
 * is kept byte for byte but ours; a name is read as each_cookie reads it (spaces and tabs
 * around it do not count), so that every cookie the API would take is found. Repeats of one
 * of ours are dropped, which bounds how much longer than the header its copy can be. */
static long scrub_cookies(const char *value, size_t len, char *out, size_t outlen)
{
    const char *p = value, *end = value + len;
    unsigned seen = 0;
    bool any = false, first = true;
    size_t at = 0;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pair_end = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *n0 = p, *n1 = eq ? eq : pair_end;
        while (n0 < n1 && (' ' == *n0 || '\t' == *n0))
            n0++;
        while (n1 > n0 && (' ' == n1[-1] || '\t' == n1[-1]))
            n1--;
        int own = eq ? own_cookie_index(n0, (size_t)(n1 - n0)) : -1;
        if (own < 0 || !(seen & (1u << own))) {
            if (!first)
                put_cut(out, outlen, &at, ";", 1);
            first = false;
            if (own < 0) {
                put_cut(out, outlen, &at, p, (size_t)(pair_end - p));
            } else {
                put_cut(out, outlen, &at, p, (size_t)(eq + 1 - p));
                put_cut(out, outlen, &at, SP_EVENT_REMOVED, sizeof(SP_EVENT_REMOVED) - 1);
            }
        }
        if (own >= 0) {
            seen |= 1u << own;
            any = true;
        }
        if (!semi)
            break;
        p = semi + 1;
    }
    if (outlen)
        out[at] = '\0';
    return any ? (long)at : -1;
}

long sp_event_scrub_header(const char *name, size_t name_len, const char *value, size_t len,
                           char *out, size_t outlen)
{
    /* Most headers are told apart by their first letter: this runs for each of every open. */
    char c = name_len ? (char)(name[0] | 0x20) : '\0';
    if ('a' != c && 'p' != c && 'x' != c && 'c' != c)
        return -1;
    if (name_is(name, name_len, "Cookie"))
        return scrub_cookies(value, len, out, outlen);
    for (size_t i = 0; i < sizeof(credential_headers) / sizeof(credential_headers[0]); i++) {
        if (!name_is(name, name_len, credential_headers[i]))
            continue;
        if (!len)
            return -1; /* nothing to remove */
        size_t at = 0;
        put_cut(out, outlen, &at, SP_EVENT_REMOVED, sizeof(SP_EVENT_REMOVED) - 1);
        if (outlen)
            out[at] = '\0';
        return (long)at;
    }
    return -1;
}

char *sp_event_scrub_json(const char *json, bool cookies)
{
    json_t *obj = json_loads(json ? json : "", JSON_ALLOW_NUL, NULL);
    bool changed = false;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!json_is_string(v))
            continue;
        const char *text = json_string_value(v);
        size_t n = json_string_length(v), key_len = strlen(key);
        if (cookies) {
            if (own_cookie(key, key_len) && 0 != strcmp(text, SP_EVENT_REMOVED)) {
                json_object_set_new(obj, key, json_string(SP_EVENT_REMOVED));
                changed = true;
            }
            continue;
        }
        /* Room for the longest scrubbed copy: one SP_EVENT_REMOVED per cookie of ours. */
        size_t room = n + 4 * sizeof(SP_EVENT_REMOVED) + 1;
        char *buf = malloc(room);
        if (!buf)
            abort();
        long kept = sp_event_scrub_header(key, key_len, text, n, buf, room);
        if (kept >= 0 && ((size_t)kept != n || 0 != memcmp(buf, text, n))) {
            json_object_set_new(obj, key, json_stringn(buf, (size_t)kept));
            changed = true;
        }
        free(buf);
    }
    char *out = changed ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return out;
}

/* ---- the journal form -------------------------------------------------------------- */

/* FLAG_ADOPTED: the adopted row follows the headers, so that records without it read as
 * before. */
enum {
    FLAG_SELF_REFERER = 1,
    FLAG_SELF_COOKIE = 2,
    FLAG_SELF_IP = 4,
    FLAG_V4 = 8,
    FLAG_ADOPTED = 16,
    FLAG_ENGAGE = 32, /* an open of the tracking block, or a read: its engage byte and read_ms */
};

static unsigned char *put_bytes(unsigned char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static unsigned char *put_text(unsigned char *p, const char *s, size_t max)
{
    uint16_t n = (uint16_t)strnlen(s, max);
    p = put_bytes(p, &n, sizeof(n));
    return put_bytes(p, s, n);
}

size_t sp_event_encode(const sp_event_t *ev, unsigned char *buf)
{
    unsigned char *p = buf;
    uint8_t kind = (uint8_t)ev->kind;
    uint8_t flags = (ev->self_referer ? FLAG_SELF_REFERER : 0) |
                    (ev->self_cookie ? FLAG_SELF_COOKIE : 0) | (ev->self_ip ? FLAG_SELF_IP : 0) |
                    (ev->addr.v4 ? FLAG_V4 : 0) | (ev->adopt_row > 0 ? FLAG_ADOPTED : 0) |
                    (ev->engage != SP_ENGAGE_NONE ? FLAG_ENGAGE : 0);
    uint16_t n_headers = (uint16_t)ev->n_headers;
    p = put_bytes(p, &ev->ts_ms, sizeof(ev->ts_ms));
    p = put_bytes(p, &kind, 1);
    p = put_bytes(p, &flags, 1);
    p = put_bytes(p, ev->addr.b, sizeof(ev->addr.b));
    p = put_text(p, ev->campaign, SP_ID_MAX);
    p = put_text(p, ev->recipient, SP_ID_MAX);
    p = put_text(p, ev->target, SP_TARGET_MAX);
    p = put_text(p, ev->ip, sizeof(ev->ip) - 1);
    p = put_text(p, ev->visitor, sizeof(ev->visitor) - 1);
    p = put_bytes(p, &n_headers, sizeof(n_headers));
    for (size_t i = 0; i < ev->n_headers; i++) {
        p = put_text(p, ev->headers[i].name, SP_HEADER_NAME_MAX);
        p = put_text(p, ev->headers[i].value, SP_HEADER_MAX);
    }
    if (ev->adopt_row > 0)
        p = put_bytes(p, &ev->adopt_row, sizeof(ev->adopt_row));
    if (ev->engage != SP_ENGAGE_NONE) {
        uint8_t engage = (uint8_t)ev->engage;
        p = put_bytes(p, &engage, 1);
        p = put_bytes(p, &ev->read_ms, sizeof(ev->read_ms));
    }
    return (size_t)(p - buf);
}

typedef struct reader {
    const unsigned char *p, *end;
    bool bad;
} reader_t;

static void get_bytes(reader_t *r, void *dst, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}

/* A length-prefixed text: *S points into the record (not NUL-terminated). */
static size_t get_text(reader_t *r, const char **s, size_t max)
{
    uint16_t n = 0;
    get_bytes(r, &n, sizeof(n));
    if (r->bad || n > max || (size_t)(r->end - r->p) < n || memchr(r->p, '\0', n)) {
        r->bad = true;
        *s = "";
        return 0;
    }
    *s = (const char *)r->p;
    r->p += n;
    return n;
}

static void get_field(reader_t *r, char *dst, size_t size)
{
    const char *s;
    size_t n = get_text(r, &s, size - 1);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* EV with no more header storage than it uses: the room a decoding keeps for scrubbing was
 * 2.5 KB of the 9 KB an event took while its batch waits for the commit (up to 16,384 of
 * them). Its pointers into the storage are moved with it. */
static sp_event_t *shrink(sp_event_t *ev)
{
    size_t names[SP_HEADERS_MAX], values[SP_HEADERS_MAX], apart[3];
    const char **pointers[3] = {&ev->user_agent, &ev->referer, &ev->cookie};
    /* A target is in the storage unless it is "" (sp_event_set_target). */
    bool has_target = ev->target[0];
    size_t target = has_target ? (size_t)(ev->target - ev->buf) : 0;
    for (size_t i = 0; i < ev->n_headers; i++) {
        names[i] = (size_t)(ev->headers[i].name - ev->buf);
        values[i] = (size_t)(ev->headers[i].value - ev->buf);
    }
    for (int k = 0; k < 3; k++)
        apart[k] = *pointers[k] ? (size_t)(*pointers[k] - ev->buf) : 0;
    size_t at;
    sp_event_t *small = sp_slab_shrink(ev, event_size(ev->buf_used, ev->n_headers, &at));
    small->buf_size = small->buf_used;
    small->headers = (sp_header_t *)(void *)(small->buf + at);
    small->header_slots = small->n_headers;
    for (size_t i = 0; i < small->n_headers; i++) {
        small->headers[i].name = small->buf + names[i];
        small->headers[i].value = small->buf + values[i];
    }
    if (has_target)
        small->target = small->buf + target;
    const char **moved[3] = {&small->user_agent, &small->referer, &small->cookie};
    for (int k = 0; k < 3; k++)
        if (*moved[k])
            *moved[k] = small->buf + apart[k];
    return small;
}

sp_event_t *sp_event_decode(const void *buf, size_t len)
{
    return sp_event_decode_in(NULL, buf, len);
}

sp_event_t *sp_event_decode_in(sp_slab_t *slab, const void *buf, size_t len)
{
    reader_t r = {buf, (const unsigned char *)buf + len, false};
    /* The headers take less room than their record, but for what scrubbing a record written
     * by an older version adds: an SP_EVENT_REMOVED per credential at most. */
    sp_event_t *ev = event_new_in(slab, len + SP_HEADERS_MAX * 4 * sizeof(SP_EVENT_REMOVED));
    uint8_t kind = 0, flags = 0;
    uint16_t n_headers = 0;
    get_bytes(&r, &ev->ts_ms, sizeof(ev->ts_ms));
    get_bytes(&r, &kind, 1);
    get_bytes(&r, &flags, 1);
    get_bytes(&r, ev->addr.b, sizeof(ev->addr.b));
    get_field(&r, ev->campaign, sizeof(ev->campaign));
    get_field(&r, ev->recipient, sizeof(ev->recipient));
    const char *target;
    size_t target_len = get_text(&r, &target, SP_TARGET_MAX);
    if (target_len && !(ev->target = copy_in(ev, target, target_len)))
        r.bad = true;
    get_field(&r, ev->ip, sizeof(ev->ip));
    get_field(&r, ev->visitor, sizeof(ev->visitor));
    get_bytes(&r, &n_headers, sizeof(n_headers));
    if (n_headers > SP_HEADERS_MAX || kind > SP_EVENT_READ)
        r.bad = true;
    for (uint16_t i = 0; i < n_headers && !r.bad; i++) {
        const char *name, *value;
        size_t nl = get_text(&r, &name, SP_HEADER_NAME_MAX);
        size_t vl = get_text(&r, &value, SP_HEADER_MAX);
        if (!r.bad && 0 != sp_event_add_header(ev, name, nl, value, vl))
            r.bad = true;
    }
    if (flags & FLAG_ADOPTED) {
        get_bytes(&r, &ev->adopt_row, sizeof(ev->adopt_row));
        r.bad = r.bad || ev->adopt_row <= 0;
    }
    if (flags & FLAG_ENGAGE) {
        uint8_t engage = 0;
        get_bytes(&r, &engage, 1);
        get_bytes(&r, &ev->read_ms, sizeof(ev->read_ms));
        r.bad = r.bad || engage < SP_ENGAGE_PENDING || engage > SP_ENGAGE_CUT;
        ev->engage = (sp_event_engage_t)engage;
    }
    /* A read belongs to an open, and only the block's opens and reads say how they are read. */
    if ((SP_EVENT_READ == kind) != (ev->engage >= SP_ENGAGE_MEASURED) ||
        (ev->engage != SP_ENGAGE_NONE && SP_EVENT_OPEN != kind && SP_EVENT_READ != kind))
        r.bad = true;
    if (r.bad || r.p != r.end) {
        sp_event_free(ev);
        return NULL;
    }
    ev->kind = (sp_event_kind_t)kind;
    ev->addr.v4 = flags & FLAG_V4;
    ev->self_referer = flags & FLAG_SELF_REFERER;
    ev->self_cookie = flags & FLAG_SELF_COOKIE;
    ev->self_ip = flags & FLAG_SELF_IP;
    return shrink(ev);
}

const char *sp_event_header(const sp_event_t *ev, const char *name)
{
    /* The first letter, ASCII case folded, rules out most names before strcasecmp: the
     * classifier asks for about 25 names per event. */
    unsigned char first = (unsigned char)name[0] | 0x20;
    for (size_t i = 0; i < ev->n_headers; i++)
        if (((unsigned char)ev->headers[i].name[0] | 0x20) == first &&
            0 == strcasecmp(ev->headers[i].name, name))
            return ev->headers[i].value;
    return NULL;
}

const char *sp_event_header_cb(const void *ev, const char *name)
{
    return sp_event_header(ev, name);
}

bool sp_event_id_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  '-' == c || '_' == c || '@' == c || '+' == c || '.' == c;
        if (!ok || n >= SP_ID_MAX)
            return false;
    }
    return n > 0;
}

/* Walks "a=1; b=2", calling FN for each pair until it returns nonzero. */
static void each_cookie(const char *h,
                        int (*fn)(void *, const char *, size_t, const char *, size_t), void *ctx)
{
    while (h && *h) {
        while (' ' == *h || ';' == *h || '\t' == *h)
            h++;
        const char *name = h;
        while (*h && '=' != *h && ';' != *h)
            h++;
        size_t name_len = (size_t)(h - name);
        while (name_len && ' ' == name[name_len - 1])
            name_len--;
        const char *value = h;
        size_t value_len = 0;
        if ('=' == *h) {
            value = ++h;
            while (*h && ';' != *h)
                h++;
            value_len = (size_t)(h - value);
            while (value_len && ' ' == value[value_len - 1])
                value_len--;
            if (value_len >= 2 && '"' == value[0] && '"' == value[value_len - 1]) {
                value++;
                value_len -= 2;
            }
        }
        if (name_len && fn(ctx, name, name_len, value, value_len))
            return;
    }
}

struct cookie_find {
    const char *name;
    char *buf;
    size_t len;
    int found;
};

static int find_cookie(void *ctx, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    struct cookie_find *f = ctx;
    if (strlen(f->name) != name_len || 0 != strncmp(f->name, name, name_len))
        return 0;
    if (value_len >= f->len)
        value_len = f->len - 1;
    memcpy(f->buf, value, value_len);
    f->buf[value_len] = '\0';
    f->found = 1;
    return 1;
}

int sp_event_cookie(const char *cookie_header, const char *name, char *buf, size_t len)
{
    struct cookie_find f = {name, buf, len, 0};
    if (!len)
        return -1;
    each_cookie(cookie_header, find_cookie, &f);
    return f.found ? 0 : -1;
}

/* json_stringn rejects ill-formed UTF-8; request bytes are hostile: repaired as sp_event_row
 * repairs text. */
static json_t *json_text(const char *s, size_t len)
{
    size_t n;
    char *clean = sp_utf8_clean_n(s, len, &n);
    json_t *j = clean ? json_stringn(clean, n) : json_stringn(s, len);
    free(clean);
    return j;
}

static char *headers_json_general(const sp_event_t *ev)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < ev->n_headers; i++) {
        const char *name = ev->headers[i].name, *value = ev->headers[i].value;
        json_t *name_j = json_text(name, strlen(name));
        const char *key = json_string_value(name_j);
        json_t *old = json_object_get(obj, key);
        if (old) {
            size_t a = json_string_length(old), b = strlen(value);
            char *joined = malloc(a + b + 3);
            if (!joined)
                abort();
            memcpy(joined, json_string_value(old), a);
            memcpy(joined + a, ", ", 2);
            memcpy(joined + a + 2, value, b + 1);
            json_object_set_new(obj, key, json_text(joined, a + b + 2));
            free(joined);
        } else {
            json_object_set_new(obj, key, json_text(value, strlen(value)));
        }
        json_decref(name_j);
    }
    char *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return out;
}

static int add_cookie(void *ctx, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    json_t *key = json_text(name, name_len);
    json_object_set_new(ctx, json_string_value(key), json_text(value, value_len));
    json_decref(key);
    return 0;
}

static char *cookies_json_general(const sp_event_t *ev)
{
    json_t *obj = json_object();
    each_cookie(ev->cookie, add_cookie, obj);
    char *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return out;
}

/* ---- the usual case without jansson --------------------------------------------
 * Nearly every request has distinct header names and valid UTF-8 throughout. Those are
 * written straight into one buffer, the same bytes json_dumps(JSON_COMPACT) gives for the
 * objects above; repeated names and invalid bytes take the general path. */

/* Room put_string may need for LEN bytes: every byte escaped as \u00XX, and the quotes. */
#define JSON_STRING_MAX(len) (6 * (len) + 2)

#define BYTES(c) (0x0101010101010101ULL * (uint64_t)(c))

/* Whether the 8 bytes of W may need more than copying: one with its top bit set (UTF-8 to
 * check), under 0x20, a quote or a backslash (to escape). It may say so of bytes that do not
 * (a borrow from a byte that does), never the other way. */
static inline bool word_special(uint64_t w)
{
    uint64_t quote = w ^ BYTES('"'), backslash = w ^ BYTES('\\');
    return 0 != ((w | (w - BYTES(0x20)) | ((quote - BYTES(1)) & ~quote) |
                  ((backslash - BYTES(1)) & ~backslash)) &
                 BYTES(0x80));
}

/* Writes S as a JSON string at DST, escaping what jansson escapes (quote, backslash, control
 * characters; nothing else). Returns the end, or NULL when S is not well-formed UTF-8. Eight
 * bytes at a time while none of them is special: request text is nearly all plain ASCII. */
static char *put_string(char *dst, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    *dst++ = '"';
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (i + 8 <= len && (memcpy(&w, s + i, 8), !word_special(w))) {
            memcpy(dst, &w, 8);
            dst += 8;
            i += 8;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t bad, n = sp_utf8_char((const unsigned char *)s + i, len - i, &bad);
            if (!n)
                return NULL;
            memcpy(dst, s + i, n);
            dst += n;
            i += n;
            continue;
        }
        i++;
        if (c >= 0x20 && '"' != c && '\\' != c) {
            *dst++ = (char)c;
            continue;
        }
        *dst++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *dst++ = (char)c;
            break;
        case '\b':
            *dst++ = 'b';
            break;
        case '\f':
            *dst++ = 'f';
            break;
        case '\n':
            *dst++ = 'n';
            break;
        case '\r':
            *dst++ = 'r';
            break;
        case '\t':
            *dst++ = 't';
            break;
        default:
            memcpy(dst, "u00", 3);
            dst[3] = hex[c >> 4];
            dst[4] = hex[c & 0xf];
            dst += 5;
        }
    }
    *dst++ = '"';
    return dst;
}

typedef struct json_pair {
    const char *name, *value;
    size_t name_len, value_len;
} json_pair_t;

/* {"name":"value",...} of N pairs into a malloc'd string, or NULL when a name repeats or a
 * string is not valid UTF-8 (the general path handles those). */
static char *pairs_json(const json_pair_t *pairs, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++) {
        const json_pair_t *a = &pairs[i];
        for (size_t j = 0; j < i; j++)
            if (pairs[j].name_len == a->name_len &&
                0 == memcmp(pairs[j].name, a->name, a->name_len))
                return NULL;
        cap += JSON_STRING_MAX(a->name_len) + JSON_STRING_MAX(a->value_len) + 2;
    }
    char *out = malloc(cap), *p = out;
    if (!out)
        abort();
    *p++ = '{';
    for (size_t i = 0; i < n && p; i++) {
        if (i)
            *p++ = ',';
        p = put_string(p, pairs[i].name, pairs[i].name_len);
        if (p) {
            *p++ = ':';
            p = put_string(p, pairs[i].value, pairs[i].value_len);
        }
    }
    if (!p) {
        free(out);
        return NULL;
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

char *sp_event_headers_json(const sp_event_t *ev)
{
    json_pair_t pairs[SP_HEADERS_MAX];
    size_t n = ev->n_headers < SP_HEADERS_MAX ? ev->n_headers : SP_HEADERS_MAX;
    for (size_t i = 0; i < n; i++)
        pairs[i] = (json_pair_t){ev->headers[i].name, ev->headers[i].value,
                                 strlen(ev->headers[i].name), strlen(ev->headers[i].value)};
    char *out = pairs_json(pairs, n);
    return out ? out : headers_json_general(ev);
}

#define COOKIES_FAST_MAX 64

struct cookie_pairs {
    json_pair_t pairs[COOKIES_FAST_MAX];
    size_t n;
    bool overflow;
};

static int collect_cookie(void *ctx, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    struct cookie_pairs *c = ctx;
    if (c->n == COOKIES_FAST_MAX) {
        c->overflow = true;
        return 1;
    }
    c->pairs[c->n++] = (json_pair_t){name, value, name_len, value_len};
    return 0;
}

char *sp_event_cookies_json(const sp_event_t *ev)
{
    struct cookie_pairs c = {.n = 0};
    each_cookie(ev->cookie, collect_cookie, &c);
    char *out = c.overflow ? NULL : pairs_json(c.pairs, c.n);
    return out ? out : cookies_json_general(ev);
}

int64_t sp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sp_deadline(struct timespec *deadline, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, deadline);
    deadline->tv_sec += timeout_ms / 1000;
    deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

void sp_format_ts(int64_t ts_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ts_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts_ms % 1000));
}
