/* ua: user-agent parsing with uap-core's rules, LRU cache, CPU architecture, Client Hints. */
/* SPDX-License-Identifier: MIT */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "ua.h"

#include "prefilter.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <yaml.h>

/* Replacement slots of one rule. The slot order is the capture-group order the spec gives as the
 * default for each slot (family = $1, major = $2, ...); devices differ, see parse_bounded. */
enum { SLOT_MAX = 5 };

typedef enum rule_kind { KIND_UA = 0, KIND_OS, KIND_DEVICE, KIND_COUNT } rule_kind_t;

static const char *const kind_names[KIND_COUNT] = {"user_agent_parsers", "os_parsers",
                                                   "device_parsers"};

static const char *const slot_keys[KIND_COUNT][SLOT_MAX] = {
    {"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", "v4_replacement"},
    {"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
     "os_v4_replacement"},
    {"device_replacement", "brand_replacement", "model_replacement", NULL, NULL},
};

typedef struct rule {
    pcre2_code *re;
    char *repl[SLOT_MAX]; /* owned; NULL when the rule names no replacement for the slot */
    char *pattern;        /* owned, as compiled; freed once the prefilter has read it */
    bool caseless;
} rule_t;

typedef struct rule_set {
    rule_t *v;
    size_t n, cap;
} rule_set_t;

typedef struct cache_entry {
    struct cache_entry *prev, *next; /* LRU list, most recent first */
    struct cache_entry *chain;       /* next entry of the same hash bucket */
    uint64_t hash;
    sp_ua_t value;
    size_t keylen;
    char key[]; /* the (truncated) user agent, NUL-terminated */
} cache_entry_t;

struct sp_ua_parser {
    rule_set_t sets[KIND_COUNT];
    /* The literals each rule's matches contain, for all rules at once: rule I of kind K is
     * prefilter pattern base[K] + I. */
    sp_prefilter_t *pf;
    size_t base[KIND_COUNT];
    uint32_t ovec_pairs; /* enough for the rule with the most groups */
    pcre2_match_context *mctx;
    size_t capacity;  /* cache entries; 0: no cache */
    uint64_t seed[2]; /* hash key */

    pthread_mutex_t lock; /* guards everything below */
    cache_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    cache_entry_t *head, *tail;
    uint64_t hits, misses;
};

/* Per-match budget. uap-core checks its regexes against ReDoS, but the input is untrusted and a
 * bad future rule should cost one skipped rule, not a stuck worker. */
#define MATCH_LIMIT 1000000u

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most SRCLEN bytes of SRC into DST (capacity CAP > 0). When the value has to be cut,
 * the cut backs off to the start of a UTF-8 sequence so no half character is left behind. */
