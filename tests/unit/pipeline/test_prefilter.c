/* Unit tests for prefilter: the literals read from patterns, the scan, and that a pattern left out
 * never matches. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "prefilter.h"

#define UAP_DIR "/usr/share/uap-core/"

/* The groups read from PATTERN, as sp_prefilter_describe writes them. */
static const char *groups_of(const char *pattern, bool caseless)
{
    static char buf[4096];
    sp_prefilter_t *pf = sp_prefilter_new();
    int n = sp_prefilter_add(pf, pattern, caseless);
    sp_prefilter_compile(pf);
    sp_prefilter_describe(pf, 0, buf, sizeof buf);
    sp_prefilter_free(pf);
    assert_int_equal(n == 0, buf[0] == '\0');
    return buf;
}

#define assert_groups(pattern, caseless, want)                                                     \
    do {                                                                                           \
        const char *got_ = groups_of(pattern, caseless);                                           \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("%s: want [%s] got [%s]", pattern, want, got_);                               \
    } while (0)

static void test_reading(void **state)
{
    (void)state;
    /* Adjacent literals, groups and short alternations join into longer literals. */
    assert_groups("(Foo)/(\\d+)", false, "\"Foo/\"");
    assert_groups("Foo(Bar|Baz)\\d", false, "\"FooBar\" | \"FooBaz\"");
    assert_groups("(iPod|iPhone|iPad).{1,200}Version/(\\d+)", false,
                  "(\"iPod\" | \"iPhone\" | \"iPad\") & \"Version/\"");
    assert_groups("Mobile ?Safari", false, "\"Mobile Safari\" | \"MobileSafari\"");
    assert_groups("[Mm]obile", false, "\"Mobile\" | \"mobile\"");
    assert_groups("\\bHTC[ _]", false, "\"HTC \" | \"HTC_\"");
    assert_groups("^(ab)c$", false, "\"abc\"");
    assert_groups("a\\.b\\/c\\-d\\x41", false, "\"a.b/c-dA\"");
    /* Every literal of a run of items must appear, each one in its group. */
    assert_groups("; {0,2}(JC-[^;/]*)(?: Build|\\) AppleWebKit)", false,
                  "\"JC-\" & (\" Build\" | \") AppleWebKit\")");
    assert_groups("Mozilla.{1,100}Mobile.{1,100}AspiegelBot", false,
                  "\"Mozilla\" & \"Mobile\" & \"AspiegelBot\"");
    /* Repeats: at least once keeps what one copy needs; maybe never needs nothing. */
    assert_groups("(Foo)+Bar", false, "\"Foo\" & \"Bar\"");
    assert_groups("(Foo)*Bar", false, "\"Bar\"");
    assert_groups("(?:Foo){0,3}Bar", false, "\"Bar\"");
    assert_groups("(?:Foo){2,}?Bar", false, "\"Foo\" & \"Bar\"");
    /* An alternation needs one of its branches: one group of each branch, joined, for every
     * way to pick them. */
    assert_groups("(?:Foo\\d+Quux|Bar)", false, "(\"Foo\" | \"Bar\") & (\"Quux\" | \"Bar\")");
    assert_groups(
        "(?:Android.*Bot|AdsBot.*iPhone)", false,
        "(\"Android\" | \"AdsBot\") & (\"Bot\" | \"AdsBot\") & (\"Android\" | \"iPhone\") & "
        "(\"Bot\" | \"iPhone\")");
    assert_groups("(?:Foo|\\d+)Bar", false, "\"Bar\"");
    assert_groups("(?:\\.(\\d+)|)", false, "");
    /* Lookarounds consume nothing and are not relied on. */
    assert_groups("Foo(?=Bar)Baz", false, "\"FooBaz\"");
    assert_groups("Foo(?!Bar)(?<=o)(?<!x)Baz", false, "\"FooBaz\"");
    assert_groups("(?<name>Foo)(?P<other>Bar)(?'third'Baz)", false, "\"FooBarBaz\"");
    /* Caseless: the flag or an inline option; literals are kept in lower case. */
    assert_groups("FooBar", true, "\"foobar\"");
    assert_groups("(?i)FooBar", false, "\"foobar\"");
    assert_groups("Foo(?i:Bar)", false, "\"foobar\"");
    assert_groups("[A-C]x", true, "\"ax\" | \"bx\" | \"cx\"");
    /* Classes: small ones are literals, large or negated ones are anything. */
    assert_groups("a[bc]d", false, "\"abd\" | \"acd\"");
    assert_groups("ab[0-9]cd", false, "\"ab\" & \"cd\"");
    assert_groups("ab[^x]cd", false, "\"ab\" & \"cd\"");
    assert_groups("ab[\\d_]cd", false, "\"ab\" & \"cd\"");
    assert_groups("x[]]y", false, "\"x]y\"");
    assert_groups("x[a-]y", false, "\"x-y\" | \"xay\"");
    assert_groups("Fo}o]", false, "\"Fo}o]\"");
    /* A long run of text is cut into literals of at most 64 bytes. */
    assert_groups("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#%&0123456789",
                  false,
                  "\"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#\" & "
                  "\"%&0123456789\"");
    /* One-byte literals say too little; nothing to read means every subject. */
    assert_groups("^(\\w+)/(\\d+)", false, "");
    assert_groups("a.b", false, "");
    assert_groups("", false, "");
}

