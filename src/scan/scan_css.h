/* scan_css: the scanner's CSS reader: the URLs a style sheet loads, and when, and the sheet without
 * them. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SCAN_CSS_H
#define SP_SCAN_CSS_H

#include <stdbool.h>
#include <stddef.h>

#include "scan_rules.h"

/* One URL that CSS loads. Every pointer is borrowed for the length of the callback. */
typedef struct sp_scan_css_url {
    const char *url;      /* with CSS escapes undone; may be relative or not a URL at all */
    const char *property; /* lower case ("background-image"), "@import", or "" when unknown */
    /* The style rule's selector list as written, whitespace collapsed and cut to a readable
     * length; "" outside a style rule (a style attribute, @font-face, @import). */
    const char *selector;
    /* Why it loads only when the message is printed ("@media print", or the text the caller
     * gave for a print-only sheet), or NULL when it loads on screen. */
    const char *print;
    /* The forward-detection selector the rule uses (sp_scan_rules_forward), or NULL: it loads
     * only in a copy of the message that a client quoted or forwarded. */
    const sp_scan_forward_rule_t *forward;
} sp_scan_css_url_t;

/* Told every URL in document order; returns true to drop it (it is a tracker). */
typedef bool (*sp_scan_css_fn)(const sp_scan_css_url_t *url, void *ctx);

/* Reads CSS[0..LEN), a style sheet (the text of a <style>) or, with INLINE, the declarations of a
 * style attribute, as a browser would (CSS Syntax Level 3: comments, strings, escapes, nested
 * blocks, CSS nesting), and calls FN for each URL it loads: url() and src() anywhere in a
 * declaration, strings in image-set(), @import. PRINT: the whole sheet applies to print only
 * (<style media="print">), shown as that text in the findings; NULL otherwise.
 *
 * With STRIP, returns the CSS without the URLs FN dropped, or NULL when it dropped none (g_free
 * the result): on screen, url(...) becomes `none` (valid wherever an image is, so the rest of a
 * shorthand stays) and an @import goes whole; under print or forward conditions the declaration
 * goes, then a rule left with no declaration, then an @media or other block left empty; a rule
 * whose selectors all detect forwards goes whole. Everything else is copied byte for byte.
 * *DROPPED (may be NULL) gets how many URLs were dropped. Never fails: damaged CSS is read the way
 * browsers recover it, and the work is linear in LEN however deep the nesting. */
char *sp_scan_css_walk(const char *css, size_t len, bool inline_style, const char *print,
                       sp_scan_css_fn fn, void *ctx, bool strip, size_t *dropped);

/* True when the media query list MEDIA (a <style media> or <link media> value) selects print
 * only: every query is "print" (optionally "only", and with features), or "not screen". */
bool sp_scan_css_media_is_print(const char *media);

#endif
