/* tally: what each stored open and click adds to the counters, decided once for every store. */
/* SPDX-License-Identifier: MIT */
#include "tally.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "scratch.h"

_Static_assert(0 == SP_CLASS_HUMAN && 1 == SP_CLASS_PROXY, "SP_TALLY_COUNTED_SQL names them");
_Static_assert(0 == SP_EVENT_OPEN && 1 == SP_EVENT_CLICK, "SP_TALLY_OPEN_SQL names them");

bool sp_tally_counted(int klass)
{
    return SP_CLASS_HUMAN == klass || SP_CLASS_PROXY == klass;
}

int64_t sp_tally_views(const int64_t by_class[SP_CLASS_COUNT])
{
    return by_class[SP_CLASS_HUMAN] + by_class[SP_CLASS_PROXY];
}

const char *sp_tally_engagement(int klass, sp_event_engage_t how, int64_t read_ms)
{
    if (SP_ENGAGE_NONE == how)
        return NULL;
    /* A proxy's or a machine's fetch says nothing of how long a person read: a caching proxy
     * reads the whole image at once, a scanner whenever it likes. */
    if (SP_CLASS_HUMAN != klass || SP_ENGAGE_UNMEASURED == how)
        return "unmeasured";
    if (SP_ENGAGE_PENDING == how)
        return NULL;
    if (read_ms >= SP_TALLY_READ_MS)
        return "read";
    /* Cut short by the server, a shorter time is only a lower bound. */
    if (SP_ENGAGE_CUT == how || read_ms < 0)
        return "unmeasured";
    return read_ms < SP_TALLY_SKIMMED_MS ? "glanced" : "skimmed";
}

bool sp_tally_engagement_counted(int kind, int klass)
{
    if (SP_EVENT_OPEN == kind)
        return SP_CLASS_SELF != klass;
    return (SP_EVENT_PRINT == kind || SP_EVENT_FORWARD == kind) && sp_tally_counted(klass);
}

void sp_tally_read_params(const sp_event_t *read, sp_tally_read_t *out)
{
    *out = (sp_tally_read_t){
        .read_ms = read->read_ms < 0 ? 0 : read->read_ms,
        .human = SP_CLASS_HUMAN,
        .if_human = sp_tally_engagement(SP_CLASS_HUMAN, read->engage, read->read_ms),
        .otherwise = sp_tally_engagement(SP_CLASS_MACHINE, read->engage, read->read_ms),
    };
}

void sp_tally_read_folded(sp_event_t *read, int64_t id, int klass)
{
    const char *e = sp_tally_engagement(klass, read->engage, read->read_ms);
    read->id = id;
    read->klass = klass;
    snprintf(read->engagement, sizeof(read->engagement), "%s", e ? e : "");
    sp_event_row_forget(read); /* made by the ingest's reader before the open was known */
    read->outcome = SP_OUTCOME_STORED;
}

void sp_tally_client_key(const sp_event_t *ev, char *buf, size_t len)
{
    snprintf(buf, len, "v:%s", ev->visitor);
}

/* One event, as the batch is sorted: by campaign, then its recipients, then its clients (of
 * counted opens without a recipient), then the rest; within each, by key, then by time and
 * batch order, so that a group's earliest open comes first. The sort reads what it compares
 * from the entry (the campaign as a rank, the key's first bytes, the time) and the texts only
 * where those tie: the events were made by the ingest's reader a batch ago, and reading theirs
 * was a cache miss a comparison. */
typedef struct {
    sp_event_t *ev;
    const char *key;   /* recipient, client key, or NULL */
    uint64_t key_head; /* KEY's head (sp_text_head) */
    uint64_t tag;      /* a recipient's sp_tally_recipient_tag */
    int64_t ts_ms;     /* EV's */
    int64_t id;        /* EV's, read with its time (sp_tally_t's member_ids) */
    uint32_t campaign; /* EV's campaign's rank among the batch's (campaign_ranks) */
    int8_t group;      /* GROUP_* */
    /* EV's kind and class, read with the rest as the entry is made: the counting then goes
     * over the entries in their sorted order, at random in the batch, and reading these from
     * each event was a cache miss an open (the tally's costliest line). */
    int8_t kind, klass;
    size_t order; /* in the batch */
} entry_t;

enum { GROUP_RECIPIENT, GROUP_CLIENT, GROUP_NONE };

static int cmp_key(const entry_t *x, const entry_t *y)
{
    return sp_text_cmp(x->key, x->key_head, y->key, y->key_head);
}

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int c;
    if (x->campaign != y->campaign)
        return x->campaign < y->campaign ? -1 : 1;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->key && (c = cmp_key(x, y)))
        return c;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_text_at(const void *a, const void *b, void *texts)
{
    const char *const *t = texts;
    return strcmp(t[*(const uint32_t *)a], t[*(const uint32_t *)b]);
}

