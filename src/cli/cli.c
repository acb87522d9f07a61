/* cli: the commands that manage what the server keeps (campaign, pixel, settings). */
/* SPDX-License-Identifier: MIT */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classify.h"
#include "listen.h"
#include "sent.h"
#include "serialize.h"
#include "snippet.h"
#include "store.h"
#include "token.h"
#include "text.h"

/* ---- tables -------------------------------------------------------------------------------- */

#define TABLE_COLS 8

/* Rows of text cells, printed with each column as wide as its widest cell. */
typedef struct {
    size_t n_cols, n_rows, cap;
    char **cells; /* n_rows * n_cols, malloc'd */
    bool right[TABLE_COLS];
} table_t;

static void table_add(table_t *t, const char *const *row)
{
    if (t->n_rows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->cells = realloc(t->cells, t->cap * t->n_cols * sizeof(char *));
        if (!t->cells)
            abort();
    }
    for (size_t c = 0; c < t->n_cols; c++) {
        t->cells[t->n_rows * t->n_cols + c] = strdup(row[c] ? row[c] : "");
        if (!t->cells[t->n_rows * t->n_cols + c])
            abort();
    }
    t->n_rows++;
}

static void table_print(table_t *t, FILE *out)
{
    size_t width[TABLE_COLS] = {0};
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
        size_t n = strlen(t->cells[i]);
        if (n > width[i % t->n_cols])
            width[i % t->n_cols] = n;
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            bool last = c + 1 == t->n_cols;
            if (t->right[c])
                fprintf(out, "%*s%s", (int)width[c], cell, last ? "" : "  ");
            else if (last)
                fputs(cell, out);
            else
                fprintf(out, "%-*s  ", (int)width[c], cell);
        }
        fputc('\n', out);
    }
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(j);
}

static void when(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0)
        snprintf(buf, len, "-");
    else
        sp_format_ts(ms, buf, len);
}

static void number(int64_t n, char *buf, size_t len)
{
    snprintf(buf, len, "%lld", (long long)n);
}

/* ---- campaign -------------------------------------------------------------------------------- */

typedef struct {
    table_t table;
    json_t *json; /* an array with --json, else NULL */
} listing_t;

static int list_one(void *ctx, const sp_campaign_t *c)
{
    listing_t *l = ctx;
    if (l->json) {
        json_array_append_new(l->json, sp_serialize_campaign(c));
        return 0;
    }
    char total[24], uniq[24], machine[24], self[24], clicks[24], last[32], created[32];
    number(c->total_views, total, sizeof(total));
    number(c->unique_views, uniq, sizeof(uniq));
    number(c->by_class[SP_CLASS_MACHINE], machine, sizeof(machine));
    number(c->by_class[SP_CLASS_SELF], self, sizeof(self));
    number(c->clicks, clicks, sizeof(clicks));
    when(c->last_view_at, last, sizeof(last));
    when(c->created_at, created, sizeof(created));
    table_add(&l->table,
              (const char *[]){c->id, total, uniq, machine, self, clicks, last, created});
    return 0;
}

static int campaign_list(sp_store_t *store, bool json)
{
    char err[512];
    listing_t l = {.table = {.n_cols = 8, .right = {false, true, true, true, true, true}}};
    if (json)
        l.json = json_array();
    else
        table_add(&l.table, (const char *[]){"ID", "TOTAL", "UNIQUE", "MACHINE", "SELF", "CLICKS",
                                             "LAST VIEW", "CREATED"});
    int rc = store->ops->campaign_list(store, list_one, &l, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", err);
        json_decref(l.json);
        table_free(&l.table);
        return 1;
    }
    if (json) {
        print_json(l.json);
    } else {
        table_print(&l.table, stdout);
        if (1 == l.table.n_rows)
            fprintf(stderr, "no campaigns yet ('spypixel campaign create ID' makes one)\n");
    }
    table_free(&l.table);
    return 0;
}

