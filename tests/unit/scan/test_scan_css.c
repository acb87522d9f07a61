/* Unit tests for scan_css: URLs found in CSS and when they load, stripping, hostile style sheets.
 */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan_css.h"

/* The random sheets of test_random_sheets; -DROUNDS=... -DSEED=... -DPIECES=... run more. */
#ifndef ROUNDS
#define ROUNDS 3000
#endif
#ifndef SEED
#define SEED 15
#endif
#ifndef PIECES
#define PIECES 60
#endif

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct seen {
    char *url, *property, *selector, *print, *forward;
} seen_t;

typedef struct found {
    seen_t *list;
    size_t n;
    const char *drop; /* drop the URLs that contain this; "" drops all, NULL none */
} found_t;

static bool collect(const sp_scan_css_url_t *u, void *ctx)
{
    found_t *f = ctx;
    f->list = realloc(f->list, (f->n + 1) * sizeof(*f->list));
    assert_non_null(f->list);
    seen_t *s = &f->list[f->n++];
    s->url = strdup(u->url);
    s->property = strdup(u->property);
    s->selector = strdup(u->selector);
    s->print = u->print ? strdup(u->print) : NULL;
    s->forward = u->forward ? strdup(u->forward->shown) : NULL;
    return f->drop && strstr(u->url, f->drop);
}

static void found_free(found_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->list[i].url);
        free(f->list[i].property);
        free(f->list[i].selector);
        free(f->list[i].print);
        free(f->list[i].forward);
    }
    free(f->list);
    memset(f, 0, sizeof(*f));
}

/* Walks CSS (a sheet, or a style attribute with INLINE), collecting every URL. */
static void walk(const char *css, bool inline_style, found_t *f)
{
    char *out = sp_scan_css_walk(css, strlen(css), inline_style, NULL, collect, f, false, NULL);
    assert_null(out);
}

/* CSS stripped of the URLs that contain DROP ("" for all); NULL when nothing changed. */
static char *strip(const char *css, const char *drop, size_t *dropped)
{
    found_t f = {.drop = drop};
    char *out = sp_scan_css_walk(css, strlen(css), false, NULL, collect, &f, true, dropped);
    found_free(&f);
    return out;
}

static void expect_strip(const char *css, const char *drop, const char *want)
{
    size_t dropped = 0;
    char *out = strip(css, drop, &dropped);
    if (!want) {
        if (out)
            fail_msg("'%s' became '%s', expected no change", css, out);
        return;
    }
    if (!out || 0 != strcmp(out, want))
        fail_msg("'%s'\n  became   '%s'\n  expected '%s'", css, out ? out : "(unchanged)", want);
    assert_true(dropped > 0);
    g_free(out);
}

/* The one URL of CSS, checked; F keeps it for more checks. */
static const seen_t *only_url(const char *css, found_t *f, const char *url)
{
    walk(css, false, f);
    if (1 != f->n)
        fail_msg("'%s': %zu URLs, expected 1 (%s)", css, f->n, url);
    if (0 != strcmp(f->list[0].url, url))
        fail_msg("'%s': URL '%s', expected '%s'", css, f->list[0].url, url);
    return &f->list[0];
}

/* ---- URLs and their syntax ------------------------------------------------------------------- */

