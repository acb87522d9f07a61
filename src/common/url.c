/* url: link targets checked and written as URLs that are valid by RFC 3986. */
/* SPDX-License-Identifier: MIT */
#include "url.h"
#include "text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *out;
    size_t len, at;
    bool full;
} writer_t;

static void put(writer_t *w, char c)
{
    if (w->at + 1 >= w->len) {
        w->full = true;
        return;
    }
    w->out[w->at++] = c;
}

static void put_escaped(writer_t *w, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    put(w, '%');
    put(w, hex[c >> 4]);
    put(w, hex[c & 15]);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 section 2.3 and 2.2. */
static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || '-' == c ||
           '.' == c || '_' == c || '~' == c;
}

static bool sub_delim(unsigned char c)
{
    return c && strchr("!$&'()*+,;=", c);
}

/* Copies S[0..N) keeping what EXTRA (besides unreserved, sub-delims and %XX escapes)
 * allows and escaping the rest. */
static void copy_part(writer_t *w, const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ('%' == c && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2]))
            put(w, '%');
        else if (unreserved(c) || sub_delim(c) || (c && strchr(extra, c)))
            put(w, (char)c);
        else
            put_escaped(w, c);
    }
}

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

int sp_url_target(const char *target, char *out, size_t len, char *err, size_t errlen)
{
    writer_t w = {.out = out, .len = len};
    const char *scheme;
    if (sp_has_prefix_ci(target, "https://"))
        scheme = "https://";
    else if (sp_has_prefix_ci(target, "http://"))
        scheme = "http://";
    else
        return fail(err, errlen, "\"target\" must be an http:// or https:// URL");
    for (const unsigned char *p = (const unsigned char *)target; *p; p++) {
        if (*p < 0x20 || 0x7f == *p)
            return fail(err, errlen, "\"target\" must not hold control characters");
        if (strchr(" \"<>", *p))
            return fail(err, errlen,
                        "\"target\" must not hold spaces, quotes or angle brackets "
                        "(percent-encode them)");
    }
    for (const char *p = scheme; *p; p++)
        put(&w, *p);

    /* The authority runs to the first '/', '?' or '#' (RFC 3986 section 3.2). */
    const char *auth = target + strlen(scheme);
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if ('@' == auth[i])
            at = auth + i;
    const char *host = auth;
    if (at) {
        copy_part(&w, auth, (size_t)(at - auth), ":");
        put(&w, '@');
        host = at + 1;
    }
    const char *end = auth + alen, *port = NULL;
    size_t hlen;
    if ('[' == *host) { /* an IP literal */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close || close == host + 1)
            return fail(err, errlen, "\"target\" has a malformed [IP address]");
        for (const char *p = host + 1; p < close; p++)
            if (!is_hex(*p) && !strchr(":.vV", *p))
                return fail(err, errlen, "\"target\" has a malformed [IP address]");
        hlen = (size_t)(close + 1 - host);
        if (close + 1 < end) {
            if (':' != close[1])
                return fail(err, errlen, "\"target\" has a malformed [IP address]");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        hlen = (size_t)((colon ? colon : end) - host);
        if (colon)
            port = colon + 1;
        for (size_t i = 0; i < hlen; i++) {
            unsigned char c = (unsigned char)host[i];
            if (c >= 0x80)
                return fail(err, errlen,
                            "\"target\" host must be ASCII: write an internationalized name in "
                            "its xn-- form");
            if (!unreserved(c) && !sub_delim(c))
                return fail(err, errlen, "\"target\" host holds a character no host name has");
        }
    }
    if (!hlen)
        return fail(err, errlen, "\"target\" has no host");
    for (size_t i = 0; i < hlen; i++)
        put(&w, host[i]);
    if (port) {
        long value = 0;
        for (const char *p = port; p < end; p++) {
            if (*p < '0' || *p > '9' || (value = value * 10 + (*p - '0')) > 65535)
                return fail(err, errlen, "\"target\" has a bad port");
        }
        put(&w, ':');
        for (const char *p = port; p < end; p++)
            put(&w, *p);
    }

    /* Path, query and fragment: pchar, '/' and '?' (RFC 3986 sections 3.3-3.5). */
    const char *rest = end, *hash = strchr(rest, '#');
    size_t before_hash = hash ? (size_t)(hash - rest) : strlen(rest);
    copy_part(&w, rest, before_hash, ":@/?");
    if (hash) {
        put(&w, '#');
        copy_part(&w, hash + 1, strlen(hash + 1), ":@/?");
    }
    if (w.full)
        return fail(err, errlen, "\"target\" is too long");
    out[w.at] = '\0';
    return 0;
}
