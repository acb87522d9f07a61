/* Unit tests for classify: real agents, prefetch headers, self-views, Apple egress ranges. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "classify.h"

/* ---- helpers -------------------------------------------------------------------------------- */

typedef struct headers {
    const char *kv[16]; /* name, value, name, value, ..., NULL */
} headers_t;

static const char *header_cb(const void *ctx, const char *name)
{
    const headers_t *h = ctx;
    for (size_t i = 0; h->kv[i]; i += 2)
        if (0 == strcasecmp(h->kv[i], name))
            return h->kv[i + 1];
    return NULL;
}

static sp_net_addr_t addr_of(const char *text)
{
    sp_net_addr_t a;
    assert_int_equal(0, sp_net_parse(text, &a));
    return a;
}

/* Classifies an image load of UA from IP (either may be NULL). */
static sp_classify_result_t run(const sp_classifier_t *c, const char *ua, const char *ip,
                                bool click)
{
    sp_net_addr_t a;
    sp_classify_input_t in = {.is_click = click, .user_agent = ua};
    if (ip) {
        a = addr_of(ip);
        in.peer = &a;
    }
    sp_classify_result_t r = {.klass = SP_CLASS_COUNT, .rule = NULL, .via = NULL};
    sp_classify(c, &in, &r);
    return r;
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_classify_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(0, fclose(f));
    return path;
}

/* ---- real agents ---------------------------------------------------------------------------- */

typedef struct ua_case {
    const char *ua;
    const char *ip;
    bool click;
    sp_class_t klass;
    const char *rule;
    const char *via; /* expected via, NULL for none */
} ua_case_t;

