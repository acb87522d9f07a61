/* Unit tests for scan: crafted messages in tests/data/scan/, stripping, damaged MIME, the command.
 */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan.h"

/* The tests run from the repository's root, as scripts/run-tests does. */
#define DATA "tests/data/scan/"

/* ---- helpers --------------------------------------------------------------------------------- */

static void scan_ok(const char *name, sp_scan_report_t *r)
{
    char err[512] = "";
    int rc = sp_scan_file(name, r, err, sizeof(err));
    if (rc)
        fail_msg("%s: %s", name, err);
}

/* The finding whose URL contains PART, or NULL. */
static const sp_scan_finding_t *find(const sp_scan_report_t *r, const char *part)
{
    for (size_t i = 0; i < r->n; i++)
        if (strstr(r->findings[i].url, part))
            return &r->findings[i];
    return NULL;
}

static const sp_scan_finding_t *must_find(const sp_scan_report_t *r, const char *part)
{
    const sp_scan_finding_t *f = find(r, part);
    if (!f)
        fail_msg("no finding for %s", part);
    return f;
}

static bool has_rule(const sp_scan_finding_t *f, const char *rule)
{
    for (size_t i = 0; i < f->n_matches; i++)
        if (0 == strcmp(f->matches[i].rule, rule))
            return true;
    return false;
}

static const char *reason_of(const sp_scan_finding_t *f, const char *rule)
{
    for (size_t i = 0; i < f->n_matches; i++)
        if (0 == strcmp(f->matches[i].rule, rule))
            return f->matches[i].reason;
    fail_msg("%s has no rule %s", f->url, rule);
    return NULL;
}

/* Strips NAME into a malloc'd string. */
static char *strip_to_string(const char *name, sp_scan_report_t *r)
{
    char *buf = NULL, err[512] = "";
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    int rc = sp_scan_strip(name, out, r, err, sizeof(err));
    assert_int_equal(0, fclose(out));
    if (rc)
        fail_msg("%s: %s", name, err);
    return buf;
}

