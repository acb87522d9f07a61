/* classify: the class of every open and click (human, proxy, machine, self), from a rule table. */
/* SPDX-License-Identifier: MIT */
#include "classify.h"
#include "text.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- How a rule matches ------------------------------------------------------------------ */

typedef enum match_kind {
    MATCH_ALWAYS,       /* the default rule, last in the table */
    MATCH_SELF_REFERER, /* the input's self flags, decided by the caller */
    MATCH_SELF_COOKIE,
    MATCH_SELF_IP,
    MATCH_HEADER_TOKEN, /* header HEADER's first token (before ; , or space) is one of PATS */
    MATCH_UA_EXACT,     /* the user agent is one of PATS, byte for byte */
    MATCH_UA_PREFIX,    /* the user agent starts with one of PATS */
    MATCH_UA_CONTAINS,  /* the user agent contains one of PATS */
    MATCH_UA_WORD_END,  /* ... where the match is not followed by a letter ("Googlebot/2.1") */
} match_kind_t;

/* Only MATCH_UA_EXACT is case-sensitive: the other agent and header patterns ignore ASCII case,
 * because vendors change the case of their tokens between versions. */

typedef enum net_cond {
    NET_ANY,   /* any address, or none */
    NET_APPLE, /* an Apple network: apple_networks below or the --apple-egress file */
} net_cond_t;

typedef enum when {
    ON_ANY,   /* opens and clicks */
    ON_CLICK, /* tracked-link clicks only */
} when_t;

typedef struct rule {
    const char *name;
    sp_class_t klass;
    const char *via;
    when_t when;
    match_kind_t match;
    const char *header;      /* MATCH_HEADER_TOKEN only */
    const char *const *pats; /* NULL-terminated */
    net_cond_t net;
    const char *reason;
    const char *source;
} rule_t;

#define PATS(...) ((const char *const[]){__VA_ARGS__, NULL})

#define SCANNER_NOTE                                                                               \
    " Only requests that name the product match: the same scanners often fetch behind an "         \
    "ordinary browser agent, and those are not caught."

#define SCANNER_REASON(what)                                                                       \
    what " fetches the links and images of incoming mail to check them, on delivery or when a "    \
         "link is clicked, whether or not anyone reads the message." SCANNER_NOTE

/* ---- The rule table: tried in order, most specific first, the first match decides ------------ */

