/* api_manage: archiving and deleting a campaign, and what was made for it, through the API. */
/* SPDX-License-Identifier: MIT */
#include "api_manage.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"

static enum MHD_Result store_error(sp_request_t *req, const char *err)
{
    sp_log_error("store error", "error=\"%s\"", err);
    return sp_http_error(req, 500, "the store failed; see the server log");
}

static enum MHD_Result archive(sp_request_t *req, sp_store_t *store, const char *id)
{
    char msg[256], err[512];
    json_t *body = sp_http_body_json(req, msg, sizeof(msg));
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
    return sp_http_json(req, 200, json_pack("{s:s, s:b}", "id", id, "archived", archived));
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
    return sp_http_json(req, 200,
                        json_pack("{s:s, s:b, s:I}", "id", id, "deleted", true, "deleted_events",
                                  (json_int_t)deleted));
}

static json_t *time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[40];
    sp_format_ts(ms, buf, sizeof(buf));
    return json_string(buf);
}

int sp_api_record_tracker(sp_store_t *store, const char *kind, const char *campaign,
                          const char *recipient, const char *target, const char *url, char *err,
                          size_t errlen)
{
    sp_store_tracker_t t = {.campaign = campaign,
                            .recipient = recipient ? recipient : "",
                            .kind = kind,
                            .target = target ? target : "",
                            .url = url,
                            .created_at = sp_now_ms()};
    return store->ops->tracker_put(store, &t, err, errlen);
}

static int add_link(void *ctx, const sp_store_link_t *l)
{
    json_t *v = json_string(l->target);
    json_array_append_new(ctx, json_pack("{s:o, s:I, s:I, s:I, s:o, s:o}", "target",
                                         v ? v : json_string("(not UTF-8)"), "made",
                                         (json_int_t)l->made, "clicks", (json_int_t)l->clicks,
                                         "unique_clickers", (json_int_t)l->clickers,
                                         "first_click_at", time_json(l->first_at), "last_click_at",
                                         time_json(l->last_at)));
    return 0;
}

static int campaign_known(sp_request_t *req, sp_store_t *store, const char *id,
                          enum MHD_Result *answer)
{
    char err[512];
    sp_campaign_t camp;
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found < 0)
        *answer = store_error(req, err);
    else if (found > 0)
        *answer = sp_http_error(req, 404, "no such campaign");
    return found;
}

enum MHD_Result sp_api_links(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512];
    enum MHD_Result answer;
    if (campaign_known(req, store, id, &answer))
        return answer;
    json_t *arr = json_array();
    if (0 != store->ops->links(store, id, add_link, arr, err, sizeof(err))) {
        json_decref(arr);
        return store_error(req, err);
    }
    return sp_http_json(req, 200, json_pack("{s:s, s:o}", "id", id, "links", arr));
}

typedef struct {
    json_t *arr;
    int64_t last, n;
} trackers_t;

static int add_tracker(void *ctx, const sp_store_tracker_t *t)
{
    trackers_t *p = ctx;
    json_array_append_new(p->arr,
                          json_pack("{s:I, s:s, s:s, s:s, s:s, s:o}", "id", (json_int_t)t->id,
                                    "kind", t->kind, "recipient", t->recipient, "target", t->target,
                                    "url", t->url, "created_at", time_json(t->created_at)));
    p->last = t->id;
    p->n++;
    return 0;
}

enum MHD_Result sp_api_trackers(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512];
    int64_t limit = 100, before = 0;
    const char *lim = sp_http_arg(req, "limit"), *bef = sp_http_arg(req, "before");
    char *end;
    if (lim) {
        limit = strtoll(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > 100000)
            return sp_http_error(req, 400, "limit must be 1-100000; before a tracker ID");
    }
    if (bef) {
        before = strtoll(bef, &end, 10);
        if (end == bef || *end || before < 1 || strlen(bef) > 19)
            return sp_http_error(req, 400, "limit must be 1-100000; before a tracker ID");
    }
    enum MHD_Result answer;
    if (campaign_known(req, store, id, &answer))
        return answer;
    trackers_t p = {.arr = json_array()};
    if (0 != store->ops->trackers(store, id, before, limit, add_tracker, &p, err, sizeof(err))) {
        json_decref(p.arr);
        return store_error(req, err);
    }
    return sp_http_json(req, 200,
                        json_pack("{s:s, s:o, s:o}", "id", id, "trackers", p.arr, "next_before",
                                  p.n == limit ? json_integer(p.last) : json_null()));
}

enum MHD_Result sp_api_campaign_manage(sp_request_t *req, sp_store_t *store, const char *id)
{
    if (0 == strcmp(req->method, "PATCH"))
        return archive(req, store, id);
    if (0 == strcmp(req->method, "DELETE"))
        return erase(req, store, id);
    return sp_http_error(req, 405, "use GET, PATCH or DELETE");
}