typedef struct {
    table_t table;
    json_t *json;
} recipients_t;

static int recipient_one(void *ctx, const sp_recipient_t *r)
{
    recipients_t *l = ctx;
    if (l->json) {
        json_array_append_new(l->json, sp_serialize_recipient(r));
        return 0;
    }
    char views[24], machine[24], clicks[24], first[32], last[32];
    number(r->views, views, sizeof(views));
    number(r->by_class[SP_CLASS_MACHINE], machine, sizeof(machine));
    number(r->clicks, clicks, sizeof(clicks));
    when(r->first_at, first, sizeof(first));
    when(r->last_at, last, sizeof(last));
    table_add(&l->table, (const char *[]){r->recipient, views, machine, clicks, first, last});
    return 0;
}

static int campaign_show(sp_store_t *store, const char *id, bool json, int64_t limit)
{
    char err[512];
    sp_campaign_t c;
    int rc = store->ops->campaign_get(store, id, &c, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", rc < 0 ? err : "no such campaign");
        return 1;
    }
    recipients_t r = {.table = {.n_cols = 6, .right = {false, true, true, true}}};
    if (json)
        r.json = json_array();
    else
        table_add(&r.table, (const char *[]){"RECIPIENT", "VIEWS", "MACHINE", "CLICKS",
                                             "FIRST VIEW", "LAST VIEW"});
    if (0 != store->ops->recipients(store, id, "", limit, recipient_one, &r, err, sizeof(err))) {
        fprintf(stderr, "spypixel: %s\n", err);
        json_decref(r.json);
        table_free(&r.table);
        return 1;
    }
    if (json) {
        table_free(&r.table);
        json_t *j = sp_serialize_campaign(&c);
        sp_store_sent_t sent;
        if (0 != store->ops->sent_stats(store, id, &sent, err, sizeof(err))) {
            fprintf(stderr, "spypixel: %s\n", err);
            json_decref(j);
            json_decref(r.json);
            return 1;
        }
        sp_serialize_rates(j, &sent);
        json_object_set_new(j, "per_recipient", r.json);
        print_json(j);
        return 0;
    }
    char created[32], last[32];
    when(c.created_at, created, sizeof(created));
    when(c.last_view_at, last, sizeof(last));
    printf("campaign      %s\n"
           "created       %s\n"
           "last view     %s\n"
           "total views   %lld (human and proxy opens)\n"
           "unique views  %lld\n"
           "by class      human %lld, proxy %lld, machine %lld, self %lld\n"
           "clicks        %lld\n\n",
           c.id, created, last, (long long)c.total_views, (long long)c.unique_views,
           (long long)c.by_class[SP_CLASS_HUMAN], (long long)c.by_class[SP_CLASS_PROXY],
           (long long)c.by_class[SP_CLASS_MACHINE], (long long)c.by_class[SP_CLASS_SELF],
           (long long)c.clicks);
    size_t shown = r.table.n_rows - 1;
    table_print(&r.table, stdout);
    table_free(&r.table);
    if ((int64_t)shown == limit)
        printf("(the first %lld recipients; --limit N shows more)\n", (long long)limit);
    return 0;
}

static int campaign_delete(const sp_config_t *cfg, sp_store_t *store, const char *id, bool yes)
{
    char err[512];
    sp_campaign_t c;
    int rc = store->ops->campaign_get(store, id, &c, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", rc < 0 ? err : "no such campaign");
        return 1;
    }
    if (!yes) {
        int64_t events =
            c.total_views + c.by_class[SP_CLASS_MACHINE] + c.by_class[SP_CLASS_SELF] + c.clicks;
        fprintf(stderr,
                "spypixel: this erases campaign %s and its events (about %lld), for good.\n"
                "Run it again with --yes to do it.\n",
                id, (long long)events);
        return 2;
    }
    if (sp_cli_server_running(cfg))
        fprintf(stderr,
                "spypixel: a server is running on %s: opens of %s it has answered but not "
                "stored yet will count as an unknown campaign's\n",
                cfg->data_dir, id);
    int64_t deleted = 0;
    rc = store->ops->campaign_delete(store, id, &deleted, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", rc < 0 ? err : "no such campaign");
        return 1;
    }
    fprintf(stderr, "campaign %s deleted: %lld event%s erased\n", id, (long long)deleted,
            1 == deleted ? "" : "s");
    return 0;
}