static const rule_t rules[] = {
    /* The sender's own views come first: nothing the sender does should count. */
    {
        .name = "self-referer",
        .klass = SP_CLASS_SELF,
        .match = MATCH_SELF_REFERER,
        .reason = "The Referer is spypixel's own dashboard: the sender looked at the pixel or "
                  "link from the creator or a campaign page. Counting it would count the sender.",
        .source = "spypixel's own rule: the sender's own views are not counted",
    },
    {
        .name = "self-cookie",
        .klass = SP_CLASS_SELF,
        .match = MATCH_SELF_COOKIE,
        .reason = "The browser carries the self-view cookie the dashboard gives the sender: the "
                  "sender opened their own mail (the Sent folder, a test send) in that browser.",
        .source = "spypixel's own rule: the sender's own views are not counted",
    },
    {
        .name = "self-ip",
        .klass = SP_CLASS_SELF,
        .match = MATCH_SELF_IP,
        .reason =
            "The address used the dashboard a short while ago: most likely the sender's own "
            "mail client on the same network. Weaker than the cookie (an office NAT can put a "
            "recipient behind the same address), so it comes after it.",
        .source = "spypixel's own rule: the sender's own views are not counted",
    },

    /* Requests that say themselves that nobody asked for them yet. */
    {
        .name = "sec-purpose-prefetch",
        .klass = SP_CLASS_MACHINE,
        .via = "browser prefetch",
        .match = MATCH_HEADER_TOKEN,
        .header = "Sec-Purpose",
        .pats = PATS("prefetch"),
        .reason = "Browsers mark speculative loads with 'Sec-Purpose: prefetch' (also "
                  "'prefetch;prerender', 'prefetch;anonymous-client-ip'): no person asked for the "
                  "resource, and it may never be shown.",
        .source = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose",
    },
    {
        .name = "purpose-prefetch",
        .klass = SP_CLASS_MACHINE,
        .via = "browser prefetch",
        .match = MATCH_HEADER_TOKEN,
        .header = "Purpose",
        .pats = PATS("prefetch"),
        .reason = "'Purpose: prefetch' is the unprefixed, older form of Sec-Purpose, sent on "
                  "<link rel=prefetch> loads: a speculative load, not a person's view.",
        .source = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose",
    },
    {
        .name = "x-moz-prefetch",
        .klass = SP_CLASS_MACHINE,
        .via = "browser prefetch",
        .match = MATCH_HEADER_TOKEN,
        .header = "X-Moz",
        .pats = PATS("prefetch"),
        .reason = "Firefox sends 'X-Moz: prefetch' on link prefetches, which load a resource "
                  "before (and whether or not) anyone opens it.",
        .source = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Link_prefetching_FAQ",
    },
    {
        .name = "x-purpose-preview",
        .klass = SP_CLASS_MACHINE,
        .via = "browser preview",
        .match = MATCH_HEADER_TOKEN,
        .header = "X-Purpose",
        .pats = PATS("preview", "prefetch"),
        .reason = "Safari sends 'X-Purpose: preview' when it renders a page thumbnail (Top Sites) "
                  "nobody opened; 'prefetch' is taken too, by analogy with Purpose. Neither value "
                  "is specified anywhere, but no reader's own load carries the header.",
        .source = "WebKit (Safari) behaviour; no specification published",
    },

    /* Apple Mail Privacy Protection. */
    {
        .name = "apple-mpp",
        .klass = SP_CLASS_MACHINE,
        .via = "Apple Mail Privacy Protection",
        .match = MATCH_UA_EXACT,
        .pats = PATS("Mozilla/5.0"),
        .net = NET_APPLE,
        .reason = "Mail Privacy Protection downloads remote content in the background through "
                  "Apple's relays, whether or not the message is read, with the bare agent "
                  "'Mozilla/5.0'. That agent alone is not enough (scripts and privacy tools send "
                  "it too), so the address must be Apple's: 17.0.0.0/8 or a range of Apple's "
                  "published egress list (--apple-egress). A real read with MPP on is served "
                  "from that copy and cannot be told apart, so every MPP load counts as machine.",
        .source = "https://developer.apple.com/support/prepare-your-network-for-icloud-private-"
                  "relay/ (egress list https://mask-api.icloud.com/egress-ip-ranges.csv); "
                  "17.0.0.0/8 is registered to Apple Inc. (ARIN NET17)",
    },

    /* Mail providers' image proxies and Gmail's delivery-time prefetch. */
    {
        .name = "gmail-prefetch",
        .klass = SP_CLASS_MACHINE,
        .via = "Gmail prefetch",
        .match = MATCH_UA_EXACT,
        .pats = PATS("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                     "Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"),
        .reason = "Gmail fetches the images of a newly delivered message, seconds after delivery "
                  "and before it is shown, from Google addresses with this exact agent; the "
                  "person's real open comes later through GoogleImageProxy. The evidence is two "
                  "senders' studies of their logs (GMass 2019, SparkPost/Bird 2022), not a Google "
                  "statement. Matched on the agent alone because spypixel ships no Google ranges; "
                  "no real browser sends it (EdgeHTML 12 is from 2015 and never appended a second "
                  "'Mozilla/5.0').",
        .source = "https://www.gmass.co/blog/false-opens-in-gmail/; "
                  "https://bird.com/en-us/blog/gmail-prefetching-images",
    },
    {
        .name = "image-proxy-click",
        .klass = SP_CLASS_MACHINE,
        .via = "mail image proxy",
        .when = ON_CLICK,
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("GoogleImageProxy", "YahooMailProxy", "OutlookImageProxy"),
        .reason = "A mail provider's image proxy requested a tracked link. Image proxies load "
                  "images; they never follow a reader's click, so nobody clicked.",
        .source = "follows from the three proxy rules below",
    },
    {
        .name = "gmail-image-proxy",
        .klass = SP_CLASS_PROXY,
        .via = "GoogleImageProxy (Gmail)",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("GoogleImageProxy"),
        .reason = "Gmail loads every remote image through Google's image proxy when a person "
                  "opens the message, so the address and client are Google's, not the reader's. "
                  "Google may serve later opens from its cache, so repeats can be missing.",
        .source = "https://support.google.com/mail/answer/145919; "
                  "http://gmailblog.blogspot.com/2013/12/images-now-showing.html",
    },
    {
        .name = "yahoo-mail-proxy",
        .klass = SP_CLASS_PROXY,
        .via = "YahooMailProxy (Yahoo Mail)",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("YahooMailProxy"),
        .reason = "Yahoo Mail loads remote images through its own proxy and names it in the agent "
                  "(with a link to Yahoo's help page): address and client are Yahoo's.",
        .source = "https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    },
    {
        .name = "outlook-image-proxy",
        .klass = SP_CLASS_PROXY,
        .via = "Outlook.com image proxy",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("OutlookImageProxy"),
        .reason = "An agent naming Outlook's image proxy is Microsoft relaying a reader's image "
                  "load. Weak evidence: the token is in several open-source trackers' lists, but "
                  "no Microsoft document or captured request confirming it was found; it is kept "
                  "because no person's client sends it. Outlook.com loads that look like a plain "
                  "browser from Microsoft addresses are not caught, on purpose: Microsoft 365 "
                  "Defender scans from the same networks with browser-like agents, so a Microsoft "
                  "network alone never decides a class.",
        .source = "no first-party source; open-source tracker rule lists",
    },

    /* Link checkers and security scanners that say who they are. */
    {
        .name = "ms-office-link-probe",
        .klass = SP_CLASS_MACHINE,
        .via = "Microsoft Office link check",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Microsoft Office Existence Discovery", "Microsoft Office Protocol Discovery"),
        .reason = "Office applications, Outlook among them, check a link with a request of their "
                  "own before handing it to the browser; the browser's request that follows is "
                  "the person's click. (The Outlook desktop client's own agent, 'Microsoft "
                  "Office/16.0 (...Microsoft Outlook...)', is a person and does not match.)",
        .source = "https://learn.microsoft.com/en-us/archive/blogs/vsofficedeveloper/"
                  "office-existence-discovery-protocol; https://support.microsoft.com/kb/838028",
    },
    {
        .name = "barracuda",
        .klass = SP_CLASS_MACHINE,
        .via = "Barracuda",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Barracuda"),
        .reason = SCANNER_REASON("Barracuda's email protection (e.g. agent 'Barracuda Sentinel "
                                 "(EE)')"),
        .source = "https://www.barracuda.com/products/email-protection",
    },
    {
        .name = "proofpoint",
        .klass = SP_CLASS_MACHINE,
        .via = "Proofpoint",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Proofpoint"),
        .reason = SCANNER_REASON("Proofpoint (URL Defense, Targeted Attack Protection)"),
        .source = "https://www.proofpoint.com/",
    },
    {
        .name = "mimecast",
        .klass = SP_CLASS_MACHINE,
        .via = "Mimecast",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Mimecast"),
        .reason = SCANNER_REASON("Mimecast (URL Protect)"),
        .source = "https://www.mimecast.com/",
    },
    {
        .name = "cisco-ironport",
        .klass = SP_CLASS_MACHINE,
        .via = "Cisco Secure Email (IronPort)",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("IronPort"),
        .reason = SCANNER_REASON("Cisco Secure Email, formerly IronPort,"),
        .source = "https://www.cisco.com/ (Secure Email, formerly IronPort)",
    },
    {
        .name = "symantec-messagelabs",
        .klass = SP_CLASS_MACHINE,
        .via = "Symantec / Broadcom (MessageLabs)",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("MessageLabs", "Symantec"),
        .reason = SCANNER_REASON("Symantec Email Security.cloud (Broadcom), formerly MessageLabs,"),
        .source = "https://www.broadcom.com/ (Symantec Email Security.cloud)",
    },
    {
        .name = "trend-micro",
        .klass = SP_CLASS_MACHINE,
        .via = "Trend Micro",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("TrendMicro", "Trend Micro"),
        .reason = SCANNER_REASON("Trend Micro's email security"),
        .source = "https://www.trendmicro.com/",
    },
    {
        .name = "sophos",
        .klass = SP_CLASS_MACHINE,
        .via = "Sophos",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Sophos"),
        .reason = SCANNER_REASON("Sophos Email"),
        .source = "https://www.sophos.com/",
    },
    {
        .name = "trellix-fireeye",
        .klass = SP_CLASS_MACHINE,
        .via = "Trellix (FireEye)",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("Trellix", "FireEye"),
        .reason = SCANNER_REASON("Trellix Email Security, formerly FireEye,"),
        .source = "https://www.trellix.com/",
    },

    /* Programs that fetch links for other reasons. */
    {
        .name = "link-preview",
        .klass = SP_CLASS_MACHINE,
        .via = "link preview",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("facebookexternalhit", "WhatsApp/", "SkypeUriPreview", "BingPreview",
                     "Slack-ImgProxy", "Snap URL Preview", "Embedly", "Iframely"),
        .reason = "Chat and social apps fetch a link and its images to draw a preview card when "
                  "someone pastes it, before anyone clicks: a forwarded tracked link or pixel "
                  "shows up this way.",
        .source = "https://developers.facebook.com/docs/sharing/webmasters/web-crawlers/; "
                  "https://api.slack.com/robots",
    },
    {
        .name = "headless-browser",
        .klass = SP_CLASS_MACHINE,
        .via = "headless browser",
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("HeadlessChrome", "PhantomJS"),
        .reason = "A headless browser is driven by a program (a scanner's sandbox, a scraper, a "
                  "test); a person reading mail does not use one.",
        .source = "https://developer.chrome.com/docs/chromium/headless",
    },
    {
        .name = "http-library",
        .klass = SP_CLASS_MACHINE,
        .via = "HTTP library",
        .match = MATCH_UA_PREFIX,
        .pats = PATS("curl/", "Wget/", "python-requests/", "Python-urllib/", "Python/",
                     "Go-http-client/", "Java/", "Apache-HttpClient/", "libwww-perl/", "axios/",
                     "node-fetch/", "Scrapy/"),
        .reason = "The default agent of an HTTP library or command-line tool: a script fetched "
                  "it. okhttp and Dalvik are left out on purpose: Android mail apps may load "
                  "images with them for a person.",
        .source = "the default User-Agent strings of curl, Wget, Python requests/urllib/aiohttp, "
                  "Go net/http, Java, Apache HttpClient, libwww-perl, axios, node-fetch, Scrapy",
    },
    {
        .name = "cubot-phone",
        .klass = SP_CLASS_HUMAN,
        .match = MATCH_UA_CONTAINS,
        .pats = PATS("CUBOT"),
        .reason = "Cubot makes Android phones whose model names ('CUBOT_X30', 'CUBOT P40') end in "
                  "'bot' inside ordinary browser agents; without this rule generic-bot below "
                  "would call their owners machines.",
        .source = "https://www.cubot.net/",
    },
    {
        .name = "generic-bot",
        .klass = SP_CLASS_MACHINE,
        .via = "bot",
        .match = MATCH_UA_WORD_END,
        .pats = PATS("bot", "crawler", "spider"),
        .reason = "Crawlers and link checkers name themselves '...bot', '...crawler' or "
                  "'...spider' (Googlebot, bingbot, Slackbot, AhrefsBot, Baiduspider). Matched "
                  "only at the end of a word, so 'Abbott' or 'robots' do not trip it.",
        .source = "https://developers.google.com/search/docs/crawling-indexing/"
                  "overview-google-crawlers (the naming convention)",
    },

    {
        .name = "default-human",
        .klass = SP_CLASS_HUMAN,
        .match = MATCH_ALWAYS,
        .reason = "No rule matched: a person's mail client or browser fetched it. That includes a "
                  "bare 'Mozilla/5.0' from outside Apple's networks and a missing user agent: "
                  "neither is evidence of a machine on its own.",
        .source = "spypixel's own rule: an open is a person's unless a rule above shows otherwise",
    },
};

#define N_RULES (sizeof(rules) / sizeof(rules[0]))

/* Apple's own networks, always known. The relay egress ranges come from the --apple-egress file
 * instead: Apple changes that list often, and its ranges sit in its partners' CDN networks. */
static const char *const apple_networks[] = {
    "17.0.0.0/8", /* registered to Apple Inc. (ARIN NET17) */
};

#define N_APPLE (sizeof(apple_networks) / sizeof(apple_networks[0]))

/* ---- Address ranges ------------------------------------------------------------------------- */

/* An inclusive range of 128-bit addresses (IPv4 as ::ffff:a.b.c.d, as net.h keeps them). */
typedef struct range {
    uint8_t lo[16], hi[16];
} range_t;

/* Which user-agent rules an agent matches, remembered per agent: the same few agents come
 * back all day, and matching them against every pattern is most of a classification. A
 * direct-mapped table; a slot is simply overwritten, so memory stays bounded. */
#define UA_CACHE_SLOTS 1024
#define UA_CACHE_KEY   512 /* longer agents are matched afresh every time */

typedef struct {
    uint64_t hash;
    uint64_t matches; /* bit I: rule I's user-agent patterns match */
    char ua[UA_CACHE_KEY];
} ua_slot_t;

typedef struct {
    pthread_mutex_t lock;
    ua_slot_t slots[UA_CACHE_SLOTS];
} ua_cache_t;

struct sp_classifier {
    range_t *egress; /* sorted by lo, disjoint: searched by bisection */
    size_t n_egress;
    size_t n_lines;    /* ranges read from the file, before merging */
    ua_cache_t *cache; /* mutable behind the const classifier: only this changes */
};

static void cidr_range(const sp_net_cidr_t *cidr, range_t *r)
{
    unsigned prefix = cidr->prefix > 128 ? 128 : cidr->prefix;

    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        r->lo[i] = cidr->addr.b[i] & mask;
        r->hi[i] = (uint8_t)(r->lo[i] | (uint8_t)~mask);
    }
}

static int range_cmp(const void *a, const void *b)
{
    return memcmp(((const range_t *)a)->lo, ((const range_t *)b)->lo, 16);
}

static bool in_ranges(const range_t *r, size_t n, const uint8_t addr[16])
{
    /* The last range whose lo <= addr is the only one that can hold it. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(r[mid].lo, addr, 16) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && memcmp(addr, r[lo - 1].hi, 16) <= 0;
}

static range_t apple_ranges[N_APPLE];
static pthread_once_t apple_once = PTHREAD_ONCE_INIT;

static void apple_init(void)
{
    for (size_t i = 0; i < N_APPLE; i++) {
        sp_net_cidr_t cidr;
        if (0 != sp_net_parse_cidr(apple_networks[i], &cidr))
            abort(); /* a typo in the table above */
        cidr_range(&cidr, &apple_ranges[i]);
    }
}

