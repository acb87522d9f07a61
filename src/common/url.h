/* url: link targets checked and written as URLs that are valid by RFC 3986. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_URL_H
#define SP_URL_H

#include <stddef.h>

/* Writes TARGET, an absolute http:// or https:// URL, into OUT (LEN bytes) in a form that
 * is valid by RFC 3986 wherever it goes (a Location header, an href): the scheme in lower
 * case, and every byte the URL syntax does not allow where it stands (raw UTF-8, "{}|\^`",
 * a '%' that starts no escape, a second '#') percent-encoded, as browsers do. 0, or -1 with
 * the reason in ERR when it cannot be one: another scheme, control characters, spaces,
 * quotes or angle brackets (refused, not encoded: they are how headers and markup are
 * broken), no host, a host that is not ASCII (IDNA's xn-- form is), a bad port, or a
 * result longer than LEN - 1. */
int sp_url_target(const char *target, char *out, size_t len, char *err, size_t errlen);

#endif
