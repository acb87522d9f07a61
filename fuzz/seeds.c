/* seeds: writes the binary seeds of the fuzz corpus (tokens, journal records and segments). */
/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event.h"
#include "journal.h"
#include "token.h"

/*
 * `make fuzz-seeds` runs it as build/fuzz-seeds fuzz/corpus. The text seeds are written by
 * hand; these come from the encoders themselves, so that they stay meaningful when a format
 * changes: run it again then.
 */

static const char *root;

static void put(const char *target, const char *name, const void *a, size_t na, const void *b,
                size_t nb)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (na && na != fwrite(a, 1, na, f)) || (nb && nb != fwrite(b, 1, nb, f)) ||
        0 != fclose(f)) {
        fprintf(stderr, "seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* ---- tokens: the key fuzz_token.c opens them with ------------------------------------- */

static const unsigned char token_key[SP_AUTH_KEY_BYTES] = "spypixel fuzz key, not a secret";

static void token_seed(sp_token_t *t, const char *name, sp_token_kind_t kind, const char *campaign,
                       const char *recipient, const char *extra)
{
    sp_token_data_t d = {.kind = kind};
    snprintf(d.campaign, sizeof(d.campaign), "%s", campaign);
    snprintf(d.recipient, sizeof(d.recipient), "%s", recipient);
    snprintf(d.extra, sizeof(d.extra), "%s", extra);
    char text[SP_TOKEN_MAX], file[128];
    if (0 != sp_token_seal(t, &d, text, sizeof(text)))
        exit(1);
    snprintf(file, sizeof(file), "text-%s", name);
    put("token", file, "\0", 1, text, strlen(text));
    /* The plaintext form: kind, campaign NUL recipient NUL extra. */
    unsigned char plain[1 + 2 * (SP_ID_MAX + 1) + 2048];
    size_t c = strlen(campaign), r = strlen(recipient), e = strlen(extra);
    plain[0] = (unsigned char)kind;
    memcpy(plain + 1, campaign, c + 1);
    memcpy(plain + 2 + c, recipient, r + 1);
    memcpy(plain + 3 + c + r, extra, e);
    snprintf(file, sizeof(file), "plain-%s", name);
    put("token", file, "\1", 1, plain, 3 + c + r + e);
}

/* ---- journal records ---------------------------------------------------------------- */

static sp_event_t *event(int kind, const char *campaign, const char *recipient, const char *ip)
{
    sp_event_t *ev = sp_event_new(SP_HEADERS_MAX * (SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2));
    ev->ts_ms = 1764864000123;
    ev->kind = (sp_event_kind_t)kind;
    snprintf(ev->campaign, sizeof(ev->campaign), "%s", campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", recipient);
    snprintf(ev->ip, sizeof(ev->ip), "%s", ip);
    if (0 != sp_net_parse(ip, &ev->addr))
        exit(1);
    snprintf(ev->visitor, sizeof(ev->visitor), "0123456789abcdef0123456789abcdef");
    return ev;
}

static void header(sp_event_t *ev, const char *name, const char *value)
{
    if (0 != sp_event_add_header(ev, name, strlen(name), value, strlen(value)))
        exit(1);
}

static size_t record(sp_event_t *ev, unsigned char *buf, const char *name)
{
    size_t n = sp_event_encode(ev, buf);
    put("record", name, buf, n, NULL, 0);
    sp_event_free(ev);
    return n;
}

/* A segment of the records in RECS written by the journal itself. */
static void segment(const char *name, unsigned char layout, unsigned char *const *recs,
                    const size_t *lens, size_t n, size_t cut)
{
    char dir[] = "/tmp/spypixel-seeds-XXXXXX", err[256], path[512];
    if (!mkdtemp(dir))
        exit(1);
    sp_journal_options_t opt = {.dir = dir, .segment_bytes = 1 << 16};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j) {
        fprintf(stderr, "seeds: %s\n", err);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        if (sp_journal_append(j, recs[i], lens[i], NULL) < 0)
            exit(1);
    sp_journal_close(j);
    snprintf(path, sizeof(path), "%s/0000000000000000.jnl", dir);
    FILE *f = fopen(path, "rb");
    static unsigned char bytes[1 << 16];
    size_t got = f ? fread(bytes, 1, sizeof(bytes), f) : 0;
    if (f)
        fclose(f);
    if (cut && cut < got)
        got -= cut; /* a torn last record, as a crash mid-append leaves it */
    put("journal", name, &layout, 1, bytes, got);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if ('.' != e->d_name[0]) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: fuzz-seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];

    sp_token_t *t = sp_token_new(token_key);
    token_seed(t, "pixel", SP_TOKEN_OPEN, "newsletter-2026-11", "ann@example.com", "");
    token_seed(t, "pixel-anonymous", SP_TOKEN_OPEN, "newsletter-2026-11", "", "");
    token_seed(t, "link", SP_TOKEN_CLICK, "launch", "bob+news@example.org",
               "https://example.com/spring?utm_source=mail&x=%20y#top");
    token_seed(t, "image", SP_TOKEN_IMAGE, "logo.campaign", "carol_1@example.net",
               "00112233445566778899aabbccddeeff");
    sp_token_free(t);

    static unsigned char r1[SP_EVENT_ENCODED_MAX], r2[SP_EVENT_ENCODED_MAX],
        r3[SP_EVENT_ENCODED_MAX], r4[SP_EVENT_ENCODED_MAX];
    sp_event_t *ev = event(SP_EVENT_OPEN, "newsletter-2026-11", "ann@example.com", "203.0.113.7");
    header(ev, "Host", "track.example.com");
    header(ev, "User-Agent",
           "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Safari/537.36");
    header(ev, "Accept", "image/avif,image/webp,*/*");
    header(ev, "Referer", "https://mail.example.com/");
    header(ev, "Cookie", "spv=0123456789abcdef0123456789abcdef; theme=dark; q=\"quoted\"");
    header(ev, "Sec-CH-UA-Platform", "\"Windows\"");
    size_t n1 = record(ev, r1, "open-browser");

    ev = event(SP_EVENT_OPEN, "newsletter-2026-11", "", "66.249.84.1");
    header(ev, "User-Agent",
           "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
           "GoogleImageProxy)");
    header(ev, "X-Forwarded-For", "198.51.100.1, 66.249.84.1");
    ev->self_cookie = true;
    size_t n2 = record(ev, r2, "open-proxy-self");

    ev = event(SP_EVENT_CLICK, "launch", "bob+news@example.org", "2001:db8::1");
    if (0 != sp_event_set_target(ev, "https://example.com/spring?a=1&b=2"))
        abort();
    header(ev, "User-Agent", "curl/8.0");
    header(ev, "Accept", "*/*");
    header(ev, "Accept", "text/html");
    header(ev, "X-Bytes", "caf\xc3\xa9 \xff\xfe tab\there \"q\" back\\slash");
    size_t n3 = record(ev, r3, "click-repeated-header");

    ev = event(SP_EVENT_OPEN, "c", "", "192.0.2.1");
    ev->self_referer = ev->self_ip = true;
    size_t n4 = record(ev, r4, "open-no-headers");

    /* An open kept under an unknown campaign, adopted: its kept row follows the headers. */
    static unsigned char r5[SP_EVENT_ENCODED_MAX];
    ev = event(SP_EVENT_OPEN, "newsleter-2026-11", "ann@example.com", "203.0.113.8");
    header(ev, "User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)");
    ev->adopt_row = 42;
    record(ev, r5, "open-adopted");

    unsigned char *recs[] = {r1, r2, r3, r4};
    size_t lens[] = {n1, n2, n3, n4};
    segment("active-whole", 0, recs, lens, 4, 0);
    segment("active-torn", 0, recs, lens, 3, 5);
    segment("older-whole", 1, recs, lens, 4, 0);
    segment("older-torn", 1, recs, lens, 2, 7);
    segment("empty-records", 0, recs + 3, lens + 3, 1, 0);
    return 0;
}
