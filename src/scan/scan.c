/* scan: the recipient's side: finds the trackers in .eml and mbox files and strips them. */
/* SPDX-License-Identifier: MIT */
#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <libxml/HTMLtree.h>

#include "scan_css.h"
#include "scan_rules.h"
#include "text.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Nested redirects unwrapped to reach a link's destination (Safe Links around a Mailchimp link
 * around the page is two). */
#define UNWRAP_MAX 4
/* An address shorter than this has base64 forms too short to search for without noise. */
#define ADDRESS_MIN 6
/* Opaque tokens: an image URL's query value this long, or path segment this long, that looks
 * random enough can tell recipients apart (see token_kind). */
#define TOKEN_QUERY_MIN 16
#define TOKEN_PATH_MIN  24
#define TOKEN_HEX_MIN   32 /* a hex path segment shorter than this is more often a content ID */

/* XML_PARSE_HUGE lifts libxml2's nesting limit of 256, past which it drops the rest of the
 * document: a sender could otherwise hide a pixel behind 257 <div>s. HTML has no entity
 * expansion to amplify, and the walk, the serializer and the frees are not recursive, so the
 * cost stays linear in the message. */
static const int html_options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                HTML_PARSE_NONET | HTML_PARSE_NODEFDTD | HTML_PARSE_NOIMPLIED |
                                HTML_PARSE_IGNORE_ENC | XML_PARSE_HUGE;

/* ---- Start-up -------------------------------------------------------------------------------- */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_start(void)
{
    g_mime_init();
    xmlInitParser();
}

/* ---- Small string tools ---------------------------------------------------------------------- */

static bool starts_with_ci(const char *s, const char *prefix)
{
    return 0 == strncasecmp(s, prefix, strlen(prefix));
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes S[0..N) leniently: a broken escape stays as it is, and so does %00, so that the
 * result stays one C string. PLUS turns '+' into a space (form encoding). g_free the result. */
static char *pct_decode(const char *s, size_t n, bool plus)
{
    char *out = g_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if ('%' == s[i] && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0 && (hi || lo)) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (plus && '+' == s[i]) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ('+' == c || '-' == c)
        return 62;
    if ('/' == c || '_' == c)
        return 63;
    return -1;
}

/* Decodes base64 or base64url S[0..N), stopping at the first character of neither; padding is
 * optional. OUT must hold N * 3 / 4 + 1 bytes. Returns the bytes written. */
static size_t b64_decode(const char *s, size_t n, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            break;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static bool is_b64_char(char c)
{
    return b64_value((unsigned char)c) >= 0;
}

/* A URL a mail client would fetch or follow: no spaces, controls, quotes or angle brackets. */
static bool url_chars_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || 0x7f == c || '"' == c || '<' == c || '>' == c || '\\' == c)
            return false;
    }
    return true;
}

/* How opaque a string looks. Random IDs mix digits and letters (hex), or digits, upper and
 * lower case letters (base64); words, slugs and dates do not, and real words have long runs of
 * lower-case letters that random base64 rarely has. */
typedef enum token_kind {
    TOKEN_NONE,
    TOKEN_HEX, /* hex digits, maybe with dashes (UUIDs) */
    TOKEN_B64, /* base64 or base64url */
} token_kind_t;

static token_kind_t token_kind(const char *s, size_t n)
{
    size_t hex = 0, digits = 0, upper = 0, lower = 0, inner_upper = 0, run = 0, longest_run = 0;
    bool only_hex = true, only_b64 = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits++;
        if (c >= 'A' && c <= 'Z') {
            upper++;
            if (i && ((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (s[i - 1] >= '0' && s[i - 1] <= '9')))
                inner_upper++;
        }
        if (c >= 'a' && c <= 'z') {
            lower++;
            run++;
            if (run > longest_run)
                longest_run = run;
        } else {
            run = 0;
        }
        if (hex_value(c) >= 0)
            hex++;
        else if ('-' != c)
            only_hex = false;
        if (!is_b64_char(c) && '=' != c && '.' != c)
            only_b64 = false;
    }
    if (only_hex && hex >= 16 && digits && hex > digits)
        return TOKEN_HEX;
    if (only_b64 && n >= 20 && digits >= 2 && inner_upper >= 2 && lower >= 2 && upper &&
        longest_run <= 6)
        return TOKEN_B64;
    return TOKEN_NONE;
}

static bool has_image_extension(const char *s, size_t n)
{
    static const char *const exts[] = {".gif", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".svg"};
    for (size_t i = 0; i < N_OF(exts); i++) {
        size_t e = strlen(exts[i]);
        if (n > e && 0 == strncasecmp(s + n - e, exts[i], e))
            return true;
    }
    return false;
}

/* ---- URLs ------------------------------------------------------------------------------------ */

/* The parts of an absolute http(s) URL, split by GLib's GUri and still percent-encoded. */
typedef struct url {
    char *host; /* lower case; never NULL after url_split succeeded */
    char *path; /* never NULL; "" for none */
    char *query;
} url_t;

static void url_free(url_t *u)
{
    g_free(u->host);
    g_free(u->path);
    g_free(u->query);
    memset(u, 0, sizeof(*u));
}

/* Splits TEXT when it is a remote (http, https or protocol-relative) URL. */
static bool url_split(const char *text, url_t *u)
{
    char *scheme = NULL, *fixed = NULL;
    bool ok = false;
    memset(u, 0, sizeof(*u));
    if ('/' == text[0] && '/' == text[1])
        text = fixed = g_strconcat("https:", text, NULL);
    if (!starts_with_ci(text, "http://") && !starts_with_ci(text, "https://"))
        goto done;
    if (!g_uri_split(text, G_URI_FLAGS_ENCODED | G_URI_FLAGS_PARSE_RELAXED, &scheme, NULL, &u->host,
                     NULL, &u->path, &u->query, NULL, NULL) ||
        !u->host || !*u->host)
        goto done;
    char *lower = g_ascii_strdown(u->host, -1);
    g_free(u->host);
    u->host = lower;
    if (!u->path)
        u->path = g_strdup("");
    ok = true;
done:
    if (!ok)
        url_free(u);
    g_free(scheme);
    g_free(fixed);
    return ok;
}

/* A and B are one host, but for "www.". A link that sends to its own host ("login?next=") is
 * navigation; one that passes through another host, even a subdomain of the destination
 * ("click.example.com" before "example.com", the usual branded tracking domain), is a redirect
 * that can log the click. */
static bool same_site(const char *a, const char *b)
{
    if (sp_has_prefix(a, "www."))
        a += 4;
    if (sp_has_prefix(b, "www."))
        b += 4;
    return 0 == strcmp(a, b);
}

/* The last path segment, without an image extension; *N gets its length. */
static const char *last_segment(const char *path, size_t *n)
{
    const char *slash = strrchr(path, '/');
    const char *seg = slash ? slash + 1 : path;
    size_t len = strlen(seg);
    const char *dot = memrchr(seg, '.', len);
    if (dot && has_image_extension(seg, len))
        len = (size_t)(dot - seg);
    *n = len;
    return seg;
}

static bool last_is_token(const url_t *u)
{
    size_t n;
    const char *seg = last_segment(u->path, &n);
    return n >= TOKEN_QUERY_MIN && TOKEN_NONE != token_kind(seg, n);
}

/* The query split at '&' (and ';', which older trackers use): calls FN for each name=value,
 * NAME and VALUE still encoded. Stops and returns what FN returns when it is non-zero. */
typedef int (*param_fn)(const char *name, size_t name_len, const char *value, size_t value_len,
                        size_t index, void *ctx);

static int each_param(const char *query, param_fn fn, void *ctx)
{
    size_t index = 0;
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&;");
        const char *eq = memchr(p, '=', len);
        size_t name_len = eq ? (size_t)(eq - p) : len;
        int rc = eq ? fn(p, name_len, eq + 1, len - name_len - 1, index++, ctx)
                    : fn(p, name_len, p + len, 0, index++, ctx);
        if (rc)
            return rc;
        p += len;
        if (*p)
            p++;
    }
    return 0;
}

/* ---- Link destinations ----------------------------------------------------------------------- */

/* Parameter names that hold a redirect's destination, most telling first: when several hold a
 * URL, the best-named one wins. Other parameters holding a URL still count, after these. */
static const char *const target_params[] = {
    "url",         "u",      "redirect", "redirect_url", "redirect_uri",
    "redirectUrl", "target", "dest",     "destination",  "r",
    "link",        "l",      "to",       "goto",         "out",
    "href",        "q",      "next",     "continue",     "ref",
};

/* TEXT as a URL: itself when it is an absolute http(s) URL, or what it decodes to when it is
 * percent-encoded again or base64. NULL otherwise. */
