/* fuzz_scan: the recipient's scanner: a message or mbox scanned and stripped (scan.c, GMime,
 * libxml2). */
/* SPDX-License-Identifier: MIT */
#include "../src/scan/scan.c"

#include "fuzz.h"

/*
 * The input is a file as `spypixel scan` reads it: an RFC 5322 message, or an mbox when it
 * starts with "From ". It is scanned, then stripped (written back without its trackers) as
 * --strip does; damaged MIME and HTML are read as far as they go. Findings must be whole.
 */

static void check_report(const sp_scan_report_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const sp_scan_finding_t *f = &r->findings[i];
        FUZZ_CHECK(f->url && f->host && f->file && f->message >= 1);
        FUZZ_CHECK(f->n_matches >= 1 && f->n_matches <= SP_SCAN_MATCH_MAX);
        for (size_t k = 0; k < f->n_matches; k++)
            FUZZ_CHECK(f->matches[k].rule && f->matches[k].reason);
        FUZZ_CHECK(sp_scan_kind_name(f->kind));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) {
        sink = fopen("/dev/null", "w");
        if (!sink)
            abort();
    }
    sp_scan_report_t report = SP_SCAN_REPORT_INIT;
    char err[512];
    FUZZ_CHECK(0 == sp_scan_memory("fuzz.eml", data, size, &report, err, sizeof(err)));
    check_report(&report);
    sp_scan_report_free(&report);

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)data, size);
    FUZZ_CHECK(0 == scan_stream(stream, "fuzz.eml", &report, sink, err, sizeof(err)));
    g_object_unref(stream);
    check_report(&report);
    sp_scan_report_free(&report);
    return 0;
}