static const ua_case_t ua_cases[] = {
    /* Mail clients a person reads with. */
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "203.0.113.9", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)", "198.51.100.4",
     false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
     "198.51.100.4", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Mobile/15E148",
     "198.51.100.4", false, SP_CLASS_HUMAN, "default-human", NULL},
    /* Android Gmail app and Samsung Email render mail in a WebView ("; wv)"). */
    {"Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36",
     "198.51.100.4", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36",
     "198.51.100.4", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
     "198.51.100.4", true, SP_CLASS_HUMAN, "default-human", NULL},
    /* A real EdgeHTML 12 agent is not Gmail's prefetch string: the match is exact. */
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246",
     "198.51.100.4", false, SP_CLASS_HUMAN, "default-human", NULL},
    /* An Android phone whose model name ends in "bot". */
    {"Mozilla/5.0 (Linux; Android 11; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Mobile Safari/537.36",
     "198.51.100.4", false, SP_CLASS_HUMAN, "cubot-phone", NULL},
    /* "bot" inside a word is no bot. */
    {"Mozilla/5.0 (X11; Linux x86_64) Abbott/1.0", "198.51.100.4", false, SP_CLASS_HUMAN,
     "default-human", NULL},

    /* Apple Mail Privacy Protection: the bare agent from Apple's network only. */
    {"Mozilla/5.0", "17.58.1.1", false, SP_CLASS_MACHINE, "apple-mpp",
     "Apple Mail Privacy Protection"},
    {"Mozilla/5.0", "17.0.0.0", false, SP_CLASS_MACHINE, "apple-mpp",
     "Apple Mail Privacy Protection"},
    {"Mozilla/5.0", "17.255.255.255", false, SP_CLASS_MACHINE, "apple-mpp",
     "Apple Mail Privacy Protection"},
    {"Mozilla/5.0", "203.0.113.9", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0", "16.255.255.255", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0", "18.0.0.0", false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0", NULL, false, SP_CLASS_HUMAN, "default-human", NULL},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "17.58.1.1", false, SP_CLASS_HUMAN, "default-human", NULL},

    /* Providers' image proxies and Gmail's delivery-time prefetch. */
    {"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "66.249.84.1", false, SP_CLASS_PROXY, "gmail-image-proxy", "GoogleImageProxy (Gmail)"},
    {"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "66.249.84.1", true, SP_CLASS_MACHINE, "image-proxy-click", "mail image proxy"},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0",
     "108.177.2.32", false, SP_CLASS_MACHINE, "gmail-prefetch", "Gmail prefetch"},
    {"YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "87.248.110.1",
     false, SP_CLASS_PROXY, "yahoo-mail-proxy", "YahooMailProxy (Yahoo Mail)"},
    {"Mozilla/5.0 (compatible; YahooMailProxy; https://help.yahoo.com/kb/"
     "yahoo-mail-proxy-SLN28749.html)",
     "87.248.110.1", false, SP_CLASS_PROXY, "yahoo-mail-proxy", "YahooMailProxy (Yahoo Mail)"},
    {"Mozilla/5.0 (compatible; OutlookImageProxy)", "40.94.1.1", false, SP_CLASS_PROXY,
     "outlook-image-proxy", "Outlook.com image proxy"},

    /* Link checks and security scanners that name themselves. */
    {"Microsoft Office Existence Discovery", "40.94.1.1", true, SP_CLASS_MACHINE,
     "ms-office-link-probe", "Microsoft Office link check"},
    {"Microsoft Office Protocol Discovery", "40.94.1.1", true, SP_CLASS_MACHINE,
     "ms-office-link-probe", "Microsoft Office link check"},
    {"Barracuda Sentinel (EE)", "64.235.144.1", false, SP_CLASS_MACHINE, "barracuda", "Barracuda"},
    {"Mozilla/5.0 (compatible; Proofpoint URL Defense)", "148.163.1.1", true, SP_CLASS_MACHINE,
     "proofpoint", "Proofpoint"},
    {"Mimecast URL Protect/1.0", "205.139.110.1", true, SP_CLASS_MACHINE, "mimecast", "Mimecast"},
    {"Mozilla/5.0 (compatible; Cisco IronPort URL filter)", "198.51.100.9", true, SP_CLASS_MACHINE,
     "cisco-ironport", "Cisco Secure Email (IronPort)"},
    {"MessageLabs link scanner", "198.51.100.9", true, SP_CLASS_MACHINE, "symantec-messagelabs",
     "Symantec / Broadcom (MessageLabs)"},
    {"TrendMicro WRS", "198.51.100.9", true, SP_CLASS_MACHINE, "trend-micro", "Trend Micro"},
    {"Sophos Email Scanner", "198.51.100.9", true, SP_CLASS_MACHINE, "sophos", "Sophos"},
    {"FireEye-URL-Analysis/1.0", "198.51.100.9", true, SP_CLASS_MACHINE, "trellix-fireeye",
     "Trellix (FireEye)"},

    /* Previews, headless browsers, libraries, crawlers. */
    {"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "31.13.1.1", true,
     SP_CLASS_MACHINE, "link-preview", "link preview"},
    {"WhatsApp/2.23.20.0 A", "198.51.100.9", true, SP_CLASS_MACHINE, "link-preview",
     "link preview"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/129.0.0.0 Safari/537.36",
     "198.51.100.9", false, SP_CLASS_MACHINE, "headless-browser", "headless browser"},
    {"curl/8.4.0", "198.51.100.9", false, SP_CLASS_MACHINE, "http-library", "HTTP library"},
    {"python-requests/2.31.0", "198.51.100.9", true, SP_CLASS_MACHINE, "http-library",
     "HTTP library"},
    {"Go-http-client/1.1", "198.51.100.9", false, SP_CLASS_MACHINE, "http-library", "HTTP library"},
    {"Wget/1.21.3", "198.51.100.9", false, SP_CLASS_MACHINE, "http-library", "HTTP library"},
    {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "66.249.66.1",
     true, SP_CLASS_MACHINE, "generic-bot", "bot"},
    {"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "198.51.100.9", true,
     SP_CLASS_MACHINE, "generic-bot", "bot"},
    {"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
     "198.51.100.9", false, SP_CLASS_MACHINE, "generic-bot", "bot"},
};

static void test_real_agents(void **state)
{
    sp_classifier_t *c = *state;
    /* Three passes: the first fills the user-agent cache, the others answer from it, and
     * the same agent from another address (Apple's rule) must still be told apart. */
    for (size_t pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < sizeof(ua_cases) / sizeof(ua_cases[0]); i++) {
            const ua_case_t *t = &ua_cases[i];
            sp_classify_result_t r = run(c, t->ua, t->ip, t->click);
            if (r.klass != t->klass || !r.rule || 0 != strcmp(r.rule, t->rule))
                fail_msg("case %zu \"%s\" from %s: got %s/%s, want %s/%s", i, t->ua,
                         t->ip ? t->ip : "(none)", sp_class_name(r.klass),
                         r.rule ? r.rule : "(null)", sp_class_name(t->klass), t->rule);
            if (t->via)
                assert_string_equal(t->via, r.via);
            else
                assert_null(r.via);
        }
}

/* More agents than the cache has slots, twice over: evictions and collisions never change a
 * result. */
static void test_ua_cache_churn(void **state)
{
    sp_classifier_t *c = *state;
    char ua[96];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 3000; i++) {
            bool bot = 0 == i % 3;
            snprintf(ua, sizeof(ua), bot ? "Crawl%dbot/1.0" : "Mozilla/5.0 Client/%d", i);
            sp_classify_result_t r = run(c, ua, "198.51.100.7", false);
            assert_int_equal(bot ? SP_CLASS_MACHINE : SP_CLASS_HUMAN, r.klass);
            assert_string_equal(bot ? "generic-bot" : "default-human", r.rule);
        }
}

