/* prefilter: literals every match of a regex holds, and one scan naming the regexes to run. */
/* SPDX-License-Identifier: MIT */
#include "prefilter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds of the reading. Past them it keeps less (a smaller set of groups, or none), which is
 * always safe. */
enum {
    MAX_GROUPS = 8,  /* groups kept per node of the pattern */
    MAX_EXACT = 64,  /* strings a node may be known to match exactly */
    MAX_LENGTH = 64, /* bytes of one literal: a longer run of text makes two */
    MAX_ALT = 256,   /* literals of one group made of an alternation's branches */
    MAX_PICKS = 64,  /* groups of an alternation made from its branches' groups */
    MAX_CLASS = 8,   /* members of a class still read as a set of literals */
    MAX_DEPTH = 64,  /* nested groups */
    MIN_LITERAL = 2, /* a group whose shortest literal is shorter says too little to keep */
    ARENA_CHUNK = 16384,
};

/* The automaton follows the first KEY_MAX bytes of each literal (fewer when that would need
 * more than MAX_STATES states) and compares the rest where they end: a smaller table, so that
 * the scan stays in the processor's caches. */
enum { KEY_MAX = 4, MAX_STATES = 0x8000 };
#define HIT_BIT 0x8000u /* in a transition: the state it leads to ends some literal */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort(); /* out-of-memory aborts */
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- the reading of one pattern ---------------------------------------------------------- */

/* Everything the reading of one pattern allocates, freed at once when it is done. */
typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
} chunk_t;

typedef struct arena {
    chunk_t *head;
} arena_t;

static void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (!a->head || a->head->used + n > a->head->size) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        chunk_t *c = xmalloc(sizeof *c + size);
        c->next = a->head;
        c->used = 0;
        c->size = size;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(arena_t *a)
{
    for (chunk_t *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

/* A set of strings (no NUL inside: the reading gives up on patterns that need one). */
typedef struct strs {
    char **v;
    size_t n;
} strs_t;

/* What is known of the text a node of the pattern matches: when EXACT, it is one of the strings
 * of EX; in any case it contains a string of each of GROUPS. */
typedef struct info {
    bool exact;
    strs_t ex;
    strs_t groups[MAX_GROUPS];
    size_t ngroups;
} info_t;

typedef struct reader {
    const char *p, *end;
    bool caseless;
    bool fail; /* a construct the reading does not follow: the pattern gets no group */
    int depth;
    arena_t arena;
} reader_t;

static char *arena_strcat(arena_t *a, const char *x, const char *y)
{
    size_t nx = strlen(x), ny = strlen(y);
    char *s = arena_alloc(a, nx + ny + 1);
    memcpy(s, x, nx);
    memcpy(s + nx, y, ny + 1);
    return s;
}

static bool strs_has(const strs_t *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return true;
    return false;
}

/* The set holding only X (copied). */
static strs_t strs_one(arena_t *a, const char *x)
{
    strs_t s = {arena_alloc(a, sizeof(char *)), 1};
    s.v[0] = arena_strcat(a, x, "");
    return s;
}

typedef struct ranked {
    const char *s;
    size_t at;
} ranked_t;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* The strings of the N sets SETS together, each once, in the order first seen; false when that
 * is more than LIMIT strings. Sorting finds the repeats: an alternation may have hundreds of
 * branches. */
static bool strs_join(arena_t *a, const strs_t *const *sets, size_t n, size_t limit, strs_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += sets[i]->n;
    ranked_t *r = arena_alloc(a, total * sizeof *r);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sets[i]->n; j++, k++)
            r[k] = (ranked_t){sets[i]->v[j], k};
    qsort(r, total, sizeof *r, ranked_cmp);
    bool *keep = arena_alloc(a, total * sizeof *keep);
    memset(keep, 0, total * sizeof *keep);
    size_t kept = 0;
    for (size_t i = 0; i < total; i++) {
        if (i == 0 || strcmp(r[i].s, r[i - 1].s) != 0) {
            keep[r[i].at] = true;
            kept++;
        }
    }
    if (kept > limit)
        return false;
    strs_t u = {arena_alloc(a, kept * sizeof(char *)), 0};
    k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sets[i]->n; j++, k++)
            if (keep[k])
                u.v[u.n++] = sets[i]->v[j];
    *out = u;
    return true;
}

/* Every string of X followed by every string of Y, or false when that is more than MAX_EXACT
 * strings or one longer than MAX_LENGTH. */
static bool strs_cross(arena_t *a, const strs_t *x, const strs_t *y, strs_t *out)
{
    if (x->n * y->n > MAX_EXACT)
        return false;
    for (size_t i = 0; i < x->n; i++)
        for (size_t j = 0; j < y->n; j++)
            if (strlen(x->v[i]) + strlen(y->v[j]) > MAX_LENGTH)
                return false;
    strs_t c = {arena_alloc(a, x->n * y->n * sizeof(char *)), 0};
    for (size_t i = 0; i < x->n; i++) {
        for (size_t j = 0; j < y->n; j++) {
            char *s = arena_strcat(a, x->v[i], y->v[j]);
            if (!strs_has(&c, s))
                c.v[c.n++] = s;
        }
    }
    *out = c;
    return true;
}

