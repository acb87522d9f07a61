/* fuzz_forwarded: the client address behind trusted proxies (http.c's pick_forwarded). */
/* SPDX-License-Identifier: MIT */
#include "../src/server/http.c"

#include "fuzz.h"

/*
 * The first byte picks the header (even: X-Forwarded-For, odd: Forwarded), the rest is its
 * value, cut as resolve_client cuts it. The proxies trusted are a few IPv4 and IPv6 ranges,
 * so that lists walk past them. An address picked must be one sp_net_parse gives and that
 * survives its text form. And entries the client wrote cannot move the pick: when the
 * value names a client (an address no proxy of ours), the same value after any number of
 * entries the client put first still names that client.
 */

static sp_config_t cfg;

static void setup(void)
{
    static const char *const proxies[] = {"10.0.0.0/8", "192.0.2.0/24", "127.0.0.1",
                                          "2001:db8::/32", "::1"};
    sp_config_defaults(&cfg);
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        if (0 != sp_net_parse_cidr(proxies[i], &cfg.trusted_proxy[cfg.n_trusted_proxy++]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg.n_trusted_proxy)
        setup();
    if (0 == size)
        return 0;
    bool forwarded = data[0] & 1;
    char buf[2048];
    size_t n = size - 1 < sizeof(buf) - 1 ? size - 1 : sizeof(buf) - 1;
    memcpy(buf, data + 1, n);
    buf[n] = '\0';

    /* The header as the client sent it to our proxy: 64 lies first, then the value. */
    char spoofed[sizeof(buf)];
    size_t at = 0;
    const char *lie = forwarded ? "for=198.51.100.99, " : "198.51.100.99, ";
    while (at + strlen(lie) + n < sizeof(spoofed) && at < 64 * strlen(lie)) {
        memcpy(spoofed + at, lie, strlen(lie));
        at += strlen(lie);
    }
    memcpy(spoofed + at, buf, n + 1);

    sp_net_addr_t a;
    memset(&a, 0xa5, sizeof(a));
    if (0 == pick_forwarded(&cfg, buf, forwarded, &a)) {
        char text[SP_NET_ADDR_MAX];
        sp_net_format(&a, text, sizeof(text));
        sp_net_addr_t back;
        FUZZ_CHECK(0 == sp_net_parse(text, &back));
        FUZZ_CHECK(0 == memcmp(back.b, a.b, sizeof(a.b)) && back.v4 == a.v4);
        if (!trusted(&cfg, &a)) {
            sp_net_addr_t b;
            FUZZ_CHECK(0 == pick_forwarded(&cfg, spoofed, forwarded, &b));
            FUZZ_CHECK(0 == memcmp(b.b, a.b, sizeof(a.b)) && b.v4 == a.v4);
        }
    }
    return 0;
}