static void test_null_inputs(void **state)
{
    sp_classifier_t *c = *state;
    sp_classify_input_t in = {0};
    sp_classify_result_t r = {.klass = SP_CLASS_MACHINE, .rule = "x", .via = "x"};

    sp_classify(c, &in, &r); /* no agent, no peer, no header callback */
    assert_int_equal(SP_CLASS_HUMAN, r.klass);
    assert_string_equal("default-human", r.rule);
    assert_null(r.via);

    r.klass = SP_CLASS_MACHINE;
    sp_classify(c, NULL, &r);
    assert_int_equal(SP_CLASS_HUMAN, r.klass);
    assert_string_equal("default-human", r.rule);

    /* A NULL classifier still knows Apple's own network. */
    r = run(NULL, "Mozilla/5.0", "17.1.2.3", false);
    assert_string_equal("apple-mpp", r.rule);
    r = run(NULL, "Mozilla/5.0", "172.224.226.5", false);
    assert_string_equal("default-human", r.rule);
    r = run(NULL, "", "198.51.100.1", false);
    assert_string_equal("default-human", r.rule);
    assert_int_equal(0, sp_classify_egress_count(NULL));
}

/* ---- prefetch headers ----------------------------------------------------------------------- */

static sp_classify_result_t with_headers(const headers_t *h, const char *ua)
{
    sp_net_addr_t a = addr_of("198.51.100.20");
    sp_classify_input_t in = {.user_agent = ua, .peer = &a, .header = header_cb, .header_ctx = h};
    sp_classify_result_t r;
    sp_classify(NULL, &in, &r);
    return r;
}

