/* intern: user agents and header sets stored once and referenced by ID, and the writer's cache. */
/* SPDX-License-Identifier: MIT */
#include "intern.h"
#include "merge.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *text; /* NULL: empty */
    size_t len;
    int64_t id;
    uint64_t token; /* the token of the key it was filled or last found with (0: none) */
} slot_t;

struct sp_intern {
    slot_t *slots;
    size_t n_slots, max_len, count;
};

sp_intern_t *sp_intern_new(size_t slots, size_t max_len)
{
    sp_intern_t *c = calloc(1, sizeof(*c));
    if (!c || !slots)
        abort();
    c->slots = calloc(slots, sizeof(*c->slots));
    if (!c->slots)
        abort();
    c->n_slots = slots;
    c->max_len = max_len;
    return c;
}

void sp_intern_clear(sp_intern_t *c)
{
    for (size_t i = 0; i < c->n_slots; i++) {
        free(c->slots[i].text);
        c->slots[i] = (slot_t){0};
    }
    c->count = 0;
}

void sp_intern_free(sp_intern_t *c)
{
    if (!c)
        return;
    sp_intern_clear(c);
    free(c->slots);
    free(c);
}

size_t sp_intern_count(const sp_intern_t *c)
{
    return c->count;
}

sp_intern_key_t sp_intern_key(const char *text)
{
    size_t len = strlen(text);
    return (sp_intern_key_t){text, len, sp_hash_words(text, len), 0};
}

int64_t sp_intern_find(sp_intern_t *c, const sp_intern_key_t *key)
{
    slot_t *e = &c->slots[key->hash % c->n_slots];
    if (!e->text)
        return 0;
    if (key->token && e->token == key->token)
        return e->id; /* a token is only ever given to one text */
    if (e->len != key->len || 0 != memcmp(e->text, key->text, key->len))
        return 0;
    e->token = key->token;
    return e->id;
}

void sp_intern_keep(sp_intern_t *c, const sp_intern_key_t *key, int64_t id)
{
    if (key->len > c->max_len)
        return;
    slot_t *e = &c->slots[key->hash % c->n_slots];
    if (!e->text)
        c->count++;
    free(e->text);
    e->text = malloc(key->len + 1);
    if (!e->text)
        abort();
    memcpy(e->text, key->text, key->len);
    e->text[key->len] = '\0';
    e->len = key->len;
    e->id = id;
    e->token = key->token;
}

/* Slots of the reader's table: a batch's distinct agents and header sets are a few (one per
 * client configuration); a text that shares its slot with another gets new tokens, and the
 * writer's cache then compares it. */
#define SEEN_SLOTS 1024

typedef struct {
    char *text; /* SP_INTERN_TEXT_MAX + 1 bytes once used */
    size_t len;
    uint64_t hash, token;
} seen_slot_t;

struct sp_intern_seen {
    seen_slot_t slots[SEEN_SLOTS];
};

/* Tokens of every reader in the process (a server may open more than one ingest in its life):
 * one counter, so that no two texts ever share one. */
static _Atomic uint64_t last_token;

sp_intern_seen_t *sp_intern_seen_new(void)
{
    sp_intern_seen_t *seen = calloc(1, sizeof(*seen));
    if (!seen)
        abort();
    return seen;
}

void sp_intern_seen_free(sp_intern_seen_t *seen)
{
    if (!seen)
        return;
    for (size_t i = 0; i < SEEN_SLOTS; i++)
        free(seen->slots[i].text);
    free(seen);
}

uint64_t sp_intern_seen_token(sp_intern_seen_t *seen, const char *text, size_t len, uint64_t hash)
{
    if (len > SP_INTERN_TEXT_MAX)
        return 0;
    seen_slot_t *e = &seen->slots[hash % SEEN_SLOTS];
    if (e->token && e->hash == hash && e->len == len && 0 == memcmp(e->text, text, len))
        return e->token;
    if (!e->text && !(e->text = malloc(SP_INTERN_TEXT_MAX + 1)))
        abort();
    memcpy(e->text, text, len);
    e->len = len;
    e->hash = hash;
    e->token = atomic_fetch_add(&last_token, 1) + 1;
    return e->token;
}