#define SP_CLI_LIST_MAX (8 << 20) /* a list file's bytes, as the API takes */

/* The list of the people campaign ID was sent to, from FILE ("-": standard input). */
static int campaign_recipients(sp_store_t *store, const char *id, const char *file)
{
    char err[512], msg[160];
    sp_campaign_t camp;
    FILE *f = 0 == strcmp(file, "-") ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "spypixel: %s: %s\n", file, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            if (cap >= SP_CLI_LIST_MAX) {
                fprintf(stderr, "spypixel: %s: longer than %d MiB\n", file, SP_CLI_LIST_MAX >> 20);
                goto fail;
            }
            cap *= 2;
            if (!(buf = realloc(buf, cap)))
                abort();
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "spypixel: %s: cannot read it\n", file);
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    f = NULL;
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found) {
        fprintf(stderr, "spypixel: %s\n", found < 0 ? err : "no such campaign");
        free(buf);
        return 1;
    }
    size_t lead = 0;
    while (lead < len && strchr(" \t\r\n", buf[lead]))
        lead++;
    sp_sent_list_t l;
    int64_t stored = 0;
    int rc = sp_sent_parse(&l, buf, len, lead < len && '[' == buf[lead], msg, sizeof(msg));
    if (rc)
        fprintf(stderr, "spypixel: %s: %s\n", file, msg);
    else if ((rc = store->ops->sent_put(store, id, (const char *const *)l.addrs, l.n, &stored, err,
                                        sizeof(err))))
        fprintf(stderr, "spypixel: %s\n", err);
    else
        fprintf(stderr, "campaign %s: sent to %lld; %zu not an address%s\n", id, (long long)stored,
                l.n_invalid, l.n_invalid ? " (left out)" : "");
    sp_sent_free(&l);
    free(buf);
    return rc ? 1 : 0;
fail:
    if (f && f != stdin)
        fclose(f);
    free(buf);
    return 1;
}

static int campaign_usage(void)
{
    fprintf(stderr, "usage: spypixel campaign create ID\n"
                    "       spypixel campaign list [--json]\n"
                    "       spypixel campaign show ID [--json] [--limit N]\n"
                    "       spypixel campaign delete ID --yes\n"
                    "       spypixel campaign recipients ID FILE|-\n"
                    "ID: 1-128 letters, digits or - _ @ + .\n");
    return 2;
}