static void test_url_forms(void **state)
{
    (void)state;
    static const struct {
        const char *css, *url;
    } cases[] = {
        {"a { background: url(https://x.example/a.png) }", "https://x.example/a.png"},
        {"a{background:url(\"https://x.example/b.png\")}", "https://x.example/b.png"},
        {"a{background:url('https://x.example/c.png')}", "https://x.example/c.png"},
        {"a{background:url(   https://x.example/d.png   )}", "https://x.example/d.png"},
        {"a{background:url(  \"https://x.example/d2.png\"  )}", "https://x.example/d2.png"},
        {"a{background:URL(https://x.example/e.png)}", "https://x.example/e.png"},
        /* Escapes: hex with its space, a quote in a string, a name written with escapes. */
        {"a{background:url(https://x.example/\\66 .png)}", "https://x.example/f.png"},
        {"a{background:url(\"https://x.example/g\\\".png\")}", "https://x.example/g\".png"},
        {"a{background:\\75 rl(https://x.example/h.png)}", "https://x.example/h.png"},
        {"a{background:url(\"https://x.example/\\\nline.png\")}", "https://x.example/line.png"},
        {"a{background:src(\"https://x.example/s.png\")}", "https://x.example/s.png"},
        {"a{list-style:url(https://x.example/l.png) inside}", "https://x.example/l.png"},
        /* Unterminated at the end: still loaded. */
        {"a { background: url(https://x.example/eof.png", "https://x.example/eof.png"},
        {"a { background: url(\"https://x.example/eofq.png", "https://x.example/eofq.png"},
        /* A string cut by a newline ends there; the next declaration still counts. */
        {"a { content: \"abc\n; background: url(https://x.example/after.png) }",
         "https://x.example/after.png"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        found_t f = {0};
        only_url(cases[i].css, &f, cases[i].url);
        found_free(&f);
    }
    found_t f = {0};
    const seen_t *s = only_url(".hero > td { background-image : url(https://x.example/p.png) }", &f,
                               "https://x.example/p.png");
    assert_string_equal("background-image", s->property);
    assert_string_equal(".hero > td", s->selector);
    assert_null(s->print);
    assert_null(s->forward);
    found_free(&f);
}

static void test_not_urls(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "/* a { background: url(https://x.example/comment.png) } */",
        "a{} /* unterminated url(https://x.example/comment.png)",
        "a { content: \"url(https://x.example/string.png)\" }",
        "a { background: url(https://x.example/bad url.png) }", /* a bad URL: nothing loads */
        "a { background: url(https://x.example/bad\"q.png) }",
        "a { background: url(https://x.example/bad(p.png) }",
        "@namespace svg url(http://www.w3.org/2000/svg);",
        "a[href=\"url(https://x.example/attr.png)\"] { color: red }",
        "",
        "\\",
        "url(",
        "@import",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        found_t f = {0};
        walk(cases[i], false, &f);
        if (f.n)
            fail_msg("'%s': found '%s'", cases[i], f.list[0].url);
        found_free(&f);
    }
}

static void test_imports_and_image_set(void **state)
{
    (void)state;
    found_t f = {0};
    walk("@import url(https://x.example/a.css);\n@import \"https://x.example/b.css\" print;\n"
         "@import url(\"https://x.example/c.css\") layer(base) screen;\n"
         "a { background-image: image-set(\"https://x.example/1.png\" 1x, "
         "url(https://x.example/2.png) 2x); }\n"
         "b { background-image: -webkit-image-set('https://x.example/3.png' 1x); }",
         false, &f);
    assert_int_equal(6, f.n);
    assert_string_equal("https://x.example/a.css", f.list[0].url);
    assert_string_equal("@import", f.list[0].property);
    assert_null(f.list[0].print);
    assert_string_equal("https://x.example/b.css", f.list[1].url);
    assert_non_null(f.list[1].print);
    assert_non_null(strstr(f.list[1].print, "print"));
    assert_string_equal("https://x.example/c.css", f.list[2].url);
    assert_null(f.list[2].print);
    assert_string_equal("https://x.example/1.png", f.list[3].url);
    assert_string_equal("https://x.example/2.png", f.list[4].url);
    assert_string_equal("https://x.example/3.png", f.list[5].url);
    found_free(&f);
}