/* Constructs the reading does not follow: the pattern runs for every subject. */
static void test_gives_up(void **state)
{
    (void)state;
    static const char *const patterns[] = {
        "(Foo)\\1Bar",       /* back reference */
        "\\QFoo\\E",         /* quoting */
        "(?x)Foo Bar",       /* extended: spaces mean nothing */
        "(*UTF)FooBar",      /* a start-of-pattern option */
        "Foo{Bar",           /* "{" as text or count depends on PCRE2's version */
        "Foo{,2}Bar",        /* likewise */
        "\\p{Lu}FooBar",     /* property */
        "\\x{41}FooBar",     /* long hex */
        "Foo\\x00Bar",       /* NUL */
        "[[:alpha:]]FooBar", /* POSIX class */
        "(?(1)Foo|Bar)Baz",  /* conditional */
        "(?R)FooBar",        /* recursion */
        "(?#note)FooBar",    /* comment */
        "Foo(Bar",           /* unbalanced */
        "FooBar)",           /* unbalanced */
        "Foo[Bar",           /* unterminated class */
        "FooBar\\",          /* trailing backslash */
        "Foo\\cABar",        /* control escape */
        "Foo\\kBar",         /* named reference */
        "*Foo",              /* nothing to repeat */
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        assert_groups(patterns[i], false, "");
}

static bool candidate(const sp_prefilter_t *pf, const char *s, size_t id)
{
    size_t words = sp_prefilter_words(pf);
    uint64_t *cand = calloc(words, sizeof *cand);
    void *scratch = malloc(sp_prefilter_scratch_size(pf));
    memset(scratch, 0xA5, sp_prefilter_scratch_size(pf)); /* any content will do */
    sp_prefilter_scan(pf, s, strlen(s), cand, scratch);
    bool r = (cand[id / 64] >> (id % 64)) & 1;
    free(cand);
    free(scratch);
    return r;
}

static void test_scan(void **state)
{
    (void)state;
    sp_prefilter_t *pf = sp_prefilter_new();
    assert_int_equal(sp_prefilter_add(pf, "Foo", false), 1);               /* 0 */
    assert_int_equal(sp_prefilter_add(pf, "Foo.*Bar", false), 2);          /* 1 */
    assert_int_equal(sp_prefilter_add(pf, "foo", true), 1);                /* 2 */
    assert_int_equal(sp_prefilter_add(pf, "\\d+", false), 0);              /* 3 */
    assert_int_equal(sp_prefilter_add(pf, "(?:abcd|bc)x", false), 1);      /* 4 */
    assert_int_equal(sp_prefilter_add(pf, "[Bb]cd", false), 1);            /* 5 */
    assert_int_equal(sp_prefilter_add(pf, "\xc3\xa9t\xc3\xa9", false), 1); /* 6 */
    for (int i = 0; i < 70; i++)                                           /* 7..76 */
        assert_int_equal(sp_prefilter_add(pf, i % 2 ? "(zz)y" : "zz(y)", false), 1);
    assert_int_equal(sp_prefilter_add(pf, "Baz", false), 1); /* 77: a second word */
    sp_prefilter_compile(pf);
    assert_int_equal(sp_prefilter_count(pf), 78);
    assert_int_equal(sp_prefilter_words(pf), 2);

    assert_true(candidate(pf, "xFoox", 0));
    assert_false(candidate(pf, "xfoox", 0));  /* case matters unless caseless */
    assert_true(candidate(pf, "foo Foo", 0)); /* the second occurrence has the case */
    assert_false(candidate(pf, "Fo", 0));
    assert_true(candidate(pf, "Foo", 0)); /* at the very end */

    assert_false(candidate(pf, "Foo", 1)); /* needs both groups */
    assert_false(candidate(pf, "Bar", 1));
    assert_true(candidate(pf, "BarFoo", 1)); /* the scan does not know order, only presence */
    assert_true(candidate(pf, "Foo and Bar", 1));

    assert_true(candidate(pf, "FOO", 2));
    assert_true(candidate(pf, "fOo", 2));
    assert_false(candidate(pf, "fo o", 2));

    assert_true(candidate(pf, "", 3)); /* no literal: always */
    assert_true(candidate(pf, "zzz", 3));

    /* Overlapping literals: "bcx" ends inside "abcdx"? No: "abcdx" holds "abcdx" only. */
    assert_true(candidate(pf, "abcdx", 4));
    assert_true(candidate(pf, "abcx", 4));
    assert_false(candidate(pf, "abcd x", 4));
    assert_true(candidate(pf, "Abcd", 5)); /* found through a longer partial match */
    assert_true(candidate(pf, "abcd", 5));
    assert_true(candidate(pf, "aBcd", 5));
    assert_false(candidate(pf, "abCd", 5));

    assert_true(candidate(pf, "caf\xc3\xa9t\xc3\xa9s", 6));
    assert_false(candidate(pf, "caf\xc3\x89t\xc3\xa9s", 6)); /* no folding outside ASCII */

    assert_true(candidate(pf, "azzy", 75));
    assert_true(candidate(pf, "azzy", 76));
    assert_false(candidate(pf, "azz y", 76));
    assert_false(candidate(pf, "azzy", 77));
    assert_true(candidate(pf, "azzyBaz", 77));
    sp_prefilter_free(pf);

    /* An empty set still scans. */
    pf = sp_prefilter_new();
    sp_prefilter_compile(pf);
    assert_int_equal(sp_prefilter_words(pf), 0);
    uint64_t none[1];
    char scratch[16];
    sp_prefilter_scan(pf, "abc", 3, none, scratch);
    sp_prefilter_free(pf);
}

/* More literals than a 16-bit automaton holds with four bytes of each: it follows fewer bytes
 * of each and compares the rest, with the same answers. */
static void test_many_literals(void **state)
{
    (void)state;
    enum { N = 20000 };
    static char pats[N][8];
    sp_prefilter_t *pf = sp_prefilter_new();
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        for (int j = 0; j < 7; j++) {
            x = x * 1103515245u + 12345u;
            pats[i][j] = "abcdefghijklmnopqrstuvwxyz0123456789"[(x >> 16) % 36];
        }
        pats[i][7] = '\0';
        assert_int_equal(sp_prefilter_add(pf, pats[i], i % 2 == 0), 1);
    }
    sp_prefilter_compile(pf);
    for (size_t i = 0; i < N; i += 97) {
        char subject[32], upper[8];
        snprintf(subject, sizeof subject, "<<%.7s>>", pats[i]);
        assert_true(candidate(pf, subject, i));
        for (int j = 0; j < 8; j++)
            upper[j] =
                (char)(pats[i][j] >= 'a' && pats[i][j] <= 'z' ? pats[i][j] - 32 : pats[i][j]);
        snprintf(subject, sizeof subject, "<<%.7s>>", upper);
        assert_int_equal(candidate(pf, subject, i), i % 2 == 0); /* caseless: even ones */
        snprintf(subject, sizeof subject, "<<%.6s>>", pats[i]);
        assert_false(candidate(pf, subject, i));
    }
    sp_prefilter_free(pf);
}

