/* fuzz_scanurl: a link's destination as the scanner unwraps it (sp_scan_link_target). */
/* SPDX-License-Identifier: MIT */
#include "fuzz.h"
#include "scan.h"

#include <strings.h>

/*
 * The input is a URL from a message: a tracked redirect whose destination may sit in a
 * query parameter (plain, percent-encoded, base64, nested) or a path segment. The message
 * scanner reaches this too, but far slower; here every execution is a URL.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_text(data, size);
    char *target = sp_scan_link_target(url);
    if (target) {
        FUZZ_CHECK(0 == strncasecmp(target, "http://", 7) ||
                   0 == strncasecmp(target, "https://", 8));
        free(sp_scan_link_target(target)); /* a destination may be a redirect itself */
        free(target);
    }
    free(url);
    return 0;
}