static bool is_apple(const sp_classifier_t *c, const sp_net_addr_t *addr)
{
    pthread_once(&apple_once, apple_init);
    for (size_t i = 0; i < N_APPLE; i++)
        if (memcmp(addr->b, apple_ranges[i].lo, 16) >= 0 &&
            memcmp(addr->b, apple_ranges[i].hi, 16) <= 0)
            return true;
    return c && in_ranges(c->egress, c->n_egress, addr->b);
}

/* ---- The egress file ------------------------------------------------------------------------ */

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p)
        abort(); /* out of memory */
    return p;
}

static char *trim(char *s)
{
    while (' ' == *s || '\t' == *s)
        s++;
    size_t n = strlen(s);
    while (n > 0 && (' ' == s[n - 1] || '\t' == s[n - 1] || '\r' == s[n - 1] || '\n' == s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int load_egress(sp_classifier_t *c, const char *path, char *err, size_t errlen)
{
    int rc = -1;
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        snprintf(err, errlen, "apple egress file %s: %s", path, strerror(errno));
        goto out;
    }
    errno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = line;
        if (1 == lineno && sp_has_prefix(s, "\xef\xbb\xbf"))
            s += 3; /* a byte-order mark left by a spreadsheet */
        char *cut = strpbrk(s, "#,");
        if (cut)
            *cut = '\0'; /* a comment, or the CSV's country, region and city */
        s = trim(s);
        if ('\0' == *s)
            continue;

        sp_net_cidr_t cidr;
        if (0 != sp_net_parse_cidr(s, &cidr)) {
            snprintf(err, errlen,
                     "apple egress file %s, line %zu: \"%.60s\" is not an address "
                     "range",
                     path, lineno, s);
            goto out;
        }
        if (c->n_egress == alloc) {
            alloc = alloc ? alloc * 2 : 256;
            c->egress = xrealloc(c->egress, alloc * sizeof(*c->egress));
        }
        cidr_range(&cidr, &c->egress[c->n_egress++]);
    }
    if (ferror(f)) {
        snprintf(err, errlen, "apple egress file %s: %s", path, strerror(errno ? errno : EIO));
        goto out;
    }
    c->n_lines = c->n_egress;

    /* Sort, then fold overlapping ranges so that bisection finds the only candidate. */
    if (c->n_egress > 1) {
        qsort(c->egress, c->n_egress, sizeof(*c->egress), range_cmp);
        size_t w = 0;
        for (size_t i = 1; i < c->n_egress; i++) {
            if (memcmp(c->egress[i].lo, c->egress[w].hi, 16) <= 0) {
                if (memcmp(c->egress[i].hi, c->egress[w].hi, 16) > 0)
                    memcpy(c->egress[w].hi, c->egress[i].hi, 16);
            } else {
                c->egress[++w] = c->egress[i];
            }
        }
        c->n_egress = w + 1;
    }
    rc = 0;
out:
    free(line);
    if (f)
        fclose(f);
    return rc;
}

sp_classifier_t *sp_classify_open(const char *apple_egress_path, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || 0 == errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    sp_classifier_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->cache = calloc(1, sizeof(*c->cache))))
        abort(); /* out of memory */
    pthread_mutex_init(&c->cache->lock, NULL);
    if (apple_egress_path && 0 != load_egress(c, apple_egress_path, err, errlen)) {
        sp_classify_close(c);
        return NULL;
    }
    return c;
}