static char *read_file(const char *name, size_t *len)
{
    FILE *f = fopen(name, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            cap = 2 * cap + 4096;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t got = fread(buf + *len, 1, 4096, f);
        *len += got;
        if (!got)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static void scan_string(const char *text, sp_scan_report_t *r)
{
    char err[512] = "";
    int rc = sp_scan_memory("memory", text, strlen(text), r, err, sizeof(err));
    if (rc)
        fail_msg("memory: %s", err);
}

/* ---- what is found --------------------------------------------------------------------------- */

static void test_newsletter(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "newsletter.eml", &r);
    assert_int_equal(1, r.messages);
    /* The 1x1 pixel, the click-tracked link (in both parts: found once), the mc_eid link. */
    assert_int_equal(3, r.n);

    const sp_scan_finding_t *pixel = must_find(&r, "/track/open.php");
    assert_int_equal(SP_SCAN_PIXEL, pixel->kind);
    assert_string_equal("mailchimp-open", pixel->matches[0].rule);
    assert_string_equal("Mailchimp", pixel->vendor);
    assert_string_equal("example.us1.list-manage.com", pixel->host);
    assert_true(has_rule(pixel, "tiny-image"));
    assert_non_null(strstr(reason_of(pixel, "tiny-image"), "1x1"));
    assert_string_equal("https://example.us1.list-manage.com/track/open.php?u=1a2b3c&id=9f8e7d&"
                        "e=0a1b2c3d4e",
                        pixel->url);
    assert_int_equal(1, pixel->message);
    assert_string_equal("20240603090000.abc123@mail.shop.example.com", pixel->message_id);
    assert_string_equal(DATA "newsletter.eml", pixel->file);

    const sp_scan_finding_t *click = must_find(&r, "/track/click");
    assert_int_equal(SP_SCAN_LINK, click->kind);
    assert_string_equal("mailchimp", click->matches[0].rule);
    assert_null(click->target); /* only Mailchimp knows where it leads */

    const sp_scan_finding_t *eid = must_find(&r, "mc_eid=");
    assert_int_equal(SP_SCAN_LINK, eid->kind);
    assert_string_equal("tracking-parameter", eid->matches[0].rule);
    assert_non_null(strstr(eid->matches[0].reason, "mc_eid"));

    /* No false positives: the content image and the share button. */
    assert_null(find(&r, "mcusercontent.com"));
    assert_null(find(&r, "facebook.com"));
    sp_scan_report_free(&r);
}

static void test_hidden_css(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "hidden-css.eml", &r);
    assert_int_equal(8, r.n);
    static const struct {
        const char *url, *rule, *says;
    } cases[] = {
        {"beacon.corp-analytics.example/b.png", "hidden-parent", "display:none"},
        {"/t.gif", "hidden-image", "display:none"}, /* DISPLAY: none !important */
        {"/o.gif", "tiny-image", "1x1"},
        {"/v.gif", "hidden-image", "visibility:hidden"},
        {"/z.gif", "hidden-image", "opacity:0"},
        {"/mh.gif", "tiny-image", "0px high"},
        {"/h.gif", "hidden-image", "hidden attribute"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sp_scan_finding_t *f = must_find(&r, cases[i].url);
        assert_int_equal(SP_SCAN_PIXEL, f->kind);
        assert_string_equal(cases[i].rule, f->matches[0].rule);
        if (!strstr(f->matches[0].reason, cases[i].says))
            fail_msg("%s: '%s' does not say %s", cases[i].url, f->matches[0].reason, cases[i].says);
    }
    /* A CSS background on a tracking host. */
    const sp_scan_finding_t *css = must_find(&r, "emltrk.com");
    assert_int_equal(SP_SCAN_IMAGE, css->kind);
    assert_string_equal("litmus", css->matches[0].rule);
    sp_scan_report_free(&r);
}

static void test_redirects(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "redirect.eml", &r);
    assert_int_equal(4, r.n);

    const sp_scan_finding_t *f = must_find(&r, "click.tracker.example");
    assert_int_equal(SP_SCAN_LINK, f->kind);
    assert_string_equal("redirect", f->matches[0].rule);
    assert_string_equal("https://www.example.com/article?id=7", f->target);

    f = must_find(&r, "go.example.net");
    assert_string_equal("https://www.example.org/page?x=1", f->target); /* base64 */

    f = must_find(&r, "awstrack.me");
    assert_string_equal("amazon-ses", f->matches[0].rule);
    assert_true(has_rule(f, "redirect"));
    assert_string_equal("https://docs.example.com/guide", f->target); /* in the path */

    f = must_find(&r, "ct.sendgrid.net");
    assert_string_equal("sendgrid-click", f->matches[0].rule);
    assert_null(f->target);

    /* Navigation on one site, a plain link and mailto are no trackers. */
    assert_null(find(&r, "/login?next="));
    assert_null(find(&r, "/plain"));
    assert_null(find(&r, "mailto:"));
    sp_scan_report_free(&r);
}

static void test_recipient_ids(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "recipient-id.eml", &r);
    static const struct {
        const char *url, *how;
    } cases[] = {
        {"banner.png", "as is"}, {"logo.png", "URL-encoded"},
        {"hero.jpg", "base64"},  {"/p/Y2FtcGFpZ24", "base64"}, /* inside a longer base64 blob */
        {"avatar.png", "MD5"},   {"store.example/account", "URL-encoded"}, /* a link */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sp_scan_finding_t *f = must_find(&r, cases[i].url);
        const char *why = reason_of(f, "recipient-address");
        if (!strstr(why, cases[i].how) || !strstr(why, "alice.smith@example.org"))
            fail_msg("%s: '%s' does not say %s", cases[i].url, why, cases[i].how);
    }
    assert_int_equal(SP_SCAN_IMAGE, must_find(&r, "banner.png")->kind); /* visible: not a pixel */
    assert_int_equal(SP_SCAN_LINK, must_find(&r, "store.example/account")->kind);
    /* A long opaque token in an image's query. */
    const sp_scan_finding_t *tok = must_find(&r, "promo.png");
    assert_string_equal("opaque-token", tok->matches[0].rule);
    assert_int_equal(7, r.n);
    sp_scan_report_free(&r);
}

static void test_clean_message(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "clean.eml", &r);
    assert_int_equal(1, r.messages);
    for (size_t i = 0; i < r.n; i++)
        fail_msg("false positive: %s (%s)", r.findings[i].url, r.findings[i].matches[0].reason);
    sp_scan_report_free(&r);
}