static char *as_target(const char *text)
{
    char *cur = g_strdup(text);
    for (int round = 0; round < 3; round++) {
        g_strstrip(cur);
        if ((starts_with_ci(cur, "http://") || starts_with_ci(cur, "https://")) &&
            url_chars_ok(cur))
            return cur;
        char *next = NULL;
        if (starts_with_ci(cur, "http%3a") || starts_with_ci(cur, "https%3a")) {
            next = pct_decode(cur, strlen(cur), false);
        } else {
            size_t n = strlen(cur), run = 0;
            while (run < n && (is_b64_char(cur[run]) || '=' == cur[run]))
                run++;
            if (run >= 16 && run == n) {
                unsigned char *bytes = g_malloc(n * 3 / 4 + 2);
                size_t got = b64_decode(cur, n, bytes);
                bytes[got] = '\0';
                if (got == strlen((char *)bytes))
                    next = (char *)bytes;
                else
                    g_free(bytes);
            }
        }
        g_free(cur);
        if (!next)
            return NULL;
        cur = next;
    }
    g_free(cur);
    return NULL;
}

typedef struct target_search {
    const url_t *from;
    char *best;
    size_t best_rank;
} target_search_t;

static int target_param(const char *name, size_t name_len, const char *value, size_t value_len,
                        size_t index, void *ctx)
{
    target_search_t *t = ctx;
    if (!value_len)
        return 0;
    char *decoded = pct_decode(value, value_len, true);
    char *cand = as_target(decoded);
    g_free(decoded);
    url_t cu;
    if (!cand || !url_split(cand, &cu)) {
        g_free(cand);
        return 0;
    }
    bool elsewhere = !same_site(cu.host, t->from->host);
    url_free(&cu);
    if (!elsewhere) {
        g_free(cand);
        return 0;
    }
    size_t rank = N_OF(target_params) + index;
    for (size_t i = 0; i < N_OF(target_params); i++)
        if (strlen(target_params[i]) == name_len &&
            0 == strncasecmp(target_params[i], name, name_len)) {
            rank = i;
            break;
        }
    if (!t->best || rank < t->best_rank) {
        g_free(t->best);
        t->best = cand;
        t->best_rank = rank;
    } else {
        g_free(cand);
    }
    return 0;
}

/* The destination U carries itself, one level deep: a query parameter, else a path segment
 * that is a whole encoded URL (Amazon SES: /L0/https:%2F%2Fexample.com%2F/1/...). */
static char *direct_target(const url_t *u)
{
    target_search_t t = {.from = u};
    each_param(u->query, target_param, &t);
    if (t.best)
        return t.best;
    for (const char *p = u->path; *p;) {
        size_t len = strcspn(p, "/");
        char *seg = pct_decode(p, len, false);
        char *cand = as_target(seg);
        g_free(seg);
        url_t cu;
        if (cand && url_split(cand, &cu)) {
            bool elsewhere = !same_site(cu.host, u->host);
            url_free(&cu);
            if (elsewhere)
                return cand;
        }
        g_free(cand);
        p += len;
        if (*p)
            p++;
    }
    return NULL;
}

typedef struct param_clean {
    GString *out;
    size_t dropped;
} param_clean_t;

static int keep_param(const char *name, size_t name_len, const char *value, size_t value_len,
                      size_t index, void *ctx)
{
    param_clean_t *c = ctx;
    if (sp_scan_rules_match_param(name, name_len)) {
        c->dropped++;
        return 0;
    }
    if (c->out->len)
        g_string_append_c(c->out, '&');
    g_string_append_len(c->out, name, (gssize)(value - name + value_len));
    (void)index;
    return 0;
}

/* URL without its per-recipient parameters (sp_scan_rules_params). g_free the result; *DROPPED
 * gets how many went. */
static char *without_id_params(const char *url, size_t *dropped)
{
    const char *q = strchr(url, '?');
    *dropped = 0;
    if (!q)
        return g_strdup(url);
    const char *hash = strchr(q, '#');
    size_t qlen = hash ? (size_t)(hash - q - 1) : strlen(q + 1);
    char *query = g_strndup(q + 1, qlen);
    param_clean_t c = {.out = g_string_new(NULL)};
    each_param(query, keep_param, &c);
    g_free(query);
    GString *res = g_string_new_len(url, q - url);
    if (c.out->len)
        g_string_append_printf(res, "?%s", c.out->str);
    if (hash)
        g_string_append(res, hash);
    g_string_free(c.out, TRUE);
    *dropped = c.dropped;
    return g_string_free(res, FALSE);
}

/* The destination of U through nested redirects: a destination is unwrapped again only while it
 * is itself on a known click-tracking host. g_free the result; NULL for none. */
static char *unwrap_target(const url_t *u)
{
    char *cur = direct_target(u);
    for (int depth = 1; cur && depth < UNWRAP_MAX; depth++) {
        url_t cu;
        if (!url_split(cur, &cu))
            break;
        char *next = NULL;
        if (sp_scan_rules_match_host(cu.host, cu.path, SP_SCAN_ON_LINK, last_is_token(&cu)))
            next = direct_target(&cu);
        url_free(&cu);
        if (!next)
            break;
        g_free(cur);
        cur = next;
    }
    if (cur) {
        size_t dropped;
        char *clean = without_id_params(cur, &dropped);
        g_free(cur);
        cur = clean;
    }
    return cur;
}

char *sp_scan_link_target(const char *url)
{
    url_t u;
    if (!url || !url_split(url, &u))
        return NULL;
    char *t = sp_scan_rules_is_share(u.host, u.path) ? NULL : unwrap_target(&u);
    url_free(&u);
    char *out = t ? strdup(t) : NULL;
    g_free(t);
    if (t && !out)
        abort();
    return out;
}

/* ---- Recipients ------------------------------------------------------------------------------ */

/* One recipient's address in every form a tracker writes it into a URL. */
typedef struct recipient {
    char *addr;    /* lower case */
    char *pct;     /* URL-encoded: "@" as "%40", lower case */
    char *b64[4];  /* base64 and base64url of the address and its lower-case form: whole
                    * groups only, so that the text is the same wherever the address ends */
    char *hash[3]; /* MD5, SHA-1 and SHA-256 of the lower-case address, lower-case hex */
} recipient_t;

static const char *const hash_names[] = {"as an MD5 hash", "as a SHA-1 hash", "as a SHA-256 hash"};

static void recipient_free(gpointer p)
{
    recipient_t *r = p;
    g_free(r->addr);
    g_free(r->pct);
    for (size_t i = 0; i < N_OF(r->b64); i++)
        g_free(r->b64[i]);
    for (size_t i = 0; i < N_OF(r->hash); i++)
        g_free(r->hash[i]);
    g_free(r);
}

static char *b64_whole_groups(const char *s, bool url_safe)
{
    size_t n = strlen(s) / 3 * 3;
    char *b = g_base64_encode((const guchar *)s, n);
    for (char *c = b; url_safe && *c; c++)
        *c = '+' == *c ? '-' : '/' == *c ? '_' : *c;
    return b;
}

static void add_recipient(GPtrArray *list, const char *addr)
{
    if (!addr || strlen(addr) < ADDRESS_MIN || !strchr(addr, '@'))
        return;
    char *lower = g_ascii_strdown(addr, -1);
    for (guint i = 0; i < list->len; i++)
        if (0 == strcmp(((recipient_t *)list->pdata[i])->addr, lower)) {
            g_free(lower);
            return;
        }
    recipient_t *r = g_new0(recipient_t, 1);
    r->addr = lower;
    char *at = strchr(lower, '@');
    r->pct = g_strdup_printf("%.*s%%40%s", (int)(at - lower), lower, at + 1);
    r->b64[0] = b64_whole_groups(lower, false);
    r->b64[1] = b64_whole_groups(lower, true);
    r->b64[2] = b64_whole_groups(addr, false);
    r->b64[3] = b64_whole_groups(addr, true);
    r->hash[0] = g_compute_checksum_for_string(G_CHECKSUM_MD5, lower, -1);
    r->hash[1] = g_compute_checksum_for_string(G_CHECKSUM_SHA1, lower, -1);
    r->hash[2] = g_compute_checksum_for_string(G_CHECKSUM_SHA256, lower, -1);
    g_ptr_array_add(list, r);
}

static void add_address_list(GPtrArray *list, InternetAddressList *addrs, int depth)
{
    int n = addrs ? internet_address_list_length(addrs) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *a = internet_address_list_get_address(addrs, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(a))
            add_recipient(list, internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
        else if (INTERNET_ADDRESS_IS_GROUP(a) && depth < 2)
            add_address_list(list, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)),
                             depth + 1);
    }
}

/* Headers that name the recipient: the visible ones and those the delivering server adds. */
static const char *const recipient_headers[] = {
    "To", "Cc", "Bcc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To",
};

static void add_recipients(GPtrArray *list, GMimeObject *msg)
{
    GMimeHeaderList *headers = g_mime_object_get_header_list(msg);
    int n = headers ? g_mime_header_list_get_count(headers) : 0;
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(headers, i);
        const char *name = g_mime_header_get_name(h), *value = g_mime_header_get_value(h);
        for (size_t k = 0; k < N_OF(recipient_headers) && value; k++) {
            if (0 != strcasecmp(name, recipient_headers[k]))
                continue;
            InternetAddressList *addrs = internet_address_list_parse(NULL, value);
            add_address_list(list, addrs, 0);
            if (addrs)
                g_object_unref(addrs);
            break;
        }
    }
}