/* Headers whose values are the request's own, not its client's: addresses set by proxies
 * (RFC 7239's Forwarded and its de facto forerunners), request IDs, and the cookies, referrer
 * and From (RFC 9110 10.1.2: the user's email address) that name a person. Kept in the row,
 * they go with it (retention, forget). */
#define APART(name)                                                                                \
    {                                                                                              \
        name, sizeof(name) - 1                                                                     \
    }
static const struct {
    const char *name;
    size_t len;
} apart[] = {
    APART("X-Forwarded-For"),
    APART("X-Real-IP"),
    APART("Forwarded"),
    APART("True-Client-IP"),
    APART("CF-Connecting-IP"),
    APART("X-Client-IP"),
    APART("X-Cluster-Client-IP"),
    APART("Fastly-Client-IP"),
    APART("X-Forwarded"),
    APART("Forwarded-For"),
    APART("X-Original-Forwarded-For"),
    APART("X-Request-ID"),
    APART("X-Amzn-Trace-Id"),
    APART("CF-Ray"),
    APART("Cookie"),
    APART("Referer"),
    APART("From"),
};

int sp_intern_apart(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(apart) / sizeof(apart[0]); i++)
        if (apart[i].len == len && 0 == strncasecmp(apart[i].name, name, len))
            return 1;
    return 0;
}

/* The end of the JSON string at S (its opening quote), just past its closing quote; NULL when
 * it does not end. */
static const char *string_end(const char *s)
{
    if ('"' != *s)
        return NULL;
    for (s++; (s = strpbrk(s, "\\\"")); s++) {
        if ('"' == *s)
            return s + 1;
        if (!*++s) /* past the escaped character */
            return NULL;
    }
    return NULL;
}

static void put(char **p, const char *s, size_t len)
{
    memcpy(*p, s, len);
    *p += len;
}

/* Splits JSON into A and B, each as long as JSON with its NUL: sp_intern_split's set and apart
 * values, each ended by a NUL. Returns 0, or -1 when JSON is not an object of strings. */
static int split_into(const char *json, char *a, char *b)
{
    char *pa = a, *pb = b;
    const char *p = json;
    if ('{' != *p)
        return -1;
    put(&pa, p++, 1);
    if ('}' == *p) {
        put(&pa, p++, 1);
    } else {
        for (;;) {
            const char *key = p, *key_end = string_end(p);
            if (!key_end || ':' != *key_end)
                return -1;
            const char *value = key_end + 1, *value_end = string_end(value);
            if (!value_end)
                return -1;
            put(&pa, key, (size_t)(value - key));
            if (sp_intern_apart(key + 1, (size_t)(key_end - key - 2))) {
                put(&pa, "@", 1);
                put(&pb, value, (size_t)(value_end - value));
            } else {
                put(&pa, value, (size_t)(value_end - value));
            }
            p = value_end;
            if (',' == *p) {
                put(&pa, p++, 1);
                continue;
            }
            if ('}' != *p)
                return -1;
            put(&pa, p++, 1);
            break;
        }
    }
    if (*p)
        return -1;
    *pa = *pb = '\0';
    return 0;
}

int sp_intern_split(const char *json, char **set, char **apart_out)
{
    size_t len = strlen(json);
    char *a = malloc(len + 1), *b = malloc(len + 1);
    if (!a || !b)
        abort();
    if (0 != split_into(json, a, b)) {
        free(a);
        free(b);
        return -1;
    }
    *set = a;
    *apart_out = b;
    return 0;
}