int sp_cli_campaign(sp_config_t *cfg, int argc, char **argv)
{
    bool json = false, yes = false;
    const char *verb = NULL, *id = NULL, *file = NULL;
    int64_t limit = 100;
    for (int i = 0; i < argc; i++) {
        if (0 == strcmp(argv[i], "--json")) {
            json = true;
        } else if (0 == strcmp(argv[i], "--yes")) {
            yes = true;
        } else if (0 == strcmp(argv[i], "--limit") && i + 1 < argc) {
            char *end;
            limit = strtoll(argv[++i], &end, 10);
            if (*end || limit < 1 || limit > 100000) {
                fprintf(stderr, "spypixel: --limit: 1-100000\n");
                return 2;
            }
        } else if ('-' == argv[i][0] && 0 != strcmp(argv[i], "-")) {
            fprintf(stderr, "spypixel campaign: unknown flag '%s'\n", argv[i]);
            return campaign_usage();
        } else if (!verb) {
            verb = argv[i];
        } else if (!id) {
            id = argv[i];
        } else if (!file && 0 == strcmp(verb, "recipients")) {
            file = argv[i];
        } else {
            return campaign_usage();
        }
    }
    bool needs_id = verb && 0 != strcmp(verb, "list");
    if (!verb || (needs_id && !id) || (!needs_id && id) ||
        (0 != strcmp(verb, "create") && 0 != strcmp(verb, "list") && 0 != strcmp(verb, "show") &&
         0 != strcmp(verb, "delete") && 0 != strcmp(verb, "recipients")) ||
        (0 == strcmp(verb, "recipients") && !file))
        return campaign_usage();
    if (id && !sp_event_id_valid(id)) {
        fprintf(stderr, "spypixel: a campaign ID is 1-128 letters, digits or - _ @ + .\n");
        return 2;
    }
    char err[512];
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    if (!store) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    int rc;
    if (0 == strcmp(verb, "list")) {
        rc = campaign_list(store, json);
    } else if (0 == strcmp(verb, "show")) {
        rc = campaign_show(store, id, json, limit);
    } else if (0 == strcmp(verb, "delete")) {
        rc = campaign_delete(cfg, store, id, yes);
    } else if (0 == strcmp(verb, "recipients")) {
        rc = campaign_recipients(store, id, file);
    } else {
        int made = store->ops->campaign_create(store, id, sp_now_ms(), err, sizeof(err));
        if (made < 0)
            fprintf(stderr, "spypixel: %s\n", err);
        else
            fprintf(stderr, "campaign %s %s\n", id, 0 == made ? "created" : "already exists");
        rc = made < 0 ? 1 : 0;
    }
    sp_store_close(store);
    return rc;
}

/* ---- pixel ----------------------------------------------------------------------------------- */

int sp_cli_pixel(sp_config_t *cfg, int argc, char **argv)
{
    const char *campaign = NULL, *recipient = "";
    bool qp = false, block = false;
    for (int i = 0; i < argc; i++) {
        if (0 == strcmp(argv[i], "--campaign") && i + 1 < argc)
            campaign = argv[++i];
        else if (sp_has_prefix(argv[i], "--campaign="))
            campaign = argv[i] + SP_LIT_LEN("--campaign=");
        else if (0 == strcmp(argv[i], "--recipient") && i + 1 < argc)
            recipient = argv[++i];
        else if (sp_has_prefix(argv[i], "--recipient="))
            recipient = argv[i] + SP_LIT_LEN("--recipient=");
        else if (0 == strcmp(argv[i], "--qp"))
            qp = true;
        else if (0 == strcmp(argv[i], "--block"))
            block = true;
        else
            campaign = NULL, i = argc; /* stop: usage below */
    }
    if (!campaign || !sp_event_id_valid(campaign) ||
        (*recipient && !sp_event_id_valid(recipient))) {
        fprintf(stderr, "usage: spypixel pixel --campaign ID [--recipient ADDR] [--qp] [--block]\n"
                        "ID and ADDR: 1-128 letters, digits or - _ @ + .\n");
        return 2;
    }
    char origin[320], err[512];
    if (cfg->public_url[0]) {
        snprintf(origin, sizeof(origin), "%s", cfg->public_url);
    } else {
        sp_listen_t l;
        if (0 != sp_listen_parse(cfg->listen[0], cfg->tls_cert[0], &l, err, sizeof(err))) {
            fprintf(stderr, "spypixel: %s\n", err);
            return 2;
        }
        sp_listen_url(&l, origin, sizeof(origin));
        fprintf(stderr,
                "spypixel: no --public-url: the pixel points at %s, the first --listen address; "
                "mail readers elsewhere cannot reach it\n",
                origin);
    }
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    unsigned char key[SP_AUTH_KEY_BYTES];
    sp_token_t *tokens = NULL;
    int rc = 1;
    /* As the API: the campaign exists from its first pixel on. */
    if (!store || 0 != sp_auth_secret_key(store, key, NULL, err, sizeof(err)) ||
        store->ops->campaign_create(store, campaign, sp_now_ms(), err, sizeof(err)) < 0) {
        fprintf(stderr, "spypixel: %s\n", err);
        goto done;
    }
    tokens = sp_token_new(key);
    sp_token_data_t data = {.kind = SP_TOKEN_OPEN};
    snprintf(data.campaign, sizeof(data.campaign), "%s", campaign);
    snprintf(data.recipient, sizeof(data.recipient), "%s", recipient);
    static char url[SP_SNIPPET_URL_MAX], html[SP_SNIPPET_BLOCK_MAX];
    if (block ? 0 != sp_snippet_block_html(tokens, origin, &data, url, sizeof(url), html,
                                           sizeof(html))
              : 0 != sp_snippet_url(tokens, origin, &data, url, sizeof(url))) {
        fprintf(stderr, "spypixel: --public-url is too long\n");
        goto done;
    }
    /* Kept as the API keeps what it makes: the campaign's list of its trackers. */
    sp_store_tracker_t made = {.campaign = campaign,
                               .recipient = recipient,
                               .kind = block ? "block" : "pixel",
                               .target = "",
                               .url = url,
                               .created_at = sp_now_ms()};
    if (0 != store->ops->tracker_put(store, &made, err, sizeof(err))) {
        fprintf(stderr, "spypixel: %s\n", err);
        goto done;
    }
    if (!block)
        sp_snippet_pixel_html(url, html, sizeof(html));
    if (qp) {
        char *text = sp_snippet_qp(html);
        printf("%s\n", text);
        free(text);
    } else {
        printf("%s\n", html);
    }
    rc = 0;
done:
    sodium_memzero(key, sizeof(key));
    sp_token_free(tokens);
    sp_store_close(store);
    return rc;
}