static void copy_field(char *dst, size_t cap, const char *src, size_t srclen)
{
    size_t n = srclen;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- loading ---------------------------------------------------------------------------- */

static const char *scalar(yaml_node_t *node)
{
    if (!node || node->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)node->data.scalar.value;
}

/* uap-core's rules are written for (and tested with) Python's re; PCRE2 reads nearly all of it
 * the same way. Where the two disagree the pattern is rewritten to mean what Python means:
 *  - "{,n}" is {0,n} to Python but literal text to PCRE2 before 10.43 (Debian 12 has 10.42);
 *  - inside a class, "[:", "[." and "[=" are plain characters to Python but open a POSIX class
 *    or collating element to PCRE2, so that "[" is escaped.
 * The rules of uap-core 0.16 happen to need neither; a newer regexes.yaml may. Returns a malloc'd
 * pattern the caller frees. */
static char *translate_regex(const char *src)
{
    size_t n = strlen(src);
    char *out = xmalloc(n * 2 + 1); /* at most one byte added per input byte */
    size_t o = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            out[o++] = c;
            out[o++] = src[++i];
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < n &&
                (src[i + 1] == ':' || src[i + 1] == '.' || src[i + 1] == '=')) {
                out[o++] = '\\';
            } else if (c == ']') {
                in_class = false;
            }
            out[o++] = c;
            continue;
        }
        if (c == '[') {
            in_class = true;
            out[o++] = c;
            /* A leading "]" or "^]" is a literal member, not the end of the class. */
            if (i + 1 < n && src[i + 1] == '^')
                out[o++] = src[++i];
            if (i + 1 < n && src[i + 1] == ']')
                out[o++] = src[++i];
            continue;
        }
        if (c == '{' && i + 1 < n && src[i + 1] == ',') {
            size_t j = i + 2;
            while (j < n && isdigit((unsigned char)src[j]))
                j++;
            if (j > i + 2 && j < n && src[j] == '}') {
                out[o++] = '{';
                out[o++] = '0';
                continue; /* the ",n}" follows unchanged */
            }
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static int compile_rule(sp_ua_parser_t *p, rule_t *r, const char *pattern, bool caseless,
                        const char *where, char *err, size_t errlen)
{
    char *pat = translate_regex(pattern);
    int code;
    PCRE2_SIZE off;
    uint32_t opts = caseless ? PCRE2_CASELESS : 0;
    /* No PCRE2_UTF: user agents are untrusted bytes, and byte mode needs no UTF validity check
     * while every rule (all ASCII) still matches as intended. */
    r->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    r->pattern = pat;
    r->caseless = caseless;
    if (!r->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        set_err(err, errlen, "%s: regex '%s': %s at offset %zu", where, pattern, (char *)msg,
                (size_t)off);
        return -1;
    }
    /* JIT is an optimisation only: when it is unavailable the interpreter gives the same
     * answers, more slowly. */
    (void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);
    uint32_t groups = 0;
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups + 1 > p->ovec_pairs)
        p->ovec_pairs = groups + 1;
    return 0;
}

static int load_rule(sp_ua_parser_t *p, rule_kind_t kind, yaml_document_t *doc, yaml_node_t *item,
                     size_t idx, const char *path, char *err, size_t errlen)
{
    char where[256];
    snprintf(where, sizeof where, "%s: %s[%zu]", path, kind_names[kind], idx);
    if (item->type != YAML_MAPPING_NODE) {
        set_err(err, errlen, "%s: not a mapping", where);
        return -1;
    }
    const char *regex = NULL;
    bool caseless = false;
    rule_set_t *set = &p->sets[kind];
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 256;
        set->v = realloc(set->v, set->cap * sizeof *set->v);
        if (!set->v)
            abort();
    }
    rule_t *r = &set->v[set->n];
    memset(r, 0, sizeof *r);

    for (yaml_node_pair_t *pr = item->data.mapping.pairs.start; pr < item->data.mapping.pairs.top;
         pr++) {
        const char *k = scalar(yaml_document_get_node(doc, pr->key));
        const char *v = scalar(yaml_document_get_node(doc, pr->value));
        if (!k || !v)
            continue;
        if (strcmp(k, "regex") == 0) {
            regex = v;
        } else if (strcmp(k, "regex_flag") == 0) {
            caseless = strchr(v, 'i') != NULL;
        } else {
            for (int s = 0; s < SLOT_MAX; s++) {
                if (slot_keys[kind][s] && strcmp(k, slot_keys[kind][s]) == 0) {
                    free(r->repl[s]);
                    r->repl[s] = xstrdup(v);
                }
            }
        }
    }
    if (!regex) {
        set_err(err, errlen, "%s: no regex", where);
        goto fail;
    }
    if (compile_rule(p, r, regex, caseless, where, err, errlen) < 0)
        goto fail;
    set->n++;
    return 0;
fail:
    for (int s = 0; s < SLOT_MAX; s++)
        free(r->repl[s]);
    free(r->pattern);
    return -1;
}