int sp_intern_split_event(sp_event_t *ev, const char **set_out, const char **apart_out)
{
    if (!ev->headers_split) {
        const char *json = sp_event_row(ev)->headers_json;
        size_t len = strlen(json);
        /* Split on the stack (most headers are well under a kilobyte), then copied to one block
         * of the two's size: the block is held with the event until its batch is stored. */
        char small[2 * 2048], *scratch = small;
        if (2 * (len + 1) > sizeof(small) && !(scratch = malloc(2 * (len + 1))))
            abort();
        if (0 == split_into(json, scratch, scratch + len + 1)) {
            size_t set_size = strlen(scratch) + 1, apart_size = strlen(scratch + len + 1) + 1;
            char *block = sp_slab_alloc(ev->slab, set_size + apart_size);
            memcpy(block, scratch, set_size);
            memcpy(block + set_size, scratch + len + 1, apart_size);
            ev->headers_set = block;
            ev->headers_apart = block + set_size;
        }
        if (scratch != small)
            free(scratch);
        ev->headers_split = true;
    }
    if (set_out)
        *set_out = ev->headers_set;
    if (apart_out)
        *apart_out = ev->headers_apart;
    return ev->headers_set ? 0 : -1;
}

/* EV's keys made and kept, with tokens from SEEN when it is given. */
static void make_keys(sp_event_t *ev, sp_intern_seen_t *seen, sp_intern_key_t *agent,
                      sp_intern_key_t *set, const char **apart_out)
{
    const sp_event_row_t *row = sp_event_row(ev);
    const char *set_text, *apart_text;
    if (0 != sp_intern_split_event(ev, &set_text, &apart_text))
        set_text = row->headers_json;
    if (!ev->keys_made) {
        ev->agent_len = row->user_agent ? strlen(row->user_agent) : 0;
        ev->agent_hash = row->user_agent ? sp_hash_words(row->user_agent, ev->agent_len) : 0;
        ev->set_len = strlen(set_text);
        ev->set_hash = sp_hash_words(set_text, ev->set_len);
        ev->agent_token =
            seen && row->user_agent
                ? sp_intern_seen_token(seen, row->user_agent, ev->agent_len, ev->agent_hash)
                : 0;
        ev->set_token = seen ? sp_intern_seen_token(seen, set_text, ev->set_len, ev->set_hash) : 0;
        ev->keys_made = true;
    }
    if (agent)
        *agent = (sp_intern_key_t){row->user_agent, ev->agent_len, ev->agent_hash, ev->agent_token};
    if (set)
        *set = (sp_intern_key_t){set_text, ev->set_len, ev->set_hash, ev->set_token};
    if (apart_out)
        *apart_out = apart_text;
}

void sp_intern_event_keys(sp_event_t *ev, sp_intern_key_t *agent, sp_intern_key_t *set,
                          const char **apart_out)
{
    make_keys(ev, NULL, agent, set, apart_out);
}

void sp_intern_event_tokens(sp_event_t *ev, sp_intern_seen_t *seen)
{
    make_keys(ev, seen, NULL, NULL, NULL);
}

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    *buf = realloc(*buf, n);
    if (!*buf)
        abort();
    *cap = n;
}

char *sp_intern_join(const char *set, const char *apart_values, char **buf, size_t *cap)
{
    grow(buf, cap, strlen(set) + strlen(apart_values) + 1);
    char *out = *buf;
    const char *p = set, *next = apart_values;
    while (*p) {
        if ('"' == *p) {
            const char *end = string_end(p);
            if (!end)
                return NULL;
            put(&out, p, (size_t)(end - p));
            p = end;
        } else if ('@' == *p) {
            const char *end = string_end(next);
            if (!end)
                return NULL;
            put(&out, next, (size_t)(end - next));
            next = end;
            p++;
        } else {
            put(&out, p++, 1);
        }
    }
    *out = '\0';
    return *next ? NULL : *buf;
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

void sp_intern_select_sql(char *cols, size_t len)
{
    size_t at = 0;
    cols[0] = '\0';
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        if (SP_EVENT_FIELD_user_agent == i)
            append(cols, len, &at,
                   "coalesce(user_agent,"
                   " (SELECT text FROM agents WHERE agents.id = events.agent)) AS user_agent");
        else if (SP_EVENT_FIELD_headers_json == i)
            append(
                cols, len, &at,
                "coalesce((SELECT text FROM header_sets WHERE header_sets.id = events.header_set),"
                " headers) AS headers");
        else
            append(cols, len, &at, sp_event_fields[i].name);
    }
    append(cols, len, &at, "header_addrs");
}