static size_t strs_minlen(const strs_t *s)
{
    size_t m = SIZE_MAX;
    for (size_t i = 0; i < s->n; i++) {
        size_t l = strlen(s->v[i]);
        if (l < m)
            m = l;
    }
    return s->n ? m : 0;
}

/* How much a group narrows the candidates: longer literals are rarer, fewer of them too. */
static long group_score(const strs_t *g)
{
    return (long)strs_minlen(g) * 1024 - (long)g->n;
}

static void add_group(info_t *in, const strs_t *g)
{
    if (g->n == 0 || strs_minlen(g) == 0)
        return; /* the empty string is in every subject: no constraint */
    if (in->ngroups < MAX_GROUPS) {
        in->groups[in->ngroups++] = *g;
        return;
    }
    size_t worst = 0;
    for (size_t i = 1; i < in->ngroups; i++)
        if (group_score(&in->groups[i]) < group_score(&in->groups[worst]))
            worst = i;
    if (group_score(g) > group_score(&in->groups[worst]))
        in->groups[worst] = *g;
}

static info_t info_empty(reader_t *r)
{
    info_t in = {.exact = true, .ex = strs_one(&r->arena, "")};
    return in;
}

static info_t info_unknown(void)
{
    info_t in = {.exact = false};
    return in;
}

static info_t info_char(reader_t *r, char c)
{
    char s[2] = {r->caseless ? lower(c) : c, '\0'};
    info_t in = {.exact = true, .ex = strs_one(&r->arena, s)};
    return in;
}