/* Whether base64 S[0..N) decodes to bytes that hold ADDR (lower case), ignoring case. */
static bool blob_has(const char *s, size_t n, const char *addr)
{
    unsigned char *bytes = g_malloc(n * 3 / 4 + 2);
    size_t got = b64_decode(s, n, bytes);
    for (size_t b = 0; b < got; b++)
        bytes[b] = (unsigned char)g_ascii_tolower(bytes[b]);
    bool found = NULL != memmem(bytes, got, addr, strlen(addr));
    g_free(bytes);
    return found;
}

/* How URL carries one of RECIPIENTS' addresses: a static description, the address in *ADDR. */
static const char *find_recipient(const GPtrArray *recipients, const char *url, const char **addr)
{
    const char *how = NULL;
    char *lower = g_ascii_strdown(url, -1);
    char *once = pct_decode(url, strlen(url), false);
    char *twice = pct_decode(once, strlen(once), false);
    char *decoded = g_ascii_strdown(twice, -1);
    for (guint i = 0; i < recipients->len && !how; i++) {
        const recipient_t *r = recipients->pdata[i];
        *addr = r->addr;
        if (strstr(lower, r->addr))
            how = "as is";
        else if (strstr(lower, r->pct) || strstr(decoded, r->addr))
            how = "URL-encoded";
        for (size_t k = 0; k < N_OF(r->b64) && !how; k++)
            if (strlen(r->b64[k]) >= 8 && (strstr(url, r->b64[k]) || strstr(twice, r->b64[k])))
                how = "base64-encoded";
        for (size_t k = 0; k < N_OF(r->hash) && !how; k++)
            if (strstr(lower, r->hash[k]))
                how = hash_names[k];
        /* An address inside a longer base64 blob ("campaign=7&to=ADDRESS") starts at any byte,
         * so decode every long base64 run and look inside. A raw '/' is both a base64 digit and
         * the path separator: a run is also tried from after each of its slashes. */
        for (const char *p = twice; *p && !how;) {
            size_t run = 0;
            while (p[run] && is_b64_char(p[run]))
                run++;
            for (size_t from = 0; from < run && !how; from++) {
                if (from && '/' != p[from - 1])
                    continue;
                if (run - from >= 12 && blob_has(p + from, run - from, r->addr))
                    how = "base64-encoded";
            }
            p += run ? run : 1;
        }
    }
    g_free(lower);
    g_free(once);
    g_free(twice);
    g_free(decoded);
    return how;
}

/* ---- The report ------------------------------------------------------------------------------ */

const char *sp_scan_kind_name(sp_scan_kind_t kind)
{
    switch (kind) {
    case SP_SCAN_PIXEL:
        return "pixel";
    case SP_SCAN_IMAGE:
        return "image";
    case SP_SCAN_LINK:
        return "link";
    case SP_SCAN_RECEIPT:
        return "receipt";
    }
    return "unknown";
}

static void finding_free(sp_scan_finding_t *f)
{
    free(f->file);
    free(f->message_id);
    free(f->url);
    free(f->host);
    free(f->target);
    for (size_t i = 0; i < f->n_matches; i++)
        free(f->matches[i].reason);
}

void sp_scan_report_free(sp_scan_report_t *report)
{
    for (size_t i = 0; i < report->n; i++)
        finding_free(&report->findings[i]);
    free(report->findings);
    memset(report, 0, sizeof(*report));
}

static char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* What a URL was judged to be; the reasons are malloc'd and move into the report. */
typedef struct verdict {
    sp_scan_kind_t kind;
    const char *vendor;
    char *host;
    char *target; /* a link's destination, or NULL */
    char *clean;  /* the URL --strip writes for a link, or NULL to keep it */
    size_t n;
    sp_scan_match_t m[SP_SCAN_MATCH_MAX];
} verdict_t;

static void verdict_free(verdict_t *v)
{
    g_free(v->host);
    g_free(v->target);
    g_free(v->clean);
    for (size_t i = 0; i < v->n; i++)
        free(v->m[i].reason);
    memset(v, 0, sizeof(*v));
}

static void verdict_add(verdict_t *v, const char *rule, char *reason)
{
    for (size_t i = 0; i < v->n; i++)
        if (0 == strcmp(v->m[i].rule, rule) && 0 == strcmp(v->m[i].reason, reason)) {
            free(reason);
            return;
        }
    if (v->n == SP_SCAN_MATCH_MAX) {
        free(reason);
        return;
    }
    v->m[v->n].rule = rule;
    v->m[v->n].reason = reason;
    v->n++;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0)
        abort();
    return s;
}

/* The message being read: where its findings go and what they are checked against. */
typedef struct msg {
    sp_scan_report_t *report;
    const char *file;
    size_t index;
    const char *message_id;
    GPtrArray *recipients; /* recipient_t */
    GHashTable *seen;      /* "I" or "L" + URL -> index in report->findings + 1 */
    bool strip;
} msg_t;

/* Records V for URL once per message: a URL found again only adds the reasons it did not
 * have yet. */
static void report_add(msg_t *m, const char *url, verdict_t *v)
{
    sp_scan_report_t *r = m->report;
    char *key = g_strdup_printf("%c%s", SP_SCAN_LINK == v->kind ? 'L' : 'I', url);
    size_t at = GPOINTER_TO_SIZE(g_hash_table_lookup(m->seen, key));
    if (at) {
        sp_scan_finding_t *f = &r->findings[at - 1];
        g_free(key);
        if (SP_SCAN_PIXEL == v->kind)
            f->kind = SP_SCAN_PIXEL;
        if (!f->vendor)
            f->vendor = v->vendor;
        if (!f->target && v->target)
            f->target = xstrdup(v->target);
        for (size_t i = 0; i < v->n; i++) {
            bool have = false;
            for (size_t k = 0; k < f->n_matches && !have; k++)
                have = 0 == strcmp(f->matches[k].rule, v->m[i].rule) &&
                       0 == strcmp(f->matches[k].reason, v->m[i].reason);
            if (!have && f->n_matches < SP_SCAN_MATCH_MAX) {
                f->matches[f->n_matches++] = v->m[i];
                v->m[i].reason = NULL;
            }
        }
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        sp_scan_finding_t *grown = realloc(r->findings, cap * sizeof(*grown));
        if (!grown)
            abort();
        r->findings = grown;
        r->cap = cap;
    }
    sp_scan_finding_t *f = &r->findings[r->n++];
    memset(f, 0, sizeof(*f));
    f->file = xstrdup(m->file);
    f->message = m->index;
    f->message_id = xstrdup(m->message_id);
    f->kind = v->kind;
    f->url = xstrdup(url);
    f->host = xstrdup(v->host ? v->host : "");
    f->vendor = v->vendor;
    f->target = xstrdup(v->target);
    for (size_t i = 0; i < v->n; i++) {
        f->matches[i] = v->m[i];
        v->m[i].reason = NULL;
    }
    f->n_matches = v->n;
    g_hash_table_insert(m->seen, key, GSIZE_TO_POINTER(r->n));
}

/* ---- Judging one URL ------------------------------------------------------------------------- */

typedef enum use {
    USE_IMAGE,    /* an <img> (or image input): size and hiding count */
    USE_RESOURCE, /* anything else fetched on opening: CSS images, stylesheets, frames... */
    USE_LINK,     /* followed when clicked */
} use_t;

/* Why an image cannot be seen, found by hidden_evidence: the rule and its reason. */
typedef struct hidden {
    const char *rule;
    char *reason;
} hidden_t;

/* Whether U has a long opaque token in its query or path; *TOKEN gets a copy (g_free). */
static bool find_token(const url_t *u, char **token)
{
    *token = NULL;
    for (const char *p = u->query; p && *p && !*token;) {
        size_t len = strcspn(p, "&;");
        const char *eq = memchr(p, '=', len);
        if (eq) {
            char *value = pct_decode(eq + 1, len - (size_t)(eq + 1 - p), true);
            size_t n = strlen(value);
            if (n >= TOKEN_QUERY_MIN && TOKEN_NONE != token_kind(value, n))
                *token = g_strdup(value);
            g_free(value);
        }
        p += len;
        if (*p)
            p++;
    }
    for (const char *p = u->path; *p && !*token;) {
        p += '/' == *p;
        size_t len = strcspn(p, "/");
        bool last = '\0' == p[len];
        size_t n = len;
        if (last && has_image_extension(p, len))
            n = (size_t)((const char *)memrchr(p, '.', len) - p);
        token_kind_t k = n >= TOKEN_PATH_MIN ? token_kind(p, n) : TOKEN_NONE;
        /* A hex file name is usually the image's own content hash, the same for everyone. */
        if ((TOKEN_B64 == k) || (TOKEN_HEX == k && n >= TOKEN_HEX_MIN && !(last && len != n)))
            *token = g_strndup(p, n);
        p += len;
    }
    return NULL != *token;
}

