/* main: the command line: serve, user, token, campaign, pixel, forget, scan, settings. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "api.h"
#include "assets.h"
#include "cli.h"
#include "config.h"
#include "datadir.h"
#include "engage.h"
#include "enrich.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "log.h"
#include "login.h"
#include "metrics.h"
#include "pixel.h"
#include "scan.h"
#include "status.h"
#include "store.h"
#include "webhook.h"

#ifndef SP_VERSION
#define SP_VERSION "0.1.0"
#endif

#define RETENTION_PERIOD_S 3600 /* how often old events are deleted */
/* The writer checks the store for damage for this long before it writes (see docs/RECOVERY.md:
 * about 150-450 MB of store on the bench machine; a larger one is checked in part). */
#define STORE_CHECK_MS 5000
/* At shutdown, opens still held in memory get this long for the journal's disk to take them. */
#define FLUSH_MS 5000

static const char usage_text[] =
    "spypixel " SP_VERSION " - email open and click tracking server\n"
    "\n"
    "Usage: spypixel COMMAND [FLAGS]\n"
    "\n"
    "Commands:\n"
    "  serve                            serve the pixel, links, API and dashboard\n"
    "  user add NAME --password-stdin   create or update a dashboard user\n"
    "  user list|passwd|delete          list users, set a password, delete a user\n"
    "  token create NAME                print a new API token (Authorization: Bearer)\n"
    "  token list|revoke                list API tokens, revoke one\n"
    "  campaign list|show|create|delete manage campaigns (--json for scripts)\n"
    "  campaign recipients ID FILE|-    give a campaign the list of the people it was sent to\n"
    "  pixel --campaign ID [--block]    print a tracking pixel's HTML for a message\n"
    "  forget RECIPIENT                 erase one recipient's events everywhere\n"
    "  scan [--json] FILE...            list the trackers in .eml/mbox files (--strip FILE "
    "removes them)\n"
    "  settings [--json|--example]      print the settings in use, or every setting\n"
    "\n"
    "Every command takes --data DIR and the store flags. 'spypixel COMMAND --help' tells\n"
    "more; 'man spypixel' tells all. spypixel --version prints the version.\n";