static info_t give_up(reader_t *r)
{
    r->fail = true;
    return info_unknown();
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* What an escape is: a byte, a character type (\d), an assertion (\b), or not followed. */
enum esc { ESC_FAIL, ESC_CHAR, ESC_TYPE, ESC_ZERO };

/* One escape after its backslash (R->p at the letter), outside or inside a class; a byte goes
 * to *C. */

static enum esc read_escape(reader_t *r, bool in_class, char *c)
{
    if (r->p >= r->end)
        return ESC_FAIL;
    char e = *r->p++;
    if (!is_alnum(e)) {
        *c = e; /* a backslash before a non-alphanumeric byte makes it literal */
        return ESC_CHAR;
    }
    switch (e) {
    case 't':
        *c = '\t';
        return ESC_CHAR;
    case 'n':
        *c = '\n';
        return ESC_CHAR;
    case 'r':
        *c = '\r';
        return ESC_CHAR;
    case 'f':
        *c = '\f';
        return ESC_CHAR;
    case 'e':
        *c = '\x1b';
        return ESC_CHAR;
    case 'a':
        *c = '\a';
        return ESC_CHAR;
    case 'x': {
        if (r->p < r->end && *r->p == '{')
            return ESC_FAIL;
        int v = 0;
        for (int i = 0; i < 2 && r->p < r->end && hexval(*r->p) >= 0; i++)
            v = v * 16 + hexval(*r->p++);
        if (v == 0)
            return ESC_FAIL; /* a NUL cannot be in a C-string subject; keep it simple */
        *c = (char)v;
        return ESC_CHAR;
    }
    case 'd':
    case 'D':
    case 'w':
    case 'W':
    case 's':
    case 'S':
    case 'h':
    case 'H':
    case 'v':
    case 'V':
        return ESC_TYPE;
    case 'R':
    case 'X':
    case 'C':
    case 'N':
        if (in_class || (e == 'N' && r->p < r->end && *r->p == '{'))
            return ESC_FAIL;
        return ESC_TYPE;
    case 'b':
        if (in_class) {
            *c = '\b';
            return ESC_CHAR;
        }
        return ESC_ZERO;
    case 'B':
    case 'A':
    case 'Z':
    case 'z':
    case 'G':
    case 'K':
        return in_class ? ESC_FAIL : ESC_ZERO;
    default:
        return ESC_FAIL; /* back references, \p, \Q, \c, octal...: not followed */
    }
}

/* A class, R->p just after its "[". Small classes are sets of one-byte literals. */
static info_t read_class(reader_t *r)
{
    bool members[256] = {false};
    bool negated = false, big = false;
    if (r->p < r->end && *r->p == '^') {
        negated = true;
        r->p++;
    }
    bool first = true;
    for (;;) {
        if (r->p >= r->end)
            return give_up(r);
        char c = *r->p++;
        if (c == ']' && !first)
            break;
        first = false;
        if (c == '[' && r->p < r->end && (*r->p == ':' || *r->p == '.' || *r->p == '='))
            return give_up(r); /* POSIX class or collating element */
        if (c == '\\') {
            enum esc k = read_escape(r, true, &c);
            if (k == ESC_FAIL)
                return give_up(r);
            if (k == ESC_TYPE) {
                big = true;
                /* "\d-x": the hyphen is a literal member, read on the next turn. */
                continue;
            }
        }
        unsigned char lo = (unsigned char)c, hi = lo;
        if (r->p + 1 < r->end && r->p[0] == '-' && r->p[1] != ']') {
            r->p++;
            char h = *r->p++;
            if (h == '[' && r->p < r->end && (*r->p == ':' || *r->p == '.' || *r->p == '='))
                return give_up(r);
            if (h == '\\' && read_escape(r, true, &h) != ESC_CHAR)
                return give_up(r);
            hi = (unsigned char)h;
            if (hi < lo)
                return give_up(r);
        }
        for (unsigned v = lo; v <= hi; v++)
            members[r->caseless ? (unsigned char)lower((char)v) : v] = true;
    }
    if (negated || big)
        return info_unknown();
    info_t in = {.exact = true, .ex = {arena_alloc(&r->arena, MAX_CLASS * sizeof(char *)), 0}};
    for (unsigned v = 1; v < 256; v++) {
        if (!members[v])
            continue;
        if (in.ex.n == MAX_CLASS)
            return info_unknown();
        char s[2] = {(char)v, '\0'};
        in.ex.v[in.ex.n++] = arena_strcat(&r->arena, s, "");
    }
    if (members[0])
        return give_up(r);
    if (in.ex.n == 0)
        return give_up(r); /* "[]" cannot happen ("]" first is a member), but be safe */
    return in;
}

static info_t read_alt(reader_t *r);

/* A group, R->p just after its "(". */
static info_t read_group(reader_t *r)
{
    bool zero = false; /* a lookaround: consumes nothing */
    if (r->p < r->end && *r->p == '*')
        return give_up(r); /* (*VERB) and (*OPTION) */
    if (r->p < r->end && *r->p == '?') {
        r->p++;
        if (r->p >= r->end)
            return give_up(r);
        char c = *r->p;
        if (c == ':' || c == '>' || c == '|') {
            r->p++;
        } else if (c == '=' || c == '!') {
            r->p++;
            zero = true;
        } else if (c == '<' && r->p + 1 < r->end && (r->p[1] == '=' || r->p[1] == '!')) {
            r->p += 2;
            zero = true;
        } else if (c == '<' || c == '\'' || (c == 'P' && r->p + 1 < r->end && r->p[1] == '<')) {
            char close = c == '\'' ? '\'' : '>';
            r->p += c == 'P' ? 2 : 1;
            const char *name = r->p;
            while (r->p < r->end && (is_alnum(*r->p) || *r->p == '_'))
                r->p++;
            if (r->p == name || r->p >= r->end || *r->p != close)
                return give_up(r);
            r->p++;
        } else {
            /* Option letters: "(?i)" or "(?i:...)". Caselessness was found before the reading
             * began (see sp_prefilter_add); the others change nothing the reading relies on,
             * except x and xx, which make white space and "#" mean something else. */
            const char *q = r->p;
            while (q < r->end && strchr("imnsUJ-", *q) && *q)
                q++;
            if (q == r->p || q >= r->end || (*q != ')' && *q != ':'))
                return give_up(r);
            r->p = q + 1;
            if (*q == ')')
                return info_empty(r);
        }
    }
    if (++r->depth > MAX_DEPTH)
        return give_up(r);
    info_t in = read_alt(r);
    r->depth--;
    if (r->fail)
        return in;
    if (r->p >= r->end || *r->p != ')')
        return give_up(r);
    r->p++;
    return zero ? info_empty(r) : in;
}

/* A repeat count "{n}", "{n,}" or "{n,m}" at R->p (on the "{"): true with its bounds (MAX -1 for
 * no bound) and R->p after it. Anything else starting with "{" is false, R->p unchanged. */
static bool read_count(reader_t *r, long *min, long *max)
{
    const char *q = r->p + 1;
    long a = 0, b;
    int digits = 0;
    while (q < r->end && *q >= '0' && *q <= '9' && digits < 6) {
        a = a * 10 + (*q++ - '0');
        digits++;
    }
    if (digits == 0 || q >= r->end)
        return false;
    b = a;
    if (*q == ',') {
        q++;
        b = -1;
        if (q < r->end && *q >= '0' && *q <= '9') {
            b = 0;
            digits = 0;
            while (q < r->end && *q >= '0' && *q <= '9' && digits < 6) {
                b = b * 10 + (*q++ - '0');
                digits++;
            }
        }
    }
    if (q >= r->end || *q != '}')
        return false;
    r->p = q + 1;
    *min = a;
    *max = b;
    return true;
}

/* X repeated MIN to MAX (-1: no bound) times. */
static info_t repeat(reader_t *r, const info_t *x, long min, long max)
{
    if (min == 1 && max == 1)
        return *x;
    if (min == 0) {
        info_t in = info_unknown();
        strs_t u;
        if (max == 1 && x->exact &&
            strs_join(&r->arena, (const strs_t *[]){&x->ex, &(strs_t){(char *[]){""}, 1}}, 2,
                      MAX_EXACT, &u)) {
            in.exact = true;
            in.ex = u;
        }
        return in; /* otherwise: may match nothing, so requires nothing */
    }
    /* At least once: whatever one X requires. */
    if (!x->exact)
        return *x;
    info_t in = info_unknown();
    add_group(&in, &x->ex);
    return in;
}

/* A run of quantified items, up to "|", ")" or the end. */
static info_t read_seq(reader_t *r)
{
    info_t out = info_unknown();
    bool whole_exact = true;
    strs_t run = strs_one(&r->arena, "");
    while (!r->fail && r->p < r->end && *r->p != '|' && *r->p != ')') {
        char c = *r->p++;
        info_t atom;
        switch (c) {
        case '(':
            atom = read_group(r);
            break;
        case '[':
            atom = read_class(r);
            break;
        case '.':
            atom = info_unknown();
            break;
        case '^':
        case '$':
            atom = info_empty(r);
            break;
        case '\\': {
            char lit;
            switch (read_escape(r, false, &lit)) {
            case ESC_CHAR:
                atom = info_char(r, lit);
                break;
            case ESC_TYPE:
                atom = info_unknown();
                break;
            case ESC_ZERO:
                atom = info_empty(r);
                break;
            default:
                atom = give_up(r);
                break;
            }
            break;
        }
        case '*':
        case '+':
        case '?':
        case '{':
            /* Nothing to repeat, or a "{" PCRE2 may read as text or as a count depending on
             * its version. */
            atom = give_up(r);
            break;
        default:
            if (c == '\0')
                atom = give_up(r);
            else
                atom = info_char(r, c);
            break;
        }
        /* Quantifiers, each with an optional lazy "?" or possessive "+". */
        while (!r->fail && r->p < r->end) {
            long min, max;
            char q = *r->p;
            if (q == '*') {
                min = 0, max = -1;
                r->p++;
            } else if (q == '+') {
                min = 1, max = -1;
                r->p++;
            } else if (q == '?') {
                min = 0, max = 1;
                r->p++;
            } else if (q == '{') {
                if (!read_count(r, &min, &max)) {
                    atom = give_up(r);
                    break;
                }
            } else {
                break;
            }
            if (r->p < r->end && (*r->p == '?' || *r->p == '+'))
                r->p++;
            atom = repeat(r, &atom, min, max);
        }
        if (r->fail)
            break;
        /* Adjacent exact items join into longer literals; anything else ends the run. */
        strs_t joined;
        if (atom.exact && strs_cross(&r->arena, &run, &atom.ex, &joined)) {
            run = joined;
            continue;
        }
        whole_exact = false;
        add_group(&out, &run);
        if (atom.exact) {
            run = atom.ex;
        } else {
            run = strs_one(&r->arena, "");
            for (size_t i = 0; i < atom.ngroups; i++)
                add_group(&out, &atom.groups[i]);
        }
    }
    if (whole_exact) {
        out.exact = true;
        out.ex = run;
        return out;
    }
    add_group(&out, &run);
    return out;
}

/* Group J of what is known of a branch: an exact branch is its one group. */
static const strs_t *branch_group(const info_t *in, size_t j)
{
    return in->exact ? &in->ex : &in->groups[j];
}

static size_t branch_groups(const info_t *in)
{
    if (in->exact)
        return strs_minlen(&in->ex) > 0;
    return in->ngroups;
}

/* What is known of N branches, one of which matches. A match holds a literal of some group of
 * the branch that matched, so picking one group from each branch and joining them gives a
 * group of the alternation; every such pick does, while there are few of them. */
static info_t alternation(reader_t *r, const info_t *b, size_t n)
{
    const strs_t **sets = arena_alloc(&r->arena, n * sizeof *sets);
    bool exact = true;
    for (size_t i = 0; i < n && exact; i++) {
        exact = b[i].exact;
        sets[i] = &b[i].ex;
    }
    info_t out = info_unknown();
    if (exact && strs_join(&r->arena, sets, n, MAX_EXACT, &out.ex)) {
        out.exact = true;
        return out;
    }
    size_t picks = 1;
    for (size_t i = 0; i < n; i++) {
        size_t g = branch_groups(&b[i]);
        if (g == 0)
            return out; /* a branch that needs nothing: neither does the alternation */
        picks = picks * g > MAX_PICKS ? MAX_PICKS + 1 : picks * g;
    }
    size_t *pick = arena_alloc(&r->arena, n * sizeof *pick);
    memset(pick, 0, n * sizeof *pick);
    if (picks > MAX_PICKS) {
        /* Too many: each branch's best group, joined. */
        for (size_t i = 0; i < n; i++) {
            const info_t *in = &b[i];
            for (size_t j = 1; j < branch_groups(in); j++)
                if (group_score(branch_group(in, j)) > group_score(branch_group(in, pick[i])))
                    pick[i] = j;
        }
        picks = 1;
    }
    for (size_t k = 0; k < picks; k++) {
        strs_t g;
        for (size_t i = 0; i < n; i++)
            sets[i] = branch_group(&b[i], pick[i]);
        if (strs_join(&r->arena, sets, n, MAX_ALT, &g))
            add_group(&out, &g);
        /* The next pick, as an odometer. */
        for (size_t i = 0; i < n && ++pick[i] == branch_groups(&b[i]); i++)
            pick[i] = 0;
    }
    return out;
}

/* Branches separated by "|", up to ")" or the end. */
static info_t read_alt(reader_t *r)
{
    info_t first = read_seq(r);
    if (r->fail || r->p >= r->end || *r->p != '|')
        return first;
    size_t n = 1, cap = 8;
    info_t *b = arena_alloc(&r->arena, cap * sizeof *b);
    b[0] = first;
    while (r->p < r->end && *r->p == '|') {
        r->p++;
        info_t x = read_seq(r);
        if (r->fail)
            return x;
        if (n == cap) {
            info_t *bigger = arena_alloc(&r->arena, 2 * cap * sizeof *b);
            memcpy(bigger, b, n * sizeof *b);
            b = bigger;
            cap *= 2;
        }
        b[n++] = x;
    }
    return alternation(r, b, n);
}

/* True when PATTERN may set the caseless option inside: "(?" followed by option letters with an
 * "i" among them. Reading too much here (an escaped "\(?i", say) only makes the literals
 * caseless, which keeps the reading safe. */
static bool inline_caseless(const char *pattern)
{
    for (const char *q = strstr(pattern, "(?"); q; q = strstr(q + 1, "(?")) {
        for (const char *f = q + 2; *f && strchr("imnsxUJ-^", *f); f++)
            if (*f == 'i')
                return true;
    }
    return false;
}

/* ---- the set ------------------------------------------------------------------------------ */

/* A literal as added: its text (in lower case when caseless), and whether case matters when
 * looking for it. */
typedef struct lit {
    char *text;
    size_t len;
    bool caseless;
} lit_t;

typedef struct pattern {
    uint32_t *lits; /* literal ids, group after group */
    uint8_t ngroups;
    uint16_t *group_len; /* literals in each group */
} pattern_t;

/* One state of the automaton: its transitions are a row of DELTA. A state that ends the keys of
 * some literals (its own or its suffixes') lists them in OUT[out_start[s]..out_start[s+1]). */
struct sp_prefilter {
    pattern_t *pats;
    size_t npats, pats_cap;
    lit_t *lits;
    size_t nlits, lits_cap;
    uint32_t *slots; /* open addressing over lits: id + 1, 0 for free */
    size_t nslots;   /* a power of two, at least twice nlits */
    bool compiled;

    uint8_t cls[256]; /* byte to class; letters fold to their lower case's class */
    uint32_t ncls;
    uint32_t nstates;
    size_t key;      /* bytes of each literal the automaton follows */
    uint16_t *delta; /* nstates * ncls: next state, | HIT_BIT when it ends some key */
    uint32_t *out_start, *out;
    /* Each pattern with groups is reached through one of them, its key group: the one whose
     * literals the fewest patterns share (" Build" is in hundreds of device rules, "JC-" in
     * one). Once a literal of it is found, the pattern's other groups are checked at the end
     * of the scan, against the literals found. */
    uint32_t *ref_start, *refs;     /* per literal: the patterns it is in the key group of */
    uint32_t *check_start, *checks; /* per pattern: each other group as its size, then ids */
    uint64_t *always;               /* patterns with no group */
    size_t words;
};

sp_prefilter_t *sp_prefilter_new(void)
{
    return xcalloc(1, sizeof(sp_prefilter_t));
}

void sp_prefilter_free(sp_prefilter_t *pf)
{
    if (!pf)
        return;
    for (size_t i = 0; i < pf->npats; i++) {
        free(pf->pats[i].lits);
        free(pf->pats[i].group_len);
    }
    free(pf->pats);
    for (size_t i = 0; i < pf->nlits; i++)
        free(pf->lits[i].text);
    free(pf->lits);
    free(pf->slots);
    free(pf->delta);
    free(pf->out_start);
    free(pf->out);
    free(pf->ref_start);
    free(pf->refs);
    free(pf->check_start);
    free(pf->checks);
    free(pf->always);
    free(pf);
}

static uint64_t lit_hash(const char *text, size_t len, bool caseless)
{
    uint64_t h = caseless ? 0x84222325cbf29ce4ULL : 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ULL;
    return h;
}

static uint32_t intern_lit(sp_prefilter_t *pf, const char *text, bool caseless)
{
    size_t len = strlen(text);
    if ((pf->nlits + 1) * 2 > pf->nslots) {
        size_t ns = pf->nslots ? pf->nslots * 2 : 1024;
        uint32_t *slots = xcalloc(ns, sizeof *slots);
        for (size_t i = 0; i < pf->nlits; i++) {
            size_t k = lit_hash(pf->lits[i].text, pf->lits[i].len, pf->lits[i].caseless);
            while (slots[k & (ns - 1)])
                k++;
            slots[k & (ns - 1)] = (uint32_t)i + 1;
        }
        free(pf->slots);
        pf->slots = slots;
        pf->nslots = ns;
    }
    size_t k = lit_hash(text, len, caseless);
    for (;; k++) {
        uint32_t v = pf->slots[k & (pf->nslots - 1)];
        if (!v)
            break;
        const lit_t *l = &pf->lits[v - 1];
        if (l->caseless == caseless && l->len == len && memcmp(l->text, text, len) == 0)
            return v - 1;
    }
    pf->slots[k & (pf->nslots - 1)] = (uint32_t)pf->nlits + 1;
    if (pf->nlits == pf->lits_cap) {
        pf->lits_cap = pf->lits_cap ? pf->lits_cap * 2 : 256;
        pf->lits = xrealloc(pf->lits, pf->lits_cap * sizeof *pf->lits);
    }
    lit_t *l = &pf->lits[pf->nlits];
    memset(l, 0, sizeof *l);
    l->text = xmalloc(len + 1);
    memcpy(l->text, text, len + 1);
    l->len = len;
    l->caseless = caseless;
    return (uint32_t)pf->nlits++;
}

int sp_prefilter_add(sp_prefilter_t *pf, const char *pattern, bool caseless)
{
    if (pf->npats == pf->pats_cap) {
        pf->pats_cap = pf->pats_cap ? pf->pats_cap * 2 : 256;
        pf->pats = xrealloc(pf->pats, pf->pats_cap * sizeof *pf->pats);
    }
    pattern_t *pat = &pf->pats[pf->npats++];
    memset(pat, 0, sizeof *pat);

    reader_t r = {.p = pattern, .end = pattern + strlen(pattern)};
    r.caseless = caseless || inline_caseless(pattern);
    info_t in = read_alt(&r);
    if (!r.fail && r.p != r.end)
        r.fail = true; /* an unmatched ")" */
    if (!r.fail) {
        info_t top = info_unknown();
        if (in.exact)
            add_group(&top, &in.ex);
        else
            top = in;
        size_t total = 0;
        for (size_t g = 0; g < top.ngroups; g++)
            total += top.groups[g].n;
        pat->lits = xmalloc(total * sizeof *pat->lits);
        pat->group_len = xmalloc(top.ngroups * sizeof *pat->group_len);
        size_t k = 0;
        for (size_t g = 0; g < top.ngroups; g++) {
            if (strs_minlen(&top.groups[g]) < MIN_LITERAL)
                continue;
            for (size_t i = 0; i < top.groups[g].n; i++)
                pat->lits[k++] = intern_lit(pf, top.groups[g].v[i], r.caseless);
            pat->group_len[pat->ngroups++] = (uint16_t)top.groups[g].n;
        }
    }
    arena_free(&r.arena);
    return pat->ngroups;
}

size_t sp_prefilter_count(const sp_prefilter_t *pf)
{
    return pf->npats;
}

size_t sp_prefilter_words(const sp_prefilter_t *pf)
{
    return pf->words;
}

size_t sp_prefilter_scratch_size(const sp_prefilter_t *pf)
{
    /* A bit per literal (found) and a bit per pattern (waiting for its other groups). */
    return (pf->nlits + 63) / 64 * 8 + (pf->npats + 63) / 64 * 8;
}

/* The key group of every pattern, the patterns each literal leads to, the other groups to
 * check. */
static void link_groups(sp_prefilter_t *pf)
{
    uint32_t *uses = xcalloc(pf->nlits, sizeof *uses); /* groups that hold each literal */
    for (size_t p = 0; p < pf->npats; p++) {
        const pattern_t *pat = &pf->pats[p];
        for (size_t k = 0, g = 0; g < pat->ngroups; k += pat->group_len[g], g++)
            for (size_t i = 0; i < pat->group_len[g]; i++)
                uses[pat->lits[k + i]]++;
    }

    uint8_t *key = xcalloc(pf->npats, 1);
    uint32_t *nrefs = xcalloc(pf->nlits + 1, sizeof *nrefs);
    size_t nchecks = 0;
    for (size_t p = 0; p < pf->npats; p++) {
        const pattern_t *pat = &pf->pats[p];
        uint64_t best_cost = UINT64_MAX;
        size_t best_len = 0;
        for (size_t k = 0, g = 0; g < pat->ngroups; k += pat->group_len[g], g++) {
            uint64_t cost = 0;
            size_t minlen = SIZE_MAX;
            for (size_t i = 0; i < pat->group_len[g]; i++) {
                cost += uses[pat->lits[k + i]];
                if (pf->lits[pat->lits[k + i]].len < minlen)
                    minlen = pf->lits[pat->lits[k + i]].len;
            }
            if (cost < best_cost || (cost == best_cost && minlen > best_len)) {
                best_cost = cost;
                best_len = minlen;
                key[p] = (uint8_t)g;
            }
        }
        for (size_t k = 0, g = 0; g < pat->ngroups; k += pat->group_len[g], g++) {
            if (g == key[p]) {
                for (size_t i = 0; i < pat->group_len[g]; i++)
                    nrefs[pat->lits[k + i]]++;
            } else {
                nchecks += 1 + pat->group_len[g];
            }
        }
    }

    pf->ref_start = xmalloc((pf->nlits + 1) * sizeof *pf->ref_start);
    uint32_t total = 0;
    for (size_t i = 0; i <= pf->nlits; i++) {
        pf->ref_start[i] = total;
        total += nrefs[i];
    }
    pf->refs = xmalloc((total ? total : 1) * sizeof *pf->refs);
    pf->check_start = xmalloc((pf->npats + 1) * sizeof *pf->check_start);
    pf->checks = xmalloc((nchecks ? nchecks : 1) * sizeof *pf->checks);
    memset(nrefs, 0, (pf->nlits + 1) * sizeof *nrefs); /* now: refs written per literal */
    uint32_t c = 0;
    for (size_t p = 0; p < pf->npats; p++) {
        const pattern_t *pat = &pf->pats[p];
        pf->check_start[p] = c;
        for (size_t k = 0, g = 0; g < pat->ngroups; k += pat->group_len[g], g++) {
            if (g == key[p]) {
                for (size_t i = 0; i < pat->group_len[g]; i++) {
                    uint32_t id = pat->lits[k + i];
                    pf->refs[pf->ref_start[id] + nrefs[id]++] = (uint32_t)p;
                }
            } else {
                pf->checks[c++] = pat->group_len[g];
                for (size_t i = 0; i < pat->group_len[g]; i++)
                    pf->checks[c++] = pat->lits[k + i];
            }
        }
    }
    pf->check_start[pf->npats] = c;

    pf->words = (pf->npats + 63) / 64;
    pf->always = xcalloc(pf->words ? pf->words : 1, sizeof *pf->always);
    for (size_t p = 0; p < pf->npats; p++)
        if (!pf->pats[p].ngroups)
            pf->always[p / 64] |= (uint64_t)1 << (p % 64);
    free(uses);
    free(key);
    free(nrefs);
}

/* Trie under construction: a row of NCLS children per state, 0 for none (state 0 is the root,
 * which no edge enters). */
typedef struct trie {
    uint32_t *next;
    uint32_t n, cap, ncls;
    uint32_t **ends; /* per state: the literals whose key ends there, as a growing list */
    uint32_t *nends;
} trie_t;

static uint32_t trie_state(trie_t *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->next = xrealloc(t->next, (size_t)t->cap * t->ncls * sizeof *t->next);
        t->ends = xrealloc(t->ends, t->cap * sizeof *t->ends);
        t->nends = xrealloc(t->nends, t->cap * sizeof *t->nends);
    }
    memset(t->next + (size_t)t->n * t->ncls, 0, t->ncls * sizeof *t->next);
    t->ends[t->n] = NULL;
    t->nends[t->n] = 0;
    return t->n++;
}