/* ---- the property: a pattern that matches is always a candidate ---------------------------- */

static uint32_t rng = 2463534242u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t pick(size_t n)
{
    return next_rand() % n;
}

typedef struct sbuf {
    char s[512];
    size_t n;
} sbuf_t;

static void put(sbuf_t *b, const char *x)
{
    size_t l = strlen(x);
    if (b->n + l < sizeof b->s) {
        memcpy(b->s + b->n, x, l + 1);
        b->n += l;
    }
}

static void gen_alt(sbuf_t *b, int depth);

/* One item of a random pattern over a small alphabet, so that random subjects match often;
 * letters weigh most, so that many patterns have literals to find. */
static void gen_item(sbuf_t *b, int depth)
{
    static const char *const letters[] = {"a", "b", "A", "B", "ab", "ba", "aB", "bb"};
    static const char *const atoms[] = {
        "-",   "/", "\\.", "\\-",   "\\/",  ".",     "\\d",   "\\w",    "\\s",      "\\b",
        "\\B", "^", "$",   "[ab]",  "[^a]", "[a-b]", "[A-B]", "[\\d/]", "[ab-]",    "[aA]",
        "[.]", "1", " ",   "\\x61", "\\t",  "[]a]",  "[^]a]", "[a\\]]", "[\\x41b]",
    };
    /* "#" stands for a fresh group name. */
    static const char *const opens[] = {"(",   "(?:",  "(?=", "(?!",     "(?<#>",   "(?'#'",
                                        "(?>", "(?i:", "(?|", "(?<=a)(", "(?<!b)(", "(?P<#>"};
    static const char *const quants[] = {"?",    "*",  "+",  "{0,2}", "{1,3}", "{2}",
                                         "{1,}", "??", "*?", "+?",    "{0,1}", "{1}",
                                         "{0}",  "*+", "++", "?+",    "{2,3}?"};
    static unsigned names;
    if (depth < 3 && pick(4) == 0) {
        const char *open = opens[pick(sizeof opens / sizeof opens[0])];
        const char *hash = strchr(open, '#');
        char buf[32];
        if (hash) {
            snprintf(buf, sizeof buf, "%.*sn%u%s", (int)(hash - open), open, names++, hash + 1);
            open = buf;
        }
        put(b, open);
        gen_alt(b, depth + 1);
        put(b, ")");
    } else if (pick(2) == 0) {
        put(b, letters[pick(sizeof letters / sizeof letters[0])]);
    } else {
        put(b, atoms[pick(sizeof atoms / sizeof atoms[0])]);
    }
    if (pick(4) == 0)
        put(b, quants[pick(sizeof quants / sizeof quants[0])]);
}