/* DST (SIZE bytes) gets A "/" B, cut to fit as snprintf would cut it: the writer names a
 * reader for each recipient's human opens, and snprintf's "%s/%s" cost 900 instructions. */
static void join(char *dst, size_t size, const char *a, const char *b)
{
    size_t at = strnlen(a, size - 1);
    memcpy(dst, a, at);
    if (at < size - 1)
        dst[at++] = '/';
    size_t len = strnlen(b, size - 1 - at);
    memcpy(dst + at, b, len);
    dst[at + len] = '\0';
}

void sp_tally_reader(const sp_event_t *ev, char *client, char *network)
{
    join(client, SP_TALLY_READER_MAX, ev->browser, ev->os);
    sp_net_addr_t a; /* the address as stored (and shown) */
    if (0 != sp_net_parse(ev->ip, &a))
        a = ev->addr;
    sp_net_anonymize(&a);
    char ip[SP_NET_ADDR_MAX];
    sp_net_format(&a, ip, sizeof(ip));
    join(network, SP_TALLY_NETWORK_MAX, ip, a.v4 ? "24" : "48");
}

/* Asks memory for what sp_tally_reader reads of EV. */
static void prefetch_reader(const sp_event_t *ev)
{
    __builtin_prefetch(ev->browser);
    __builtin_prefetch(ev->os);
    __builtin_prefetch(ev->ip);
    __builtin_prefetch(&ev->addr);
}

/* Whether CLIENT is one of the lines of LIST. */
static bool listed(const char *list, const char *client)
{
    size_t len = strlen(client);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && 0 == memcmp(p, client, len))
            return true;
        p = end ? end + 1 : p + n;
    }
    return false;
}

static size_t lines(const char *list)
{
    size_t n = 0;
    for (const char *p = list; p && *p; p++)
        n += '\n' == *p;
    return n + (list && *list && '\n' != list[strlen(list) - 1]);
}

void sp_tally_recipient_reader(sp_tally_t *t, size_t i, const char *client, const char *network,
                               int64_t at, const char *forwarded)
{
    assert(i < t->n_recipients);
    sp_tally_recipient_t *r = &t->recipients[i];
    if (!client || !client[0] || !network || !at)
        return;
    char list[SP_TALLY_FORWARDED_MAX + 1];
    snprintf(list, sizeof(list), "%s", forwarded ? forwarded : "");
    size_t n_listed = lines(list);
    bool changed = false;
    for (size_t k = 0; k < r->n_humans && n_listed < SP_TALLY_FORWARD_CLIENTS_MAX; k++) {
        sp_event_t *ev = t->humans[r->humans + k];
        /* The time first: most opens again come soon after the first, and their reader's
         * names (an address parsed, anonymized and formatted: 2,300 instructions) are not
         * needed then. */
        if (ev->ts_ms < at + t->forward_after_ms)
            continue;
        char c[SP_TALLY_READER_MAX], net[SP_TALLY_NETWORK_MAX];
        sp_tally_reader(ev, c, net);
        if (0 == strcmp(c, client) || 0 == strcmp(net, network) || strchr(c, '\n') ||
            listed(list, c))
            continue;
        size_t used = strlen(list);
        if (used + strlen(c) + 2 > sizeof(list))
            break;
        snprintf(list + used, sizeof(list) - used, "%s%s", used ? "\n" : "", c);
        n_listed++;
        changed = true;
        t->forwards[t->n_forwards++] = ev;
    }
    if (changed) {
        free(r->forwarded);
        if (!(r->forwarded = strdup(list)))
            abort();
    }
}

void sp_tally_forward_row(sp_event_t *ev, sp_event_row_t *row)
{
    *row = *sp_event_row(ev);
    row->id = 0;
    row->kind = SP_EVENT_FORWARD;
    row->rule = SP_TALLY_FORWARD_RULE;
    row->engagement = NULL;
    row->read_ms = -1;
}

/* FNV-1a of CAMPAIGN and its NUL ("ab"+"c" is not "a"+"bc"): where its recipients' tags start
 * (sp_tally_recipient_tag). */
static uint64_t tag_start(const char *campaign)
{
    return sp_hash_int(sp_hash_str(SP_HASH_SEED, campaign), 0);
}

/* The tag of RECIPIENT of the campaign whose tag_start is H. */
static uint64_t tag_end(uint64_t h, const char *recipient)
{
    return sp_hash_str(h, recipient) | 1;
}

uint64_t sp_tally_recipient_tag(const char *campaign, const char *recipient)
{
    return tag_end(tag_start(campaign), recipient);
}

/* Each of the N events' campaign as its rank among the batch's distinct campaigns in strcmp's
 * order, into RANKS: equal ranks, equal campaigns; each rank's tag_start into STARTS (room for
 * N). Each campaign is read once (a batch may hold as many campaigns as opens). */