static void test_quoted_printable_soft_breaks(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "qp-softbreak.eml", &r);
    assert_int_equal(1, r.n);
    const sp_scan_finding_t *f = &r.findings[0];
    assert_string_equal("https://open.qp-tracker.example/open/5f2b9c1e7d3a4b6c8e0f1a2b3c4d5e6f.gif",
                        f->url);
    assert_int_equal(SP_SCAN_PIXEL, f->kind);
    assert_string_equal("tiny-image", f->matches[0].rule);
    sp_scan_report_free(&r);
}

static void test_base64_html(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "base64-html.eml", &r);
    assert_int_equal(1, r.n);
    assert_string_equal("sendgrid-open", r.findings[0].matches[0].rule);
    assert_int_equal(SP_SCAN_PIXEL, r.findings[0].kind);
    assert_true(has_rule(&r.findings[0], "tiny-image"));
    sp_scan_report_free(&r);
}

static void test_mbox(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "three.mbox", &r);
    assert_int_equal(3, r.messages);
    assert_int_equal(3, r.n);
    const sp_scan_finding_t *f = must_find(&r, "/spy-pixel.gif");
    assert_int_equal(1, f->message);
    assert_string_equal("mbox-1@one.example", f->message_id);
    assert_string_equal("spypixel-pixel", f->matches[0].rule);
    assert_true(has_rule(f, "recipient-address"));
    f = must_find(&r, "mailtrack.io");
    assert_int_equal(3, f->message);
    assert_string_equal("mbox-3@three.example", f->message_id);
    assert_string_equal("https://example.com", f->target);
    /* A redirect in plain text through the sender's own tracking subdomain. */
    f = must_find(&r, "t.three.example");
    assert_string_equal("redirect", f->matches[0].rule);
    assert_string_equal("https://three.example/post/42", f->target);
    sp_scan_report_free(&r);
}

static void test_assorted(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "assorted.eml", &r);
    const sp_scan_finding_t *f = must_find(&r, "mailto:rep@sales.example");
    assert_int_equal(SP_SCAN_RECEIPT, f->kind);
    assert_string_equal("read-receipt", f->matches[0].rule);
    /* url() in a <style> block (Litmus print tracking), not the ordinary logo. */
    assert_string_equal("litmus", must_find(&r, "emltrk.com/v2/print")->matches[0].rule);
    assert_true(has_rule(must_find(&r, "emltrk.com/v2/print"), "print-css"));
    assert_int_equal(SP_SCAN_PIXEL, must_find(&r, "emltrk.com/v2/print")->kind);
    assert_null(find(&r, "cdn.sales.example/logo.png"));
    /* A pixel only Outlook sees, in a conditional comment. */
    assert_int_equal(SP_SCAN_PIXEL, must_find(&r, "outlook-open.gif")->kind);
    assert_string_equal("mailtrack", must_find(&r, "mailtrack.io/trace/mail")->matches[0].rule);
    assert_string_equal("spypixel-open", must_find(&r, "/o/AbCd")->matches[0].rule);
    assert_string_equal("spypixel-click", must_find(&r, "/c/Zz9")->matches[0].rule);
    assert_null(find(&r, "youtube.com/c/")); /* /c/ with a name, not a token */
    f = must_find(&r, "yesware.com");
    assert_int_equal(SP_SCAN_PIXEL, f->kind); /* 2x2 */
    assert_int_equal(7, r.n);
    sp_scan_report_free(&r);
}

/* A newsletter with an engagement-tracking block on the sender's own domain: a print-only CSS
 * image, a forward-only one, a print-only <style>, an Email on Acid pixel, a HubSpot pixel on
 * the sender's domain, a live countdown image; and ordinary CSS images that are no trackers. */