static void test_prefetch_headers(void **state)
{
    (void)state;
    const char *chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                         "like Gecko) Chrome/129.0.0.0 Safari/537.36";
    static const struct {
        headers_t h;
        const char *rule; /* NULL: a person's view */
    } cases[] = {
        {{{"Sec-Purpose", "prefetch", NULL}}, "sec-purpose-prefetch"},
        {{{"sec-purpose", "prefetch;prerender", NULL}}, "sec-purpose-prefetch"},
        {{{"Sec-Purpose", " Prefetch; anonymous-client-ip", NULL}}, "sec-purpose-prefetch"},
        {{{"Purpose", "prefetch", NULL}}, "purpose-prefetch"},
        {{{"X-Moz", "prefetch", NULL}}, "x-moz-prefetch"},
        {{{"X-Purpose", "preview", NULL}}, "x-purpose-preview"},
        {{{"X-Purpose", "prefetch", NULL}}, "x-purpose-preview"},
        {{{"Accept", "image/*", "X-Purpose", "PREVIEW", NULL}}, "x-purpose-preview"},
        /* Look-alikes that are not prefetches. */
        {{{"Purpose", "prefetching", NULL}}, NULL},
        {{{"X-Moz", "", NULL}}, NULL},
        {{{"X-Purpose", "view", NULL}}, NULL},
        {{{"Accept", "prefetch", NULL}}, NULL},
        {{{NULL}}, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sp_classify_result_t r = with_headers(&cases[i].h, chrome);
        const char *want = cases[i].rule ? cases[i].rule : "default-human";
        if (0 != strcmp(want, r.rule))
            fail_msg("prefetch case %zu: got %s, want %s", i, r.rule, want);
        assert_int_equal(cases[i].rule ? SP_CLASS_MACHINE : SP_CLASS_HUMAN, r.klass);
    }

    /* A prefetch through Gmail's proxy is still a prefetch. */
    headers_t h = {{"Sec-Purpose", "prefetch", NULL}};
    sp_classify_result_t r = with_headers(&h, "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko "
                                              "Firefox/11.0 (via ggpht.com GoogleImageProxy)");
    assert_string_equal("sec-purpose-prefetch", r.rule);
    assert_int_equal(SP_CLASS_MACHINE, r.klass);
}

/* ---- self-views ----------------------------------------------------------------------------- */

static void test_self_wins(void **state)
{
    sp_classifier_t *c = *state;
    headers_t h = {{"Sec-Purpose", "prefetch", NULL}};
    sp_net_addr_t apple = addr_of("17.58.1.1");
    sp_classify_input_t in = {
        .user_agent = "Mozilla/5.0", .peer = &apple, .header = header_cb, .header_ctx = &h};
    sp_classify_result_t r;

    sp_classify(c, &in, &r); /* without a flag, the prefetch header decides */
    assert_string_equal("sec-purpose-prefetch", r.rule);

    in.self_ip = true;
    sp_classify(c, &in, &r);
    assert_int_equal(SP_CLASS_SELF, r.klass);
    assert_string_equal("self-ip", r.rule);
    assert_null(r.via);

    in.self_cookie = true;
    sp_classify(c, &in, &r);
    assert_string_equal("self-cookie", r.rule);

    in.self_referer = true;
    sp_classify(c, &in, &r);
    assert_string_equal("self-referer", r.rule);

    /* Each flag alone, against a scanner and a proxy. */
    sp_classify_input_t scan = {
        .is_click = true, .user_agent = "Barracuda Sentinel (EE)", .self_cookie = true};
    sp_classify(c, &scan, &r);
    assert_int_equal(SP_CLASS_SELF, r.klass);
    assert_string_equal("self-cookie", r.rule);
    sp_classify_input_t proxy = {.user_agent = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko "
                                               "Firefox/11.0 (via ggpht.com GoogleImageProxy)",
                                 .self_referer = true};
    sp_classify(c, &proxy, &r);
    assert_int_equal(SP_CLASS_SELF, r.klass);
    assert_string_equal("self-referer", r.rule);
}

/* ---- the Apple egress file ------------------------------------------------------------------ */

static void test_egress_file(void **state)
{
    (void)state;
    char *path = write_temp("# Apple iCloud Private Relay egress ranges\n"
                            "172.224.226.0/27,GB,GB-EN,London,\n"
                            "\n"
                            "  104.28.0.0/24  \n"
                            "2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,\n"
                            "192.0.2.7 # one address\n"
                            "10.9.8.77/24\r\n"
                            "2a02:26f7:ffff::/48,US,US-CA,Los Angeles,");
    char err[256] = "";
    sp_classifier_t *c = sp_classify_open(path, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(6, sp_classify_egress_count(c));

    static const struct {
        const char *ip;
        bool apple;
    } probes[] = {
        {"172.224.226.0", true},
        {"172.224.226.5", true},
        {"172.224.226.31", true},
        {"172.224.226.32", false},
        {"172.224.225.255", false},
        {"104.28.0.0", true},
        {"104.28.0.255", true},
        {"104.28.1.0", false},
        {"192.0.2.7", true},
        {"192.0.2.6", false},
        {"192.0.2.8", false},
        {"10.9.8.0", true},
        {"10.9.8.255", true},
        {"10.9.9.0", false},
        {"2a02:26f7:b3c0:4000::", true},
        {"2a02:26f7:b3c0:4000:ffff:ffff:ffff:ffff", true},
        {"2a02:26f7:b3c0:4001::", false},
        {"2a02:26f7:b3c0:3fff:ffff:ffff:ffff:ffff", false},
        {"2a02:26f7:ffff:ffff::1", true},
        {"2a02:26f8::", false},
        {"17.2.3.4", true},
        {"::1", false},
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        sp_classify_result_t r = run(c, "Mozilla/5.0", probes[i].ip, false);
        if (probes[i].apple != (0 == strcmp("apple-mpp", r.rule)))
            fail_msg("%s: got %s, want %s", probes[i].ip, r.rule,
                     probes[i].apple ? "apple-mpp" : "default-human");
    }
    /* The range alone is not enough: a full agent from a relay address is a person's client. */
    sp_classify_result_t r = run(c,
                                 "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
                                 "AppleWebKit/605.1.15 (KHTML, like Gecko)",
                                 "172.224.226.5", false);
    assert_string_equal("default-human", r.rule);
    sp_classify_close(c);

    /* Without the file, the same relay address is not Apple's. */
    c = sp_classify_open(NULL, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(0, sp_classify_egress_count(c));
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "172.224.226.5", false).rule);
    sp_classify_close(c);

    unlink(path);
    free(path);
}

static void test_egress_errors(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *text;
        const char *want; /* in the message */
    } bad[] = {
        {"17.0.0.0/8\n# ok so far\nnot-an-ip,GB,GB-EN,London,\n", "line 3"},
        {"1.2.3.0/33\n", "line 1"},
        {"1.2.3.0/24\n\n\n2001:db8::/129\n", "line 4"},
        {"1.2.3.0/24 4.5.6.0/24\n", "line 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *path = write_temp(bad[i].text);
        err[0] = '\0';
        sp_classifier_t *c = sp_classify_open(path, err, sizeof(err));
        assert_null(c);
        if (!strstr(err, bad[i].want) || !strstr(err, path))
            fail_msg("case %zu: message \"%s\" lacks \"%s\" or the path", i, err, bad[i].want);
        unlink(path);
        free(path);
    }

    err[0] = '\0';
    assert_null(sp_classify_open("/nonexistent/egress-ip-ranges.csv", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/egress-ip-ranges.csv"));

    /* An empty file (or only comments) is valid and adds nothing. */
    char *path = write_temp("# nothing yet\n\n");
    sp_classifier_t *c = sp_classify_open(path, NULL, 0);
    assert_non_null(c);
    assert_int_equal(0, sp_classify_egress_count(c));
    sp_classify_close(c);
    unlink(path);
    free(path);
}

/* Many disjoint ranges written in scrambled order: bisection must find each edge. */
static void test_egress_bisection(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = (size_t)N * 40 + 256, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    /* 10.a.b.0/25 for i = a*256+b; 7919 is prime to N, so this visits every i once. */
    for (size_t k = 0; k < N; k++) {
        size_t i = (k * 7919) % N;
        len += (size_t)snprintf(text + len, cap - len, "10.%zu.%zu.0/25,XX,XX-YY,Town,\n", i / 256,
                                i % 256);
    }
    /* Nested and overlapping ranges: a /16 holding two /24s that start after it. */
    len += (size_t)snprintf(text + len, cap - len,
                            "20.0.5.0/24\n20.0.0.0/16\n20.0.200.0/22\n20.0.100.0/24\n");
    char *path = write_temp(text);
    free(text);

    char err[256] = "";
    sp_classifier_t *c = sp_classify_open(path, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(N + 4, sp_classify_egress_count(c));

    char ip[32];
    for (size_t i = 0; i < N; i += 97) {
        static const struct {
            unsigned host;
            bool in;
        } edge[] = {{0, true}, {1, true}, {126, true}, {127, true}, {128, false}, {255, false}};
        for (size_t e = 0; e < sizeof(edge) / sizeof(edge[0]); e++) {
            snprintf(ip, sizeof(ip), "10.%zu.%zu.%u", i / 256, i % 256, edge[e].host);
            bool got = 0 == strcmp("apple-mpp", run(c, "Mozilla/5.0", ip, false).rule);
            if (got != edge[e].in)
                fail_msg("%s: got %d, want %d", ip, got, edge[e].in);
        }
    }
    /* The last range's edges, and the addresses just outside the whole list. */
    assert_string_equal("apple-mpp", run(c, "Mozilla/5.0", "10.78.31.127", false).rule);
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "10.78.31.128", false).rule);
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "10.78.32.0", false).rule);
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "9.255.255.255", false).rule);
    assert_string_equal("apple-mpp", run(c, "Mozilla/5.0", "10.0.0.0", false).rule);

    /* Inside the /16 after the nested /24s: a search that stops at the nested range misses. */
    assert_string_equal("apple-mpp", run(c, "Mozilla/5.0", "20.0.250.1", false).rule);
    assert_string_equal("apple-mpp", run(c, "Mozilla/5.0", "20.0.255.255", false).rule);
    assert_string_equal("apple-mpp", run(c, "Mozilla/5.0", "20.0.6.0", false).rule);
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "20.1.0.0", false).rule);
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "19.255.255.255", false).rule);
    /* An IPv6 address whose bytes sort between the ranges matches none. */
    assert_string_equal("default-human", run(c, "Mozilla/5.0", "::a00:1", false).rule);

    sp_classify_close(c);
    unlink(path);
    free(path);
}

