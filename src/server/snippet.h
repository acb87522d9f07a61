/* snippet: the tracking URLs and the e-mail HTML the creator hands out (API and CLI alike). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SNIPPET_H
#define SP_SNIPPET_H

#include <stddef.h>

#include "token.h"

#define SP_SNIPPET_URL_MAX   (SP_TOKEN_MAX + 400)
#define SP_SNIPPET_HTML_MAX  (SP_SNIPPET_URL_MAX + 200)
#define SP_SNIPPET_BLOCK_MAX (3 * SP_SNIPPET_URL_MAX + 1024)

/* The signed URL of DATA at ORIGIN ("https://host[:port]", a trailing '/' ignored):
 * ORIGIN/o/TOKEN.gif for a pixel and each image of the tracking block, ORIGIN/c/TOKEN for a
 * link. 0, or -1 when it does not fit. */
int sp_snippet_url(const sp_token_t *tokens, const char *origin, const sp_token_data_t *data,
                   char *url, size_t len);

/* The pixel's HTML: an invisible 1x1 <img> of URL, for the end of a message's body. URL is
 * one sp_snippet_url made (no character in it needs escaping). */
void sp_snippet_pixel_html(const char *url, char *html, size_t len);

/* TEXT as quoted-printable (RFC 2045 section 6.7) for a part sent with
 * Content-Transfer-Encoding: quoted-printable: lines of at most 76 characters with soft
 * breaks ("=" CRLF), '=' and bytes outside printable ASCII as =XX. Returns a malloc'd
 * string; the caller frees it. */
char *sp_snippet_qp(const char *text);

/* The tracking block of DATA's campaign and recipient (its kind is ignored) into HTML (LEN
 * bytes), for the end of a message's body: a <style> whose print rule and forward rules
 * (a blockquote, Outlook's div.OutlookMessageHeader, Thunderbird's moz-email-headers-table and
 * moz-forward-container) give one element a background image, and in that element the image
 * held to time the read. Each part has its own signed URL; the read image's goes into URL (LEN
 * bytes: SP_SNIPPET_URL_MAX). 0, or -1 when the URLs do not fit. */
int sp_snippet_block_html(const sp_token_t *tokens, const char *origin, const sp_token_data_t *data,
                          char *url, size_t url_len, char *html, size_t len);

#endif