static char *abbreviate(const char *s)
{
    size_t n = strlen(s);
    return n <= 24 ? xstrdup(s) : xprintf("%.10s...%s", s, s + n - 8);
}

/* Judges URL used as USE (HIDDEN: why the image cannot be seen, or NULL). True when it is a
 * tracker; V then holds the verdict. */
static bool judge(const msg_t *m, const char *url, use_t use, const hidden_t *hidden, verdict_t *v)
{
    url_t u;
    const char *addr = NULL, *how;
    memset(v, 0, sizeof(*v));
    if (!url_split(url, &u))
        return false;
    unsigned on = USE_LINK == use ? SP_SCAN_ON_LINK : SP_SCAN_ON_IMAGE;
    const sp_scan_host_rule_t *rule =
        sp_scan_rules_match_host(u.host, u.path, on, last_is_token(&u));
    bool pixel_url = false;
    if (rule) {
        verdict_add(v, rule->name, xprintf("%s", rule->reason));
        v->vendor = rule->vendor;
        pixel_url = rule->flags & SP_SCAN_PIXEL_URL;
    }
    if ((how = find_recipient(m->recipients, url, &addr)))
        verdict_add(v, "recipient-address",
                    xprintf("the URL carries your address (%s) %s: %s tells the sender who you are",
                            addr, how, USE_LINK == use ? "following it" : "fetching it"));
    if (USE_IMAGE == use && hidden)
        verdict_add(v, hidden->rule, xstrdup(hidden->reason));
    char *token = NULL;
    if (USE_LINK != use && find_token(&u, &token)) {
        char *shown = abbreviate(token);
        verdict_add(v, "opaque-token",
                    xprintf("a long opaque token in the image URL (%s) can tell recipients apart, "
                            "so each load can be tied to one person",
                            shown));
        free(shown);
        g_free(token);
    }
    if (USE_LINK == use && !sp_scan_rules_is_share(u.host, u.path)) {
        v->target = unwrap_target(&u);
        if (v->target) {
            url_t t;
            bool split = url_split(v->target, &t);
            verdict_add(v, "redirect",
                        xprintf("a redirect: the link goes through %s, which can log the click, "
                                "before it reaches %s",
                                u.host, split ? t.host : v->target));
            if (split)
                url_free(&t);
        }
        size_t dropped = 0;
        char *clean = without_id_params(url, &dropped);
        for (const char *p = u.query; dropped && p && *p;) {
            size_t len = strcspn(p, "&;");
            const sp_scan_param_rule_t *pr = sp_scan_rules_match_param(p, strcspn(p, "=&;"));
            if (pr)
                verdict_add(v, "tracking-parameter",
                            xprintf("a per-recipient parameter of %s: %s", pr->vendor, pr->reason));
            p += len;
            if (*p)
                p++;
        }
        if (v->target)
            v->clean = g_strdup(v->target);
        else if (dropped && !rule)
            v->clean = g_strdup(clean);
        g_free(clean);
    }
    if (v->n) {
        v->host = g_strdup(u.host);
        if (USE_LINK == use)
            v->kind = SP_SCAN_LINK;
        else
            v->kind = pixel_url || (USE_IMAGE == use && hidden) ? SP_SCAN_PIXEL : SP_SCAN_IMAGE;
    }
    url_free(&u);
    return v->n > 0;
}

/* Judges URL and records it; true when it is a tracker. *CLEAN (when not NULL) gets the URL
 * --strip should write for a link, or NULL to keep it; g_free it. */
static bool check_url(msg_t *m, const char *url, use_t use, const hidden_t *hidden, char **clean,
                      sp_scan_kind_t *kind)
{
    verdict_t v;
    /* Browsers drop tabs and line breaks anywhere in a URL (WHATWG URL standard), so the URL
     * fetched is the one without them. */
    char *trimmed = g_strstrip(g_strdup(url)), *o = trimmed;
    for (const char *i = trimmed; *i; i++)
        if ('\t' != *i && '\n' != *i && '\r' != *i)
            *o++ = *i;
    *o = '\0';
    bool tracker = judge(m, trimmed, use, hidden, &v);
    if (tracker) {
        report_add(m, trimmed, &v);
        if (kind)
            *kind = v.kind;
        if (clean) {
            *clean = v.clean;
            v.clean = NULL;
        }
    } else if (clean) {
        *clean = NULL;
    }
    verdict_free(&v);
    g_free(trimmed);
    return tracker;
}

/* ---- CSS ------------------------------------------------------------------------------------- */

/* One "property: value" of a style attribute; lower case, trimmed, without !important. */
typedef struct decl {
    char prop[32];
    char value[96];
} decl_t;

#define DECLS_MAX 64