static void campaign_ranks(sp_event_t *const *evs, size_t n, uint32_t *ranks, uint64_t *starts)
{
    const char **distinct =
        sp_scratch_get(n * sizeof(*distinct)); /* the campaigns, then the distinct */
    for (size_t i = 0; i < n; i++)
        distinct[i] = evs[i]->campaign;
    uint32_t n_distinct = (uint32_t)sp_distinct_texts(distinct, n, ranks, distinct);
    uint32_t *order = sp_scratch_get(n_distinct * sizeof(*order)),
             *rank = sp_scratch_get(n_distinct * sizeof(*rank));
    for (uint32_t k = 0; k < n_distinct; k++)
        order[k] = k;
    qsort_r(order, n_distinct, sizeof(*order), cmp_text_at, distinct);
    for (uint32_t k = 0; k < n_distinct; k++) {
        rank[order[k]] = k;
        starts[k] = tag_start(distinct[order[k]]);
    }
    for (size_t i = 0; i < n; i++)
        ranks[i] = rank[ranks[i]];
    sp_scratch_put(distinct);
    sp_scratch_put(order);
    sp_scratch_put(rank);
}

/* How many events ahead the entries' making fetches an event (sp_event_prefetch). */
#define EVENTS_AHEAD 8

void sp_tally_count(sp_tally_t *t, sp_event_t *const *evs, size_t n)
{
    *t = (sp_tally_t){
        /* Room for N of each, not zeroed: an entry is made whole as it is taken (the campaigns
         * and clients of a batch are few, and zeroing the room of all took 1.7% of the writer's
         * instructions on realistic opens). */
        .campaigns = sp_scratch_get(n * sizeof(*t->campaigns)),
        .recipients = sp_scratch_get(n * sizeof(*t->recipients)),
        .recipient_of = sp_scratch_get(n * sizeof(*t->recipient_of)),
        .n_counted = n,
        .clients = sp_scratch_get(n * sizeof(*t->clients)),
        .humans = sp_scratch_get(n * sizeof(*t->humans)),
        .member_ids = sp_scratch_get(n * sizeof(*t->member_ids)),
        .forwards = sp_scratch_get(n * sizeof(*t->forwards)),
        .forward_after_ms = SP_TALLY_FORWARD_AFTER_MS,
    };
    entry_t *entries = sp_scratch_get(n * sizeof(*entries));
    char(*keys)[SP_TALLY_CLIENT_MAX] = sp_scratch_get(n * sizeof(*keys));
    uint32_t *ranks = sp_scratch_get(n * sizeof(*ranks));
    uint64_t *starts = sp_scratch_get(n * sizeof(*starts));
    campaign_ranks(evs, n, ranks, starts);
    for (size_t i = 0; i < n; i++) {
        sp_event_t *ev = evs[i];
        entry_t *e = &entries[i];
        if (i + EVENTS_AHEAD < n)
            sp_event_prefetch(evs[i + EVENTS_AHEAD]);
        *e = (entry_t){.ev = ev,
                       .ts_ms = ev->ts_ms,
                       .id = ev->id,
                       .campaign = ranks[i],
                       .group = GROUP_NONE,
                       .kind = (int8_t)ev->kind,
                       .klass =
                           (int8_t)(ev->klass >= -1 && ev->klass < SP_CLASS_COUNT ? ev->klass : -1),
                       .order = i};
        t->recipient_of[i] = SP_TALLY_NONE;
        if (ev->recipient[0]) {
            /* As stored: the row's text, valid UTF-8 (the pixel takes only plain IDs; an
             * older journal's record may hold anything), the key of its rollups' rows too. */
            e->group = GROUP_RECIPIENT;
            e->key = sp_event_row(ev)->recipient;
            e->tag = tag_end(starts[ranks[i]], e->key); /* its text read now, as its head is */
        } else if (SP_EVENT_OPEN == ev->kind && sp_tally_counted(ev->klass)) {
            e->group = GROUP_CLIENT;
            sp_tally_client_key(ev, keys[i], sizeof(keys[i]));
            e->key = keys[i];
        }
        if (e->key)
            e->key_head = sp_text_head(e->key);
    }
    sp_scratch_put(ranks);
    sp_scratch_put(starts);
    qsort(entries, n, sizeof(*entries), cmp_entry);

    sp_tally_campaign_t *c = NULL;
    sp_tally_recipient_t *r = NULL;
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = &entries[i], *prev = i ? &entries[i - 1] : NULL;
        /* A recipient's first human open is read (sp_tally_reader), at random in the batch:
         * asked of memory some entries ahead, for any human open. */
        if (i + EVENTS_AHEAD < n && SP_CLASS_HUMAN == entries[i + EVENTS_AHEAD].klass)
            prefetch_reader(entries[i + EVENTS_AHEAD].ev);
        sp_event_t *ev = e->ev;
        bool same_campaign = prev && prev->campaign == e->campaign;
        bool same_key = same_campaign && prev->group == e->group && e->key && 0 == cmp_key(prev, e);
        if (!same_campaign) {
            c = &t->campaigns[t->n_campaigns++];
            *c = (sp_tally_campaign_t){.id = ev->campaign};
        }
        bool open = SP_EVENT_OPEN == e->kind;
        bool counted = sp_tally_counted(e->klass);
        int klass = open && e->klass >= 0 ? e->klass : -1;
        bool view = open && counted, click = SP_EVENT_CLICK == e->kind && counted;

        if (klass >= 0)
            c->by_class[klass]++;
        c->views += view;
        c->clicks += click;
        if (counted && e->ts_ms > c->last_view_at)
            c->last_view_at = e->ts_ms;

        if (GROUP_RECIPIENT == e->group) {
            if (!same_key) {
                r = &t->recipients[t->n_recipients++];
                *r = (sp_tally_recipient_t){.campaign = t->n_campaigns - 1,
                                            .recipient = e->key,
                                            .tag = e->tag,
                                            .humans = t->n_humans,
                                            .members = t->n_members};
            }
            t->recipient_of[e->order] = (uint32_t)(t->n_recipients - 1);
            t->member_ids[t->n_members++] = e->id;
            r->n_members++;
            if (open && SP_CLASS_HUMAN == e->klass) {
                /* Sorted by time: the first is the earliest. */
                if (!r->n_humans) {
                    sp_tally_reader(ev, r->client, r->network);
                    r->human_at = e->ts_ms;
                }
                t->humans[t->n_humans++] = ev;
                r->n_humans++;
            }
            if (klass >= 0)
                r->by_class[klass]++;
            r->views += view;
            r->clicks += click;
            if (view) {
                /* Sorted by time: the first counted open is the earliest. */
                if (!r->first) {
                    r->first = ev;
                    r->first_at = e->ts_ms;
                }
                r->last_at = e->ts_ms;
            }
        } else if (GROUP_CLIENT == e->group && !same_key) {
            sp_tally_client_t *k = &t->clients[t->n_clients++];
            *k =
                (sp_tally_client_t){.campaign = t->n_campaigns - 1, .first = ev}; /* the earliest */
            memcpy(k->key, e->key, sizeof(k->key));
        }
    }
    sp_scratch_put(entries);
    sp_scratch_put(keys);
}

