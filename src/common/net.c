/* net: IP address parsing, CIDR matching, address kinds and anonymisation. */
/* SPDX-License-Identifier: MIT */
#include "net.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sp_net_parse(const char *text, sp_net_addr_t *out)
{
    char buf[SP_NET_ADDR_MAX + 2];
    size_t len = text ? strlen(text) : 0;

    if (0 == len || len >= sizeof(buf))
        return -1;
    if ('[' == text[0] && ']' == text[len - 1]) {
        text++;
        len -= 2;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';

    memset(out, 0, sizeof(*out));
    struct in_addr v4;
    if (1 == inet_pton(AF_INET, buf, &v4)) {
        out->b[10] = 0xff;
        out->b[11] = 0xff;
        memcpy(out->b + 12, &v4, 4);
        out->v4 = true;
        return 0;
    }
    if (1 == inet_pton(AF_INET6, buf, out->b)) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        out->v4 = 0 == memcmp(out->b, mapped, sizeof(mapped));
        return 0;
    }
    return -1;
}

int sp_net_parse_cidr(const char *text, sp_net_cidr_t *out)
{
    char buf[SP_NET_ADDR_MAX + 8];
    const char *slash = text ? strchr(text, '/') : NULL;
    size_t len = slash ? (size_t)(slash - text) : (text ? strlen(text) : 0);

    if (0 == len || len >= sizeof(buf))
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (0 != sp_net_parse(buf, &out->addr))
        return -1;

    /* The prefix counts bits of the notation used: "::ffff:0:0/96" is IPv6 text. */
    bool v6_text = NULL != strchr(buf, ':');
    unsigned max = v6_text ? 128 : 32, prefix = max;
    if (slash) {
        char *end;
        long n = strtol(slash + 1, &end, 10);
        /* strtol alone would take " 8", "+8" and "-0". */
        if (slash[1] < '0' || slash[1] > '9' || end == slash + 1 || '\0' != *end || n < 0 ||
            (unsigned long)n > max)
            return -1;
        prefix = (unsigned)n;
    }
    out->prefix = v6_text ? prefix : prefix + 96;
    return 0;
}

bool sp_net_in_cidr(const sp_net_addr_t *addr, const sp_net_cidr_t *cidr)
{
    unsigned bits = cidr->prefix, full = bits / 8, rest = bits % 8;

    if (0 != memcmp(addr->b, cidr->addr.b, full))
        return false;
    if (0 == rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr->b[full] & mask) == (cidr->addr.b[full] & mask);
}

/* Writes N in decimal at P; returns the end. */
static char *put_decimal(char *p, unsigned n)
{
    if (n >= 100)
        *p++ = (char)('0' + n / 100);
    if (n >= 10)
        *p++ = (char)('0' + n / 10 % 10);
    *p++ = (char)('0' + n % 10);
    return p;
}

void sp_net_format(const sp_net_addr_t *addr, char *buf, size_t len)
{
    if (addr->v4 && len >= 16) {
        /* Every open formats its client: glibc's inet_ntop goes through sprintf. */
        char *p = buf;
        for (int i = 12; i < 16; i++) {
            p = put_decimal(p, addr->b[i]);
            *p++ = 15 == i ? '\0' : '.';
        }
        return;
    }
    char tmp[INET6_ADDRSTRLEN];
    const char *s = addr->v4 ? inet_ntop(AF_INET, addr->b + 12, tmp, sizeof(tmp))
                             : inet_ntop(AF_INET6, addr->b, tmp, sizeof(tmp));
    snprintf(buf, len, "%s", s ? s : "");
}

void sp_net_from_sockaddr(const struct sockaddr *sa, sp_net_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (AF_INET == sa->sa_family) {
        out->v4 = true;
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (AF_INET6 == sa->sa_family) {
        memcpy(out->b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        out->v4 = 0 == memcmp(out->b, mapped, sizeof(mapped));
    }
}

/* Special-purpose ranges (RFC 6890 and friends), most specific first. */
static const struct {
    const char *cidr;
    sp_net_kind_t kind;
} special_ranges[] = {
    {"127.0.0.0/8", SP_NET_LOOPBACK},    {"::1/128", SP_NET_LOOPBACK},
    {"10.0.0.0/8", SP_NET_PRIVATE},      {"172.16.0.0/12", SP_NET_PRIVATE},
    {"192.168.0.0/16", SP_NET_PRIVATE},  {"100.64.0.0/10", SP_NET_PRIVATE},
    {"fc00::/7", SP_NET_PRIVATE},        {"169.254.0.0/16", SP_NET_LINKLOCAL},
    {"fe80::/10", SP_NET_LINKLOCAL},     {"0.0.0.0/8", SP_NET_RESERVED},
    {"192.0.0.0/24", SP_NET_RESERVED},   {"192.0.2.0/24", SP_NET_RESERVED},
    {"198.18.0.0/15", SP_NET_RESERVED},  {"198.51.100.0/24", SP_NET_RESERVED},
    {"203.0.113.0/24", SP_NET_RESERVED}, {"224.0.0.0/4", SP_NET_RESERVED},
    {"240.0.0.0/4", SP_NET_RESERVED},    {"::/128", SP_NET_RESERVED},
    {"2001:db8::/32", SP_NET_RESERVED},  {"ff00::/8", SP_NET_RESERVED},
    {"100::/64", SP_NET_RESERVED},
};

#define N_SPECIAL (sizeof(special_ranges) / sizeof(special_ranges[0]))
static sp_net_cidr_t special_cidrs[N_SPECIAL];
static pthread_once_t special_once = PTHREAD_ONCE_INIT;

/* Parsed once: sp_net_kind runs for every recorded event. */
static void special_init(void)
{
    for (size_t i = 0; i < N_SPECIAL; i++)
        if (0 != sp_net_parse_cidr(special_ranges[i].cidr, &special_cidrs[i]))
            abort(); /* a typo in the table above */
}

sp_net_kind_t sp_net_kind(const sp_net_addr_t *addr)
{
    pthread_once(&special_once, special_init);
    for (size_t i = 0; i < N_SPECIAL; i++)
        if (sp_net_in_cidr(addr, &special_cidrs[i]))
            return special_ranges[i].kind;
    return SP_NET_PUBLIC;
}

const char *sp_net_kind_name(sp_net_kind_t kind)
{
    switch (kind) {
    case SP_NET_PRIVATE:
        return "private";
    case SP_NET_LOOPBACK:
        return "loopback";
    case SP_NET_LINKLOCAL:
        return "link-local";
    case SP_NET_RESERVED:
        return "reserved";
    case SP_NET_PUBLIC:
        break;
    }
    return NULL;
}

void sp_net_anonymize(sp_net_addr_t *addr)
{
    if (addr->v4)
        addr->b[15] = 0; /* keep the /24 */
    else
        memset(addr->b + 6, 0, 10); /* keep the /48 */
}
