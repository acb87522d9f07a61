/* assets: the dashboard's files, built into the binary from web/ by tools/bin2c, and the
 * route that serves them. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_ASSETS_H
#define SP_ASSETS_H

#include <stddef.h>

#include "http.h"

typedef struct sp_asset {
    const char *path; /* URL path, "/index.html" */
    const char *mime;
    const unsigned char *data;
    unsigned long len;
    const char *etag;
} sp_asset_t;

/* Generated table, terminated by an entry whose path is NULL. */
extern const sp_asset_t sp_assets[];

/* The asset served at PATH ("/" means "/index.html"), or NULL. */
const sp_asset_t *sp_assets_find(const char *path);

/* Adds GET and HEAD of every path no other route knows: a file, else (a path without a dot)
 * the dashboard's page, which routes itself; a missing file is 404. */
void sp_assets_routes(sp_http_routes_t *routes);

#endif