static int load_rules(sp_ua_parser_t *p, const char *path, char *err, size_t errlen)
{
    int rc = -1;
    FILE *f = NULL;
    bool parser_ok = false, doc_ok = false;
    yaml_parser_t yp;
    yaml_document_t doc;

    f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!yaml_parser_initialize(&yp))
        abort();
    parser_ok = true;
    yaml_parser_set_input_file(&yp, f);
    if (!yaml_parser_load(&yp, &doc)) {
        set_err(err, errlen, "%s:%zu: %s", path, (size_t)yp.problem_mark.line + 1,
                yp.problem ? yp.problem : "YAML error");
        goto out;
    }
    doc_ok = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        set_err(err, errlen, "%s: top level is not a mapping", path);
        goto out;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const char *k = scalar(yaml_document_get_node(&doc, pr->key));
        yaml_node_t *list = yaml_document_get_node(&doc, pr->value);
        for (int kind = 0; k && kind < KIND_COUNT; kind++) {
            if (strcmp(k, kind_names[kind]) != 0)
                continue;
            if (!list || list->type != YAML_SEQUENCE_NODE) {
                set_err(err, errlen, "%s: %s is not a list", path, k);
                goto out;
            }
            size_t idx = 0;
            for (yaml_node_item_t *it = list->data.sequence.items.start;
                 it < list->data.sequence.items.top; it++, idx++) {
                yaml_node_t *item = yaml_document_get_node(&doc, *it);
                if (!item ||
                    load_rule(p, (rule_kind_t)kind, &doc, item, idx, path, err, errlen) < 0)
                    goto out;
            }
        }
    }
    if (p->sets[KIND_UA].n == 0 || p->sets[KIND_OS].n == 0 || p->sets[KIND_DEVICE].n == 0) {
        set_err(err, errlen, "%s: user_agent_parsers, os_parsers or device_parsers missing", path);
        goto out;
    }
    rc = 0;
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&yp);
    if (f)
        fclose(f);
    return rc;
}

/* ---- matching --------------------------------------------------------------------------- */

static bool group(const PCRE2_SIZE *ov, int rc, int g, const char *s, const char **start,
                  size_t *len)
{
    if (g >= rc || ov[2 * g] == PCRE2_UNSET)
        return false;
    *start = s + ov[2 * g];
    *len = ov[2 * g + 1] - ov[2 * g];
    return true;
}

/* Builds one field into DST (SP_UA_FIELD bytes): REPL with $1..$9 replaced by the groups
 * (missing groups are empty), or group DEFAULT_GROUP when REPL is NULL (0: no default). The result
 * is trimmed of surrounding whitespace; empty means unset. */
static void fill(char *dst, const char *repl, int default_group, const PCRE2_SIZE *ov, int rc,
                 const char *s)
{
    char tmp[SP_UA_FIELD * 4];
    size_t n = 0;
    const char *g;
    size_t glen;

    if (!repl) {
        if (default_group > 0 && group(ov, rc, default_group, s, &g, &glen)) {
            if (glen >= sizeof tmp)
                glen = sizeof tmp - 1;
            memcpy(tmp, g, glen);
            n = glen;
        }
    } else {
        for (const char *c = repl; *c && n < sizeof tmp - 1; c++) {
            if (c[0] == '$' && c[1] >= '1' && c[1] <= '9') {
                if (group(ov, rc, c[1] - '0', s, &g, &glen)) {
                    if (glen > sizeof tmp - 1 - n)
                        glen = sizeof tmp - 1 - n;
                    memcpy(tmp + n, g, glen);
                    n += glen;
                }
                c++;
            } else {
                tmp[n++] = *c;
            }
        }
    }
    size_t b = 0;
    while (b < n && isspace((unsigned char)tmp[b]))
        b++;
    while (n > b && isspace((unsigned char)tmp[n - 1]))
        n--;
    copy_field(dst, SP_UA_FIELD, tmp + b, n - b);
    /* A cut can end on a space inside the value: keep the result trimmed. */
    for (size_t k = strlen(dst); k > 0 && isspace((unsigned char)dst[k - 1]); k--)
        dst[k - 1] = '\0';
}