void sp_classify_close(sp_classifier_t *c)
{
    if (!c)
        return;
    if (c->cache)
        pthread_mutex_destroy(&c->cache->lock);
    free(c->cache);
    free(c->egress);
    free(c);
}

size_t sp_classify_egress_count(const sp_classifier_t *c)
{
    return c ? c->n_lines : 0;
}

/* ---- Matching ------------------------------------------------------------------------------- */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static bool is_alpha(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* ASCII case-insensitive prefix test: locale-free, so the result never depends on the host. */
static bool ci_starts(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (lower((unsigned char)*s) != lower((unsigned char)*prefix))
            return false;
    return true;
}

/* Every position where NEEDLE occurs in HAY, ASCII case-insensitive; END_OF_WORD keeps only
 * matches not followed by a letter. */
static bool ci_contains(const char *hay, const char *needle, bool end_of_word)
{
    size_t n = strlen(needle);
    int first = lower((unsigned char)needle[0]);
    /* Jumping between candidates with strpbrk keeps a full table pass near a microsecond. */
    char firsts[3] = {(char)first, (char)(first >= 'a' && first <= 'z' ? first - 'a' + 'A' : 0)};

    if (0 == n)
        return true;
    for (hay = strpbrk(hay, firsts); hay; hay = strpbrk(hay + 1, firsts))
        if (ci_starts(hay, needle) && (!end_of_word || !is_alpha((unsigned char)hay[n])))
            return true;
    return false;
}

static bool header_token_is(const char *value, const char *const *pats)
{
    while (' ' == *value || '\t' == *value)
        value++;
    size_t n = strcspn(value, ";, \t");
    for (; *pats; pats++)
        if (strlen(*pats) == n && ci_starts(value, *pats))
            return true;
    return false;
}

static bool ua_matches(const rule_t *r, const char *ua)
{
    if (!ua)
        return false;
    for (const char *const *p = r->pats; *p; p++) {
        bool hit = false;
        switch (r->match) {
        case MATCH_UA_EXACT:
            hit = 0 == strcmp(ua, *p);
            break;
        case MATCH_UA_PREFIX:
            hit = ci_starts(ua, *p);
            break;
        case MATCH_UA_CONTAINS:
            hit = ci_contains(ua, *p, false);
            break;
        case MATCH_UA_WORD_END:
            hit = ci_contains(ua, *p, true);
            break;
        default:
            break;
        }
        if (hit)
            return true;
    }
    return false;
}

static bool is_ua_rule(const rule_t *r)
{
    return MATCH_UA_EXACT == r->match || MATCH_UA_PREFIX == r->match ||
           MATCH_UA_CONTAINS == r->match || MATCH_UA_WORD_END == r->match;
}

static uint64_t ua_matches_all(const char *ua)
{
    uint64_t m = 0;
    for (size_t i = 0; i < N_RULES; i++)
        if (is_ua_rule(&rules[i]) && ua_matches(&rules[i], ua))
            m |= (uint64_t)1 << i;
    return m;
}

/* The user-agent bits of UA, from the cache when it has them. */
static uint64_t ua_bits(const sp_classifier_t *c, const char *ua)
{
    if (!ua)
        return 0;
    size_t len = strlen(ua);
    if (!c || !c->cache || len >= UA_CACHE_KEY)
        return ua_matches_all(ua);
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)ua[i]) * 1099511628211ULL;
    ua_slot_t *slot = &c->cache->slots[h % UA_CACHE_SLOTS];
    uint64_t m;
    pthread_mutex_lock(&c->cache->lock);
    bool hit = slot->hash == h && 0 == strcmp(slot->ua, ua);
    m = slot->matches;
    pthread_mutex_unlock(&c->cache->lock);
    if (hit)
        return m;
    m = ua_matches_all(ua);
    pthread_mutex_lock(&c->cache->lock);
    slot->hash = h;
    slot->matches = m;
    memcpy(slot->ua, ua, len + 1);
    pthread_mutex_unlock(&c->cache->lock);
    return m;
}