static void test_engagement(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "engagement.eml", &r);
    assert_int_equal(6, r.n);

    const sp_scan_finding_t *f = must_find(&r, "8f3a2c71?p&");
    assert_int_equal(SP_SCAN_PIXEL, f->kind);
    assert_string_equal("print-css", f->matches[0].rule);
    assert_non_null(strstr(f->matches[0].reason, "@media print"));
    assert_non_null(strstr(f->matches[0].reason, "#_gw"));
    assert_null(f->vendor); /* found by what it does, not by who serves it */

    f = must_find(&r, "8f3a2c71?f&");
    assert_int_equal(SP_SCAN_PIXEL, f->kind);
    assert_string_equal("forward-css", f->matches[0].rule);
    assert_non_null(strstr(f->matches[0].reason, "div.OutlookMessageHeader"));
    assert_non_null(strstr(f->matches[0].reason, "forwarded"));

    f = must_find(&r, "print-masthead.gif");
    assert_string_equal("print-css", f->matches[0].rule);
    assert_non_null(strstr(f->matches[0].reason, "<style media=\"print\">"));

    f = must_find(&r, "eoapxl.com");
    assert_int_equal(SP_SCAN_PIXEL, f->kind);
    assert_string_equal("email-on-acid", f->matches[0].rule);
    assert_string_equal("Email on Acid", f->vendor);
    assert_true(has_rule(f, "tiny-image"));

    f = must_find(&r, "/e1t/o/");
    assert_string_equal("hubspot-open", f->matches[0].rule);
    assert_int_equal(SP_SCAN_PIXEL, f->kind);

    f = must_find(&r, "niftyimages.com");
    assert_string_equal("niftyimages", f->matches[0].rule);
    assert_int_equal(SP_SCAN_IMAGE, f->kind); /* a visible countdown */

    /* Ordinary CSS images, a URL in a comment and one in a string are no trackers. */
    assert_null(find(&r, "hero-spring.jpg"));
    assert_null(find(&r, "hero-small.jpg"));
    assert_null(find(&r, "tomatoes.jpg"));
    assert_null(find(&r, "/e/dead"));
    assert_null(find(&r, "not-a-url"));
    sp_scan_report_free(&r);
}

/* Gmail's cleardot.gif, quoted from a Gmail thread: the same URL for everyone, still a finding
 * with its own reason, sized or not. */
static void test_cleardot(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "cleardot.eml", &r);
    assert_int_equal(2, r.n);
    const sp_scan_finding_t *f = must_find(&r, "mail.google.com/mail/u/0/images/cleardot.gif");
    assert_int_equal(SP_SCAN_PIXEL, f->kind); /* no size given: the rule says it is 1x1 */
    assert_string_equal("gmail-cleardot", f->matches[0].rule);
    assert_string_equal("Google", f->vendor);
    assert_non_null(strstr(f->matches[0].reason, "cookies"));
    assert_non_null(strstr(f->matches[0].reason, "IP address"));
    f = must_find(&r, "ssl.gstatic.com");
    assert_string_equal("gstatic-cleardot", f->matches[0].rule);
    assert_null(find(&r, "googleusercontent.com"));
    assert_null(find(&r, "drive.example.com"));
    sp_scan_report_free(&r);

    /* Other spacers and other Google images are not cleardot. */
    scan_string("Content-Type: text/html\n\n"
                "<img src=\"https://www.google.com/images/branding/logo.png\" width=200>"
                "<img src=\"https://mail.google.com/mail/images/cleardot.png\" width=20>"
                "<img src=\"https://www.google.com/images/cleardot.gif\">",
                &r);
    assert_int_equal(1, r.n);
    assert_string_equal("google-cleardot", r.findings[0].matches[0].rule);
    sp_scan_report_free(&r);
}

/* ---- damaged input ----------------------------------------------------------------------------
 */

static void test_malformed(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    scan_ok(DATA "malformed.eml", &r);
    assert_int_equal(1, r.messages);
    /* Read as far as it goes: the pixels in the unclosed parts and the attached message. */
    assert_non_null(find(&r, "x.example/p.gif"));
    assert_non_null(find(&r, "nested.example/n.gif"));
    sp_scan_report_free(&r);
    char *out = strip_to_string(DATA "malformed.eml", &r);
    assert_null(strstr(out, "nested.example"));
    free(out);
    sp_scan_report_free(&r);
}