static void copy_trimmed(char *dst, size_t cap, const char *s, size_t n)
{
    while (n && g_ascii_isspace(*s))
        s++, n--;
    while (n && g_ascii_isspace(s[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = g_ascii_tolower(s[i]);
    dst[n] = '\0';
}

/* Splits STYLE at the ';' outside quotes and parentheses (url(data:...;base64,...)). */
static size_t css_decls(const char *style, decl_t *out, size_t max)
{
    size_t n = 0;
    const char *start = style;
    int depth = 0;
    char quote = 0;
    for (const char *p = style;; p++) {
        char c = *p;
        if (quote) {
            if (c == quote)
                quote = 0;
            else if (!c)
                break;
            continue;
        }
        if ('"' == c || '\'' == c)
            quote = c;
        else if ('(' == c)
            depth++;
        else if (')' == c && depth)
            depth--;
        if ((';' == c && !depth) || !c) {
            const char *colon = memchr(start, ':', (size_t)(p - start));
            if (colon && n < max) {
                copy_trimmed(out[n].prop, sizeof(out[n].prop), start, (size_t)(colon - start));
                copy_trimmed(out[n].value, sizeof(out[n].value), colon + 1,
                             (size_t)(p - colon - 1));
                char *imp = strstr(out[n].value, "!important");
                if (imp) {
                    *imp = '\0';
                    g_strchomp(out[n].value);
                }
                if (out[n].prop[0])
                    n++;
            }
            if (!c)
                break;
            start = p + 1;
        }
    }
    return n;
}

/* A CSS number or length in px. False for percentages, viewport units, auto and words. */
static bool css_length(const char *value, double *px)
{
    char *end;
    double v = g_ascii_strtod(value, &end);
    if (end == value)
        return false;
    while (g_ascii_isspace(*end))
        end++;
    static const struct {
        const char *unit;
        double px;
    } units[] = {{"", 1},     {"px", 1},  {"pt", 4.0 / 3},   {"pc", 16},       {"em", 16},
                 {"rem", 16}, {"in", 96}, {"cm", 96 / 2.54}, {"mm", 96 / 25.4}};
    for (size_t i = 0; i < N_OF(units); i++)
        if (0 == strcmp(end, units[i].unit)) {
            *px = v * units[i].px;
            return true;
        }
    if (0 == v) {
        *px = 0; /* a zero is a zero in any unit */
        return true;
    }
    return false;
}

/* The style rule D matches, or NULL. */
static const sp_scan_style_rule_t *style_match(const decl_t *d)
{
    size_t n;
    const sp_scan_style_rule_t *rules = sp_scan_rules_styles(&n);
    for (size_t i = 0; i < n; i++) {
        if (0 != strcmp(rules[i].property, d->prop))
            continue;
        double px;
        if (SP_SCAN_STYLE_IS == rules[i].test) {
            size_t w = strcspn(d->value, " \t");
            if (strlen(rules[i].word) == w && 0 == strncmp(d->value, rules[i].word, w))
                return &rules[i];
        } else if (css_length(d->value, &px) && px <= rules[i].limit) {
            return &rules[i];
        }
    }
    return NULL;
}

/* What a URL in CSS is: an image fetched on opening is judged like any resource; one that loads
 * only when the message is printed, or only in a forwarded or quoted copy, is there to report
 * that event, whoever serves it. */
static bool css_url_seen(const sp_scan_css_url_t *u, void *ctx)
{
    msg_t *m = ctx;
    hidden_t why = {0};
    if (u->print) {
        why.rule = "print-css";
        why.reason = xprintf("a CSS image loaded only when the message is printed (%s%s%s): "
                             "fetching it tells the sender that you printed it, and when",
                             u->print, *u->selector ? ", rule " : "", u->selector);
    } else if (u->forward) {
        why.rule = "forward-css";
        why.reason = xprintf("a CSS image under the selector %s, which applies only in a "
                             "quoted or forwarded copy of the message (%s): opening that copy "
                             "fetches it, which tells the sender that the message was forwarded "
                             "or answered, and where it is read next",
                             u->selector, u->forward->reason);
    }
    bool tracker = check_url(m, u->url, why.rule ? USE_IMAGE : USE_RESOURCE, why.rule ? &why : NULL,
                             NULL, NULL);
    free(why.reason);
    return tracker;
}

/* Scans CSS, a style sheet or (INLINE) a style attribute; PRINT says why the whole sheet applies
 * to print only, or is NULL. With STRIP, returns the CSS without its trackers (g_free), or NULL
 * when nothing changed. */
static char *css_scan(msg_t *m, const char *css, bool inline_style, const char *print, bool strip,
                      size_t *removed)
{
    return sp_scan_css_walk(css, strlen(css), inline_style, print, css_url_seen, m, strip, removed);
}

/* ---- HTML ------------------------------------------------------------------------------------ */

static char *attr(xmlNode *n, const char *name)
{
    return (char *)xmlGetProp(n, (const xmlChar *)name);
}

static bool is_element(const xmlNode *n, const char *name)
{
    return XML_ELEMENT_NODE == n->type && 0 == xmlStrcasecmp(n->name, (const xmlChar *)name);
}

/* An HTML width or height attribute in px: "1", "1px"; false for "100%" and junk. */
static bool html_length(const char *value, double *px)
{
    if (!value)
        return false;
    char *end;
    while (g_ascii_isspace(*value))
        value++;
    double v = g_ascii_strtod(value, &end);
    if (end == value || v < 0)
        return false;
    while (g_ascii_isspace(*end))
        end++;
    if (*end && 0 != g_ascii_strcasecmp(end, "px"))
        return false;
    *px = v;
    return true;
}

/* Why the element N (an ancestor of an image) hides what is in it, or NULL. */
static char *hides_children(xmlNode *n)
{
    char *style = NULL, *why = NULL;
    if (xmlHasProp(n, (const xmlChar *)"hidden"))
        return xprintf("inside a hidden <%s> (the hidden attribute): the image is fetched but "
                       "never shown",
                       (const char *)n->name);
    if (!(style = attr(n, "style")))
        return NULL;
    decl_t d[DECLS_MAX];
    size_t nd = css_decls(style, d, DECLS_MAX);
    bool overflow_hidden = false;
    for (size_t i = 0; i < nd; i++)
        if (0 == strcmp(d[i].prop, "overflow") && 0 == strcmp(d[i].value, "hidden"))
            overflow_hidden = true;
    for (size_t i = 0; i < nd && !why; i++) {
        const sp_scan_style_rule_t *r = style_match(&d[i]);
        if (r && (SP_SCAN_STYLE_HIDES == r->role || overflow_hidden))
            why = SP_SCAN_STYLE_HIDES == r->role
                      ? xprintf("inside a hidden <%s>: %s", (const char *)n->name, r->reason)
                      : xprintf("inside a <%s> with %s:%s and overflow:hidden, which shows "
                                "nothing of what it holds",
                                (const char *)n->name, d[i].prop, d[i].value);
    }
    xmlFree(style);
    return why;
}

/* Why the image element IMG cannot be seen (tiny, hidden, or in a hidden element), or false.
 * INHERITED: why the element it sits in is hidden, or NULL. */
static bool hidden_evidence(xmlNode *img, const char *inherited, hidden_t *h)
{
    h->rule = NULL;
    h->reason = NULL;
    double w = -1, h_px = -1, px;
    char *wa = attr(img, "width"), *ha = attr(img, "height"), *style = attr(img, "style");
    GString *sizes = g_string_new(NULL);
    if (html_length(wa, &px)) {
        w = px;
        g_string_append_printf(sizes, "width=\"%s\"", wa);
    }
    if (html_length(ha, &px)) {
        h_px = px;
        g_string_append_printf(sizes, "%sheight=\"%s\"", sizes->len ? " " : "", ha);
    }
    if (xmlHasProp(img, (const xmlChar *)"hidden")) {
        h->rule = "hidden-image";
        h->reason = xstrdup("a hidden image (the hidden attribute): it is fetched but never shown, "
                            "so it is there only to be fetched when the message is opened");
    }
    decl_t d[DECLS_MAX];
    size_t nd = style ? css_decls(style, d, DECLS_MAX) : 0;
    for (size_t i = 0; i < nd && !h->rule; i++) {
        const sp_scan_style_rule_t *r = style_match(&d[i]);
        if (r && SP_SCAN_STYLE_HIDES == r->role) {
            h->rule = "hidden-image";
            h->reason = xprintf("a hidden image: %s; it is there only to be fetched when the "
                                "message is opened",
                                r->reason);
        }
    }
    /* The style's sizes win over the attributes, as in a browser; a max- caps either. */
    double max_w = -1, max_h = -1;
    for (size_t i = 0; i < nd; i++) {
        double *slot = 0 == strcmp(d[i].prop, "width")        ? &w
                       : 0 == strcmp(d[i].prop, "height")     ? &h_px
                       : 0 == strcmp(d[i].prop, "max-width")  ? &max_w
                       : 0 == strcmp(d[i].prop, "max-height") ? &max_h
                                                              : NULL;
        if (slot && css_length(d[i].value, &px)) {
            *slot = px;
            g_string_append_printf(sizes, "%s%s:%s", sizes->len ? " " : "", d[i].prop, d[i].value);
        }
    }
    if (max_w >= 0 && (w < 0 || max_w < w))
        w = max_w;
    if (max_h >= 0 && (h_px < 0 || max_h < h_px))
        h_px = max_h;
    bool known = w >= 0 || h_px >= 0;
    bool tiny = known && (w < 0 || w <= 2) && (h_px < 0 || h_px <= 2);
    bool zero = (w >= 0 && w < 0.5) || (h_px >= 0 && h_px < 0.5);
    if (!h->rule && (tiny || zero)) {
        char dims[80];
        if (w >= 0 && h_px >= 0)
            g_snprintf(dims, sizeof(dims), "a %gx%g image", w, h_px);
        else
            g_snprintf(dims, sizeof(dims), "an image %gpx %s", w >= 0 ? w : h_px,
                       w >= 0 ? "wide" : "high");
        h->rule = "tiny-image";
        h->reason = xprintf("%s (%s): too small to see, so it is there only to be fetched when "
                            "the message is opened",
                            dims, sizes->str);
    }
    if (!h->rule && inherited) {
        h->rule = "hidden-parent";
        h->reason = xstrdup(inherited);
    }
    g_string_free(sizes, TRUE);
    xmlFree(wa);
    xmlFree(ha);
    xmlFree(style);
    return NULL != h->rule;
}

/* The attributes that hold URLs a mail client fetches or follows. NULL element: any. */
static const struct url_attr {
    const char *element, *attr;
    use_t use;
    bool srcset; /* a list of "URL [descriptor]" separated by commas */
} url_attrs[] = {
    {"img", "src", USE_IMAGE, false},
    {"img", "srcset", USE_IMAGE, true},
    {"input", "src", USE_IMAGE, false}, /* <input type=image> */
    {"source", "srcset", USE_IMAGE, true},
    {"source", "src", USE_RESOURCE, false},
    {"video", "poster", USE_RESOURCE, false},
    {"video", "src", USE_RESOURCE, false},
    {"audio", "src", USE_RESOURCE, false},
    {"iframe", "src", USE_RESOURCE, false},
    {"frame", "src", USE_RESOURCE, false},
    {"embed", "src", USE_RESOURCE, false},
    {"object", "data", USE_RESOURCE, false},
    {"script", "src", USE_RESOURCE, false},
    {"link", "href", USE_RESOURCE, false},     /* stylesheets, icons, prefetches */
    {NULL, "background", USE_RESOURCE, false}, /* <body>, <table>, <td> */
    {"a", "href", USE_LINK, false},
    {"area", "href", USE_LINK, false},
};

typedef struct html_walk {
    msg_t *m;
    bool strip;
    bool changed;
    /* Why the element being visited sits in a hidden place, or NULL: kept up to date by
     * walk_nodes, so that no image looks at all its ancestors. */
    const char *hidden;
    GPtrArray *doomed; /* image elements to take out, after the walk */
    GPtrArray *metas;  /* <meta> elements, told the new charset when the document changes */
} html_walk_t;

static void walk_nodes(html_walk_t *w, xmlNode *root);

/* Replaces an image by its alt text (a visible image the reader would have seen) or nothing.
 * Damaged HTML can leave content inside an <img>; it moves out rather than going with it. */
static void take_out(xmlNode *n, sp_scan_kind_t kind)
{
    while (n->children) {
        xmlNode *c = n->children;
        xmlUnlinkNode(c);
        xmlAddPrevSibling(n, c); /* may merge C into a text node and free it */
    }
    char *alt = SP_SCAN_IMAGE == kind ? attr(n, "alt") : NULL;
    if (alt && *alt) {
        xmlNode *text = xmlNewText((const xmlChar *)alt);
        xmlReplaceNode(n, text);
    } else {
        xmlUnlinkNode(n);
    }
    xmlFree(alt);
    xmlFreeNode(n);
}

static void check_attr(html_walk_t *w, xmlNode *n, const struct url_attr *ua, const char *value)
{
    sp_scan_kind_t kind = SP_SCAN_IMAGE;
    hidden_t hid = {0};
    bool has_hid = USE_IMAGE == ua->use && hidden_evidence(n, w->hidden, &hid);
    if (ua->srcset) {
        bool any = false;
        char **cands = g_strsplit(value, ",", -1);
        for (char **c = cands; *c; c++) {
            char *s = g_strstrip(*c);
            s[strcspn(s, " \t\r\n")] = '\0';
            if (*s && check_url(w->m, s, ua->use, has_hid ? &hid : NULL, NULL, NULL))
                any = true;
        }
        g_strfreev(cands);
        if (any && w->strip) {
            xmlUnsetProp(n, (const xmlChar *)ua->attr);
            w->m->report->removed++;
            w->changed = true;
        }
    } else if (USE_LINK == ua->use) {
        char *clean = NULL;
        if (check_url(w->m, value, USE_LINK, NULL, &clean, NULL) && w->strip) {
            if (clean) {
                xmlSetProp(n, (const xmlChar *)ua->attr, (const xmlChar *)clean);
                w->m->report->rewritten++;
                w->changed = true;
            } else {
                w->m->report->kept++;
            }
        }
        g_free(clean);
    } else if (check_url(w->m, value, ua->use, has_hid ? &hid : NULL, NULL, &kind) && w->strip) {
        if (USE_IMAGE == ua->use)
            g_ptr_array_add(w->doomed, n);
        else
            xmlUnsetProp(n, (const xmlChar *)ua->attr);
        w->m->report->removed++;
        w->changed = true;
        if (USE_IMAGE == ua->use && SP_SCAN_IMAGE != kind)
            xmlUnsetProp(n, (const xmlChar *)"alt"); /* a pixel leaves nothing behind */
    }
    free(hid.reason);
}

static void visit_element(html_walk_t *w, xmlNode *n)
{
    if (is_element(n, "meta")) {
        g_ptr_array_add(w->metas, n);
        return;
    }
    for (size_t i = 0; i < N_OF(url_attrs); i++) {
        const struct url_attr *ua = &url_attrs[i];
        if (ua->element && !is_element(n, ua->element))
            continue;
        char *value = attr(n, ua->attr);
        if (value && *value)
            check_attr(w, n, ua, value);
        xmlFree(value);
    }
    char *style = attr(n, "style");
    if (style) {
        size_t removed;
        char *clean = css_scan(w->m, style, true, NULL, w->strip, &removed);
        if (clean) {
            xmlSetProp(n, (const xmlChar *)"style", (const xmlChar *)clean);
            w->m->report->removed += removed;
            w->changed = true;
            g_free(clean);
        }
        xmlFree(style);
    }
    if (is_element(n, "style")) {
        char *css = (char *)xmlNodeGetContent(n);
        char *media = attr(n, "media"), *print = NULL;
        if (sp_scan_css_media_is_print(media)) {
            /* Cut on a character: findings are written as JSON, which must stay UTF-8. */
            glong chars = g_utf8_strlen(media, -1);
            char *shown = g_utf8_substring(media, 0, chars > 60 ? 60 : chars);
            print = xprintf("<style media=\"%s%s\">", shown, chars > 60 ? "..." : "");
            g_free(shown);
        }
        size_t removed;
        char *clean = css ? css_scan(w->m, css, false, print, w->strip, &removed) : NULL;
        free(print);
        xmlFree(media);
        if (clean) {
            /* A text child, not xmlNodeSetContent, which would read '&' as an entity; the
             * serializer writes <style> text raw. */
            while (n->children) {
                xmlNode *c = n->children;
                xmlUnlinkNode(c);
                xmlFreeNode(c);
            }
            xmlAddChild(n, xmlNewText((const xmlChar *)clean));
            w->m->report->removed += removed;
            w->changed = true;
            g_free(clean);
        }
        xmlFree(css);
    }
}

static htmlDocPtr parse_html(const char *html, size_t len)
{
    if (len > INT_MAX)
        len = INT_MAX;
    return htmlReadMemory(html, (int)len, NULL, "UTF-8", html_options);
}

/* Writes the children of DOC's root level as HTML; g_free the result. */
static char *serialize(htmlDocPtr doc)
{
    xmlOutputBufferPtr buf = xmlAllocOutputBuffer(NULL);
    if (!buf)
        abort();
    htmlDocContentDumpFormatOutput(buf, doc, NULL, 0);
    xmlOutputBufferFlush(buf);
    char *out =
        g_strndup((const char *)xmlOutputBufferGetContent(buf), (gsize)xmlOutputBufferGetSize(buf));
    xmlOutputBufferClose(buf);
    return out;
}

/* Outlook reads HTML inside conditional comments (<!--[if mso]>...<![endif]-->) that every
 * other client skips, and trackers aimed at Outlook hide there: the comment's inside is parsed
 * and walked like the rest, and rewritten when it changed. */
static void visit_comment(html_walk_t *w, xmlNode *n)
{
    const char *text = (const char *)n->content;
    if (!text)
        return;
    while (g_ascii_isspace(*text))
        text++;
    if (!sp_has_prefix(text, "[if"))
        return;
    const char *open_end = strstr(text, "]>");
    if (!open_end)
        return;
    open_end += 2;
    const char *close = strstr(open_end, "<![endif]");
    size_t inner_len = close ? (size_t)(close - open_end) : strlen(open_end);
    htmlDocPtr frag = parse_html(open_end, inner_len);
    if (!frag)
        return;
    html_walk_t inner = {.m = w->m,
                         .strip = w->strip,
                         .hidden = w->hidden,
                         .doomed = g_ptr_array_new(),
                         .metas = g_ptr_array_new()};
    walk_nodes(&inner, (xmlNode *)frag);
    if (inner.changed) {
        char *body = serialize(frag);
        /* The serializer ends a document with a newline the comment did not have. */
        size_t blen = strlen(body);
        if (blen && '\n' == body[blen - 1] && (!inner_len || '\n' != open_end[inner_len - 1]))
            body[blen - 1] = '\0';
        char *content = g_strdup_printf("%.*s%s%s", (int)(open_end - (const char *)n->content),
                                        (const char *)n->content, body, close ? close : "");
        xmlNodeSetContent(n, (const xmlChar *)content);
        g_free(content);
        g_free(body);
        w->changed = true;
    }
    g_ptr_array_free(inner.doomed, TRUE);
    g_ptr_array_free(inner.metas, TRUE);
    xmlFreeDoc(frag);
}

/* Visits every node under ROOT without recursion (a hostile document can nest deeply), then
 * takes out the doomed images. Damaged HTML can nest an image in an image; the walk found
 * ancestors first, so taking them out last to first never frees a node twice. */
typedef struct open_element {
    const char *hidden; /* why its children are hidden, or NULL */
    char *owned;        /* HIDDEN when this element hides them itself, to free on leaving */
} open_element_t;

static void walk_nodes(html_walk_t *w, xmlNode *root)
{
    GArray *open = g_array_new(FALSE, FALSE, sizeof(open_element_t));
    const char *outer = w->hidden;
    xmlNode *n = root->children;
    while (n) {
        if (XML_ELEMENT_NODE == n->type)
            visit_element(w, n);
        else if (XML_COMMENT_NODE == n->type)
            visit_comment(w, n);
        if (n->children && XML_ELEMENT_NODE == n->type) {
            open_element_t e = {.hidden = w->hidden, .owned = NULL};
            if (!e.hidden)
                e.hidden = e.owned = hides_children(n);
            g_array_append_val(open, e);
            w->hidden = e.hidden;
            n = n->children;
            continue;
        }
        while (n && n != root && !n->next) {
            n = n->parent;
            if (n != root && open->len) {
                free(g_array_index(open, open_element_t, open->len - 1).owned);
                g_array_set_size(open, open->len - 1);
                w->hidden =
                    open->len ? g_array_index(open, open_element_t, open->len - 1).hidden : outer;
            }
        }
        n = n && n != root ? n->next : NULL;
    }
    for (guint i = 0; i < open->len; i++)
        free(g_array_index(open, open_element_t, i).owned);
    g_array_free(open, TRUE);
    w->hidden = outer;
    for (guint i = w->doomed->len; i-- > 0;) {
        xmlNode *img = w->doomed->pdata[i];
        char *alt = attr(img, "alt");
        take_out(img, alt ? SP_SCAN_IMAGE : SP_SCAN_PIXEL);
        xmlFree(alt);
    }
    g_ptr_array_set_size(w->doomed, 0);
}

/* Scans HTML (UTF-8); with STRIP, returns the HTML without its trackers (g_free) or NULL when
 * nothing changed. */
static char *scan_html(msg_t *m, const char *html, bool strip)
{
    htmlDocPtr doc = parse_html(html, strlen(html));
    if (!doc)
        return NULL;
    html_walk_t w = {
        .m = m, .strip = strip, .doomed = g_ptr_array_new(), .metas = g_ptr_array_new()};
    walk_nodes(&w, (xmlNode *)doc);
    char *out = NULL;
    if (w.changed) {
        /* The part is written back as UTF-8: the document must not claim another charset. */
        for (guint i = 0; i < w.metas->len; i++) {
            xmlNode *meta = w.metas->pdata[i];
            char *equiv = attr(meta, "http-equiv");
            if (xmlHasProp(meta, (const xmlChar *)"charset"))
                xmlSetProp(meta, (const xmlChar *)"charset", (const xmlChar *)"utf-8");
            if (equiv && 0 == g_ascii_strcasecmp(equiv, "content-type"))
                xmlSetProp(meta, (const xmlChar *)"content",
                           (const xmlChar *)"text/html; charset=utf-8");
            xmlFree(equiv);
        }
        out = serialize(doc);
    }
    g_ptr_array_free(w.doomed, TRUE);
    g_ptr_array_free(w.metas, TRUE);
    xmlFreeDoc(doc);
    return out;
}

/* ---- Plain text ------------------------------------------------------------------------------ */

/* Scans the http(s) URLs of a plain-text part as links; with STRIP, returns the text with the
 * tracked links that carry their destination replaced by it (g_free), or NULL if unchanged. */
static char *scan_text(msg_t *m, const char *text, bool strip)
{
    GString *out = strip ? g_string_new(NULL) : NULL;
    const char *copied = text;
    bool changed = false;
    for (const char *p = text; (p = strcasestr(p, "http"));) {
        if (!starts_with_ci(p, "http://") && !starts_with_ci(p, "https://")) {
            p += 4;
            continue;
        }
        size_t len = strcspn(p, " \t\r\n<>\"'`{}|\\^");
        while (len && strchr(".,;:!?)]", p[len - 1]))
            len--;
        char *url = g_strndup(p, len), *clean = NULL;
        if (check_url(m, url, USE_LINK, NULL, &clean, NULL) && strip) {
            if (clean) {
                g_string_append_len(out, copied, p - copied);
                g_string_append(out, clean);
                copied = p + len;
                m->report->rewritten++;
                changed = true;
            } else {
                m->report->kept++;
            }
        }
        g_free(clean);
        g_free(url);
        p += len ? len : 4;
    }
    if (!out)
        return NULL;
    if (!changed) {
        g_string_free(out, TRUE);
        return NULL;
    }
    g_string_append(out, copied);
    return g_string_free(out, FALSE);
}

/* ---- MIME ------------------------------------------------------------------------------------ */

/* The transfer encoding for new TEXT in a part that had OLD: quoted-printable and base64 stay
 * (the sender chose them, and they always fit); otherwise 7bit or 8bit while that is still
 * valid (lines of at most 998 bytes, RFC 5322), else quoted-printable. */
static GMimeContentEncoding pick_encoding(GMimeContentEncoding old, const char *text)
{
    if (GMIME_CONTENT_ENCODING_BASE64 == old || GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE == old)
        return old;
    bool ascii = true;
    size_t line = 0, longest = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        ascii = ascii && *p < 0x80;
        line = '\n' == *p ? 0 : line + 1;
        longest = line > longest ? line : longest;
    }
    if (longest <= 998 && ascii)
        return GMIME_CONTENT_ENCODING_7BIT;
    if (longest <= 998 && GMIME_CONTENT_ENCODING_8BIT == old)
        return GMIME_CONTENT_ENCODING_8BIT;
    return GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
}

/* Replaces PART's content by TEXT (UTF-8). */
static void set_part_text(GMimePart *part, const char *text)
{
    GMimeContentEncoding old = g_mime_part_get_content_encoding(part);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(text, strlen(text));
    GMimeDataWrapper *content =
        g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, content);
    g_object_unref(content);
    g_object_unref(stream);
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
    g_mime_part_set_content_encoding(part, pick_encoding(old, text));
}

static void scan_text_part(msg_t *m, GMimeTextPart *part)
{
    GMimeObject *obj = GMIME_OBJECT(part);
    GMimeContentDisposition *disp = g_mime_object_get_content_disposition(obj);
    GMimeContentType *type = g_mime_object_get_content_type(obj);
    bool html = g_mime_content_type_is_type(type, "text", "html");
    /* Attachments are not shown on opening, so they fetch nothing. */
    if ((disp && g_mime_content_disposition_is_attachment(disp)) ||
        !(html || g_mime_content_type_is_type(type, "text", "plain")))
        return;
    if (!g_mime_part_get_content(GMIME_PART(part)))
        return;
    char *raw = g_mime_text_part_get_text(part);
    if (!raw)
        return;
    char *text = g_utf8_make_valid(raw, -1);
    char *clean = html ? scan_html(m, text, m->strip) : scan_text(m, text, m->strip);
    if (clean)
        set_part_text(GMIME_PART(part), clean);
    g_free(clean);
    g_free(text);
    g_free(raw);
}

/* Visits the parts under ROOT in order: multiparts' children, attached messages (whose
 * recipients count too) and text parts. A stack rather than recursion: a hostile message can
 * nest parts as deep as GMime reads them. */
static void walk_mime(msg_t *m, GMimeObject *root)
{
    GPtrArray *todo = g_ptr_array_new();
    if (root)
        g_ptr_array_add(todo, root);
    while (todo->len) {
        GMimeObject *obj = g_ptr_array_steal_index(todo, todo->len - 1);
        if (GMIME_IS_MULTIPART(obj)) {
            GMimeMultipart *mp = GMIME_MULTIPART(obj);
            for (int i = g_mime_multipart_get_count(mp); i-- > 0;)
                g_ptr_array_add(todo, g_mime_multipart_get_part(mp, i));
        } else if (GMIME_IS_MESSAGE_PART(obj)) {
            GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
            GMimeObject *body = inner ? g_mime_message_get_mime_part(inner) : NULL;
            if (inner)
                add_recipients(m->recipients, GMIME_OBJECT(inner));
            if (body)
                g_ptr_array_add(todo, body);
        } else if (GMIME_IS_TEXT_PART(obj)) {
            scan_text_part(m, GMIME_TEXT_PART(obj));
        }
    }
    g_ptr_array_free(todo, TRUE);
}

static void scan_receipt_headers(msg_t *m, GMimeObject *msg)
{
    size_t n;
    const sp_scan_header_rule_t *rules = sp_scan_rules_headers(&n);
    for (size_t i = 0; i < n; i++) {
        const char *value = g_mime_object_get_header(msg, rules[i].header);
        if (!value)
            continue;
        InternetAddressList *addrs = internet_address_list_parse(NULL, value);
        InternetAddress *first = addrs && internet_address_list_length(addrs) > 0
                                     ? internet_address_list_get_address(addrs, 0)
                                     : NULL;
        const char *addr = first && INTERNET_ADDRESS_IS_MAILBOX(first)
                               ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(first))
                               : value;
        char *url = g_strdup_printf("mailto:%s", addr);
        verdict_t v = {.kind = SP_SCAN_RECEIPT, .host = g_strdup(""), .n = 1};
        v.m[0].rule = "read-receipt";
        v.m[0].reason = xprintf("%s: %s", rules[i].header, rules[i].reason);
        report_add(m, url, &v);
        verdict_free(&v);
        g_free(url);
        if (addrs)
            g_object_unref(addrs);
        if (m->strip)
            while (g_mime_object_remove_header(msg, rules[i].header))
                m->report->removed++;
    }
}