static bool rule_matches(const sp_classifier_t *c, size_t i, const sp_classify_input_t *in,
                         uint64_t *ua_mask, bool *ua_known)
{
    const rule_t *r = &rules[i];
    if (ON_CLICK == r->when && !in->is_click)
        return false;
    if (NET_APPLE == r->net && (!in->peer || !is_apple(c, in->peer)))
        return false;

    switch (r->match) {
    case MATCH_ALWAYS:
        return true;
    case MATCH_SELF_REFERER:
        return in->self_referer;
    case MATCH_SELF_COOKIE:
        return in->self_cookie;
    case MATCH_SELF_IP:
        return in->self_ip;
    case MATCH_HEADER_TOKEN: {
        const char *v = in->header ? in->header(in->header_ctx, r->header) : NULL;
        return v && header_token_is(v, r->pats);
    }
    case MATCH_UA_EXACT:
    case MATCH_UA_PREFIX:
    case MATCH_UA_CONTAINS:
    case MATCH_UA_WORD_END:
        if (!*ua_known) {
            *ua_mask = ua_bits(c, in->user_agent);
            *ua_known = true;
        }
        return (*ua_mask >> i) & 1;
    }
    return false;
}

void sp_classify(const sp_classifier_t *c, const sp_classify_input_t *in, sp_classify_result_t *out)
{
    const rule_t *r = &rules[N_RULES - 1]; /* default-human */
    uint64_t ua_mask = 0;
    bool ua_known = false;

    _Static_assert(N_RULES <= 64, "the user-agent cache keeps one bit per rule");
    if (in)
        for (size_t i = 0; i < N_RULES; i++)
            if (rule_matches(c, i, in, &ua_mask, &ua_known)) {
                r = &rules[i];
                break;
            }
    out->klass = r->klass;
    out->rule = r->name;
    out->via = r->via;
}