static void test_hostile_shapes(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    char err[256];
    /* Nothing at all, junk, a header without a body. */
    assert_int_equal(0, sp_scan_memory("empty", "", 0, &r, err, sizeof(err)));
    static const unsigned char junk[] = {0xff, 0x00, 0xfe, 'F', 'r', 'o', 'm', ' ', 0x00, '\n'};
    assert_int_equal(0, sp_scan_memory("junk", junk, sizeof(junk), &r, err, sizeof(err)));
    scan_string("Content-Type: text/html\n", &r);
    scan_string("From \n", &r); /* an mbox marker and nothing else */

    /* Multiparts nested far deeper than any mail. */
    GString *deep = g_string_new("To: a@example.com\n");
    for (int i = 0; i < 3000; i++)
        g_string_append_printf(deep, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n",
                               i, i);
    g_string_append(deep, "Content-Type: text/html\n\n<img src=\"https://deep.example/x.gif\" "
                          "width=1 height=1>\n");
    scan_string(deep->str, &r);
    g_string_free(deep, TRUE);

    /* HTML nested 100000 deep, an attribute of a megabyte, many trackers. */
    GString *html = g_string_new("Content-Type: text/html\n\n");
    for (int i = 0; i < 100000; i++)
        g_string_append(html, "<div style=\"display:none\">");
    g_string_append(html, "<img src=\"https://deeper.example/x.gif\">");
    g_string_append(html, "<img src=\"https://long.example/");
    for (int i = 0; i < 1 << 20; i++)
        g_string_append_c(html, 'a');
    g_string_append(html, "\" width=1 height=1>");
    for (int i = 0; i < 5000; i++)
        g_string_append_printf(html, "<img src=\"https://many.example/%d.gif\" width=1 height=1>",
                               i);
    scan_string(html->str, &r);
    assert_non_null(find(&r, "many.example/4999.gif"));
    assert_non_null(find(&r, "long.example/aaaa"));
    /* Past libxml2's default nesting limit, and hidden by its 100000 ancestors. */
    assert_string_equal("hidden-parent", must_find(&r, "deeper.example")->matches[0].rule);
    sp_scan_report_free(&r);

    /* Stripping it works as well, and leaves none of them. */
    char path[] = "/tmp/test_scan_deep_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)html->len, write(fd, html->str, html->len));
    close(fd);
    char *out = strip_to_string(path, &r);
    unlink(path);
    assert_int_equal(5002, r.removed);
    assert_null(strstr(out, "many.example"));
    assert_null(strstr(out, "deeper.example"));
    free(out);
    g_string_free(html, TRUE);
    sp_scan_report_free(&r);
}

/* ---- --strip ----------------------------------------------------------------------------------
 */

static void test_strip_newsletter(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    char *out = strip_to_string(DATA "newsletter.eml", &r);
    assert_int_equal(3, r.n);
    assert_int_equal(1, r.removed);   /* the pixel */
    assert_int_equal(2, r.rewritten); /* the mc_eid link, in both parts */
    assert_int_equal(2, r.kept);      /* the click-tracked link, in both parts */
    assert_null(strstr(out, "open.php"));
    assert_null(strstr(out, "mc_eid"));
    assert_non_null(strstr(out, "mc_cid=")); /* campaign-level: kept */
    assert_non_null(strstr(out, "track/click"));
    assert_non_null(strstr(out, "mcusercontent.com"));
    assert_non_null(strstr(out, "Message-ID: <20240603090000.abc123@mail.shop.example.com>"));

    /* What is left is found again: only the kept link. */
    sp_scan_report_t again = SP_SCAN_REPORT_INIT;
    scan_string(out, &again);
    assert_int_equal(1, again.n);
    assert_non_null(find(&again, "track/click"));
    sp_scan_report_free(&again);
    sp_scan_report_free(&r);
    free(out);
}

static void test_strip_redirects(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    char *out = strip_to_string(DATA "redirect.eml", &r);
    assert_int_equal(3, r.rewritten);
    assert_int_equal(1, r.kept);
    assert_non_null(strstr(out, "<a href=\"https://www.example.com/article?id=7\">Article</a>"));
    assert_non_null(strstr(out, "<a href=\"https://www.example.org/page?x=1\">"));
    assert_non_null(strstr(out, "<a href=\"https://docs.example.com/guide\">SES</a>"));
    assert_non_null(strstr(out, "ct.sendgrid.net")); /* destination unknown: kept */
    assert_null(strstr(out, "click.tracker.example"));
    assert_null(strstr(out, "awstrack.me"));
    sp_scan_report_free(&r);
    free(out);
}