static void trie_free(trie_t *t)
{
    for (uint32_t s = 0; s < t->n; s++)
        free(t->ends[s]);
    free(t->ends);
    free(t->nends);
    free(t->next);
    memset(t, 0, sizeof *t);
}

/* The classes and the trie of the first KEY bytes of every literal, compared case-insensitively
 * (each literal checks its own case when found); false when that takes over MAX_STATES states. */
static bool build_trie(sp_prefilter_t *pf, size_t key, trie_t *t)
{
    /* One class per byte some key holds, letters folded; all other bytes share class 0. */
    memset(pf->cls, 0, sizeof pf->cls);
    pf->ncls = 1;
    for (size_t i = 0; i < pf->nlits; i++) {
        for (size_t j = 0; j < pf->lits[i].len && j < key; j++) {
            unsigned char c = (unsigned char)lower(pf->lits[i].text[j]);
            if (!pf->cls[c])
                pf->cls[c] = (uint8_t)pf->ncls++;
        }
    }
    for (int c = 'A'; c <= 'Z'; c++)
        pf->cls[c] = pf->cls[c - 'A' + 'a'];

    *t = (trie_t){.ncls = pf->ncls};
    trie_state(t);
    for (size_t i = 0; i < pf->nlits; i++) {
        uint32_t s = 0;
        for (size_t j = 0; j < pf->lits[i].len && j < key; j++) {
            uint32_t c = pf->cls[(unsigned char)pf->lits[i].text[j]];
            uint32_t nx = t->next[(size_t)s * t->ncls + c];
            if (!nx) {
                if (t->n == MAX_STATES) {
                    trie_free(t);
                    return false;
                }
                nx = trie_state(t);
                t->next[(size_t)s * t->ncls + c] = nx;
            }
            s = nx;
        }
        t->ends[s] = xrealloc(t->ends[s], (t->nends[s] + 1) * sizeof **t->ends);
        t->ends[s][t->nends[s]++] = (uint32_t)i;
    }
    return true;
}

