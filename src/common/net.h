/* net: IP address parsing, CIDR matching, address kinds and anonymisation. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_NET_H
#define SP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text form of an address, "ffff:...:255.255.255.255" plus NUL. */
#define SP_NET_ADDR_MAX 46

/* An IPv4 address is kept as an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
typedef struct sp_net_addr {
    uint8_t b[16];
    bool v4;
} sp_net_addr_t;

typedef struct sp_net_cidr {
    sp_net_addr_t addr;
    unsigned prefix; /* in bits of the 128-bit form */
} sp_net_cidr_t;

typedef enum sp_net_kind {
    SP_NET_PUBLIC = 0,
    SP_NET_PRIVATE,   /* 10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10 */
    SP_NET_LOOPBACK,  /* 127/8, ::1 */
    SP_NET_LINKLOCAL, /* 169.254/16, fe80::/10 */
    SP_NET_RESERVED,  /* 0/8, 240/4, multicast, documentation ranges, :: */
} sp_net_kind_t;

/* Parses "1.2.3.4" or "2001:db8::1" (an optional [brackets] pair is allowed). 0 or -1. */
int sp_net_parse(const char *text, sp_net_addr_t *out);

/* Parses "1.2.3.0/24", "2001:db8::/32" or a bare address (a /32 or /128). 0 or -1. */
int sp_net_parse_cidr(const char *text, sp_net_cidr_t *out);

bool sp_net_in_cidr(const sp_net_addr_t *addr, const sp_net_cidr_t *cidr);

/* Writes the canonical text form (IPv4 as dotted quad) into buf. */
/* The address of SA (AF_INET or AF_INET6; anything else gives ::). */
struct sockaddr;
void sp_net_from_sockaddr(const struct sockaddr *sa, sp_net_addr_t *out);

void sp_net_format(const sp_net_addr_t *addr, char *buf, size_t len);

sp_net_kind_t sp_net_kind(const sp_net_addr_t *addr);

/* "private", "loopback", "link-local", "reserved" or NULL for a public address. */
const char *sp_net_kind_name(sp_net_kind_t kind);

/* Zeroes the host part: IPv4 to its /24, IPv6 to its /48. */
void sp_net_anonymize(sp_net_addr_t *addr);

#endif