static void scan_message(sp_scan_report_t *report, const char *file, size_t index,
                         GMimeMessage *message, bool strip)
{
    msg_t m = {
        .report = report,
        .file = file,
        .index = index,
        .message_id = g_mime_message_get_message_id(message),
        .recipients = g_ptr_array_new_with_free_func(recipient_free),
        .seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .strip = strip,
    };
    add_recipients(m.recipients, GMIME_OBJECT(message));
    scan_receipt_headers(&m, GMIME_OBJECT(message));
    walk_mime(&m, g_mime_message_get_mime_part(message));
    report->messages++;
    g_ptr_array_free(m.recipients, TRUE);
    g_hash_table_destroy(m.seen);
}

/* Writes MESSAGE to OUT, after its mbox From_ line MARKER when there is one, so that an mbox
 * stays an mbox: every message ends with a blank line before the next From_ line. */
static int write_message(GMimeMessage *message, const char *marker, FILE *out)
{
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_object_write_to_stream(GMIME_OBJECT(message), NULL, mem);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    size_t n = bytes->len;
    bool ok = true;
    if (marker)
        ok = fprintf(out, "%s\n", marker) >= 0;
    ok = ok && n == fwrite(bytes->data, 1, n, out);
    if (marker && ok) {
        if (n && '\n' != bytes->data[n - 1])
            ok = EOF != fputc('\n', out);
        ok = ok && EOF != fputc('\n', out);
    }
    g_object_unref(mem);
    return ok ? 0 : -1;
}

