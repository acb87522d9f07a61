/* api_manage: archiving and deleting a campaign through the JSON API. */
/* SPDX-License-Identifier: MIT */
#include "api_manage.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

static enum MHD_Result send_json(sp_request_t *req, json_t *j)
{
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body)
        return sp_http_error(req, 500, "cannot encode the answer");
    enum MHD_Result rc = sp_http_respond(req, 200, "application/json", body, strlen(body));
    free(body);
    return rc;
}

static enum MHD_Result store_error(sp_request_t *req, const char *err)
{
    sp_log_error("store error", "error=\"%s\"", err);
    return sp_http_error(req, 500, "the store failed; see the server log");
}

static enum MHD_Result archive(sp_request_t *req, sp_store_t *store, const char *id)
{
    char msg[256], err[512];
    json_t *body = sp_api_body_json(req, msg, sizeof(msg));
    if (!body)
        return sp_http_error(req, 400, msg);
    json_t *v = json_object_get(body, "archived");
    bool ok = json_is_boolean(v) && 1 == json_object_size(body);
    bool archived = json_is_true(v);
    json_decref(body);
    if (!ok)
        return sp_http_error(req, 400, "send {\"archived\": true} or {\"archived\": false}");
    int rc = store->ops->campaign_archive(store, id, archived, err, sizeof(err));
    if (rc < 0)
        return store_error(req, err);
    if (rc > 0)
        return sp_http_error(req, 404, "no such campaign");
    return send_json(req, json_pack("{s:s, s:b}", "id", id, "archived", archived));
}

static enum MHD_Result erase(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512];
    int64_t deleted = 0;
    int rc = store->ops->campaign_delete(store, id, &deleted, err, sizeof(err));
    if (rc < 0)
        return store_error(req, err);
    if (rc > 0)
        return sp_http_error(req, 404, "no such campaign");
    sp_log_info("campaign deleted", "campaign=%s events=%lld", id, (long long)deleted);
    return send_json(req, json_pack("{s:s, s:b, s:I}", "id", id, "deleted", true, "deleted_events",
                                    (json_int_t)deleted));
}

enum MHD_Result sp_api_campaign_manage(sp_request_t *req, sp_store_t *store, const char *id)
{
    if (0 == strcmp(req->method, "PATCH"))
        return archive(req, store, id);
    if (0 == strcmp(req->method, "DELETE"))
        return erase(req, store, id);
    return sp_http_error(req, 405, "use GET, PATCH or DELETE");
}