static void gen_seq(sbuf_t *b, int depth)
{
    size_t n = 1 + pick(6);
    for (size_t i = 0; i < n; i++)
        gen_item(b, depth);
}

static void gen_alt(sbuf_t *b, int depth)
{
    gen_seq(b, depth);
    while (pick(4) == 0) {
        put(b, "|");
        gen_seq(b, depth);
    }
}

static void gen_subject(char *s, size_t cap)
{
    static const char alphabet[] = "aabbAB-/. 1\t";
    size_t n = pick(cap < 14 ? cap : 14);
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[pick(sizeof alphabet - 1)];
    s[n] = '\0';
}

typedef struct tally {
    size_t patterns, with_groups, pairs, matches, excluded;
} tally_t;

/* Checks one batch of patterns against SUBJECTS: every match must be a candidate. */
static void check_batch(char **pats, const bool *caseless, size_t npats, char **subjects,
                        size_t nsub, tally_t *t)
{
    sp_prefilter_t *pf = sp_prefilter_new();
    pcre2_code **re = calloc(npats, sizeof *re);
    for (size_t i = 0; i < npats; i++) {
        int code;
        PCRE2_SIZE off;
        re[i] = pcre2_compile((PCRE2_SPTR)pats[i], PCRE2_ZERO_TERMINATED,
                              caseless[i] ? PCRE2_CASELESS : 0, &code, &off, NULL);
        if (re[i])
            (void)pcre2_jit_compile(re[i], PCRE2_JIT_COMPLETE);
        /* Patterns PCRE2 refuses are added anyway: the ids stay in step. */
        t->with_groups += sp_prefilter_add(pf, pats[i], caseless[i]) > 0 && re[i];
        t->patterns += re[i] != NULL;
    }
    sp_prefilter_compile(pf);
    uint64_t *cand = calloc(sp_prefilter_words(pf), sizeof *cand);
    void *scratch = malloc(sp_prefilter_scratch_size(pf));
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    for (size_t j = 0; j < nsub; j++) {
        sp_prefilter_scan(pf, subjects[j], strlen(subjects[j]), cand, scratch);
        for (size_t i = 0; i < npats; i++) {
            if (!re[i])
                continue;
            bool is_cand = (cand[i / 64] >> (i % 64)) & 1;
            int rc =
                pcre2_match(re[i], (PCRE2_SPTR)subjects[j], strlen(subjects[j]), 0, 0, md, NULL);
            bool matched = rc >= 0; /* 0: a match, with more groups than the ovector holds */
            t->pairs++;
            t->matches += matched;
            t->excluded += !is_cand;
            if (matched && !is_cand) {
                char desc[1024];
                sp_prefilter_describe(pf, i, desc, sizeof desc);
                fail_msg("pattern '%s'%s matches '%s' but is no candidate (groups: %s)", pats[i],
                         caseless[i] ? " (caseless)" : "", subjects[j], desc);
            }
        }
    }
    pcre2_match_data_free(md);
    free(scratch);
    free(cand);
    for (size_t i = 0; i < npats; i++)
        pcre2_code_free(re[i]);
    free(re);
    sp_prefilter_free(pf);
}

