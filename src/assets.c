/* assets: lookup of the dashboard files built into the binary. */
/* SPDX-License-Identifier: MIT */
#include "assets.h"

#include <string.h>

const sp_asset_t *sp_assets_find(const char *path)
{
    if (0 == strcmp(path, "/"))
        path = "/index.html";
    for (const sp_asset_t *a = sp_assets; a->path; a++)
        if (0 == strcmp(a->path, path))
            return a;
    return NULL;
}