static void test_strip_hidden_and_assorted(void **state)
{
    (void)state;
    static const char *const files[] = {DATA "hidden-css.eml", DATA "assorted.eml",
                                        DATA "qp-softbreak.eml", DATA "base64-html.eml",
                                        DATA "recipient-id.eml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        sp_scan_report_t r = SP_SCAN_REPORT_INIT, again = SP_SCAN_REPORT_INIT;
        char *out = strip_to_string(files[i], &r);
        assert_true(r.removed > 0);
        scan_string(out, &again);
        /* Only links whose destination the tracker alone knows, and links carrying the
         * address (an account link needs it), are left. */
        for (size_t k = 0; k < again.n; k++)
            if (SP_SCAN_LINK != again.findings[k].kind)
                fail_msg("%s: still there after --strip: %s", files[i], again.findings[k].url);
        sp_scan_report_free(&again);
        sp_scan_report_free(&r);
        free(out);
    }
}

static void test_strip_keeps_text(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    char *out = strip_to_string(DATA "hidden-css.eml", &r);
    /* Rewritten as UTF-8 and declared so; the text stays. */
    assert_non_null(strstr(out, "charset=utf-8"));
    assert_non_null(strstr(out, "Dear Bob, here is the quarterly update."));
    assert_non_null(strstr(out, "Preview text for the inbox"));
    assert_non_null(strstr(out, "background-image:none"));
    free(out);
    sp_scan_report_free(&r);

    out = strip_to_string(DATA "qp-softbreak.eml", &r);
    /* windows-1252 text came through the charset conversion: "Café au lait – news". */
    assert_non_null(strstr(out, "quoted-printable"));
    assert_non_null(strstr(out, "Caf=C3=A9 au lait =E2=80=93 news"));
    free(out);
    sp_scan_report_free(&r);

    out = strip_to_string(DATA "assorted.eml", &r);
    assert_null(strstr(out, "Disposition-Notification-To"));
    assert_non_null(strstr(out, "<!--[if mso]><![endif]-->"));
    assert_non_null(strstr(out, "url(https://cdn.sales.example/logo.png)"));
    free(out);
    sp_scan_report_free(&r);
}

static void test_strip_engagement(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT, again = SP_SCAN_REPORT_INIT;
    char *out = strip_to_string(DATA "engagement.eml", &r);
    assert_int_equal(6, r.removed);
    /* The MIME structure and the encodings stay; the plain-text part is untouched. */
    assert_non_null(strstr(out, "Content-Type: multipart/alternative"));
    assert_non_null(strstr(out, "boundary=\"===============0795818366676672649==\""));
    assert_non_null(strstr(out, "--===============0795818366676672649==--"));
    assert_non_null(strstr(out, "Content-Type: text/plain; charset=\"utf-8\""));
    assert_non_null(strstr(out, "Content-Transfer-Encoding: quoted-printable"));
    assert_non_null(strstr(out, "Dear Fergus, the soil is warm enough: here is what to sow this "
                                "week.\nGarden Weekly, 4 Potting Lane."));
    scan_string(out, &again);
    assert_int_equal(1, again.messages);
    for (size_t k = 0; k < again.n; k++)
        fail_msg("still there after --strip: %s", again.findings[k].url);
    sp_scan_report_free(&again);
    /* Nothing of the trackers is left, not even their rules. */
    assert_null(strstr(out, "8f3a2c71"));
    assert_null(strstr(out, "OutlookMessageHeader"));
    assert_null(strstr(out, "eoapxl"));
    assert_null(strstr(out, "e1t/o"));
    assert_null(strstr(out, "niftyimages"));
    /* The rest of the styles and the content stay, quoted-printable as before. */
    assert_non_null(strstr(out, ".noprint { display: none; }"));
    assert_non_null(strstr(out, "body { margin: 0; font-family: Georgia, serif; }"));
    assert_non_null(strstr(out, "hero-small.jpg"));
    assert_non_null(strstr(out, "<h1>Spring planting guide</h1>"));
    assert_non_null(strstr(out, "<p>Sale ends in 3 days</p>")); /* the countdown's alt text */
    assert_non_null(strstr(out, "tomatoes.jpg"));
    sp_scan_report_free(&r);
    free(out);

    out = strip_to_string(DATA "cleardot.eml", &r);
    assert_int_equal(2, r.removed);
    assert_non_null(strstr(out, "Content-Transfer-Encoding: base64"));
    assert_null(strstr(out, "cleardot.gif"));
    scan_string(out, &again);
    assert_int_equal(0, again.n);
    sp_scan_report_free(&again);
    sp_scan_report_free(&r);
    free(out);
}