/* The first bit set in CAND at FROM or after, below LIMIT; LIMIT when there is none. */
static size_t next_candidate(const uint64_t *cand, size_t from, size_t limit)
{
    while (from < limit) {
        uint64_t w = cand[from / 64] >> (from % 64);
        if (w) {
            size_t i = from + (size_t)__builtin_ctzll(w);
            return i < limit ? i : limit;
        }
        from = (from / 64 + 1) * 64;
    }
    return limit;
}

/* Runs the rules of kind K in order, only those CAND names when it is not NULL; returns the
 * result code of the first that matches (its groups in MD), or 0. A rule CAND leaves out cannot
 * match S (see prefilter.h), so the first match is the same either way. */
static int first_match(const sp_ua_parser_t *p, rule_kind_t k, const uint64_t *cand, const char *s,
                       size_t len, pcre2_match_data *md, const rule_t **hit)
{
    const rule_set_t *set = &p->sets[k];
    size_t base = p->base[k];
    for (size_t i = 0; i < set->n; i++) {
        if (cand) {
            i = next_candidate(cand, base + i, base + set->n) - base;
            if (i == set->n)
                break;
        }
        int rc = pcre2_match(set->v[i].re, (PCRE2_SPTR)s, len, 0, 0, md, p->mctx);
        /* The JIT's fixed 32 KiB stack can run out where the interpreter would not: retry. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(set->v[i].re, (PCRE2_SPTR)s, len, 0, PCRE2_NO_JIT, md, p->mctx);
        if (rc > 0) {
            *hit = &set->v[i];
            return rc;
        }
    }
    return 0;
}

static void set_other(sp_ua_t *out)
{
    memset(out, 0, sizeof *out);
    strcpy(out->browser.family, "Other");
    strcpy(out->os.family, "Other");
    strcpy(out->device.family, "Other");
}

static void fill_agent(sp_ua_agent_t *a, const rule_t *r, const PCRE2_SIZE *ov, int rc,
                       const char *s)
{
    char *fields[SLOT_MAX] = {a->family, a->major, a->minor, a->patch, a->patch_minor};
    for (int i = 0; i < SLOT_MAX; i++)
        fill(fields[i], r->repl[i], i + 1, ov, rc, s);
    if (!a->family[0])
        strcpy(a->family, "Other");
}

/* S is NUL-terminated and at most SP_UA_MAX_INPUT bytes long. FILTERED: only the rules the
 * prefilter names run; otherwise all of them. */
static void parse_bounded(sp_ua_parser_t *p, const char *s, size_t len, sp_ua_t *out, bool filtered)
{
    set_other(out);
    if (len == 0)
        return;
    /* Per call, so threads never share match state; small allocations next to the regex runs. */
    pcre2_match_data *md = pcre2_match_data_create(p->ovec_pairs, NULL);
    if (!md)
        abort();
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    const rule_t *r;
    int rc;

    /* The candidate set, then the scan's scratch space; on the stack when they fit. */
    uint64_t stack[512], *cand = NULL, *heap = NULL;
    if (filtered) {
        size_t words = sp_prefilter_words(p->pf);
        size_t need = words + (sp_prefilter_scratch_size(p->pf) + 7) / 8;
        cand =
            need <= sizeof stack / sizeof stack[0] ? stack : (heap = xmalloc(need * sizeof *heap));
        sp_prefilter_scan(p->pf, s, len, cand, cand + words);
    }

    if ((rc = first_match(p, KIND_UA, cand, s, len, md, &r)) > 0)
        fill_agent(&out->browser, r, ov, rc, s);
    if ((rc = first_match(p, KIND_OS, cand, s, len, md, &r)) > 0)
        fill_agent(&out->os, r, ov, rc, s);
    if ((rc = first_match(p, KIND_DEVICE, cand, s, len, md, &r)) > 0) {
        /* Devices: family and model both default to $1; brand has no default. */
        fill(out->device.family, r->repl[0], 1, ov, rc, s);
        fill(out->device.brand, r->repl[1], 0, ov, rc, s);
        fill(out->device.model, r->repl[2], 1, ov, rc, s);
        if (!out->device.family[0])
            strcpy(out->device.family, "Other");
    }
    pcre2_match_data_free(md);
    free(heap);
}

/* Copies the part of UA that is looked at into BUF (SP_UA_MAX_INPUT + 1 bytes). */
static size_t bound_input(const char *ua, char *buf)
{
    size_t len = ua ? strnlen(ua, SP_UA_MAX_INPUT) : 0;
    if (len)
        memcpy(buf, ua, len);
    buf[len] = '\0';
    return len;
}

void sp_ua_parse_uncached(sp_ua_parser_t *p, const char *ua, sp_ua_t *out)
{
    char buf[SP_UA_MAX_INPUT + 1];
    size_t len = bound_input(ua, buf);
    parse_bounded(p, buf, len, out, true);
}

void sp_ua_parse_unfiltered(sp_ua_parser_t *p, const char *ua, sp_ua_t *out)
{
    char buf[SP_UA_MAX_INPUT + 1];
    size_t len = bound_input(ua, buf);
    parse_bounded(p, buf, len, out, false);
}

/* ---- cache ------------------------------------------------------------------------------ */

/* SipHash-1-3 with a per-parser random key: user agents are chosen by whoever loads the pixel,
 * and a keyed hash keeps them from piling one bucket up on purpose. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash13(const uint64_t key[2], const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
    uint64_t b = (uint64_t)len << 56, m;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8); /* host order: fine for a table that never leaves the process */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)in[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static cache_entry_t *cache_find(sp_ua_parser_t *p, uint64_t h, const char *key, size_t len)
{
    for (cache_entry_t *e = p->buckets[h & (p->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == h && e->keylen == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void lru_unlink(sp_ua_parser_t *p, cache_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        p->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(sp_ua_parser_t *p, cache_entry_t *e)
{
    e->prev = NULL;
    e->next = p->head;
    if (p->head)
        p->head->prev = e;
    p->head = e;
    if (!p->tail)
        p->tail = e;
}

static void cache_remove(sp_ua_parser_t *p, cache_entry_t *e)
{
    cache_entry_t **pp = &p->buckets[e->hash & (p->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(p, e);
    p->count--;
    free(e);
}

/* Caller holds the lock and has checked KEY is absent. */
static void cache_insert(sp_ua_parser_t *p, uint64_t h, const char *key, size_t len,
                         const sp_ua_t *value)
{
    if (p->count >= p->capacity && p->tail)
        cache_remove(p, p->tail);
    cache_entry_t *e = xmalloc(sizeof *e + len + 1);
    e->hash = h;
    e->value = *value;
    e->keylen = len;
    memcpy(e->key, key, len + 1);
    cache_entry_t **b = &p->buckets[h & (p->nbuckets - 1)];
    e->chain = *b;
    *b = e;
    lru_push_front(p, e);
    p->count++;
}

void sp_ua_parse(sp_ua_parser_t *p, const char *ua, sp_ua_t *out)
{
    char buf[SP_UA_MAX_INPUT + 1];
    size_t len = bound_input(ua, buf);
    if (len == 0) {
        set_other(out); /* no regex runs: neither a hit nor a miss */
        return;
    }
    if (p->capacity == 0) {
        pthread_mutex_lock(&p->lock);
        p->misses++;
        pthread_mutex_unlock(&p->lock);
        parse_bounded(p, buf, len, out, true);
        return;
    }
    uint64_t h = siphash13(p->seed, (const unsigned char *)buf, len);

    pthread_mutex_lock(&p->lock);
    cache_entry_t *e = cache_find(p, h, buf, len);
    if (e) {
        lru_unlink(p, e);
        lru_push_front(p, e);
        *out = e->value;
        p->hits++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->misses++;
    pthread_mutex_unlock(&p->lock);

    /* The regexes run unlocked; two threads missing on the same agent both parse it and the
     * second insert is skipped, which costs a little work but never blocks other lookups. */
    parse_bounded(p, buf, len, out, true);

    pthread_mutex_lock(&p->lock);
    if (!cache_find(p, h, buf, len))
        cache_insert(p, h, buf, len, out);
    pthread_mutex_unlock(&p->lock);
}

void sp_ua_stats(sp_ua_parser_t *p, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&p->lock);
    if (hits)
        *hits = p->hits;
    if (misses)
        *misses = p->misses;
    pthread_mutex_unlock(&p->lock);
}

/* ---- open / close ----------------------------------------------------------------------- */

/* Reads every rule's literals (the rules in kind order, each kind in file order) into one
 * prefilter, so that one scan of an agent names the candidates of all three kinds. */
static void build_prefilter(sp_ua_parser_t *p)
{
    p->pf = sp_prefilter_new();
    for (int k = 0; k < KIND_COUNT; k++) {
        p->base[k] = sp_prefilter_count(p->pf);
        for (size_t i = 0; i < p->sets[k].n; i++) {
            rule_t *r = &p->sets[k].v[i];
            sp_prefilter_add(p->pf, r->pattern, r->caseless);
            free(r->pattern);
            r->pattern = NULL;
        }
    }
    sp_prefilter_compile(p->pf);
}

static void random_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof seed[0], GRND_NONBLOCK) == (ssize_t)(2 * sizeof seed[0]))
        return;
    /* No entropy yet (early boot): a weaker key still spreads ordinary traffic evenly. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec;
    seed[1] = (uint64_t)(uintptr_t)seed * 0xC2B2AE3D27D4EB4FULL;
}

sp_ua_parser_t *sp_ua_open(const char *regexes_path, size_t cache_entries, char *err, size_t errlen)
{
    const char *path = regexes_path ? regexes_path : SP_UA_DEFAULT_REGEXES;
    sp_ua_parser_t *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->ovec_pairs = 1;
    p->capacity = cache_entries;

    if (load_rules(p, path, err, errlen) < 0)
        goto fail;
    build_prefilter(p);

    p->mctx = pcre2_match_context_create(NULL);
    if (!p->mctx)
        abort();
    pcre2_set_match_limit(p->mctx, MATCH_LIMIT);

    if (cache_entries) {
        /* Load factor at most one; guard the shift against absurd sizes. */
        size_t nb = 16;
        while (nb < cache_entries && nb < ((size_t)1 << 30))
            nb <<= 1;
        p->nbuckets = nb;
        p->buckets = xcalloc(nb, sizeof *p->buckets);
    }
    random_seed(p->seed);
    return p;
fail:
    sp_ua_close(p);
    return NULL;
}

void sp_ua_close(sp_ua_parser_t *p)
{
    if (!p)
        return;
    for (int k = 0; k < KIND_COUNT; k++) {
        for (size_t i = 0; i < p->sets[k].n; i++) {
            pcre2_code_free(p->sets[k].v[i].re);
            free(p->sets[k].v[i].pattern);
            for (int s = 0; s < SLOT_MAX; s++)
                free(p->sets[k].v[i].repl[s]);
        }
        free(p->sets[k].v);
    }
    for (cache_entry_t *e = p->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(p->buckets);
    sp_prefilter_free(p->pf);
    pcre2_match_context_free(p->mctx);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- versions --------------------------------------------------------------------------- */

void sp_ua_version(const sp_ua_agent_t *a, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    const char *parts[] = {a->major, a->minor, a->patch, a->patch_minor};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i][0])
            continue;
        size_t dot = n ? 1 : 0, w = strlen(parts[i]);
        if (n + dot + w >= len) {
            buf[n] = '\0'; /* a cut version would be a wrong version: keep whole parts only */
            return;
        }
        if (dot)
            buf[n] = '.';
        memcpy(buf + n + dot, parts[i], w + 1);
        n += dot + w;
    }
}

/* ---- architecture ----------------------------------------------------------------------- */

/* User-agent tokens that name an architecture, first match wins, so the 64-bit names come before
 * the 32-bit ones they can appear with ("Linux i686 on x86_64" is a 32-bit Firefox on a 64-bit
 * system: like WOW64, the machine is what we report). Matched case-insensitively as whole words
 * so "x64" inside another token does not count. */
static const struct arch_token {
    const char *token;
    const char *arch;
} arch_tokens[] = {
    {"aarch64", "arm64"},         /* Linux on 64-bit ARM */
    {"arm64", "arm64"},           /* Windows on ARM, some Linux/BSD builds */
    {"x86_64", "x86_64"},         /* Linux, Chrome OS */
    {"amd64", "x86_64"},          /* BSDs, some Windows builds */
    {"Win64", "x86_64"},          /* 64-bit Windows, 64-bit browser */
    {"x64", "x86_64"},            /* "Win64; x64" */
    {"WOW64", "x86_64"},          /* 64-bit Windows running a 32-bit browser */
    {"armv8l", "arm"},            /* 32-bit userland on a 64-bit ARM core */
    {"armv7l", "arm"},            /* Raspberry Pi OS and older ARM boards */
    {"armv6l", "arm"},            /* Raspberry Pi Zero / 1 */
    {"i686", "x86"},              /* 32-bit Linux */
    {"i586", "x86"},              /* 32-bit Linux, old */
    {"i386", "x86"},              /* 32-bit BSD, old */
    {"Intel Mac OS X", "x86_64"}, /* Apple silicon Macs send this too (frozen by Safari and
                                     Chrome); only Client Hints can tell them apart */
};

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static bool has_token(const char *s, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *h = s; (h = strcasestr(h, tok)) != NULL; h++) {
        bool left = h == s || !word_char(h[-1]);
        bool right = !word_char(h[tl]);
        if (left && right)
            return true;
    }
    return false;
}

static const char *arch_from_ua(const char *ua)
{
    char buf[SP_UA_MAX_INPUT + 1];
    if (bound_input(ua, buf) == 0)
        return "";
    for (size_t i = 0; i < sizeof arch_tokens / sizeof arch_tokens[0]; i++)
        if (has_token(buf, arch_tokens[i].token))
            return arch_tokens[i].arch;
    return "";
}

/* A structured-header string value ("\"x86\"") without its quotes and surrounding space, into
 * BUF; bare tokens are accepted as well. */
static const char *unquote(const char *v, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0'; /* callers read BUF, not only the result */
    if (!v)
        return "";
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strnlen(v, SP_UA_MAX_INPUT);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    copy_field(buf, cap, v, n);
    return buf;
}

void sp_ua_arch(const char *ua, const char *ch_arch, const char *ch_bitness,
                const char *ch_platform, char *buf, size_t len)
{
    char a[32], b[32], pl[32];
    const char *arch = unquote(ch_arch, a, sizeof a);
    const char *bits = unquote(ch_bitness, b, sizeof b);
    const char *plat = unquote(ch_platform, pl, sizeof pl);
    const char *res;
    bool x86 = strcasecmp(arch, "x86") == 0, arm = strcasecmp(arch, "arm") == 0;

    if (x86 || arm) {
        if (strcmp(bits, "64") == 0) {
            res = x86 ? "x86_64" : "arm64";
        } else if (strcmp(bits, "32") == 0) {
            res = x86 ? "x86" : "arm";
        } else if (arm && strcasecmp(plat, "macOS") == 0) {
            res = "arm64"; /* every Apple silicon Mac is 64-bit */
        } else {
            /* Width unknown: keep the UA's answer when it agrees on the family. */
            const char *u = arch_from_ua(ua);
            if (x86)
                res = (!strcmp(u, "x86_64") || !strcmp(u, "x86")) ? u : "x86";
            else
                res = (!strcmp(u, "arm64") || !strcmp(u, "arm")) ? u : "arm";
        }
    } else {
        /* No hint, an empty one (Android sends "") or one we do not know. */
        res = arch_from_ua(ua);
    }
    if (buf && len)
        copy_field(buf, len, res, strlen(res));
}

/* ---- client hints ----------------------------------------------------------------------- */

/* The Sec-CH-UA-Platform values the Client Hints spec defines, with the os family uap-core
 * gives the same system; anything else ("Unknown", junk) is ignored. */
static const struct platform_name {
    const char *hint, *family;
} platform_names[] = {
    {"Windows", "Windows"}, {"macOS", "Mac OS X"},      {"Android", "Android"},
    {"iOS", "iOS"},         {"Chrome OS", "Chrome OS"}, {"Chromium OS", "Chrome OS"},
    {"Linux", "Linux"},
};

static bool version_ok(const char *v)
{
    if (!isdigit((unsigned char)v[0]))
        return false;
    for (; *v; v++)
        if (!isdigit((unsigned char)*v) && *v != '.')
            return false;
    return true;
}

static void set_version(sp_ua_agent_t *os, const char *v)
{
    char *parts[] = {os->major, os->minor, os->patch, os->patch_minor};
    for (size_t i = 0; i < 4; i++)
        parts[i][0] = '\0';
    for (size_t i = 0; i < 3 && *v; i++) {
        size_t n = strcspn(v, ".");
        copy_field(parts[i], SP_UA_FIELD, v, n);
        v += n;
        if (*v == '.')
            v++;
    }
}

void sp_ua_apply_client_hints(sp_ua_t *ua, const char *ch_model, const char *ch_platform,
                              const char *ch_platform_version)
{
    char model[SP_UA_FIELD], plat[SP_UA_FIELD], ver[SP_UA_FIELD];
    unquote(ch_model, model, sizeof model);
    unquote(ch_platform, plat, sizeof plat);
    unquote(ch_platform_version, ver, sizeof ver);

    /* Chrome's reduced UA on Android says "Android 10; K" for every phone: the model hint is the
     * only place the real model is left. */
    bool unknown = !strcmp(ua->device.family, "Other") || !ua->device.model[0] ||
                   !strcmp(ua->device.model, "K");
    if (model[0] && unknown) {
        copy_field(ua->device.model, SP_UA_FIELD, model, strlen(model));
        copy_field(ua->device.family, SP_UA_FIELD, model, strlen(model));
    }

    const char *family = NULL;
    for (size_t i = 0; i < sizeof platform_names / sizeof platform_names[0]; i++)
        if (!strcasecmp(plat, platform_names[i].hint))
            family = platform_names[i].family;
    if (!family)
        return;
    bool os_unknown = !strcmp(ua->os.family, "Other");
    if (os_unknown) {
        copy_field(ua->os.family, SP_UA_FIELD, family, strlen(family));
        ua->os.major[0] = ua->os.minor[0] = ua->os.patch[0] = ua->os.patch_minor[0] = '\0';
    } else if (strcmp(ua->os.family, family) != 0) {
        return; /* the hint speaks of another system than the UA: believe neither's version */
    }
    if (!version_ok(ver))
        return;
    if (!strcmp(family, "Windows")) {
        /* The UA says "Windows NT 10.0" for 10 and 11; the platform version tells them apart
         * (13+ is 11, 1-10 is 10). 0.x covers 7/8/8.1, which the UA names already. */
        long major = strtol(ver, NULL, 10);
        if (major >= 13 || (major >= 1 && os_unknown)) {
            set_version(&ua->os, major >= 13 ? "11" : "10");
        }
        return;
    }
    set_version(&ua->os, ver);
}
