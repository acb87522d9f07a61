/* snippet: the tracking URLs and the e-mail HTML the creator hands out (API and CLI alike). */
/* SPDX-License-Identifier: MIT */
#include "snippet.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sp_snippet_url(const sp_token_t *tokens, const char *origin, const sp_token_data_t *data,
                   char *url, size_t len)
{
    char token[SP_TOKEN_MAX];
    if (0 != sp_token_seal(tokens, data, token, sizeof(token)))
        return -1;
    size_t n = strlen(origin);
    if (n && '/' == origin[n - 1])
        n--;
    bool image = SP_TOKEN_OPEN == data->kind || SP_TOKEN_READ == data->kind ||
                 SP_TOKEN_PRINT == data->kind || SP_TOKEN_FORWARD == data->kind;
    /* The block's images share the pixel's route: the token says which part it is. */
    int w = snprintf(url, len, "%.*s/%c/%s%s", (int)n, origin,
                     image ? (char)SP_TOKEN_OPEN : (char)data->kind, token, image ? ".gif" : "");
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

void sp_snippet_pixel_html(const char *url, char *html, size_t len)
{
    /* Placed at the end of the body; alt="" and the size keep it invisible. */
    snprintf(html, len,
             "<img src=\"%s\" width=\"1\" height=\"1\" alt=\"\" "
             "style=\"display:block;width:1px;height:1px;border:0;\">",
             url);
}

int sp_snippet_block_html(const sp_token_t *tokens, const char *origin, const sp_token_data_t *data,
                          char *url, size_t url_len, char *html, size_t len)
{
    char print[SP_SNIPPET_URL_MAX], forward[SP_SNIPPET_URL_MAX];
    sp_token_data_t part = *data;
    part.extra[0] = '\0';
    part.kind = SP_TOKEN_READ;
    if (0 != sp_snippet_url(tokens, origin, &part, url, url_len))
        return -1;
    part.kind = SP_TOKEN_PRINT;
    if (0 != sp_snippet_url(tokens, origin, &part, print, sizeof(print)))
        return -1;
    part.kind = SP_TOKEN_FORWARD;
    if (0 != sp_snippet_url(tokens, origin, &part, forward, sizeof(forward)))
        return -1;
    /* A class of this block's own (from its forward token: base64url, so a valid class name),
     * so that two blocks in one thread (a reply quoting an earlier message) keep their rules
     * apart. */
    const char *t = strstr(forward, "/o/");
    char cls[16];
    snprintf(cls, sizeof(cls), "sp-%.10s", t ? t + 3 : "block");
    /* The forward rules match only where a client puts the message it forwards or quotes:
     * the original never has its block inside them. A print of a forwarded copy counts as the
     * forward (more specific). The element keeps a size: a client may skip a box with none. */
    int w =
        snprintf(html, len,
                 "<style>@media print{.%1$s{background-image:url(%2$s)}}"
                 "blockquote .%1$s,div.OutlookMessageHeader~* .%1$s,div.OutlookMessageHeader~.%1$s,"
                 "table.moz-email-headers-table~* .%1$s,table.moz-email-headers-table~.%1$s,"
                 ".moz-forward-container .%1$s{background-image:url(%3$s)}</style>"
                 "<div class=\"%1$s\" style=\"width:1px;height:1px;overflow:hidden;line-height:1px;"
                 "font-size:1px;\"><img src=\"%4$s\" width=\"1\" height=\"1\" alt=\"\" "
                 "style=\"display:block;width:1px;height:1px;border:0;\"></div>",
                 cls, print, forward, url);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

char *sp_snippet_qp(const char *text)
{
    size_t n = strlen(text);
    /* At worst 3 bytes per byte, plus a soft break per 73 of them, plus the NUL. */
    char *out = malloc(n * 3 + (n / 24 + 1) * 3 + 1);
    if (!out)
        abort();
    size_t o = 0, col = 0;
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char enc[4];
        size_t w;
        bool last = '\0' == p[1];
        /* A space or tab is literal except at a line's end, where transport may eat it. */
        if ((*p >= 33 && *p <= 126 && '=' != *p) || ((' ' == *p || '\t' == *p) && !last)) {
            enc[0] = (char)*p;
            w = 1;
        } else {
            enc[0] = '=';
            enc[1] = hex[*p >> 4];
            enc[2] = hex[*p & 15];
            w = 3;
        }
        /* 75 characters and a soft break's '=' make the longest line, 76. */
        if (col + w > 75) {
            memcpy(out + o, "=\r\n", 3);
            o += 3;
            col = 0;
        }
        memcpy(out + o, enc, w);
        o += w;
        col += w;
    }
    out[o] = '\0';
    return out;
}
