/* fuzz_net: address and CIDR parsing, matching, formatting and anonymisation (net.c). */
/* SPDX-License-Identifier: MIT */
#include "fuzz.h"
#include "net.h"

#include <stdbool.h>

/*
 * The input is one or two lines: an address or CIDR, and another address to match against
 * it. Whatever parses must print to a text that parses back to the same address; a CIDR
 * holds its own address; anonymising keeps an address inside its own /24 or /48.
 */

static void check_address(const sp_net_addr_t *a)
{
    char text[SP_NET_ADDR_MAX];
    sp_net_format(a, text, sizeof(text));
    sp_net_addr_t back;
    FUZZ_CHECK(0 == sp_net_parse(text, &back));
    FUZZ_CHECK(0 == memcmp(back.b, a->b, sizeof(a->b)) && back.v4 == a->v4);
    (void)sp_net_kind_name(sp_net_kind(a));

    sp_net_addr_t anon = *a;
    sp_net_anonymize(&anon);
    sp_net_cidr_t keep = {*a, a->v4 ? 96 + 24 : 48};
    FUZZ_CHECK(sp_net_in_cidr(&anon, &keep));
    char small[8];
    sp_net_format(a, small, sizeof(small)); /* a buffer too short for it: cut, not overrun */
    FUZZ_CHECK(fuzz_terminated(small, sizeof(small)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    char *second = strchr(text, '\n');
    if (second)
        *second++ = '\0';

    sp_net_addr_t a, b;
    sp_net_cidr_t c;
    bool is_addr = 0 == sp_net_parse(text, &a);
    if (is_addr)
        check_address(&a);
    if (0 == sp_net_parse_cidr(text, &c)) {
        FUZZ_CHECK(c.prefix <= 128);
        FUZZ_CHECK(!c.addr.v4 || c.prefix >= 96 || NULL != strchr(text, ':'));
        FUZZ_CHECK(sp_net_in_cidr(&c.addr, &c));
        check_address(&c.addr);
        if (second && 0 == sp_net_parse(second, &b))
            (void)sp_net_in_cidr(&b, &c);
    }
    if (second && 0 == sp_net_parse(second, &b))
        check_address(&b);
    free(text);
    return 0;
}