/* ---- Names and the table for readers -------------------------------------------------------- */

static const char *const class_names[SP_CLASS_COUNT] = {
    [SP_CLASS_HUMAN] = "human",
    [SP_CLASS_PROXY] = "proxy",
    [SP_CLASS_MACHINE] = "machine",
    [SP_CLASS_SELF] = "self",
};

const char *sp_class_name(sp_class_t c)
{
    return (unsigned)c < SP_CLASS_COUNT ? class_names[c] : "unknown";
}

int sp_class_from_name(const char *name, sp_class_t *out)
{
    if (!name)
        return -1;
    for (unsigned i = 0; i < SP_CLASS_COUNT; i++)
        if (0 == strcmp(name, class_names[i])) {
            *out = (sp_class_t)i;
            return 0;
        }
    return -1;
}

static sp_classify_rule_info_t rule_infos[N_RULES];
static pthread_once_t infos_once = PTHREAD_ONCE_INIT;

/* The table above keeps each rule's matcher beside its reason; readers get the public half. */
static void infos_init(void)
{
    for (size_t i = 0; i < N_RULES; i++)
        rule_infos[i] = (sp_classify_rule_info_t){
            .name = rules[i].name,
            .klass = rules[i].klass,
            .reason = rules[i].reason,
            .source = rules[i].source,
            .via = rules[i].via,
        };
}

const sp_classify_rule_info_t *sp_classify_rules(size_t *count)
{
    pthread_once(&infos_once, infos_init);
    if (count)
        *count = N_RULES;
    return rule_infos;
}