/* Reads every message of STREAM (an mbox when it starts with "From "), scanning each and, with
 * OUT, writing it back stripped. */
static int scan_stream(GMimeStream *stream, const char *name, sp_scan_report_t *report, FILE *out,
                       char *err, size_t errlen)
{
    char head[5] = {0};
    int rc = 0;
    bool mbox = 5 == g_mime_stream_read(stream, head, 5) && 0 == memcmp(head, "From ", 5);
    g_mime_stream_reset(stream);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, mbox ? GMIME_FORMAT_MBOX : GMIME_FORMAT_MESSAGE);
    for (size_t index = 1; rc == 0; index++) {
        if (mbox && g_mime_parser_eos(parser))
            break;
        GMimeMessage *message = g_mime_parser_construct_message(parser, NULL);
        if (!message)
            break;
        char *marker = mbox ? g_mime_parser_get_mbox_marker(parser) : NULL;
        scan_message(report, name, index, message, NULL != out);
        if (out && 0 != write_message(message, marker, out)) {
            snprintf(err, errlen, "cannot write the stripped message: %s", strerror(errno));
            rc = -1;
        }
        g_free(marker);
        g_object_unref(message);
        if (!mbox)
            break;
    }
    g_object_unref(parser);
    if (0 == rc && out && 0 != fflush(out)) {
        snprintf(err, errlen, "cannot write the stripped message: %s", strerror(errno));
        rc = -1;
    }
    return rc;
}