static void test_strip_mbox(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT, again = SP_SCAN_REPORT_INIT;
    char *out = strip_to_string(DATA "three.mbox", &r);
    assert_int_equal(3, r.messages);
    assert_true(0 == strncmp(out, "From news@one.example Mon Jun  3 09:00:00 2024\n", 47));
    assert_non_null(strstr(out, "\n\nFrom friend@two.example Mon Jun  3 10:00:00 2024\n"));
    assert_non_null(strstr(out, "\n\nFrom promo@three.example Mon Jun  3 11:00:00 2024\n"));
    assert_non_null(strstr(out, ">From the archives"));
    assert_non_null(strstr(out, "Read it here: https://three.example/post/42\n"));
    scan_string(out, &again);
    assert_int_equal(3, again.messages);
    assert_int_equal(0, again.n);
    sp_scan_report_free(&again);
    sp_scan_report_free(&r);
    free(out);
}

static void test_strip_clean_is_unchanged(void **state)
{
    (void)state;
    sp_scan_report_t r = SP_SCAN_REPORT_INIT;
    size_t len;
    char *in = read_file(DATA "clean.eml", &len);
    char *out = strip_to_string(DATA "clean.eml", &r);
    assert_int_equal(len, strlen(out));
    assert_memory_equal(in, out, len);
    free(in);
    free(out);
    sp_scan_report_free(&r);
}

/* ---- link destinations ------------------------------------------------------------------------
 */