void sp_prefilter_compile(sp_prefilter_t *pf)
{
    if (pf->compiled)
        return;
    pf->compiled = true;

    /* With one byte the trie has at most 231 states: the loop ends. */
    trie_t t;
    for (pf->key = KEY_MAX; !build_trie(pf, pf->key, &t); pf->key--)
        ;

    /* Breadth first: failure links, then the missing transitions of the automaton from them,
     * and each state's outputs as its own plus its failure state's. */
    uint32_t n = t.n;
    uint32_t *fail = xcalloc(n, sizeof *fail), *queue = xmalloc(n * sizeof *queue);
    uint16_t *delta = xmalloc((size_t)n * t.ncls * sizeof *delta);
    uint32_t *out_start = xmalloc((n + 1) * sizeof *out_start);
    uint32_t *outs_n = xcalloc(n, sizeof *outs_n);
    uint32_t head = 0, tail = 0;
    for (uint32_t c = 0; c < t.ncls; c++) {
        uint32_t nx = t.next[c];
        delta[c] = (uint16_t)nx;
        if (nx) {
            fail[nx] = 0;
            queue[tail++] = nx;
        }
    }
    while (head < tail) {
        uint32_t s = queue[head++];
        for (uint32_t c = 0; c < t.ncls; c++) {
            uint32_t nx = t.next[(size_t)s * t.ncls + c];
            if (nx) {
                fail[nx] = delta[(size_t)fail[s] * t.ncls + c];
                delta[(size_t)s * t.ncls + c] = (uint16_t)nx;
                queue[tail++] = nx;
            } else {
                delta[(size_t)s * t.ncls + c] = delta[(size_t)fail[s] * t.ncls + c];
            }
        }
    }
    /* Outputs in BFS order, so a state's failure state (shallower) is done before it. */
    uint32_t total = 0;
    outs_n[0] = t.nends[0];
    for (uint32_t k = 0; k < tail; k++) {
        uint32_t s = queue[k];
        outs_n[s] = t.nends[s] + outs_n[fail[s]];
    }
    for (uint32_t s = 0; s < n; s++) {
        out_start[s] = total;
        total += outs_n[s];
    }
    out_start[n] = total;
    uint32_t *out = xmalloc((total ? total : 1) * sizeof *out);
    for (uint32_t k = 0; k < tail; k++) {
        uint32_t s = queue[k], w = out_start[s];
        for (uint32_t e = 0; e < t.nends[s]; e++)
            out[w++] = t.ends[s][e];
        memcpy(out + w, out + out_start[fail[s]], outs_n[fail[s]] * sizeof *out);
    }
    for (size_t i = 0; i < (size_t)n * t.ncls; i++)
        if (outs_n[delta[i]])
            delta[i] |= HIT_BIT;

    link_groups(pf);
    pf->nstates = n;
    pf->delta = delta;
    pf->out_start = out_start;
    pf->out = out;
    free(fail);
    free(queue);
    free(outs_n);
    trie_free(&t);
}