/* ---- settings -------------------------------------------------------------------------------- */

int sp_cli_settings(sp_config_t *cfg, int argc, char **argv)
{
    if (argc > 1 ||
        (1 == argc && 0 != strcmp(argv[0], "--json") && 0 != strcmp(argv[0], "--example"))) {
        fprintf(stderr, "usage: spypixel settings [--json | --example]\n");
        return 2;
    }
    if (0 == argc) {
        if (cfg->config_file[0])
            printf("# read from %s, the environment and the flags\n", cfg->config_file);
        sp_config_print(stdout, cfg, SP_CONFIG_EFFECTIVE);
        return 0;
    }
    sp_config_t defaults;
    sp_config_defaults(&defaults);
    sp_config_print(stdout, &defaults,
                    0 == strcmp(argv[0], "--json") ? SP_CONFIG_JSON : SP_CONFIG_EXAMPLE);
    sp_config_free(&defaults);
    return 0;
}

/* ---- the data folder ---------------------------------------------------------------------- */

bool sp_cli_server_running(const sp_config_t *cfg)
{
    char lock_path[600];
    snprintf(lock_path, sizeof(lock_path), "%s/journal/lock", cfg->data_dir);
    int fd = open(lock_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool held = 0 != flock(fd, LOCK_EX | LOCK_NB);
    close(fd);
    return held;
}

static void hand_over_dir(const char *dir, uid_t uid, gid_t gid)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if ('.' == e->d_name[0])
            continue;
        char path[1024];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (0 == lstat(path, &st) && 0 == st.st_uid && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
            if (0 != lchown(path, uid, gid))
                fprintf(stderr, "spypixel: cannot hand %s to uid %u: %s\n", path, (unsigned)uid,
                        strerror(errno));
    }
    closedir(d);
}

void sp_cli_hand_over(const sp_config_t *cfg)
{
    struct stat st;
    if (0 != geteuid() || 0 != strcmp(cfg->store, "sqlite") || 0 != stat(cfg->data_dir, &st) ||
        0 == st.st_uid)
        return;
    hand_over_dir(cfg->data_dir, st.st_uid, st.st_gid);
}