/* ---- the rule table and names --------------------------------------------------------------- */

static void test_rule_table(void **state)
{
    sp_classifier_t *c = *state;
    size_t n = 0;
    const sp_classify_rule_info_t *rules = sp_classify_rules(&n);
    assert_non_null(rules);
    assert_true(n >= 20);
    assert_ptr_equal(rules, sp_classify_rules(NULL));

    for (size_t i = 0; i < n; i++) {
        assert_non_null(rules[i].name);
        assert_true(strlen(rules[i].name) > 0 && strlen(rules[i].name) < 64); /* event.rule */
        assert_true((unsigned)rules[i].klass < SP_CLASS_COUNT);
        assert_non_null(rules[i].reason);
        assert_true(strlen(rules[i].reason) >= 40);
        assert_non_null(rules[i].source);
        assert_true(strlen(rules[i].source) > 0);
        for (size_t j = 0; j < i; j++)
            if (0 == strcmp(rules[i].name, rules[j].name))
                fail_msg("rule name \"%s\" appears twice", rules[i].name);
        /* Machine and proxy results say who fetched; human and self ones never do. */
        if (SP_CLASS_PROXY == rules[i].klass || SP_CLASS_MACHINE == rules[i].klass)
            assert_non_null(rules[i].via);
        else
            assert_null(rules[i].via);
    }
    /* Self-views first, the default last. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(SP_CLASS_SELF, rules[i].klass);
    for (size_t i = 3; i < n; i++)
        assert_int_not_equal(SP_CLASS_SELF, rules[i].klass);
    assert_string_equal("default-human", rules[n - 1].name);
    assert_int_equal(SP_CLASS_HUMAN, rules[n - 1].klass);

    /* A result's rule is the table's own static string, and its class is the table's. */
    sp_classify_result_t r = run(c, "YahooMailProxy", NULL, false);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (r.rule == rules[i].name) {
            found = true;
            assert_int_equal(rules[i].klass, r.klass);
            assert_ptr_equal(rules[i].via, r.via);
        }
    assert_true(found);
}