/* True when literal L is in S (LEN bytes) where its first KEY bytes, case folded, end at byte I. */
static bool lit_at(const lit_t *l, size_t key, const char *s, size_t len, size_t i)
{
    if (key > l->len)
        key = l->len;
    size_t start = i + 1 - key;
    if (start + l->len > len)
        return false;
    if (!l->caseless)
        return memcmp(s + start, l->text, l->len) == 0;
    /* A caseless literal is in lower case already. */
    for (size_t j = key; j < l->len; j++)
        if (lower(s[start + j]) != l->text[j])
            return false;
    return true;
}

static bool bit(const uint64_t *set, size_t i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

static void set_bit(uint64_t *set, size_t i)
{
    set[i / 64] |= (uint64_t)1 << (i % 64);
}

void sp_prefilter_scan(const sp_prefilter_t *pf, const char *s, size_t len, uint64_t *cand,
                       void *scratch)
{
    size_t lit_words = (pf->nlits + 63) / 64, pat_words = (pf->npats + 63) / 64;
    uint64_t *found = scratch, *waiting = found + lit_words;
    memcpy(cand, pf->always, pf->words * sizeof *cand);
    memset(found, 0, (lit_words + pat_words) * sizeof *found);

    const uint32_t ncls = pf->ncls;
    uint32_t st = 0; /* a state, | HIT_BIT */
    for (size_t i = 0; i < len; i++) {
        st = pf->delta[(size_t)st * ncls + pf->cls[(unsigned char)s[i]]];
        if (!(st & HIT_BIT))
            continue;
        st &= ~HIT_BIT;
        for (uint32_t k = pf->out_start[st]; k < pf->out_start[st + 1]; k++) {
            uint32_t id = pf->out[k];
            if (bit(found, id) || !lit_at(&pf->lits[id], pf->key, s, len, i))
                continue;
            set_bit(found, id);
            for (uint32_t j = pf->ref_start[id]; j < pf->ref_start[id + 1]; j++) {
                uint32_t p = pf->refs[j];
                if (pf->check_start[p] == pf->check_start[p + 1]) {
                    set_bit(cand, p); /* its only group */
                } else {
                    set_bit(waiting, p);
                }
            }
        }
    }

    /* The other groups of the patterns whose key group was found: each needs a literal found
     * anywhere in S. */
    for (size_t w = 0; w < pat_words; w++) {
        for (uint64_t bits = waiting[w]; bits; bits &= bits - 1) {
            size_t p = w * 64 + (size_t)__builtin_ctzll(bits);
            const uint32_t *c = pf->checks + pf->check_start[p];
            const uint32_t *end = pf->checks + pf->check_start[p + 1];
            bool all = true;
            while (all && c < end) {
                uint32_t n = *c++;
                bool any = false;
                for (uint32_t k = 0; k < n && !any; k++)
                    any = bit(found, c[k]);
                c += n;
                all = any;
            }
            if (all)
                set_bit(cand, p);
        }
    }
}

void sp_prefilter_describe(const sp_prefilter_t *pf, size_t id, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    buf[0] = '\0';
    if (id >= pf->npats)
        return;
    const pattern_t *pat = &pf->pats[id];
    size_t w = 0, k = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int m_ = snprintf(buf + w, len - w, __VA_ARGS__);                                          \
        if (m_ < 0 || (size_t)m_ >= len - w)                                                       \
            return;                                                                                \
        w += (size_t)m_;                                                                           \
    } while (0)
    for (uint32_t g = 0; g < pat->ngroups; g++) {
        bool paren = pat->group_len[g] > 1 && pat->ngroups > 1;
        PUT("%s%s", g ? " & " : "", paren ? "(" : "");
        for (uint32_t i = 0; i < pat->group_len[g]; i++) {
            const lit_t *l = &pf->lits[pat->lits[k++]];
            PUT("%s\"%s\"", i ? " | " : "", l->text);
        }
        PUT("%s", paren ? ")" : "");
    }
#undef PUT
}
