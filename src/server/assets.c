/* assets: the dashboard's files built into the binary, and the route that serves them. */
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

static enum MHD_Result serve(sp_request_t *req)
{
    const sp_asset_t *a = sp_assets_find(req->url);
    const char *slash = strrchr(req->url, '/');
    if (!a && !strchr(slash ? slash : req->url, '.'))
        a = sp_assets_find("/index.html");
    if (!a)
        return sp_http_text(req, 404, "not found\n");
    const char *inm = sp_http_header(req, "If-None-Match");
    bool fresh = inm && 0 == strcmp(inm, a->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->mime);
    MHD_add_response_header(resp, "ETag", a->etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    sp_http_secure_headers(resp, true);
    sp_http_hsts(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, fresh ? 304 : 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

static const sp_route_t routes[] = {
    {.path = "/",
     .methods = SP_HTTP_GET | SP_HTTP_HEAD,
     .flags = SP_ROUTE_PREFIX | SP_ROUTE_FALLBACK,
     .handle = serve},
};

void sp_assets_routes(sp_http_routes_t *table)
{
    sp_http_routes_add(table, routes, sizeof(routes) / sizeof(routes[0]), NULL);
}