static void test_class_names(void **state)
{
    (void)state;
    static const char *const names[] = {"human", "proxy", "machine", "self"};
    for (unsigned i = 0; i < SP_CLASS_COUNT; i++) {
        sp_class_t k = SP_CLASS_COUNT;
        assert_string_equal(names[i], sp_class_name((sp_class_t)i));
        assert_int_equal(0, sp_class_from_name(names[i], &k));
        assert_int_equal(i, k);
    }
    assert_int_equal(0, SP_CLASS_HUMAN); /* stored as an integer in events */
    assert_string_equal("unknown", sp_class_name(SP_CLASS_COUNT));
    sp_class_t k = SP_CLASS_PROXY;
    assert_int_equal(-1, sp_class_from_name("Human", &k));
    assert_int_equal(-1, sp_class_from_name("", &k));
    assert_int_equal(-1, sp_class_from_name("bot", &k));
    assert_int_equal(-1, sp_class_from_name(NULL, &k));
    assert_int_equal(SP_CLASS_PROXY, k);
}

static int setup(void **state)
{
    char err[128];
    *state = sp_classify_open(NULL, err, sizeof(err));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sp_classify_close(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_agents),   cmocka_unit_test(test_ua_cache_churn),
        cmocka_unit_test(test_null_inputs),   cmocka_unit_test(test_prefetch_headers),
        cmocka_unit_test(test_self_wins),     cmocka_unit_test(test_egress_file),
        cmocka_unit_test(test_egress_errors), cmocka_unit_test(test_egress_bisection),
        cmocka_unit_test(test_rule_table),    cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