static void test_inline_style(void **state)
{
    (void)state;
    found_t f = {0};
    walk("color: red; background-image: url('https://x.example/i.png'); x: y { z }", true, &f);
    assert_int_equal(1, f.n);
    assert_string_equal("background-image", f.list[0].property);
    assert_string_equal("", f.list[0].selector);
    found_free(&f);
    static const char style[] = "background:#fff url(https://t.example/p.gif) no-repeat;color:red";
    char *out = sp_scan_css_walk(style, strlen(style), true, NULL, collect, &f, true, NULL);
    found_free(&f);
    assert_null(out); /* nothing dropped */
    f.drop = "";
    out = sp_scan_css_walk(style, strlen(style), true, NULL, collect, &f, true, NULL);
    assert_string_equal("background:#fff none no-repeat;color:red", out);
    g_free(out);
    found_free(&f);
}

/* ---- when it loads: print ----------------------------------------------------------------------
 */

static void test_print(void **state)
{
    (void)state;
    static const struct {
        const char *css;
        bool print;
    } cases[] = {
        {"@media print { #_t { background-image: url(https://t.example/p) } }", true},
        {"@media PRINT{#_t{background-image:url(https://t.example/p)}}", true},
        {"@media only print and (min-width: 1px) { .x { background: url(https://t.example/p) } }",
         true},
        {"@media not screen { .x { background: url(https://t.example/p) } }", true},
        {"@media print, print and (color) { .x { background: url(https://t.example/p) } }", true},
        {"@media screen, print { .x { background: url(https://t.example/p) } }", false},
        {"@media not print { .x { background: url(https://t.example/p) } }", false},
        {"@media (min-width: 600px) { .x { background: url(https://t.example/p) } }", false},
        {"@media all { .x { background: url(https://t.example/p) } }", false},
        {"@media screen { .x { background: url(https://t.example/p) } }", false},
        {"@supports (display: grid) { @media print { .x { background: url(https://t.example/p) }"
         " } }",
         true},
        {"@media print { @media (min-width: 1px) { .x { background: url(https://t.example/p) } } }",
         true},
        {"@media print { @supports (color: red) { .x { background: url(https://t.example/p) } } }",
         true},
        /* CSS nesting: an @media print inside a style rule. */
        {".x { color: red; @media print { background: url(https://t.example/p) } }", true},
        /* The @media ends at its brace: what follows loads on screen. */
        {"@media print { .a { color: red } } .x { background: url(https://t.example/p) }", false},
        {"@media print { /* } */ .a { content: \"}\" } } .x { background: url(https://t.example/p)"
         " }",
         false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        found_t f = {0};
        const seen_t *s = only_url(cases[i].css, &f, "https://t.example/p");
        if (cases[i].print != (NULL != s->print))
            fail_msg("'%s': print is %s", cases[i].css, s->print ? s->print : "NULL");
        found_free(&f);
    }
    found_t f = {0};
    const seen_t *s =
        only_url("@media print{ #_t { background-image: url('https://t.example/p') } }", &f,
                 "https://t.example/p");
    assert_string_equal("@media print", s->print);
    assert_string_equal("#_t", s->selector);
    found_free(&f);

    /* A whole sheet for print only: <style media="print">. */
    char *out = sp_scan_css_walk(".x{background:url(https://t.example/p)}", 39, false,
                                 "<style media=\"print\">", collect, &f, false, NULL);
    assert_null(out);
    assert_int_equal(1, f.n);
    assert_string_equal("<style media=\"print\">", f.list[0].print);
    found_free(&f);

    assert_true(sp_scan_css_media_is_print("print"));
    assert_true(sp_scan_css_media_is_print(" Print "));
    assert_true(sp_scan_css_media_is_print("only print and (orientation: landscape)"));
    assert_false(sp_scan_css_media_is_print("screen, print"));
    assert_false(sp_scan_css_media_is_print("all"));
    assert_false(sp_scan_css_media_is_print(""));
    assert_false(sp_scan_css_media_is_print(NULL));
    assert_false(sp_scan_css_media_is_print("(min-width: 1px)"));
}

/* ---- when it loads: forwards -------------------------------------------------------------------
 */

static void test_forward(void **state)
{
    (void)state;
    static const struct {
        const char *selector, *forward; /* the rule's shown selector, or NULL: not a forward */
    } cases[] = {
        /* Litmus, Email on Acid and HubSpot tracking codes. */
        {"div.OutlookMessageHeader", "div.OutlookMessageHeader"},
        {"span.OutlookMessageHeader", "div.OutlookMessageHeader"},
        {"table.moz-email-headers-table", "table.moz-email-headers-table"},
        {"blockquote #_t", "blockquote"},
        {"#MailContainerBody #_t", "#MailContainerBody"},
        {"#mailContainerBody #_eoa_div", "#MailContainerBody"}, /* case differs */
        {".gmail_quote #_forward", ".gmail_quote"},
        {"div.yahoo_quoted .beacon", ".yahoo_quoted"},
        {"#divRplyFwdMsg ~ div #x", "#divRplyFwdMsg"},
        {"#OLK_SRC_BODY_SECTION .x", "#OLK_SRC_BODY_SECTION"},
        {".protonmail_quote .x", ".protonmail_quote"},
        {".moz-forward-container .x", ".moz-forward-container"},
        {"blockquote[type=cite] .x", "[type=cite]"},
        {"[type=\"CITE\"] .x", "[type=cite]"},
        {"blockquote > .x", "blockquote"},
        {"BLOCKQUOTE .x", "blockquote"},
        {"blockquote p + .x", "blockquote"},
        {":is(blockquote) .x", "blockquote"},
        {":where(.gmail_quote, .other) .x", ".gmail_quote"},
        {".gmail\\_quote .x", ".gmail_quote"}, /* an escaped name */
        {".a, div.OutlookMessageHeader", "div.OutlookMessageHeader"},
        /* Not forwards: the message's own blockquote, negations, look-alikes. */
        {"blockquote", NULL},
        {"blockquote.pull-quote", NULL},
        {".x blockquote", NULL},
        {":not(blockquote) .x", NULL},
        {"div[title=cite] .x", NULL},
        {"[type] .x", NULL},
        {".gmail_quoted .x", NULL},
        {"#_t", NULL},
        {".blockquote .x", NULL},
        {"a:blockquote .x", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *css =
            g_strdup_printf("%s { background-image: url(https://t.example/f) }", cases[i].selector);
        found_t f = {0};
        const seen_t *s = only_url(css, &f, "https://t.example/f");
        if ((NULL == cases[i].forward) != (NULL == s->forward) ||
            (s->forward && 0 != strcmp(s->forward, cases[i].forward)))
            fail_msg("'%s': forward %s, expected %s", cases[i].selector,
                     s->forward ? s->forward : "NULL",
                     cases[i].forward ? cases[i].forward : "NULL");
        found_free(&f);
        g_free(css);
    }
    /* Nesting: the inner rule is relative to the outer one. */
    found_t f = {0};
    const seen_t *s =
        only_url("blockquote { color: gray; & #_t { background: url(https://t.example/f) "
                 "} }",
                 &f, "https://t.example/f");
    assert_string_equal("blockquote", s->forward);
    assert_string_equal("blockquote { & #_t", s->selector);
    found_free(&f);
    s = only_url(".gmail_quote { .x { background: url(https://t.example/f) } }", &f,
                 "https://t.example/f");
    assert_string_equal(".gmail_quote", s->forward);
    found_free(&f);
}

/* ---- --strip -----------------------------------------------------------------------------------
 */

static void test_strip(void **state)
{
    (void)state;
    /* On screen: the image becomes none, the rest of the shorthand stays. */
    expect_strip(".a { background: #fff url(https://t.example/x) no-repeat; color: red }", "",
                 ".a { background: #fff none no-repeat; color: red }");
    expect_strip(".a{background-image:url(\"https://t.example/x\")}", "",
                 ".a{background-image:none}");
    /* Only what the callback drops. */
    expect_strip(".a{background:url(https://cdn.example/logo.png)}", "t.example", NULL);
    expect_strip(".a{background:url(https://cdn.example/logo.png)} .b{background:url(https://"
                 "t.example/x)}",
                 "t.example",
                 ".a{background:url(https://cdn.example/logo.png)} .b{background:none}");
    /* An @import goes whole. */
    expect_strip("@import url(https://t.example/x.css);\np { color: red }", "",
                 "\np { color: red }");
    expect_strip("@import \"https://t.example/x.css\" print; p{}", "", " p{}");
    /* Print: the declaration, then the emptied rule, then the emptied @media. */
    expect_strip("@media print { #_t { background-image: url(https://t.example/p) } }\n"
                 "p { color: red }",
                 "", "\np { color: red }");
    expect_strip("@media print { body { font-size: 10pt; background: url(https://t.example/p); } "
                 ".n { display: none } }",
                 "", "@media print { body { font-size: 10pt;  } .n { display: none } }");
    expect_strip("@media print { .n { display: none } #_t { background: url(https://t.example/p) "
                 "} }",
                 "", "@media print { .n { display: none }  }");
    expect_strip("@supports (color: red) { @media print { #_t { background: url(https://t.example/"
                 "p) } } } p{}",
                 "", " p{}");
    /* Forward: a rule whose selectors all detect forwards goes whole, with its other
     * declarations; in a mixed list only the declaration goes. */
    expect_strip("div.OutlookMessageHeader, table.moz-email-headers-table, blockquote #_t "
                 "{ width: 1px; background-image: url('https://t.example/f') } p{}",
                 "", " p{}");
    expect_strip("blockquote #_t, .hero { background: url(https://t.example/f); color: red }", "",
                 "blockquote #_t, .hero {  color: red }");
    expect_strip("blockquote { color: gray; & #_t { background: url(https://t.example/f) } }", "",
                 "blockquote { color: gray;  }");
    /* Braces in strings and comments do not end anything. */
    expect_strip(".a { content: \"}\"; background: url(https://t.example/x) } /* } */ .b { color: "
                 "red }",
                 "", ".a { content: \"}\"; background: none } /* } */ .b { color: red }");
    expect_strip("@media print { .a { content: \"}\" } #_t { background: url(https://t.example/p)"
                 " /* } */ } } .b { color: red }",
                 "", "@media print { .a { content: \"}\" }  } .b { color: red }");
    /* Unterminated at the end. */
    expect_strip("@media print { #_t { background: url(https://t.example/p)", "", "");
    expect_strip("a { background: url(https://t.example/x", "", "a { background: none");
}

/* ---- hostile style sheets ----------------------------------------------------------------------
 */

static void test_deep_nesting(void **state)
{
    (void)state;
    /* 200000 @media print blocks deep, then a tracker: found, in print, and stripped. */
    GString *css = g_string_new(NULL);
    for (int i = 0; i < 200000; i++)
        g_string_append(css, "@media print {");
    g_string_append(css, " .x { background: url(https://t.example/deep) } ");
    for (int i = 0; i < 200000; i++)
        g_string_append_c(css, '}');
    g_string_append(css, " .after { background: url(https://t.example/after) }");
    found_t f = {.drop = ""};
    size_t dropped = 0;
    char *out = sp_scan_css_walk(css->str, css->len, false, NULL, collect, &f, true, &dropped);
    assert_int_equal(2, f.n);
    assert_string_equal("https://t.example/deep", f.list[0].url);
    assert_non_null(f.list[0].print); /* past the depth limit the context still holds */
    assert_string_equal("https://t.example/after", f.list[1].url);
    assert_null(f.list[1].print); /* every brace was matched */
    assert_int_equal(2, dropped);
    assert_non_null(out);
    assert_null(strstr(out, "t.example"));
    g_free(out);
    found_free(&f);

    /* Braces, brackets and parentheses that never close. */
    g_string_truncate(css, 0);
    for (int i = 0; i < 100000; i++)
        g_string_append(css, "a{(b[");
    g_string_append(css, "url(https://t.example/open");
    f.drop = "";
    out = sp_scan_css_walk(css->str, css->len, false, NULL, collect, &f, true, &dropped);
    assert_int_equal(1, f.n);
    assert_non_null(out);
    assert_null(strstr(out, "t.example"));
    g_free(out);
    found_free(&f);
    g_string_free(css, TRUE);
}

static void test_hostile_bits(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "/*",
        "*/ a { background: url(https://t.example/1) }",
        "\\",
        "a\\",
        "url(\\",
        "a{b:url(\\",
        "a{b:url(x\\",
        "a{b:\"\\",
        "#\\",
        "@\\",
        "a{b:url(\\0)}",
        "a{b:url(\\110000)}",
        "a{b:url(\\d800 x)}",
        "}}}}{{{{",
        ")))]]]((([[[",
        "@media print {{{{ url(https://t.example/2) }}}",
        "@media print {{{{ url(https://t.example/2)",
        "a{--x:{url(https://t.example/3)};b:c}",
        "<!-- a { background: url(https://t.example/4) } -->",
        "@media print { <!-- } .x { background: url(https://t.example/5) }",
        "\xff\xfe{\xc3\xa9:url(https://t.example/6)}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        found_t f = {.drop = ""};
        size_t dropped = 0;
        char *out =
            sp_scan_css_walk(cases[i], strlen(cases[i]), false, NULL, collect, &f, true, &dropped);
        assert_int_equal(f.n, dropped);
        if (out && strstr(out, "t.example"))
            fail_msg("'%s' stripped to '%s'", cases[i], out);
        if (!out && f.n)
            fail_msg("'%s': %zu URLs dropped but nothing changed", cases[i], f.n);
        g_free(out);
        found_free(&f);
    }
    found_t f = {0};
    walk("a{b:url(\\0)}", false, &f);
    assert_int_equal(1, f.n);
    assert_string_equal("\xef\xbf\xbd", f.list[0].url); /* U+FFFD */
    found_free(&f);
}

/* Random CSS-like text: whatever was dropped is gone when the result is read again, and what
 * remains of it is the input's own bytes. */
static void test_random_sheets(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "{",          "}",
        "(",          ")",
        "[",          "]",
        ";",          ":",
        ",",          " ",
        "\n",         "\"",
        "'",          "\\",
        "/*",         "*/",
        "@media ",    "print",
        "@import ",   "url(",
        "url(\"",     "a",
        "#_t",        "blockquote",
        ".x",         "background:",
        "&",          "-->",
        "<!--",       "@supports (a:b)",
        "image-set(", "https://t.example/",
        "\\75 rl(",   "--v:",
    };
    GRand *rng = g_rand_new_with_seed(SEED);
    for (int round = 0; round < ROUNDS; round++) {
        GString *css = g_string_new(NULL);
        int n = g_rand_int_range(rng, 1, PIECES);
        for (int i = 0; i < n; i++)
            g_string_append(
                css, pieces[g_rand_int_range(rng, 0, (gint32)(sizeof(pieces) / sizeof(*pieces)))]);
        found_t f = {.drop = ""};
        size_t dropped = 0;
        char *out =
            sp_scan_css_walk(css->str, css->len, round & 1, NULL, collect, &f, true, &dropped);
        if (out) {
            found_t again = {.drop = NULL};
            char *same =
                sp_scan_css_walk(out, strlen(out), round & 1, NULL, collect, &again, true, NULL);
            assert_null(same);
            if (again.n)
                fail_msg("'%s' stripped to '%s' still loads '%s'", css->str, out,
                         again.list[0].url);
            found_free(&again);
            g_free(out);
        } else {
            assert_int_equal(0, dropped);
        }
        found_free(&f);
        g_string_free(css, TRUE);
    }
    g_rand_free(rng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_not_urls),
        cmocka_unit_test(test_imports_and_image_set),
        cmocka_unit_test(test_inline_style),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_hostile_bits),
        cmocka_unit_test(test_random_sheets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
