/* prefilter: literals every match of a regex holds, and one scan naming the regexes to run. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_PREFILTER_H
#define SP_PREFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A set of PCRE2 patterns, numbered 0, 1, ... in the order they are added. For each, a small
 * reading of the pattern finds groups of literals such that any match contains one literal of
 * every group (for "Foo(Bar|Baz)\d": {"Foo"} and {"Bar", "Baz"}, in fact {"FooBar", "FooBaz"}).
 * A pattern whose syntax the reading does not follow, or that needs no literal, gets no group
 * and is a candidate for every subject. The reading only ever claims less than the pattern
 * requires, never more: a pattern left out of a scan's candidates cannot match that subject.
 *
 * The scan is one pass of an Aho-Corasick automaton over all the literals, compared without
 * case (ASCII letters: patterns and subjects are bytes, as in PCRE2's 8-bit mode without UTF);
 * a literal whose case matters is checked where it was found.
 *
 * Built once (add..., then compile), then immutable: any number of threads may scan at once,
 * each with its own scratch space. */
typedef struct sp_prefilter sp_prefilter_t;

/* Returns an empty set; out-of-memory aborts. */
sp_prefilter_t *sp_prefilter_new(void);

/* Frees PF; NULL is a no-op. */
void sp_prefilter_free(sp_prefilter_t *pf);

/* Adds the next pattern: PATTERN is PCRE2 syntax as compiled with no option but PCRE2_CASELESS
 * when CASELESS (a "(?i)" inside is understood too). Returns the number of literal groups kept,
 * 0 when the pattern is a candidate for every subject. Not after sp_prefilter_compile. */
int sp_prefilter_add(sp_prefilter_t *pf, const char *pattern, bool caseless);

/* Builds the matcher over every literal added. Call once, after the last add. */
void sp_prefilter_compile(sp_prefilter_t *pf);

/* Number of patterns added. */
size_t sp_prefilter_count(const sp_prefilter_t *pf);

/* Size in uint64_t words of a candidate set: one bit per pattern, bit I of word I / 64. */
size_t sp_prefilter_words(const sp_prefilter_t *pf);

/* Bytes of scratch space a scan needs. */
size_t sp_prefilter_scratch_size(const sp_prefilter_t *pf);

/* Scans the LEN bytes of S once and sets in CAND (sp_prefilter_words words, overwritten) the
 * bit of every pattern that may match S: those whose every group has a literal in S, and those
 * without groups. SCRATCH is sp_prefilter_scratch_size bytes of the caller's, any content. */
void sp_prefilter_scan(const sp_prefilter_t *pf, const char *s, size_t len, uint64_t *cand,
                       void *scratch);

/* Writes pattern ID's groups into BUF as text, groups joined by " & ", the literals of a group
 * by " | ", each in double quotes (for example "\"Foo\" & (\"Bar\" | \"Baz\")"); "" when the
 * pattern has none. A caseless literal is written in lower case. For tests and diagnostics. */
void sp_prefilter_describe(const sp_prefilter_t *pf, size_t id, char *buf, size_t len);

#endif
