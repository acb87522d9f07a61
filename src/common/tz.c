/* tz: IANA time zones read from the system's zoneinfo (TZif files), without touching TZ. */
/* SPDX-License-Identifier: MIT */
#include "tz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A TZif file is a few KiB; a bigger one is not a zone. */
#define TZIF_MAX (256 * 1024)

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (!n || n > SP_TZ_NAME_MAX)
        return false;
    bool start = true; /* at the start of a component */
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || '_' == *c || '-' == *c || '+' == *c || '/' == *c ||
                  '.' == *c;
        if (!ok || (start && ('.' == *c || '/' == *c)))
            return false;
        start = '/' == *c;
    }
    return !start;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* RFC 8536: the version 2+ data block (64-bit times), after the version 1 block. */
static int parse(sp_tz_t *tz, const unsigned char *b, size_t len)
{
    for (int pass = 0; pass < 2; pass++) {
        if (len < 44 || 0 != memcmp(b, "TZif", 4))
            return -1;
        size_t isut = be32(b + 20), isstd = be32(b + 24), leap = be32(b + 28),
               timecnt = be32(b + 32), typecnt = be32(b + 36), charcnt = be32(b + 40);
        size_t tsize = pass ? 8 : 4;
        if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || charcnt > 100000 ||
            leap > 100000 || isut > 256 || isstd > 256)
            return -1;
        size_t body =
            timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isut;
        if (len - 44 < body)
            return -1;
        if (0 == pass) {
            if (b[4] < '2') {
                tsize = 4; /* version 1 only: read this block */
            } else {
                b += 44 + body;
                len -= 44 + body;
                continue;
            }
        }
        const unsigned char *times = b + 44, *idx = times + timecnt * tsize, *types = idx + timecnt;
        tz->n = timecnt;
        tz->at = calloc(timecnt ? timecnt : 1, sizeof(*tz->at));
        tz->off = calloc(timecnt ? timecnt : 1, sizeof(*tz->off));
        if (!tz->at || !tz->off)
            abort();
        for (size_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                return -1;
            tz->at[i] = 8 == tsize ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
            tz->off[i] = (int32_t)be32(types + 6 * idx[i]);
            if (i && tz->at[i] <= tz->at[i - 1])
                return -1;
        }
        tz->before = (int32_t)be32(types); /* type 0: before the first transition */
        return 0;
    }
    return -1;
}

int sp_tz_load(sp_tz_t *tz, const char *name, char *err, size_t errlen)
{
    *tz = (sp_tz_t){0};
    if (!name_valid(name)) {
        snprintf(err, errlen, "tz must be an IANA time zone name such as Europe/Berlin");
        return -1;
    }
    snprintf(tz->name, sizeof(tz->name), "%s", name);
    const char *dir = getenv("TZDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0;
    int ret = -1;
    if (!f) {
        if (0 == strcmp(name, "UTC")) /* no zoneinfo installed: UTC is known all the same */
            return 0;
        snprintf(err, errlen, "unknown time zone: %s", name);
        return -1;
    }
    buf = malloc(TZIF_MAX);
    if (!buf)
        abort();
    len = fread(buf, 1, TZIF_MAX, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    if (whole && 0 == parse(tz, buf, len))
        ret = 0;
    else
        snprintf(err, errlen, "unknown time zone: %s", name);
    free(buf);
    if (ret)
        sp_tz_free(tz);
    return ret;
}

int32_t sp_tz_offset(const sp_tz_t *tz, int64_t t)
{
    if (!tz->n || t < tz->at[0])
        return tz->before;
    size_t lo = 0, hi = tz->n; /* the last transition at or before t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->off[lo];
}

int64_t sp_tz_from_local(const sp_tz_t *tz, int64_t local)
{
    /* The offsets a day before and after hold the one in force (no zone moves twice in a day). */
    int32_t oa = sp_tz_offset(tz, local - 86400), ob = sp_tz_offset(tz, local + 86400);
    int64_t ua = local - oa, ub = local - ob;
    bool va = sp_tz_offset(tz, ua) == oa, vb = sp_tz_offset(tz, ub) == ob;
    if (va && vb)
        return ua < ub ? ua : ub;
    if (va)
        return ua;
    if (vb)
        return ub;
    /* In a gap: the transition between the two readings ends it. */
    int64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
    for (size_t i = 0; i < tz->n; i++)
        if (tz->at[i] > lo && tz->at[i] <= hi)
            return tz->at[i];
    return hi;
}

void sp_tz_free(sp_tz_t *tz)
{
    free(tz->at);
    free(tz->off);
    tz->at = NULL;
    tz->off = NULL;
    tz->n = 0;
}
