/* snippet: the tracking URLs and the e-mail HTML the creator hands out (API and CLI alike). */
/* SPDX-License-Identifier: MIT */
#include "snippet.h"

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
    int w = snprintf(url, len, "%.*s/%c/%s%s", (int)n, origin, (char)data->kind, token,
                     SP_TOKEN_OPEN == data->kind ? ".gif" : "");
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
