/* fuzz_route: request paths against the server's route table (http.c's find_route). */
/* SPDX-License-Identifier: MIT */
#include "../src/server/http.c"

#include "api.h"
#include "assets.h"
#include "fuzz.h"
#include "login.h"
#include "pixel.h"
#include "status.h"

/*
 * The first byte picks where the path starts, the rest is what the client sent after it:
 *  0 /api/v1/campaigns/  1 /api/v1/unknown-campaigns/  2 /api/v1/recipients/  3 /
 * The table is every handler's routes in the order the server tries them (the API's hold
 * those of api_report, api_search and api_manage too). For each method,
 * the route found must be one whose path gives back the request's path: its text, each '*'
 * a segment without '/', then the rest only for a prefix route. A GET is always taken or
 * answered 405, never 404 (the dashboard's files take what nothing else knows). And the campaign ID
 * a route reads (sp_http_param, then sp_event_id_valid) is the path's segment after the prefix.
 */

static sp_http_t server;

static void setup(void)
{
    /* Only the routes are read: the handlers' contexts are never reached. */
    sp_pixel_routes(&server.routes, NULL);
    sp_login_routes(&server.routes, NULL);
    sp_api_routes(&server.routes, NULL);
    sp_status_routes(&server.routes, NULL);
    sp_assets_routes(&server.routes);
}

/* Whether ROUTE's path, with M's segments and rest, spells PATH. */
static bool spells(const sp_route_t *route, const match_t *m, const char *path)
{
    size_t at = 0, k = 0;
    for (const char *p = route->path; *p; p++) {
        if ('*' != *p) {
            if (path[at++] != *p)
                return false;
            continue;
        }
        const param_t *seg = &m->params[k++];
        if (seg->off != at || memchr(path + seg->off, '/', seg->len))
            return false;
        at += seg->len;
    }
    if (m->rest != at)
        return false;
    return (route->flags & SP_ROUTE_PREFIX) || '\0' == path[at];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const prefixes[] = {"/api/v1/campaigns/", "/api/v1/unknown-campaigns/",
                                           "/api/v1/recipients/", "/"};
    if (!server.routes.n)
        setup();
    if (0 == size)
        return 0;
    const char *prefix = prefixes[data[0] % 4];
    char *rest = fuzz_text(data + 1, size - 1);
    size_t n = strlen(prefix) + strlen(rest) + 1;
    char *path = malloc(n);
    if (!path)
        abort();
    snprintf(path, n, "%s%s", prefix, rest);

    for (unsigned bit = SP_HTTP_GET; bit <= SP_HTTP_OTHER; bit <<= 1) {
        match_t m;
        find_route(&server, path, bit, &m);
        if (SP_HTTP_GET == bit)
            FUZZ_CHECK(NONE != m.named);
        if (NONE == m.route) {
            FUZZ_CHECK(NONE == m.named || m.allowed);
            continue;
        }
        const sp_route_t *route = server.routes.at[m.route].route;
        FUZZ_CHECK(route->methods & bit);
        FUZZ_CHECK(spells(route, &m, path));
        /* A campaign's routes read its ID from the segment after the prefix. */
        if (0 == data[0] % 4 && 0 == strncmp(route->path, prefix, strlen(prefix)) &&
            '*' == route->path[strlen(prefix)]) {
            char id[SP_ID_MAX + 1];
            size_t len = m.params[0].len;
            if (len < sizeof(id)) {
                memcpy(id, path + m.params[0].off, len);
                id[len] = '\0';
                if (sp_event_id_valid(id))
                    FUZZ_CHECK(0 == strncmp(rest, id, len) && ('/' == rest[len] || !rest[len]));
            }
        }
    }
    free(path);
    free(rest);
    return 0;
}