static int usage(FILE *out, int rc)
{
    fputs(usage_text, out);
    return rc;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (0 == strcmp(argv[i], "--help") || 0 == strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* The store's ID (meta "store_id", 32 hex digits), made when absent with MAKE; "" when
 * absent without. The journal records the ID of the store it is indexed into. */
static int load_store_id(sp_store_t *store, bool make, char id[65], char *err, size_t errlen)
{
    int rc = store->ops->meta_get(store, "store_id", id, 65, err, errlen);
    if (rc < 0)
        return -1;
    if (0 == rc)
        return 0;
    id[0] = '\0';
    if (!make)
        return 0;
    unsigned char raw[16];
    char hex[33];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    if (0 != store->ops->meta_put_new(store, "store_id", hex, err, errlen))
        return -1;
    return store->ops->meta_get(store, "store_id", id, 65, err, errlen) ? -1 : 0;
}

/* ---- serve: the store must be the one the data folder's journal was indexed into ------------ */

/*
 * The data folder's journal records the ID of the store it is indexed into, and the store
 * records how far it holds the journal (meta "journal:<ID>"). A store that is not that one
 * (DATA/spypixel.db deleted, replaced by another store's or an empty file; a PostgreSQL
 * database emptied or another), or that lacks opens the journal has since released (a backup
 * older than the journal), would be filled from the journal as if nothing had happened: with
 * a new signing secret, every link and opaque pixel already sent would answer 404 and every
 * API token would stop working, and the opens it lacks would be gone without a word. The
 * server refuses to start instead and says how to go on: put the right store back, or
 * --adopt-store to go on with this one on purpose, or move the data folder aside.
 */

static const char adopt_text[] =
    "A different store has a different signing secret: links and opaque pixels already sent "
    "answer 404 with it, and API tokens stop working. Put the right store back (see "
    "docs/RECOVERY.md); or, to go on with this store on purpose, start once with --adopt-store "
    "(the journal's opens are indexed into it); or, to start afresh, move the data folder "
    "aside.";

static void refuse(const sp_config_t *cfg, const char *problem)
{
    char q1[1200], q2[sizeof(adopt_text) + 64], q3[600];
    sp_log_error("refusing to start: the store is not the one this data folder's journal was "
                 "indexed into",
                 "data=%s problem=%s how=%s", sp_log_quote(cfg->data_dir, q3, sizeof(q3)),
                 sp_log_quote(problem, q1, sizeof(q1)), sp_log_quote(adopt_text, q2, sizeof(q2)));
}

/* Before the store is opened: a missing SQLite file where the journal shows a store would be
 * made anew, empty, by opening it. False when the server must not start. */
static bool store_file_present(const sp_config_t *cfg, sp_journal_t *journal)
{
    if (0 == strcmp(cfg->store, "postgres") || cfg->adopt_store)
        return true;
    char path[600], problem[1024];
    snprintf(path, sizeof(path), "%s/spypixel.db", cfg->data_dir);
    struct stat st;
    if (0 == stat(path, &st) || ENOENT != errno)
        return true;
    const char *bound = sp_journal_store_id(journal);
    if (!bound[0] && 0 == sp_journal_end(journal))
        return true; /* a new data folder, or one whose journal never held an open */
    if (bound[0])
        snprintf(problem, sizeof(problem),
                 "%s does not exist, but the journal beside it was indexed into store %s", path,
                 bound);
    else
        snprintf(problem, sizeof(problem),
                 "%s does not exist, but the journal beside it holds opens (up to position %lld) "
                 "that were indexed into a store",
                 path, (long long)sp_journal_end(journal));
    refuse(cfg, problem);
    return false;
}

/* Once the store is open: its ID against the journal's record of it, and how far it holds the
 * journal against what the journal still has. 0; 1 when the server must not start (logged);
 * -1 + ERR when the store cannot be read. With --adopt-store a mismatch is logged and let
 * through. */
static int check_store_identity(const sp_config_t *cfg, sp_store_t *store, sp_journal_t *journal,
                                const char *store_id, char *err, size_t errlen)
{
    char where[600], problem[1024] = "", key[64], value[32];
    if (0 == strcmp(cfg->store, "postgres"))
        snprintf(where, sizeof(where), "the PostgreSQL database");
    else
        snprintf(where, sizeof(where), "%s/spypixel.db", cfg->data_dir);
    snprintf(key, sizeof(key), "journal:%s", sp_journal_id(journal));
    int rc = store->ops->meta_get(store, key, value, sizeof(value), err, errlen);
    if (rc < 0)
        return -1;
    bool has_mark = 0 == rc;
    long long mark = has_mark ? strtoll(value, NULL, 10) : 0;
    const char *bound = sp_journal_store_id(journal);
    int64_t start = sp_journal_start(journal), end = sp_journal_end(journal);

    if (bound[0] && 0 != strcmp(bound, store_id))
        snprintf(problem, sizeof(problem), "the journal was indexed into store %s, but %s is %s",
                 bound, where,
                 store_id[0] ? store_id
                             : "a store without an ID (new and empty, or older than the journal)");
    else if (!bound[0] && !has_mark && end > 0)
        snprintf(problem, sizeof(problem),
                 "the journal holds opens up to position %lld, but %s has no record of them: "
                 "they were indexed into another store",
                 (long long)end, where);
    else if (has_mark && mark < start)
        snprintf(problem, sizeof(problem),
                 "%s holds the journal up to position %lld, but the journal starts at %lld: the "
                 "opens between were released from the journal once stored, and this store "
                 "lacks them (a backup older than the journal?)",
                 where, mark, (long long)start);
    if (!problem[0])
        return 0;
    if (!cfg->adopt_store) {
        refuse(cfg, problem);
        return 1;
    }
    char quoted[1200];
    sp_log_warn("adopting the store (--adopt-store): the journal is bound to it from now on",
                "problem=%s", sp_log_quote(problem, quoted, sizeof(quoted)));
    return 0;
}

/* ---- serve ---------------------------------------------------------------------------- */

typedef struct {
    sp_config_t *cfg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
} retention_t;

static void *retention_main(void *arg)
{
    retention_t *r = arg;
    char err[512];
    sp_store_t *store = sp_store_open(r->cfg, err, sizeof(err));
    if (!store) {
        sp_log_error("retention: cannot open the store", "error=\"%s\"", err);
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        pthread_mutex_unlock(&r->lock);
        int64_t deleted = 0, before = sp_now_ms() - (int64_t)r->cfg->retention * 86400000;
        if (0 == store->ops->purge_before(store, before, &deleted, err, sizeof(err))) {
            sp_metric_add(retention_deleted, (uint64_t)deleted);
            if (deleted)
                sp_log_info("retention: old events deleted", "events=%lld days=%d",
                            (long long)deleted, r->cfg->retention);
        } else {
            sp_log_error("retention failed", "error=\"%s\"", err);
        }
        pthread_mutex_lock(&r->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RETENTION_PERIOD_S;
        while (!r->stop && ETIMEDOUT != pthread_cond_timedwait(&r->wake, &r->lock, &until))
            ;
    }
    pthread_mutex_unlock(&r->lock);
    sp_store_close(store);
    return NULL;
}

/* What `serve` runs: the pipeline from the journal to the store, and the handlers the
 * server routes requests to. */
typedef struct server {
    sp_config_t *cfg;
    sp_journal_t *journal;
    sp_ingest_t *ingest;
    sp_enrich_t *enrich;
    sp_auth_t *auth;
    sp_token_t *tokens;
    sp_live_t *live;
    sp_webhook_t *webhook; /* NULL without --webhook */
    sp_engage_t *engage;   /* the tracking block's held read-time images */
    sp_pixel_t *pixel;
    sp_api_t api;
    sp_status_t status;
    sp_http_t *http;
} server_t;

/* After each commit: live dashboards, then webhooks. */
static void on_commit(void *ctx, sp_event_t *const *evs, size_t n)
{
    server_t *srv = ctx;
    sp_live_on_commit(srv->live, evs, n);
    if (srv->webhook)
        sp_webhook_on_commit(srv->webhook, evs, n);
}

/* The handlers' routes, in the order they are tried, and the server that serves them. */
static int start_serving(server_t *srv, char *err, size_t errlen)
{
    sp_config_t *cfg = srv->cfg;
    /* Blocks of 256 KiB and more (an export's pages of rows and of formatted text) are mapped
     * each for itself and unmapped when freed. By default glibc raises that threshold to the
     * largest block freed so far, after which such pages stay in the arenas of the threads that
     * made them: 48 MiB resident after a few exports of a million events, 36 MiB with this. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* And a thread's arena gives back what it holds free at its top, which glibc keeps 128 KiB
     * above: with an arena for each export's reading thread, twelve exports at once left the
     * server at 62 MiB, 43 MiB with this (docs/BENCHMARKS.md). */
    mallopt(M_TOP_PAD, 0);
    sp_pixel_options_t pixel = {
        .cfg = cfg,
        .journal = srv->journal,
        .ingest = srv->ingest,
        .auth = srv->auth,
        .tokens = srv->tokens,
        .engage = srv->engage,
    };
    srv->pixel = sp_pixel_new(&pixel);
    srv->api = (sp_api_t){
        .auth = srv->auth,
        .tokens = srv->tokens,
        .journal = srv->journal,
        .ingest = srv->ingest,
        .live = srv->live,
    };
    srv->status = (sp_status_t){
        .cfg = cfg,
        .journal = srv->journal,
        .ingest = srv->ingest,
        .enrich = srv->enrich,
    };
    sp_http_routes_t routes = {0};
    sp_pixel_routes(&routes, srv->pixel);
    sp_login_routes(&routes, srv->auth);
    sp_api_routes(&routes, &srv->api);
    sp_status_routes(&routes, &srv->status);
    sp_assets_routes(&routes);
    srv->http = sp_http_start(cfg, &routes, err, errlen);
    return srv->http ? 0 : -1;
}

/* Waits for SIGTERM or SIGINT; a SIGHUP meanwhile re-reads the TLS certificate. systemd
 * (Type=notify) hears READY=1 once every address serves, RELOADING=1 and READY=1 around a
 * reload, and STOPPING=1 (sd_notify does nothing outside systemd). */
static void serve_until_stopped(server_t *srv, const sigset_t *signals)
{
    char status[160], err[1024], quoted[1100];
    size_t n = sp_http_addresses(srv->http);
    snprintf(status, sizeof(status), "STATUS=serving %zu address%s", n, 1 == n ? "" : "es");
    sd_notify(0, "READY=1");
    sd_notify(0, status);
    for (;;) {
        int sig = 0;
        sigwait(signals, &sig);
        if (SIGHUP != sig) {
            sp_log_info("shutting down", "signal=%d", sig);
            sd_notify(0, "STOPPING=1");
            return;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        char reloading[64];
        snprintf(reloading, sizeof(reloading), "RELOADING=1\nMONOTONIC_USEC=%lld",
                 (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
        sd_notify(0, reloading);
        int rc = sp_http_reload_tls(srv->http, err, sizeof(err));
        if (0 == rc) {
            sp_http_describe_tls(srv->http, err, sizeof(err));
            sp_log_info("certificate reloaded: new connections use it", "certificate=%s",
                        sp_log_quote(err, quoted, sizeof(quoted)));
        } else if (rc > 0) {
            sp_log_info("SIGHUP: nothing to reload (no --tls-cert)", "signal=%d", sig);
        } else {
            sp_log_error("certificate not reloaded: the one in use stays", "error=%s",
                         sp_log_quote(err, quoted, sizeof(quoted)));
        }
        sd_notify(0, "READY=1");
    }
}

/* Every connection is a file descriptor, and the usual soft limit (1024) would refuse
 * connections long before --max-connections (which each --listen address may hold): it is
 * raised to the hard limit, which only an administrator can raise (systemd's
 * LimitNOFILE=). */
static void raise_open_files(const sp_config_t *cfg)
{
    struct rlimit rl;
    if (0 != getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (RLIM_INFINITY == want.rlim_cur)
            want.rlim_cur = 1 << 20; /* the kernel's usual nr_open */
        if (0 == setrlimit(RLIMIT_NOFILE, &want))
            rl.rlim_cur = want.rlim_cur;
    }
    /* Beyond the connections: the listening socket, the journal, the store's files and
     * connections, libmicrohttpd's wake-up pipes, logs. */
    rlim_t need = (rlim_t)cfg->max_connections * cfg->n_listen + 128;
    if (RLIM_INFINITY != rl.rlim_cur && rl.rlim_cur < need)
        sp_log_warn("the open files limit is too low for --max-connections: connections past it "
                    "will be refused (raise the hard limit, e.g. LimitNOFILE=)",
                    "open_files=%llu max_connections=%d", (unsigned long long)rl.rlim_cur,
                    cfg->max_connections);
}

static int cmd_serve(sp_config_t *cfg)
{
    char err[1024], line[512];
    int rc = 1;
    server_t srv = {.cfg = cfg};
    sp_store_t *store = NULL;
    unsigned char key[SP_AUTH_KEY_BYTES];
    retention_t retention = {.cfg = cfg};
    pthread_t retention_thread;
    bool retention_started = false;

    /* Signals are taken by sigwait below; every thread started from here inherits the
     * block. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    bool created = false;
    if (0 != sp_datadir_check(cfg->data_dir, &created, err, sizeof(err))) {
        sp_log_error("cannot use the data folder", "error=%s",
                     sp_log_quote(err, line, sizeof(line)));
        goto done;
    }
    if (created) {
        char path[PATH_MAX], quoted[2 * PATH_MAX];
        if (!realpath(cfg->data_dir, path))
            snprintf(path, sizeof(path), "%s", cfg->data_dir);
        sp_log_warn("created a new data folder", "path=%s",
                    sp_log_quote(path, quoted, sizeof(quoted)));
    }
    /* Private, whichever store: the journal lives there. */
    if (0 != sp_datadir_private(cfg->data_dir, err, sizeof(err))) {
        sp_log_error("cannot use the data folder", "error=%s",
                     sp_log_quote(err, line, sizeof(line)));
        goto done;
    }
    /* The journal first: its lock keeps a second server off the data folder, and it says
     * which store this data folder's opens were indexed into. It lives with the server,
     * beside its SQLite file or in place of one. */
    char journal_dir[600];
    snprintf(journal_dir, sizeof(journal_dir), "%s/journal", cfg->data_dir);
    sp_journal_options_t jopt = {
        .dir = journal_dir,
        /* With --answer-after store the store's own commit is what answers wait for. */
        .sync = cfg->sync_full && !cfg->answer_after_store,
        .synced = sp_http_resume, /* parked answers */
        .spill_max = (size_t)cfg->journal_spill << 20,
    };
    srv.journal = sp_journal_open(&jopt, err, sizeof(err));
    if (!srv.journal) {
        sp_log_error("cannot open the journal", "error=\"%s\"", err);
        goto done;
    }
    if (!store_file_present(cfg, srv.journal))
        goto done;
    store = sp_store_open(cfg, err, sizeof(err));
    char store_id[65];
    bool new_key = false;
    if (!store || 0 != load_store_id(store, false, store_id, err, sizeof(err))) {
        sp_log_error("cannot open the store", "error=\"%s\"", err);
        goto done;
    }
    int identity = check_store_identity(cfg, store, srv.journal, store_id, err, sizeof(err));
    if (identity > 0)
        goto done; /* refused, and said why */
    if (identity < 0 || 0 != sp_auth_secret_key(store, key, &new_key, err, sizeof(err)) ||
        0 != load_store_id(store, true, store_id, err, sizeof(err))) {
        sp_log_error("cannot open the store", "error=\"%s\"", err);
        goto done;
    }
    if (new_key)
        sp_log_info("a new store: its signing secret was made now; back it up with the store "
                    "(docs/RECOVERY.md)",
                    "store_id=%s", store_id);
    if (0 != strcmp(store_id, sp_journal_store_id(srv.journal)) &&
        0 != sp_journal_bind(srv.journal, store_id, err, sizeof(err))) {
        sp_log_error("cannot record the store's ID beside the journal", "error=\"%s\"", err);
        goto done;
    }
    srv.enrich = sp_enrich_open(cfg, err, sizeof(err));
    if (!srv.enrich) {
        sp_log_error("cannot load enrichment data", "error=\"%s\"", err);
        goto done;
    }
    srv.auth = sp_auth_new(key, cfg->self_ip_window);
    srv.tokens = sp_token_new(key);
    srv.live = sp_live_new(15);
    sp_engage_options_t eopt = {.journal = srv.journal, .max_held = cfg->read_time_max};
    srv.engage = sp_engage_new(&eopt, err, sizeof(err));
    if (!srv.engage) {
        sp_log_error("cannot time reads", "error=\"%s\"", err);
        goto done;
    }
    if (cfg->n_webhook) {
        sp_webhook_options_t wopt = {
            .urls = cfg->webhook,
            .n_urls = cfg->n_webhook,
            .first_only = 0 == strcmp(cfg->webhook_events, "first"),
            .secret = cfg->webhook_secret,
        };
        srv.webhook = sp_webhook_start(&wopt, err, sizeof(err));
        if (!srv.webhook) {
            sp_log_error("cannot start webhooks", "error=\"%s\"", err);
            goto done;
        }
    }
    sp_ingest_options_t opt = {
        .journal = srv.journal,
        .store = store,
        .enrich = srv.enrich,
        .batch_max = cfg->batch_max > 0 ? (size_t)cfg->batch_max : 0,
        .committed = on_commit,
        .committed_ctx = &srv,
        .indexed = sp_http_resume, /* parked answers: pixels and API reads alike */
        .answers_wait = cfg->answer_after_store,
        .check_ms = STORE_CHECK_MS,
    };
    srv.ingest = sp_ingest_start(&opt, err, sizeof(err));
    if (!srv.ingest) {
        sp_log_error("cannot start the writer", "error=\"%s\"", err);
        goto done;
    }
    store = NULL; /* the writer owns it now */
    raise_open_files(cfg);
    if (0 != start_serving(&srv, err, sizeof(err))) {
        sp_log_error("cannot serve", "error=\"%s\"", err);
        goto done;
    }
    if (cfg->retention > 0) {
        pthread_mutex_init(&retention.lock, NULL);
        pthread_cond_init(&retention.wake, NULL);
        retention_started =
            0 == pthread_create(&retention_thread, NULL, retention_main, &retention);
    }
    char quoted[600], data[600], addrs[1024];
    sp_enrich_describe(srv.enrich, line, sizeof(line));
    sp_http_describe(srv.http, addrs, sizeof(addrs));
    sp_log_info("serving", "listen=%s store=%s data=%s version=%s enrich=%s",
                sp_log_quote(addrs, err, sizeof(err)), cfg->store,
                sp_log_quote(cfg->data_dir, data, sizeof(data)), SP_VERSION,
                sp_log_quote(line, quoted, sizeof(quoted)));
    if (sp_http_describe_tls(srv.http, line, sizeof(line)))
        sp_log_info("certificate", "certificate=%s", sp_log_quote(line, quoted, sizeof(quoted)));
    serve_until_stopped(&srv, &signals);

    /* No new connections; requests in flight finish (with --sync-full once their records
     * are on disk), then the writer indexes the rest of the journal. */
    sp_http_quiesce(srv.http);
    sp_live_close(srv.live);
    /* The held read-time images end now (their reads cut short), before the daemons stop. */
    sp_engage_close(srv.engage);
    for (int waited = 0; sp_engage_held(srv.engage) > 0 && waited < 2000; waited += 10)
        usleep(10 * 1000);
    int left = sp_http_drain(srv.http, 30000);
    if (left)
        sp_log_error("requests still waiting for the store at shutdown", "requests=%d", left);
    rc = 0;
done:
    if (srv.auth) /* parked logins are answered while the daemons run */
        sp_auth_checks_stop(srv.auth);
    sp_http_stop(srv.http);
    sp_pixel_free(srv.pixel); /* after the daemons: no answer sends its image */
    sp_engage_free(srv.engage);
    if (srv.journal) /* what the disk refused until now, if it takes it now */
        sp_journal_flush(srv.journal, FLUSH_MS);
    sp_ingest_stop(srv.ingest); /* indexes what the journal still holds */
    sp_journal_close(srv.journal);
    if (retention_started) {
        pthread_mutex_lock(&retention.lock);
        retention.stop = true;
        pthread_cond_signal(&retention.wake);
        pthread_mutex_unlock(&retention.lock);
        pthread_join(retention_thread, NULL);
    }
    sp_webhook_stop(srv.webhook, 5000); /* after the writer: its last commits notify too */
    sp_live_free(srv.live);
    sp_token_free(srv.tokens);
    sp_auth_free(srv.auth);
    sp_enrich_close(srv.enrich);
    sp_store_close(store);
    sodium_memzero(key, sizeof(key));
    if (0 == rc)
        sp_log_info("stopped", "opens_recorded=%llu",
                    (unsigned long long)atomic_load(&sp_metrics.opens_recorded));
    return rc;
}

/* ---- the other commands ------------------------------------------------------------------ */

static int cmd_forget(sp_config_t *cfg, int argc, char **argv)
{
    char err[512];
    int64_t deleted = 0;
    if (argc != 1 || !sp_event_id_valid(argv[0])) {
        fprintf(stderr, "usage: spypixel forget RECIPIENT [--data DIR]\n");
        return 2;
    }
    /* A server on this data folder may hold opens of RECIPIENT in its journal that it has
     * answered but not stored yet: they would be stored after this erasure. Its API waits
     * for them; this command cannot. */
    if (sp_cli_server_running(cfg))
        fprintf(stderr,
                "spypixel: a server is running on %s: opens it has answered but not "
                "stored yet are not erased by this command (DELETE "
                "/api/v1/recipients/ADDR on the server waits for them)\n",
                cfg->data_dir);
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = store ? store->ops->forget(store, argv[0], &deleted, err, sizeof(err)) : -1;
    sp_store_close(store);
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    if (0 == deleted)
        fprintf(stderr, "no event of %s was stored: nothing erased\n", argv[0]);
    else
        fprintf(stderr, "%lld event%s of %s erased; the counts no longer include them\n",
                (long long)deleted, 1 == deleted ? "" : "s", argv[0]);
    return 0;
}

static const struct {
    const char *name, *help;
    unsigned settings; /* the SP_CONFIG_* its --help lists */
} command_help[] = {
    {"serve",
     "usage: spypixel serve [--listen ADDRESS]... [--tls-cert FILE --tls-key FILE] [--data DIR]\n"
     "       [--store sqlite|postgres] [--pg CONNINFO] [SETTING]...\n"
     "Serves the tracking pixel, links, JSON API and dashboard until SIGTERM/SIGINT;\n"
     "every open answered before the signal is in the store when it exits. SIGHUP re-reads\n"
     "the TLS certificate and key.\n",
     SP_CONFIG_ALL},
    {"user", SP_ADMIN_USER_HELP, SP_CONFIG_STORE | SP_CONFIG_LOG},
    {"token", SP_ADMIN_TOKEN_HELP, SP_CONFIG_STORE | SP_CONFIG_LOG},
    {"campaign",
     "usage: spypixel campaign create ID\n"
     "       spypixel campaign list [--json]\n"
     "       spypixel campaign show ID [--json] [--limit N]\n"
     "       spypixel campaign delete ID --yes\n"
     "create makes a campaign (opens of a campaign that does not exist are kept apart,\n"
     "bounded, until it is created and adopts them: see the dashboard); list\n"
     "shows every campaign with its counts; show one campaign and its recipients (the first\n"
     "N, 100 unless --limit says); delete erases a campaign and all its events, and asks for\n"
     "--yes. --json prints what the API answers, for scripts.\n",
     SP_CONFIG_STORE | SP_CONFIG_LOG},
    {"pixel",
     "usage: spypixel pixel --campaign ID [--recipient ADDR] [--qp] [--block]\n"
     "Prints the HTML of an opaque tracking pixel for the end of a message's body, signed\n"
     "as POST /api/v1/pixels signs it (the campaign is created if need be); --qp prints it\n"
     "quoted-printable, for a raw MIME part; --block prints the tracking block instead (a\n"
     "style, an element and an image: read time, prints and forwards). Its URL starts with\n"
     "--public-url, else the first --listen address.\n",
     SP_CONFIG_STORE | SP_CONFIG_LOG | SP_CONFIG_LINKS},
    {"scan", SP_SCAN_HELP, 0},
    {"forget",
     "usage: spypixel forget RECIPIENT [--data DIR]\n"
     "Erases every event of RECIPIENT in every campaign and takes them out of the counts.\n",
     SP_CONFIG_STORE | SP_CONFIG_LOG},
    {"settings",
     "usage: spypixel settings [--json | --example]\n"
     "Prints the settings in use (from --config FILE, SPYPIXEL_* and the flags) as a\n"
     "configuration file, secrets left out; --example prints every setting with its default,\n"
     "commented out; --json prints the settings table.\n",
     SP_CONFIG_ALL},
};

int main(int argc, char **argv)
{
    /* Whatever spypixel creates (the data folder, the database, the journal) is for its own
     * user only, whatever umask it was started with; modes are also set where files are
     * made. */
    umask(077);
    if (argc < 2)
        return usage(stderr, 2);
    if (0 == strcmp(argv[1], "--version") || 0 == strcmp(argv[1], "version")) {
        printf("spypixel %s\n", SP_VERSION);
        return 0;
    }
    if (0 == strcmp(argv[1], "--help") || 0 == strcmp(argv[1], "-h") ||
        0 == strcmp(argv[1], "help"))
        return usage(stdout, 0);

    const char *cmd = argv[1];
    size_t n_cmds = sizeof(command_help) / sizeof(command_help[0]), c = 0;
    for (; c < n_cmds && 0 != strcmp(cmd, command_help[c].name); c++)
        ;
    if (c == n_cmds) {
        fprintf(stderr, "spypixel: unknown command '%s'\n\n", cmd);
        return usage(stderr, 2);
    }
    if (wants_help(argc - 2, argv + 2)) {
        fputs(command_help[c].help, stdout);
        if (command_help[c].settings) {
            fputc('\n', stdout);
            sp_config_usage(stdout, command_help[c].settings);
        }
        return 0;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "spypixel: libsodium failed to start\n");
        return 1;
    }

    sp_config_t cfg;
    sp_config_defaults(&cfg);
    char err[512];
    char **rest = calloc((size_t)argc, sizeof(char *));
    int n_rest = 0, rc;
    if (!rest)
        abort();
    if (0 != sp_config_load(&cfg, argc - 2, argv + 2, rest, &n_rest, err, sizeof(err))) {
        fprintf(stderr, "spypixel: %s\n", err);
        rc = 2;
        goto done;
    }
    if (0 != sp_log_set_level(cfg.log_level)) {
        fprintf(stderr, "spypixel: --log-level: expected debug, info, warn or error\n");
        rc = 2;
        goto done;
    }
    sp_log_set_format(cfg.log_format); /* checked by the loader */
    bool uses_store =
        0 != strcmp(cmd, "serve") && 0 != strcmp(cmd, "scan") && 0 != strcmp(cmd, "settings");
    bool created = false;
    if (uses_store && 0 == strcmp(cfg.store, "sqlite") &&
        0 != sp_datadir_check(cfg.data_dir, &created, err, sizeof(err))) {
        fprintf(stderr, "spypixel: %s\n", err);
        rc = 1;
        goto done;
    }
    if (created) {
        char path[PATH_MAX];
        if (!realpath(cfg.data_dir, path))
            snprintf(path, sizeof(path), "%s", cfg.data_dir);
        fprintf(stderr, "spypixel: created a new data folder at %s\n", path);
    }
    if (0 == strcmp(cmd, "serve")) {
        if (n_rest) {
            fprintf(stderr, "spypixel serve: unexpected argument '%s'\n", rest[0]);
            rc = 2;
        } else {
            rc = cmd_serve(&cfg);
        }
    } else if (0 == strcmp(cmd, "user")) {
        rc = sp_admin_user(&cfg, n_rest, rest);
    } else if (0 == strcmp(cmd, "token")) {
        rc = sp_admin_token(&cfg, n_rest, rest);
    } else if (0 == strcmp(cmd, "campaign")) {
        rc = sp_cli_campaign(&cfg, n_rest, rest);
    } else if (0 == strcmp(cmd, "pixel")) {
        rc = sp_cli_pixel(&cfg, n_rest, rest);
    } else if (0 == strcmp(cmd, "settings")) {
        rc = sp_cli_settings(&cfg, n_rest, rest);
    } else if (0 == strcmp(cmd, "scan")) {
        rc = sp_scan_main(n_rest, rest);
    } else {
        rc = cmd_forget(&cfg, n_rest, rest);
    }
    if (uses_store)
        sp_cli_hand_over(&cfg);
done:
    free(rest);
    sp_config_free(&cfg);
    return rc;
}
