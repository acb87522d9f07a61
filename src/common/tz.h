/* tz: IANA time zones read from the system's zoneinfo (TZif files), without touching TZ. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_TZ_H
#define SP_TZ_H

#include <stddef.h>
#include <stdint.h>

#define SP_TZ_NAME_MAX 64 /* the longest zone name taken, NUL excluded */

/* A zone's offsets from UTC: from each transition on, until the next. */
typedef struct sp_tz {
    char name[SP_TZ_NAME_MAX + 1];
    size_t n;       /* transitions */
    int64_t *at;    /* their times (UTC seconds), ascending; malloc'd */
    int32_t *off;   /* the offset (seconds east of UTC) from each; malloc'd */
    int32_t before; /* the offset before the first */
} sp_tz_t;

/* Loads zone NAME ("UTC", "Europe/Berlin") from $TZDIR or /usr/share/zoneinfo into TZ (freed
 * with sp_tz_free). A name is letters, digits, '_', '-', '+' and '/' between components that
 * do not start with '.', at most SP_TZ_NAME_MAX bytes, and names a TZif file. 0, or -1 with a
 * message for the user in ERR (TZ is then empty). Past the file's last transition (2037 in
 * Debian's files) the last offset holds. */
int sp_tz_load(sp_tz_t *tz, const char *name, char *err, size_t errlen);

/* The offset of zone TZ at UTC second T. */
int32_t sp_tz_offset(const sp_tz_t *tz, int64_t t);

/* The UTC second at which local time LOCAL (seconds since the epoch, as on a wall clock in TZ)
 * is read; in a gap (clocks moved forward) the instant the gap ends, in an overlap the first. */
int64_t sp_tz_from_local(const sp_tz_t *tz, int64_t local);

void sp_tz_free(sp_tz_t *tz);

#endif
