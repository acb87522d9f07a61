/* fuzz_egress: the --apple-egress file, Apple's published relay ranges (classify.c). */
/* SPDX-License-Identifier: MIT */
#include "../src/common/classify.c"

#include <unistd.h>

#include "fuzz.h"

/*
 * The input is the file as Apple publishes it (CSV: range, country, region, city) or as an
 * operator writes it (one CIDR per line, # comments). It is written to a scratch file under
 * $TMPDIR and loaded as --apple-egress loads it. A loaded table must be what the bisection
 * in in_ranges relies on: ranges sorted, disjoint, each lo <= hi, each end inside it.
 */

static char path[4096];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/spypixel-fuzz-egress-%d.csv", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && size != fwrite(data, 1, size, f)) || 0 != fclose(f))
        abort();

    char err[512] = "";
    sp_classifier_t *c = sp_classify_open(path, err, sizeof(err));
    if (!c) {
        FUZZ_CHECK(err[0] && fuzz_terminated(err, sizeof(err)));
        return 0;
    }
    FUZZ_CHECK(c->n_egress <= c->n_lines);
    for (size_t i = 0; i < c->n_egress; i++) {
        const range_t *r = &c->egress[i];
        FUZZ_CHECK(memcmp(r->lo, r->hi, 16) <= 0);
        if (i)
            FUZZ_CHECK(memcmp(c->egress[i - 1].hi, r->lo, 16) < 0);
        FUZZ_CHECK(in_ranges(c->egress, c->n_egress, r->lo));
        FUZZ_CHECK(in_ranges(c->egress, c->n_egress, r->hi));
        sp_net_addr_t a = {.v4 = false};
        memcpy(a.b, r->hi, 16);
        FUZZ_CHECK(is_apple(c, &a));
    }
    sp_classify_close(c);
    return 0;
}
