/* mmdb_writer: builds tiny MaxMind DB (.mmdb) files at test time, since none ship offline. */
/* SPDX-License-Identifier: MIT */
/*
 * Follows the MaxMind DB format 2.0 (https://maxmind.github.io/MaxMind-DB/): a binary search
 * tree of 32-bit records, 16 zero bytes, the data section, then "\xAB\xCD\xEFMaxMind.com" and
 * the metadata map. Only what the geo tests need: no pointers in data, no aliases for
 * ::ffff:0:0/96 (libmaxminddb finds IPv4 under ::/96 itself), no overlapping networks.
 * Header-only with static functions so a test can include it without a Makefile rule.
 */
#ifndef MMDB_WRITER_H
#define MMDB_WRITER_H

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Data section types (spec, "Output Data Section"). */
enum {
    MW_UTF8 = 2,
    MW_DOUBLE = 3,
    MW_UINT16 = 5,
    MW_UINT32 = 6,
    MW_MAP = 7,
    MW_UINT64 = 9,
    MW_ARRAY = 11,
    MW_FLOAT = 15,
};

typedef struct mw_buf {
    unsigned char *p;
    size_t len, cap;
} mw_buf_t;

static void mw_put(mw_buf_t *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void mw_byte(mw_buf_t *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    mw_put(b, &c, 1);
}

/* Control byte: type in the top 3 bits (0 = extended, real type - 7 in the next byte), size in
 * the low 5 bits, with 29/30/31 announcing 1/2/3 more size bytes. */
static void mw_ctrl(mw_buf_t *b, unsigned type, size_t size)
{
    unsigned top = type <= 7 ? type : 0;
    unsigned low;
    size_t extra = 0, rest = 0;
    if (size < 29) {
        low = (unsigned)size;
    } else if (size < 285) {
        low = 29, extra = 1, rest = size - 29;
    } else if (size < 65821) {
        low = 30, extra = 2, rest = size - 285;
    } else {
        low = 31, extra = 3, rest = size - 65821;
    }
    mw_byte(b, top << 5 | low);
    if (type > 7)
        mw_byte(b, type - 7);
    for (size_t i = extra; i > 0; i--)
        mw_byte(b, (unsigned)(rest >> (8 * (i - 1))) & 0xFF);
}

static void mw_map(mw_buf_t *b, size_t pairs)
{
    mw_ctrl(b, MW_MAP, pairs);
}

static void mw_array(mw_buf_t *b, size_t n)
{
    mw_ctrl(b, MW_ARRAY, n);
}

static void mw_str(mw_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    mw_ctrl(b, MW_UTF8, n);
    mw_put(b, s, n);
}

/* Unsigned integers are stored big-endian in as few bytes as the value needs. */
static void mw_uint(mw_buf_t *b, unsigned type, uint64_t v)
{
    size_t n = 0;
    for (uint64_t t = v; t; t >>= 8)
        n++;
    mw_ctrl(b, type, n);
    for (size_t i = n; i > 0; i--)
        mw_byte(b, (unsigned)(v >> (8 * (i - 1))) & 0xFF);
}

static inline void mw_double(mw_buf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    mw_ctrl(b, MW_DOUBLE, 8);
    for (int i = 7; i >= 0; i--)
        mw_byte(b, (unsigned)(u >> (8 * i)) & 0xFF);
}

static void mw_float(mw_buf_t *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    mw_ctrl(b, MW_FLOAT, 4);
    for (int i = 3; i >= 0; i--)
        mw_byte(b, (unsigned)(u >> (8 * i)) & 0xFF);
}

/* One record of a tree node while building: nothing, another node, or data. */
typedef struct mw_rec {
    enum { MW_EMPTY, MW_NODE, MW_DATA } kind;
    uint32_t v; /* node index, or offset into the data section */
} mw_rec_t;

typedef struct mw_db {
    int ip_version; /* 4 or 6 */
    mw_rec_t (*node)[2];
    size_t nodes, cap;
    mw_buf_t data;
} mw_db_t;

static uint32_t mw_new_node(mw_db_t *db)
{
    if (db->nodes == db->cap) {
        db->cap = db->cap * 2 + 16;
        db->node = realloc(db->node, db->cap * sizeof db->node[0]);
        if (!db->node)
            abort();
    }
    memset(db->node[db->nodes], 0, sizeof db->node[0]);
    return (uint32_t)db->nodes++;
}

static void mw_init(mw_db_t *db, int ip_version)
{
    memset(db, 0, sizeof *db);
    db->ip_version = ip_version;
    mw_new_node(db); /* the root */
}

static void mw_free(mw_db_t *db)
{
    free(db->node);
    free(db->data.p);
}

/* Offset where the next record written into db->data starts: encode a record there with the
 * mw_* value functions, then mw_insert networks pointing at it. */
static uint32_t mw_here(const mw_db_t *db)
{
    return (uint32_t)db->data.len;
}

/* Points CIDR ("81.2.69.0/24", "2001:218::/32") at the record at DATA. 0, or -1 on a bad or
 * overlapping network. IPv4 networks in an IPv6 tree go under ::/96, where readers look. */
static int mw_insert(mw_db_t *db, const char *cidr, uint32_t data)
{
    char text[64];
    unsigned char addr[16] = {0};
    snprintf(text, sizeof text, "%s", cidr);
    char *slash = strchr(text, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    unsigned prefix = (unsigned)atoi(slash + 1);
    unsigned bits;
    if (inet_pton(AF_INET, text, addr + 12) == 1) {
        if (prefix > 32)
            return -1;
        bits = db->ip_version == 6 ? 96 + prefix : prefix;
    } else if (db->ip_version == 6 && inet_pton(AF_INET6, text, addr) == 1) {
        if (prefix > 128)
            return -1;
        bits = prefix;
    } else {
        return -1;
    }
    unsigned first = db->ip_version == 6 ? 0 : 96; /* bit index in addr where the tree starts */
    uint32_t n = 0;
    for (unsigned depth = 0; depth < bits; depth++) {
        unsigned i = first + depth;
        unsigned bit = (addr[i / 8] >> (7 - i % 8)) & 1;
        mw_rec_t *r = &db->node[n][bit];
        if (depth == bits - 1) {
            if (r->kind != MW_EMPTY)
                return -1;
            r->kind = MW_DATA;
            r->v = data;
        } else if (r->kind == MW_NODE) {
            n = r->v;
        } else if (r->kind == MW_EMPTY) {
            uint32_t child = mw_new_node(db); /* may move db->node, so no r after this */
            db->node[n][bit].kind = MW_NODE;
            db->node[n][bit].v = child;
            n = child;
        } else {
            return -1;
        }
    }
    return 0;
}

static void mw_be32(mw_buf_t *b, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        mw_byte(b, (v >> (8 * i)) & 0xFF);
}

/* Writes the file. 0, or -1 if it cannot be written. */
static int mw_write(const mw_db_t *db, const char *path, const char *database_type)
{
    mw_buf_t out = {0};
    uint32_t count = (uint32_t)db->nodes;
    for (size_t i = 0; i < db->nodes; i++) {
        for (int side = 0; side < 2; side++) {
            const mw_rec_t *r = &db->node[i][side];
            uint32_t v = r->kind == MW_NODE   ? r->v
                         : r->kind == MW_DATA ? count + 16 + r->v
                                              : count; /* "no data" */
            mw_be32(&out, v);
        }
    }
    static const unsigned char zeros[16];
    mw_put(&out, zeros, sizeof zeros);
    mw_put(&out, db->data.p, db->data.len);
    mw_put(&out, "\xAB\xCD\xEFMaxMind.com", 14);
    mw_map(&out, 9);
    mw_str(&out, "binary_format_major_version");
    mw_uint(&out, MW_UINT16, 2);
    mw_str(&out, "binary_format_minor_version");
    mw_uint(&out, MW_UINT16, 0);
    mw_str(&out, "build_epoch");
    mw_uint(&out, MW_UINT64, 1700000000);
    mw_str(&out, "database_type");
    mw_str(&out, database_type);
    mw_str(&out, "description");
    mw_map(&out, 1);
    mw_str(&out, "en");
    mw_str(&out, "spypixel test database");
    mw_str(&out, "ip_version");
    mw_uint(&out, MW_UINT16, (uint64_t)db->ip_version);
    mw_str(&out, "languages");
    mw_array(&out, 1);
    mw_str(&out, "en");
    mw_str(&out, "node_count");
    mw_uint(&out, MW_UINT32, count);
    mw_str(&out, "record_size");
    mw_uint(&out, MW_UINT16, 32);

    int rc = -1;
    FILE *f = fopen(path, "wb");
    if (f && fwrite(out.p, 1, out.len, f) == out.len)
        rc = 0;
    if (f && fclose(f) != 0)
        rc = -1;
    free(out.p);
    return rc;
}

#endif