static void test_random_patterns(void **state)
{
    (void)state;
    enum { BATCHES = 40, PATS = 200, SUBJECTS = 300 };
    tally_t t = {0};
    char *pats[PATS], *subjects[SUBJECTS];
    bool caseless[PATS];
    for (int batch = 0; batch < BATCHES; batch++) {
        for (size_t i = 0; i < PATS; i++) {
            sbuf_t b = {.n = 0};
            b.s[0] = '\0';
            if (pick(8) == 0)
                put(&b, "(?i)");
            gen_alt(&b, 0);
            pats[i] = strdup(b.s);
            caseless[i] = pick(6) == 0;
        }
        for (size_t j = 0; j < SUBJECTS; j++) {
            subjects[j] = malloc(16);
            gen_subject(subjects[j], 15);
        }
        check_batch(pats, caseless, PATS, subjects, SUBJECTS, &t);
        for (size_t i = 0; i < PATS; i++)
            free(pats[i]);
        for (size_t j = 0; j < SUBJECTS; j++)
            free(subjects[j]);
    }
    printf("random patterns: %zu compiled, %zu with literals; %zu pairs, %zu matches, %zu left "
           "out by the scan\n",
           t.patterns, t.with_groups, t.pairs, t.matches, t.excluded);
    /* The test means something only if both sides are common. */
    assert_true(t.with_groups > t.patterns / 4);
    assert_true(t.matches > t.pairs / 20);
    assert_true(t.excluded > t.pairs / 4);
}

/* ---- uap-core's rules against uap-core's agents ---------------------------------------------- */

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist_t;

static void strlist_add(strlist_t *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = strdup(s);
}

static void strlist_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Appends every user_agent_string of the test file at PATH, one in EVERY; false when the file
 * cannot be read. */