void sp_tally_recipient_seen(sp_tally_t *t, size_t i, int64_t views)
{
    assert(i < t->n_recipients);
    sp_tally_recipient_t *r = &t->recipients[i];
    if (r->views > 0 && views == r->views) {
        t->campaigns[r->campaign].unique++;
        r->first->first_view = true;
    }
}

void sp_tally_client_seen(sp_tally_t *t, size_t i, bool is_new)
{
    assert(i < t->n_clients);
    if (is_new) {
        t->campaigns[t->clients[i].campaign].unique++;
        t->clients[i].first->first_view = true;
    }
}

void sp_tally_free(sp_tally_t *t)
{
    sp_scratch_put(t->campaigns);
    for (size_t i = 0; i < t->n_recipients; i++)
        free(t->recipients[i].forwarded);
    sp_scratch_put(t->recipients);
    sp_scratch_put(t->recipient_of);
    sp_scratch_put(t->humans);
    sp_scratch_put(t->member_ids);
    sp_scratch_put(t->forwards);
    sp_scratch_put(t->clients);
    *t = (sp_tally_t){0};
}

void sp_tally_links_sql(char *buf, size_t len, char param)
{
    snprintf(
        buf, len,
        "SELECT target, SUM(made), SUM(clicks), SUM(clickers), MIN(first_at), MAX(last_at) FROM ("
        " SELECT target, COUNT(*) AS made, 0 AS clicks, 0 AS clickers, NULL AS first_at,"
        " NULL AS last_at FROM trackers WHERE campaign = %c1 AND kind = 'link' GROUP BY target"
        " UNION ALL SELECT target, 0, SUM(CASE WHEN " SP_TALLY_COUNTED_SQL " THEN 1 ELSE 0 END),"
        " COUNT(DISTINCT CASE WHEN " SP_TALLY_COUNTED_SQL " THEN " SP_TALLY_WHO_SQL " END),"
        " MIN(CASE WHEN " SP_TALLY_COUNTED_SQL " THEN ts END),"
        " MAX(CASE WHEN " SP_TALLY_COUNTED_SQL " THEN ts END)"
        " FROM events WHERE campaign = %c1 AND " SP_TALLY_CLICK_SQL " GROUP BY target) x"
        " GROUP BY target ORDER BY 3 DESC, target",
        param, param);
}