/* A stream over PATH ("-": standard input). Regular files are read in place; pipes and
 * terminals are read into memory first, because the parser seeks. */
static GMimeStream *open_input(const char *path, char *err, size_t errlen)
{
    int fd = 0 == strcmp(path, "-") ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    GByteArray *bytes = NULL;
    if (fd < 0 || 0 != fstat(fd, &st)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        /* An empty read on a file we may not read (EACCES is caught by open) still fails here
         * with a clear message rather than an empty report. */
        char probe;
        if (pread(fd, &probe, 1, 0) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        return g_mime_stream_fs_new(fd);
    }
    bytes = g_byte_array_new();
    for (;;) {
        guint8 buf[65536];
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && EINTR == errno)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (0 == got)
            break;
        g_byte_array_append(bytes, buf, (guint)got);
    }
    close(fd);
    return g_mime_stream_mem_new_with_byte_array(bytes);
fail:
    if (fd >= 0)
        close(fd);
    if (bytes)
        g_byte_array_free(bytes, TRUE);
    return NULL;
}

int sp_scan_file(const char *path, sp_scan_report_t *report, char *err, size_t errlen)
{
    pthread_once(&gmime_once, gmime_start);
    GMimeStream *stream = open_input(path, err, errlen);
    if (!stream)
        return -1;
    int rc = scan_stream(stream, path, report, NULL, err, errlen);
    g_object_unref(stream);
    return rc;
}

int sp_scan_memory(const char *name, const void *data, size_t len, sp_scan_report_t *report,
                   char *err, size_t errlen)
{
    pthread_once(&gmime_once, gmime_start);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    int rc = scan_stream(stream, name, report, NULL, err, errlen);
    g_object_unref(stream);
    return rc;
}

int sp_scan_strip(const char *path, FILE *out, sp_scan_report_t *report, char *err, size_t errlen)
{
    pthread_once(&gmime_once, gmime_start);
    GMimeStream *stream = open_input(path, err, errlen);
    if (!stream)
        return -1;
    int rc = scan_stream(stream, path, report, out, err, errlen);
    g_object_unref(stream);
    return rc;
}

/* ---- The command ----------------------------------------------------------------------------- */

static json_t *finding_json(const sp_scan_finding_t *f)
{
    json_t *o = json_object(), *rules = json_array();
    json_object_set_new(o, "file", json_string(f->file));
    json_object_set_new(o, "message", json_integer((json_int_t)f->message));
    json_object_set_new(o, "message_id", f->message_id ? json_string(f->message_id) : json_null());
    json_object_set_new(o, "kind", json_string(sp_scan_kind_name(f->kind)));
    json_object_set_new(o, "url", json_string(f->url));
    json_object_set_new(o, "host", json_string(f->host));
    json_object_set_new(o, "vendor", f->vendor ? json_string(f->vendor) : json_null());
    json_object_set_new(o, "rule", json_string(f->matches[0].rule));
    json_object_set_new(o, "reason", json_string(f->matches[0].reason));
    for (size_t i = 0; i < f->n_matches; i++)
        json_array_append_new(rules, json_pack("{s:s, s:s}", "rule", f->matches[i].rule, "reason",
                                               f->matches[i].reason));
    json_object_set_new(o, "rules", rules);
    json_object_set_new(o, "target", f->target ? json_string(f->target) : json_null());
    return o;
}

/* The readable table of one file's findings FROM.. in REPORT, message by message. */
static void print_table(FILE *out, const char *file, const sp_scan_report_t *report, size_t from,
                        size_t messages)
{
    size_t at = from;
    for (size_t msg = 1; msg <= messages; msg++) {
        size_t count = 0, end = at;
        while (end < report->n && report->findings[end].message == msg)
            end++, count++;
        const char *id = count ? report->findings[at].message_id : NULL;
        if (!count) {
            fprintf(out, "%s, message %zu: no trackers found\n", file, msg);
            continue;
        }
        fprintf(out, "%s, message %zu%s%s%s: %zu tracker%s\n", file, msg, id ? " <" : "",
                id ? id : "", id ? ">" : "", count, 1 == count ? "" : "s");
        fprintf(out, "  %-7s %-30s %s\n", "KIND", "HOST", "URL");
        for (; at < end; at++) {
            const sp_scan_finding_t *f = &report->findings[at];
            fprintf(out, "  %-7s %-30s %s\n", sp_scan_kind_name(f->kind), *f->host ? f->host : "-",
                    f->url);
            for (size_t i = 0; i < f->n_matches; i++)
                fprintf(out, "  %-7s %s %s: %s\n", "", i ? "   " : "why", f->matches[i].rule,
                        f->matches[i].reason);
            if (f->target)
                fprintf(out, "  %-7s to  %s\n", "", f->target);
        }
    }
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(
        stderr,
        "spypixel scan: %s%s%s%s\n"
        "usage: spypixel scan [--json] FILE... | spypixel scan --strip FILE (--help tells more)\n",
        what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    return 2;
}

int sp_scan_main(int argc, char **argv)
{
    bool json = false, strip = false, flags_done = false;
    int rc = 0, n_files = 0;
    char err[1024];
    const char **files = calloc((size_t)argc + 1, sizeof(*files));
    sp_scan_report_t report = SP_SCAN_REPORT_INIT;
    json_t *list = NULL;
    if (!files)
        abort();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || '-' != a[0] || 0 == strcmp(a, "-"))
            files[n_files++] = a;
        else if (0 == strcmp(a, "--"))
            flags_done = true;
        else if (0 == strcmp(a, "--json"))
            json = true;
        else if (0 == strcmp(a, "--strip"))
            strip = true;
        else if (0 == strcmp(a, "--help") || 0 == strcmp(a, "-h")) {
            fputs(SP_SCAN_HELP, stdout);
            goto done;
        } else {
            rc = usage_error("unknown flag", a);
            goto done;
        }
    }
    if (!n_files) {
        rc = usage_error("give at least one .eml or mbox FILE", NULL);
        goto done;
    }
    if (strip) {
        if (json || 1 != n_files) {
            rc = usage_error("--strip takes exactly one FILE and no --json", NULL);
            goto done;
        }
        if (0 != sp_scan_strip(files[0], stdout, &report, err, sizeof(err))) {
            fprintf(stderr, "spypixel scan: %s\n", err);
            rc = 1;
            goto done;
        }
        fprintf(stderr,
                "spypixel scan: %zu tracker%s in %zu message%s. Removed: %zu (images, CSS images, "
                "receipt requests). Links rewritten to their destination: %zu. Tracked links kept, "
                "their destination known only to the tracker: %zu.\n",
                report.n, 1 == report.n ? "" : "s", report.messages,
                1 == report.messages ? "" : "s", report.removed, report.rewritten, report.kept);
        goto done;
    }
    list = json ? json_array() : NULL;
    for (int i = 0; i < n_files; i++) {
        size_t from = report.n, messages = report.messages;
        if (0 != sp_scan_file(files[i], &report, err, sizeof(err))) {
            fprintf(stderr, "spypixel scan: %s\n", err);
            rc = 1;
            continue;
        }
        if (!json) {
            print_table(stdout, files[i], &report, from, report.messages - messages);
            continue;
        }
        for (size_t k = from; k < report.n; k++)
            json_array_append_new(list, finding_json(&report.findings[k]));
    }
    if (json) {
        json_dumpf(list, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else if (report.messages) {
        size_t with = 0;
        for (size_t k = 0; k < report.n; k++)
            with += 0 == k || report.findings[k].message != report.findings[k - 1].message ||
                    0 != strcmp(report.findings[k].file, report.findings[k - 1].file);
        printf("\n%zu tracker%s in %zu of %zu message%s\n", report.n, 1 == report.n ? "" : "s",
               with, report.messages, 1 == report.messages ? "" : "s");
    }
    if (0 != fflush(stdout)) {
        fprintf(stderr, "spypixel scan: cannot write: %s\n", strerror(errno));
        rc = 1;
    }
done:
    json_decref(list);
    sp_scan_report_free(&report);
    free(files);
    return rc;
}