static bool load_agents(const char *path, size_t every, strlist_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    yaml_parser_t yp;
    yaml_event_t ev;
    bool want = false, done = false;
    size_t seen = 0;
    yaml_parser_initialize(&yp);
    yaml_parser_set_input_file(&yp, f);
    while (!done && yaml_parser_parse(&yp, &ev)) {
        if (ev.type == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            /* Keys and values alternate; no agent in these files reads "user_agent_string". */
            if (want && seen++ % every == 0)
                strlist_add(out, v);
            want = !want && strcmp(v, "user_agent_string") == 0;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&yp);
    fclose(f);
    return true;
}

static const char *scalar(yaml_document_t *doc, yaml_node_t *n)
{
    (void)doc;
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Appends the regex of every rule of regexes.yaml at PATH, all three lists in file order, with
 * "i" or "" in FLAGS for its regex_flag. */
static bool load_rules(const char *path, strlist_t *rules, strlist_t *flags)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    yaml_parser_t yp;
    yaml_document_t doc;
    yaml_parser_initialize(&yp);
    yaml_parser_set_input_file(&yp, f);
    bool ok = yaml_parser_load(&yp, &doc);
    yaml_node_t *root = ok ? yaml_document_get_root_node(&doc) : NULL;
    for (yaml_node_pair_t *p =
             root && root->type == YAML_MAPPING_NODE ? root->data.mapping.pairs.start : NULL;
         p && p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *list = yaml_document_get_node(&doc, p->value);
        if (!list || list->type != YAML_SEQUENCE_NODE)
            continue;
        for (yaml_node_item_t *it = list->data.sequence.items.start;
             it < list->data.sequence.items.top; it++) {
            yaml_node_t *m = yaml_document_get_node(&doc, *it);
            const char *regex = NULL, *flag = "";
            for (yaml_node_pair_t *q =
                     m && m->type == YAML_MAPPING_NODE ? m->data.mapping.pairs.start : NULL;
                 q && q < m->data.mapping.pairs.top; q++) {
                const char *k = scalar(&doc, yaml_document_get_node(&doc, q->key));
                const char *v = scalar(&doc, yaml_document_get_node(&doc, q->value));
                if (k && v && !strcmp(k, "regex"))
                    regex = v;
                if (k && v && !strcmp(k, "regex_flag"))
                    flag = v;
            }
            if (regex) {
                strlist_add(rules, regex);
                strlist_add(flags, flag);
            }
        }
    }
    if (ok)
        yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    fclose(f);
    return ok;
}

/* Every rule of uap-core that matches an agent of its test files is a candidate for it. uap-core
 * 0.16's patterns mean the same to PCRE2 as to Python, so they are used as written. */
static void test_uap_rules(void **state)
{
    (void)state;
    strlist_t rules = {0}, flags = {0}, agents = {0};
    assert_true(load_rules(UAP_DIR "regexes.yaml", &rules, &flags));
    static const struct {
        const char *file;
        size_t every;
    } files[] = {
        {"tests/test_ua.yaml", 1},
        {"tests/test_os.yaml", 1},
        {"tests/test_device.yaml", 8}, /* 16,000 agents: a sample keeps the test quick */
        {"test_resources/firefox_user_agent_strings.yaml", 1},
        {"test_resources/pgts_browser_list.yaml", 8},
        {"test_resources/opera_mini_user_agent_strings.yaml", 1},
        {"test_resources/podcasting_user_agent_strings.yaml", 1},
        {"test_resources/additional_os_tests.yaml", 1},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s", UAP_DIR, files[i].file);
        assert_true(load_agents(path, files[i].every, &agents));
    }
    bool *caseless = calloc(rules.n, sizeof *caseless);
    size_t ncaseless = 0;
    for (size_t i = 0; i < rules.n; i++)
        ncaseless += caseless[i] = strchr(flags.v[i], 'i') != NULL;
    printf("uap-core: %zu rules (%zu caseless), %zu agents\n", rules.n, ncaseless, agents.n);
    assert_true(rules.n > 1000 && ncaseless > 0 && agents.n > 5000);

    tally_t t = {0};
    check_batch(rules.v, caseless, rules.n, agents.v, agents.n, &t);
    printf("uap-core: %zu of %zu rules with literals; %zu pairs, %zu matches, %zu left out\n",
           t.with_groups, t.patterns, t.pairs, t.matches, t.excluded);
    assert_int_equal(t.patterns, rules.n);
    free(caseless);
    strlist_free(&rules);
    strlist_free(&flags);
    strlist_free(&agents);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reading),
        cmocka_unit_test(test_gives_up),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_many_literals),
        cmocka_unit_test(test_random_patterns),
        cmocka_unit_test(test_uap_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