static void test_link_target(void **state)
{
    (void)state;
    static const struct {
        const char *url, *target; /* NULL: none */
    } cases[] = {
        {"https://www.google.com/url?q=https://example.org/a&sa=D", "https://example.org/a"},
        {"https://r.example.net/t?u=https%253A%252F%252Fexample.org%252Fb", /* twice encoded */
         "https://example.org/b"},
        {"https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fr20.rs6.net%2Ftn.jsp"
         "%3Fe%3D1%26redirect%3Dhttps%253A%252F%252Fexample.org%252Fc&data=05",
         "https://example.org/c"}, /* Safe Links around Constant Contact */
        {"https://links.example.net/c?redirect=https%3A%2F%2Fshop.example%2F%3Fid%3D4%26mc_eid%3D9"
         "%26x%3D1",
         "https://shop.example/?id=4&x=1"}, /* cleaned of the recipient's ID */
        {"https://www.facebook.com/sharer/sharer.php?u=https%3A%2F%2Fexample.org", NULL},
        {"https://example.org/login?next=https://www.example.org/home", NULL},
        {"https://example.org/page?url=not-a-url", NULL},
        {"https://example.org/page?u=javascript:alert(1)", NULL},
        {"mailto:someone@example.org", NULL},
        {"not a url", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = sp_scan_link_target(cases[i].url);
        if (!cases[i].target && t)
            fail_msg("%s: unexpected target %s", cases[i].url, t);
        if (cases[i].target && (!t || 0 != strcmp(t, cases[i].target)))
            fail_msg("%s: target %s, expected %s", cases[i].url, t ? t : "(none)", cases[i].target);
        free(t);
    }
}

/* ---- the command ------------------------------------------------------------------------------
 */

static int run_main(int argc, char **argv, char **captured)
{
    char path[] = "/tmp/test_scan_out_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    int rc = sp_scan_main(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(fd);
    size_t len;
    *captured = read_file(path, &len);
    unlink(path);
    return rc;
}

static void test_main_missing_file(void **state)
{
    (void)state;
    char *out;
    char *missing[] = {"tests/data/scan/no-such-file.eml"};
    assert_int_not_equal(0, run_main(1, missing, &out));
    free(out);
    char *dir[] = {"--json", "tests/data/scan"};
    assert_int_not_equal(0, run_main(2, dir, &out));
    free(out);
    /* One unreadable file among good ones: the others are still reported. */
    char *mixed[] = {"--json", DATA "qp-softbreak.eml", DATA "no-such-file.eml"};
    assert_int_equal(1, run_main(3, mixed, &out));
    json_error_t jerr;
    json_t *list = json_loads(out, 0, &jerr);
    assert_non_null(list);
    assert_int_equal(1, json_array_size(list));
    json_decref(list);
    free(out);
}

static void test_main_usage(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(2, run_main(0, NULL, &out));
    free(out);
    char *bad[] = {"--no-such-flag", DATA "clean.eml"};
    assert_int_equal(2, run_main(2, bad, &out));
    free(out);
    char *two[] = {"--strip", DATA "clean.eml", DATA "redirect.eml"};
    assert_int_equal(2, run_main(3, two, &out));
    free(out);
    char *help[] = {"--help"};
    assert_int_equal(0, run_main(1, help, &out));
    assert_non_null(strstr(out, "usage: spypixel scan"));
    assert_non_null(strstr(out, "--strip"));
    free(out);
}

static void test_main_json(void **state)
{
    (void)state;
    char *out;
    char *argv[] = {"--json", DATA "newsletter.eml", DATA "three.mbox", DATA "clean.eml"};
    assert_int_equal(0, run_main(4, argv, &out));
    json_error_t jerr;
    json_t *list = json_loads(out, 0, &jerr);
    if (!list)
        fail_msg("not JSON (%s): %s", jerr.text, out);
    assert_true(json_is_array(list));
    assert_int_equal(6, json_array_size(list));
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        assert_true(json_is_string(json_object_get(f, "url")));
        assert_true(json_is_string(json_object_get(f, "reason")));
        assert_true(json_is_string(json_object_get(f, "kind")));
        assert_true(json_is_string(json_object_get(f, "file")));
        assert_true(json_is_integer(json_object_get(f, "message")));
        assert_true(json_is_array(json_object_get(f, "rules")));
    }
    json_t *last = json_array_get(list, 5);
    assert_string_equal(DATA "three.mbox", json_string_value(json_object_get(last, "file")));
    assert_int_equal(3, json_integer_value(json_object_get(last, "message")));
    assert_string_equal("link", json_string_value(json_object_get(last, "kind")));
    assert_string_equal("https://example.com", json_string_value(json_object_get(last, "target")));
    json_decref(list);
    free(out);

    char *table[] = {DATA "three.mbox"};
    assert_int_equal(0, run_main(1, table, &out));
    assert_non_null(strstr(out, "three.mbox, message 2: no trackers found"));
    assert_non_null(strstr(out, "3 trackers in 2 of 3 messages"));
    free(out);

    char *strip[] = {"--strip", DATA "redirect.eml"};
    assert_int_equal(0, run_main(2, strip, &out));
    assert_non_null(strstr(out, "https://www.example.com/article?id=7"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newsletter),
        cmocka_unit_test(test_hidden_css),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_recipient_ids),
        cmocka_unit_test(test_clean_message),
        cmocka_unit_test(test_quoted_printable_soft_breaks),
        cmocka_unit_test(test_base64_html),
        cmocka_unit_test(test_mbox),
        cmocka_unit_test(test_assorted),
        cmocka_unit_test(test_engagement),
        cmocka_unit_test(test_cleardot),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_hostile_shapes),
        cmocka_unit_test(test_strip_newsletter),
        cmocka_unit_test(test_strip_redirects),
        cmocka_unit_test(test_strip_hidden_and_assorted),
        cmocka_unit_test(test_strip_keeps_text),
        cmocka_unit_test(test_strip_engagement),
        cmocka_unit_test(test_strip_mbox),
        cmocka_unit_test(test_strip_clean_is_unchanged),
        cmocka_unit_test(test_link_target),
        cmocka_unit_test(test_main_missing_file),
        cmocka_unit_test(test_main_usage),
        cmocka_unit_test(test_main_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
