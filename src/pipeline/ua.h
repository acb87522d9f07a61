/* ua: user-agent parsing with uap-core's rules, LRU cache, CPU architecture, Client Hints. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_UA_H
#define SP_UA_H

#include <stddef.h>
#include <stdint.h>

/* Size of every output field, NUL included; longer values are cut at a byte boundary that does
 * not split a UTF-8 sequence. */
#define SP_UA_FIELD 128

/* Bytes of a user agent that are looked at; the rest is ignored (and not part of the cache key). */
#define SP_UA_MAX_INPUT 1024

/* Default location of uap-core's rules on Debian (package uap-core). */
#define SP_UA_DEFAULT_REGEXES "/usr/share/uap-core/regexes.yaml"

/* An unset field is "", except family, which is "Other" when nothing matched. The browser fills
 * family/major/minor/patch (patch_minor only for the few four-part versions uap-core captures);
 * the os fills all five. */
typedef struct sp_ua_agent {
    char family[SP_UA_FIELD], major[SP_UA_FIELD], minor[SP_UA_FIELD], patch[SP_UA_FIELD],
        patch_minor[SP_UA_FIELD];
} sp_ua_agent_t;

typedef struct sp_ua_device {
    char family[SP_UA_FIELD], brand[SP_UA_FIELD], model[SP_UA_FIELD];
} sp_ua_device_t;

/* Plain value type: no pointers inside, copy it freely. */
typedef struct sp_ua {
    sp_ua_agent_t browser;
    sp_ua_agent_t os;
    sp_ua_device_t device;
} sp_ua_t;

/* Compiled rules plus the cache. Immutable after sp_ua_open except for the cache, which has its
 * own lock: one parser may be shared by any number of threads. */
typedef struct sp_ua_parser sp_ua_parser_t;

/* Loads and compiles the rules of REGEXES_PATH (NULL: SP_UA_DEFAULT_REGEXES). CACHE_ENTRIES bounds
 * the LRU cache; 0 turns caching off. Returns a parser the caller frees with sp_ua_close, or NULL
 * with a message in ERR (ERR may be NULL). Takes some tens of milliseconds: do it once. */
sp_ua_parser_t *sp_ua_open(const char *regexes_path, size_t cache_entries, char *err,
                           size_t errlen);

/* Frees the parser; NULL is a no-op. No call on P may be running. */
void sp_ua_close(sp_ua_parser_t *p);

/* Parses UA (NULL or "" gives all "Other") into OUT, through the cache. Thread-safe. Only the
 * first SP_UA_MAX_INPUT bytes are used. UA is borrowed for the call only. */
void sp_ua_parse(sp_ua_parser_t *p, const char *ua, sp_ua_t *out);

/* The same without touching the cache. Thread-safe. */
void sp_ua_parse_uncached(sp_ua_parser_t *p, const char *ua, sp_ua_t *out);

/* sp_ua_parse_uncached without the literal prefilter: every rule is tried in order until one
 * matches. Always the same answer, several times slower: for the tests and benchmarks that
 * check the prefilter. Thread-safe. */
void sp_ua_parse_unfiltered(sp_ua_parser_t *p, const char *ua, sp_ua_t *out);

/* Writes the non-empty parts of major.minor.patch(.patch_minor) joined by dots, "" if none. */
void sp_ua_version(const sp_ua_agent_t *a, char *buf, size_t len);

/* Cache hits and misses of sp_ua_parse since open (either pointer may be NULL); empty agents
 * count as neither, and with caching off every other call is a miss. Thread-safe. */
void sp_ua_stats(sp_ua_parser_t *p, uint64_t *hits, uint64_t *misses);

/* CPU architecture: "x86_64", "x86", "arm64", "arm" or "" when unknown. Client Hints
 * (Sec-CH-UA-Arch, -Bitness, -Platform raw header values, quotes included, any may be NULL) win
 * when they name an architecture; otherwise only tokens the UA actually carries are believed. */
void sp_ua_arch(const char *ua, const char *ch_arch, const char *ch_bitness,
                const char *ch_platform, char *buf, size_t len);

/* Completes UA from Sec-CH-UA-Model, -Platform and -Platform-Version (raw header values, quotes
 * included, any may be NULL; values are cut to SP_UA_FIELD): the model fills a device the UA left
 * unknown (or hid behind the reduced "K"); a platform the spec defines fills an "Other" os, and
 * when it names the UA's os its version replaces the UA's, which reduced UAs freeze (Windows
 * platform versions 13+ are Windows 11, 1-10 are Windows 10). */
void sp_ua_apply_client_hints(sp_ua_t *ua, const char *ch_model, const char *ch_platform,
                              const char *ch_platform_version);

#endif
