/* test_net: address parsing, CIDR matching, formatting, address kinds, anonymisation. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "net.h"

static sp_net_addr_t addr(const char *text)
{
    sp_net_addr_t a;
    if (0 != sp_net_parse(text, &a))
        fail_msg("'%s' does not parse", text);
    return a;
}

static sp_net_cidr_t cidr(const char *text)
{
    sp_net_cidr_t c;
    if (0 != sp_net_parse_cidr(text, &c))
        fail_msg("'%s' does not parse as a CIDR", text);
    return c;
}

static bool in(const char *address, const char *range)
{
    sp_net_addr_t a = addr(address);
    sp_net_cidr_t c = cidr(range);
    return sp_net_in_cidr(&a, &c);
}

static void test_parse_v4(void **state)
{
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    sp_net_addr_t a;
    memset(&a, 0x55, sizeof(a));
    assert_int_equal(0, sp_net_parse("1.2.3.4", &a));
    assert_true(a.v4);
    assert_memory_equal(want, a.b, 16);

    a = addr("255.255.255.255");
    assert_true(a.v4);
    assert_int_equal(0xff, a.b[12]);
    assert_int_equal(0xff, a.b[15]);

    a = addr("0.0.0.0");
    assert_true(a.v4);
    assert_int_equal(0xff, a.b[10]);
    assert_int_equal(0, a.b[12] | a.b[13] | a.b[14] | a.b[15]);
}

static void test_parse_v6(void **state)
{
    static const uint8_t doc1[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t zero[16] = {0};
    sp_net_addr_t a = addr("2001:db8::1");
    assert_false(a.v4);
    assert_memory_equal(doc1, a.b, 16);

    a = addr("2001:0DB8:0000:0000:0000:0000:0000:0001");
    assert_false(a.v4);
    assert_memory_equal(doc1, a.b, 16);

    a = addr("::");
    assert_false(a.v4);
    assert_memory_equal(zero, a.b, 16);

    /* An IPv4-mapped address is the IPv4 address, in every way. */
    sp_net_addr_t mapped = addr("::ffff:1.2.3.4"), plain = addr("1.2.3.4");
    assert_true(mapped.v4);
    assert_memory_equal(plain.b, mapped.b, 16);
    mapped = addr("::ffff:102:304");
    assert_true(mapped.v4);
    assert_memory_equal(plain.b, mapped.b, 16);

    /* IPv4-compatible (deprecated) and NAT64 forms are IPv6. */
    assert_false(addr("::1.2.3.4").v4);
    assert_false(addr("64:ff9b::1.2.3.4").v4);
    assert_false(addr("::fffe:1.2.3.4").v4);
}

static void test_parse_bracketed(void **state)
{
    sp_net_addr_t a = addr("[2001:db8::1]"), b = addr("2001:db8::1");
    assert_false(a.v4);
    assert_memory_equal(b.b, a.b, 16);

    a = addr("[1.2.3.4]");
    assert_true(a.v4);
    assert_int_equal(4, a.b[15]);

    sp_net_addr_t out;
    const char *bad[] = {"[::1", "::1]", "[]", "[[::1]]", "[ ::1]", "[::1]:80", "]::1[", "[", "]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (0 == sp_net_parse(bad[i], &out))
            fail_msg("'%s' parsed", bad[i]);
}

static void test_parse_garbage(void **state)
{
    sp_net_addr_t out;
    const char *bad[] = {
        "",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.256",
        "1.2.3.-1",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4\n",
        "1.2.3.4:80",
        "1.2.3.4/32",
        "abc",
        "localhost",
        "::g",
        "1::2::3",
        "2001:db8:::1",
        "12345::",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7",
        "::ffff:1.2.3",
        "0x7f.1",
        "1.2.3.4\t",
        "1.2.3.4\x01junk",
        "-",
        ".",
        ":",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (0 == sp_net_parse(bad[i], &out))
            fail_msg("'%s' parsed", bad[i]);
    assert_int_equal(-1, sp_net_parse(NULL, &out));
}

static void test_parse_lengths(void **state)
{
    /* The longest text form there is, bare (45 bytes) and in brackets (47). */
    const char *longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    assert_int_equal(45, strlen(longest));
    sp_net_addr_t a = addr(longest);
    assert_false(a.v4);
    assert_int_equal(0xff, a.b[0]);
    assert_int_equal(0xff, a.b[15]);

    const char *bracketed = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]";
    assert_int_equal(47, strlen(bracketed));
    sp_net_addr_t b = addr(bracketed);
    assert_memory_equal(a.b, b.b, 16);

    /* Longer input is refused without reading or writing past anything. */
    char big[4096];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sp_net_addr_t out;
    assert_int_equal(-1, sp_net_parse(big, &out));
    big[0] = '[';
    big[sizeof(big) - 2] = ']';
    assert_int_equal(-1, sp_net_parse(big, &out));

    /* Every length around the buffer's size (ASan sees any write past it). */
    char around[64];
    for (size_t n = 40; n < sizeof(around); n++) {
        memset(around, 'f', n);
        around[n] = '\0';
        assert_int_equal(-1, sp_net_parse(around, &out));
        around[0] = '[';
        around[n - 1] = ']';
        assert_int_equal(-1, sp_net_parse(around, &out));
    }

    /* A valid address padded with zeros past the limit. */
    char padded[128];
    snprintf(padded, sizeof(padded), "0000:0000:0000:0000:0000:0000:0000:00000000000000001");
    assert_int_equal(-1, sp_net_parse(padded, &out));
    assert_int_equal(-1, sp_net_parse_cidr(big, &(sp_net_cidr_t){0}));
}

static void test_parse_cidr(void **state)
{
    sp_net_cidr_t c = cidr("10.0.0.0/8");
    assert_true(c.addr.v4);
    assert_int_equal(96 + 8, c.prefix);
    assert_int_equal(10, c.addr.b[12]);

    c = cidr("2001:db8::/32");
    assert_false(c.addr.v4);
    assert_int_equal(32, c.prefix);

    /* A bare address is a single host. */
    assert_int_equal(128, cidr("1.2.3.4").prefix);
    assert_int_equal(128, cidr("::1").prefix);
    assert_int_equal(128, cidr("1.2.3.4/32").prefix);
    assert_int_equal(128, cidr("::1/128").prefix);
    assert_int_equal(96, cidr("0.0.0.0/0").prefix);
    assert_int_equal(0, cidr("::/0").prefix);
    assert_int_equal(96 + 10, cidr("100.64.0.0/10").prefix);
    assert_int_equal(10, cidr("fe80::/10").prefix);
    assert_int_equal(128, cidr("[::1]").prefix);

    /* The prefix counts bits of the notation: IPv6 text has 128. */
    c = cidr("::ffff:0:0/96");
    assert_true(c.addr.v4);
    assert_int_equal(96, c.prefix);
    assert_int_equal(96 + 24, cidr("::ffff:1.2.3.0/120").prefix);
    assert_int_equal(24, cidr("::ffff:1.2.3.0/24").prefix);
    assert_int_equal(96 + 24, cidr("[::ffff:1.2.3.0]/120").prefix);
}

static void test_parse_cidr_bad(void **state)
{
    const char *bad[] = {
        "",
        "/8",
        "1.2.3.4/",
        "1.2.3.4/33",
        "1.2.3.4/-1",
        "1.2.3.4/8x",
        "1.2.3.4/8/8",
        "1.2.3.4/1e1",
        "1.2.3.4/99999999999999999999999",
        "1.2.3.4/ 8",
        "1.2.3.4/+8",
        "1.2.3.4/-0",
        "1.2.3.4/8 ",
        "::/129",
        "2001:db8::/1000",
        "1.2.3/8",
        "garbage/8",
        "1.2.3.4 /8",
        "::ffff:1.2.3.4/129",
        "[1.2.3.4]/33",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_net_cidr_t c;
        if (0 == sp_net_parse_cidr(bad[i], &c))
            fail_msg("'%s' parsed as a CIDR (prefix %u)", bad[i], c.prefix);
    }
    sp_net_cidr_t c;
    assert_int_equal(-1, sp_net_parse_cidr(NULL, &c));
}

static void test_in_cidr_v4(void **state)
{
    assert_true(in("10.0.0.0", "10.0.0.0/8"));
    assert_true(in("10.255.255.255", "10.0.0.0/8"));
    assert_false(in("9.255.255.255", "10.0.0.0/8"));
    assert_false(in("11.0.0.0", "10.0.0.0/8"));

    /* /12: the boundary falls inside the second byte. */
    assert_true(in("172.16.0.0", "172.16.0.0/12"));
    assert_true(in("172.31.255.255", "172.16.0.0/12"));
    assert_false(in("172.32.0.0", "172.16.0.0/12"));
    assert_false(in("172.15.255.255", "172.16.0.0/12"));

    /* /31 and /32. */
    assert_true(in("192.0.2.6", "192.0.2.6/31"));
    assert_true(in("192.0.2.7", "192.0.2.6/31"));
    assert_false(in("192.0.2.5", "192.0.2.6/31"));
    assert_false(in("192.0.2.8", "192.0.2.6/31"));
    assert_true(in("192.0.2.1", "192.0.2.1/32"));
    assert_false(in("192.0.2.2", "192.0.2.1/32"));
    assert_false(in("192.0.2.0", "192.0.2.1/32"));

    /* /1 and /0: every IPv4 address, but no IPv6 one. */
    assert_true(in("127.255.255.255", "0.0.0.0/1"));
    assert_false(in("128.0.0.0", "0.0.0.0/1"));
    assert_true(in("0.0.0.0", "0.0.0.0/0"));
    assert_true(in("255.255.255.255", "0.0.0.0/0"));
    assert_false(in("2001:db8::1", "0.0.0.0/0"));
    assert_false(in("::", "0.0.0.0/0"));

    /* Host bits in the range's address do not matter. */
    assert_true(in("10.200.0.1", "10.1.2.3/8"));
    assert_false(in("11.1.2.3", "10.1.2.3/8"));

    /* A mapped address matches an IPv4 range, and the other way round. */
    assert_true(in("::ffff:10.1.1.1", "10.0.0.0/8"));
    assert_true(in("10.1.1.1", "::ffff:10.0.0.0/104"));
    assert_false(in("11.1.1.1", "::ffff:10.0.0.0/104"));
    assert_true(in("10.1.1.1", "::ffff:0:0/96"));
    assert_true(in("255.255.255.255", "::ffff:0:0/96"));
    assert_false(in("::fffe:1.2.3.4", "::ffff:0:0/96"));
}

static void test_in_cidr_v6(void **state)
{
    /* /10 */
    assert_true(in("fe80::", "fe80::/10"));
    assert_true(in("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10"));
    assert_false(in("fec0::", "fe80::/10"));
    assert_false(in("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10"));

    /* /7 */
    assert_true(in("fc00::", "fc00::/7"));
    assert_true(in("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7"));
    assert_false(in("fe00::", "fc00::/7"));
    assert_false(in("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7"));

    /* /33: the boundary is the top bit of the fifth byte. */
    assert_true(in("2001:db8:7fff:ffff::", "2001:db8::/33"));
    assert_false(in("2001:db8:8000::", "2001:db8::/33"));
    assert_true(in("2001:db8:8000::", "2001:db8:8000::/33"));
    assert_false(in("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", "2001:db8:8000::/33"));

    /* /127, /128 */
    assert_true(in("::2", "::2/127"));
    assert_true(in("::3", "::2/127"));
    assert_false(in("::1", "::2/127"));
    assert_false(in("::4", "::2/127"));
    assert_true(in("2001:db8::1", "2001:db8::1/128"));
    assert_false(in("2001:db8::", "2001:db8::1/128"));
    assert_false(in("2001:db8::1:0:0:1", "2001:db8::1/128"));

    /* /1, /0 */
    assert_true(in("8000::", "8000::/1"));
    assert_true(in("ffff::", "8000::/1"));
    assert_false(in("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::/1"));
    assert_true(in("::", "::/0"));
    assert_true(in("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"));
    assert_true(in("1.2.3.4", "::/0"));

    /* An IPv6 range that is not IPv4-mapped holds no IPv4 address. */
    assert_true(in("1.2.3.4", "::/64")); /* ::ffff:0:0/96 lies inside ::/64 */
    assert_false(in("1.2.3.4", "::/96"));
    assert_false(in("1.2.3.4", "64:ff9b::/96"));
    assert_false(in("10.0.0.1", "fe80::/10"));
}

static void round_trip(const char *input, const char *want)
{
    char buf[SP_NET_ADDR_MAX];
    sp_net_addr_t a = addr(input);
    memset(buf, 'X', sizeof(buf));
    sp_net_format(&a, buf, sizeof(buf));
    if (0 != strcmp(want, buf))
        fail_msg("'%s' formats as '%s', want '%s'", input, buf, want);

    /* And the text parses back to the same address. */
    sp_net_addr_t back = addr(buf);
    assert_int_equal(a.v4, back.v4);
    assert_memory_equal(a.b, back.b, 16);
}

static void test_format(void **state)
{
    round_trip("1.2.3.4", "1.2.3.4");
    round_trip("0.0.0.0", "0.0.0.0");
    round_trip("255.255.255.255", "255.255.255.255");
    round_trip("::", "::");
    round_trip("::1", "::1");
    round_trip("2001:db8::1", "2001:db8::1");
    round_trip("2001:DB8:0:0:0:0:0:1", "2001:db8::1");
    round_trip("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1");
    round_trip("fe80::1:2", "fe80::1:2");
    round_trip("[2001:db8::a]", "2001:db8::a");
    round_trip("[192.0.2.33]", "192.0.2.33");
    round_trip("::ffff:192.0.2.33", "192.0.2.33");
    round_trip("::ffff:c000:221", "192.0.2.33");
    round_trip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

    /* A short buffer gets a cut, terminated string; a zero-length one is not touched. */
    sp_net_addr_t a = addr("192.0.2.33");
    char small[5];
    sp_net_format(&a, small, sizeof(small));
    assert_string_equal("192.", small);
    char untouched[4] = "abc";
    sp_net_format(&a, untouched, 0);
    assert_string_equal("abc", untouched);
}

static void kind_is(const char *address, sp_net_kind_t want)
{
    sp_net_addr_t a = addr(address);
    sp_net_kind_t got = sp_net_kind(&a);
    if (got != want)
        fail_msg("%s: kind %d, want %d", address, (int)got, (int)want);
}

static void test_kind(void **state)
{
    kind_is("8.8.8.8", SP_NET_PUBLIC);
    kind_is("1.1.1.1", SP_NET_PUBLIC);
    kind_is("2606:4700::1111", SP_NET_PUBLIC);
    kind_is("2a00:1450:4001::1", SP_NET_PUBLIC);

    kind_is("127.0.0.1", SP_NET_LOOPBACK);
    kind_is("127.255.255.255", SP_NET_LOOPBACK);
    kind_is("128.0.0.0", SP_NET_PUBLIC);
    kind_is("126.255.255.255", SP_NET_PUBLIC);
    kind_is("::1", SP_NET_LOOPBACK);
    kind_is("::ffff:127.0.0.1", SP_NET_LOOPBACK);

    kind_is("10.0.0.0", SP_NET_PRIVATE);
    kind_is("10.255.255.255", SP_NET_PRIVATE);
    kind_is("11.0.0.0", SP_NET_PUBLIC);
    kind_is("172.16.0.0", SP_NET_PRIVATE);
    kind_is("172.31.255.255", SP_NET_PRIVATE);
    kind_is("172.32.0.0", SP_NET_PUBLIC);
    kind_is("172.15.255.255", SP_NET_PUBLIC);
    kind_is("192.168.0.0", SP_NET_PRIVATE);
    kind_is("192.168.255.255", SP_NET_PRIVATE);
    kind_is("192.169.0.0", SP_NET_PUBLIC);
    kind_is("::ffff:192.168.1.1", SP_NET_PRIVATE);

    /* Carrier-grade NAT, 100.64.0.0/10: the boundary is inside the second byte. */
    kind_is("100.64.0.0", SP_NET_PRIVATE);
    kind_is("100.100.100.100", SP_NET_PRIVATE);
    kind_is("100.127.255.255", SP_NET_PRIVATE);
    kind_is("100.128.0.0", SP_NET_PUBLIC);
    kind_is("100.63.255.255", SP_NET_PUBLIC);

    kind_is("fc00::", SP_NET_PRIVATE);
    kind_is("fd12:3456:789a::1", SP_NET_PRIVATE);
    kind_is("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SP_NET_PRIVATE);
    kind_is("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SP_NET_PUBLIC);

    kind_is("169.254.0.0", SP_NET_LINKLOCAL);
    kind_is("169.254.169.254", SP_NET_LINKLOCAL);
    kind_is("169.255.0.0", SP_NET_PUBLIC);
    kind_is("169.253.255.255", SP_NET_PUBLIC);
    kind_is("fe80::", SP_NET_LINKLOCAL);
    kind_is("fe80::1", SP_NET_LINKLOCAL);
    kind_is("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SP_NET_LINKLOCAL);
    kind_is("fec0::1", SP_NET_PUBLIC);

    kind_is("0.0.0.0", SP_NET_RESERVED);
    kind_is("0.255.255.255", SP_NET_RESERVED);
    kind_is("1.0.0.0", SP_NET_PUBLIC);
    kind_is("192.0.0.8", SP_NET_RESERVED);
    kind_is("192.0.1.0", SP_NET_PUBLIC);
    kind_is("192.0.2.1", SP_NET_RESERVED);
    kind_is("198.18.0.0", SP_NET_RESERVED);
    kind_is("198.19.255.255", SP_NET_RESERVED);
    kind_is("198.20.0.0", SP_NET_PUBLIC);
    kind_is("198.17.255.255", SP_NET_PUBLIC);
    kind_is("198.51.100.7", SP_NET_RESERVED);
    kind_is("203.0.113.9", SP_NET_RESERVED);
    kind_is("203.0.114.0", SP_NET_PUBLIC);
    kind_is("224.0.0.1", SP_NET_RESERVED);
    kind_is("239.255.255.255", SP_NET_RESERVED);
    kind_is("223.255.255.255", SP_NET_PUBLIC);
    kind_is("240.0.0.1", SP_NET_RESERVED);
    kind_is("255.255.255.255", SP_NET_RESERVED);

    kind_is("::", SP_NET_RESERVED);
    kind_is("2001:db8::1", SP_NET_RESERVED);
    kind_is("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", SP_NET_RESERVED);
    kind_is("2001:db9::", SP_NET_PUBLIC);
    kind_is("ff02::1", SP_NET_RESERVED);
    kind_is("100::1", SP_NET_RESERVED);
    kind_is("100:0:0:1::", SP_NET_PUBLIC);
}

static void test_kind_name(void **state)
{
    assert_null(sp_net_kind_name(SP_NET_PUBLIC));
    assert_string_equal("private", sp_net_kind_name(SP_NET_PRIVATE));
    assert_string_equal("loopback", sp_net_kind_name(SP_NET_LOOPBACK));
    assert_string_equal("link-local", sp_net_kind_name(SP_NET_LINKLOCAL));
    assert_string_equal("reserved", sp_net_kind_name(SP_NET_RESERVED));
}

static void anonymized_is(const char *input, const char *want)
{
    char buf[SP_NET_ADDR_MAX];
    sp_net_addr_t a = addr(input);
    bool v4 = a.v4;
    sp_net_anonymize(&a);
    assert_int_equal(v4, a.v4);
    sp_net_format(&a, buf, sizeof(buf));
    if (0 != strcmp(want, buf))
        fail_msg("'%s' anonymizes to '%s', want '%s'", input, buf, want);
    /* The result is the network address the original lies in. */
    char range[64];
    snprintf(range, sizeof(range), "%s/%d", buf, v4 ? 24 : 48);
    assert_true(in(input, range));
}

static void test_anonymize(void **state)
{
    anonymized_is("203.0.113.77", "203.0.113.0");
    anonymized_is("203.0.113.255", "203.0.113.0");
    anonymized_is("203.0.113.0", "203.0.113.0");
    anonymized_is("255.255.255.255", "255.255.255.0");
    anonymized_is("::ffff:198.51.100.200", "198.51.100.0");
    anonymized_is("2001:db8:abcd:1234:5678:9abc:def0:1234", "2001:db8:abcd::");
    anonymized_is("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", "2001:db8:abcd::");
    anonymized_is("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff::");
    anonymized_is("2001:db8::", "2001:db8::");
    anonymized_is("::1", "::");

    /* The IPv4 prefix bytes stay: the address is still IPv4 in every way. */
    sp_net_addr_t a = addr("10.9.8.7");
    sp_net_anonymize(&a);
    assert_int_equal(0xff, a.b[10]);
    assert_int_equal(0xff, a.b[11]);
    assert_int_equal(SP_NET_PRIVATE, sp_net_kind(&a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v4),
        cmocka_unit_test(test_parse_v6),
        cmocka_unit_test(test_parse_bracketed),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_parse_lengths),
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test(test_parse_cidr_bad),
        cmocka_unit_test(test_in_cidr_v4),
        cmocka_unit_test(test_in_cidr_v6),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_kind),
        cmocka_unit_test(test_kind_name),
        cmocka_unit_test(test_anonymize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
