/* config: one settings table read from defaults, a file, the environment and flags. */
/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { OPT_STR, OPT_INT, OPT_BOOL, OPT_CIDRS, OPT_STRS } opt_kind_t;

typedef struct {
    const char *name; /* flag without "--"; the file key; SPYPIXEL_<NAME> in upper case */
    opt_kind_t kind;
    size_t offset;
    size_t size;  /* buffer size for OPT_STR */
    size_t count; /* offset of the count for lists */
    const char *arg;
    const char *help;
} opt_t;

#define STR(f)   OPT_STR, offsetof(sp_config_t, f), sizeof(((sp_config_t *)0)->f), 0
#define INT(f)   OPT_INT, offsetof(sp_config_t, f), 0, 0
#define BOOL(f)  OPT_BOOL, offsetof(sp_config_t, f), 0, 0
#define LIST(f)  OPT_STRS, offsetof(sp_config_t, f), 0, offsetof(sp_config_t, n_##f)
#define CIDRS(f) OPT_CIDRS, offsetof(sp_config_t, f), 0, offsetof(sp_config_t, n_##f)

/* The one settings table: flags, environment and file all go through it. */
static const opt_t options[] = {
    {"listen", STR(listen), "HOST:PORT", "address to serve on (127.0.0.1:8080)"},
    {"data", STR(data_dir), "DIR", "data folder: SQLite database and signing key (./data)"},
    {"store", STR(store), "NAME", "sqlite (default) or postgres"},
    {"pg", STR(pg), "CONNINFO", "PostgreSQL connection string for --store postgres"},
    {"geoip", LIST(geoip), "FILE.mmdb", "GeoIP database (repeatable; default: DB-IP Lite City)"},
    {"no-geoip", BOOL(no_geoip), NULL, "do not look up locations"},
    {"trusted-proxy", CIDRS(trusted_proxy), "CIDR",
     "peer whose X-Forwarded-For / Forwarded is believed (repeatable)"},
    {"webhook", LIST(webhook), "URL",
     "POST each stored open and click as JSON to URL (repeatable)"},
    {"webhook-events", STR(webhook_events), "WHICH",
     "all (default) or first: only each recipient's first counted open"},
    {"webhook-secret", STR(webhook_secret), "SECRET",
     "sign webhook bodies: X-Spypixel-Signature: sha256=HMAC-SHA256(SECRET, body)"},
    {"apple-egress", STR(apple_egress), "FILE", "Apple's published egress ranges (CSV or CIDRs)"},
    {"public-url", STR(public_url), "URL", "base URL of tracking links (default: from Host)"},
    {"threads", INT(threads), "N", "request threads (default: one per core)"},
    {"max-connections", INT(max_connections), "N", "most open connections (4096)"},
    {"timeout", INT(timeout), "SECONDS", "idle connection timeout (15)"},
    {"batch-max", INT(batch_max), "N", "most opens in one commit (4096)"},
    {"retention", INT(retention), "DAYS", "delete events older than DAYS (0: keep)"},
    {"self-ip-window", INT(self_ip_window), "MINUTES",
     "count opens from an IP that used the dashboard within MINUTES as self (0: off)"},
    {"anonymize-ip", BOOL(anonymize_ip), NULL, "store IPv4 /24 and IPv6 /48 only"},
    {"sync-full", BOOL(sync_full), NULL,
     "fsync the journal before each answer and every commit (survives power loss)"},
    {"answer-after", STR(answer_after), "WHEN",
     "journal (default): answer once the open is in this server's journal; store: once it "
     "is committed to the store (slower; with postgres, no open waits on this server's disk)"},
    {"auto-create-campaigns", BOOL(auto_create_campaigns), NULL,
     "an open of an unknown campaign creates it (default: kept apart until adopted)"},
    {"unknown-campaigns-max", INT(unknown_campaigns_max), "N",
     "most unknown campaign IDs whose opens are kept (100); more are counted, not kept"},
    {"unknown-opens-max", INT(unknown_opens_max), "N",
     "newest opens kept per unknown campaign ID (10000)"},
    {"journal-spill", INT(journal_spill), "MIB",
     "memory that holds opens while the journal cannot be written (a full disk, a read-only "
     "file), written out once it can (64; 0: none, such opens are dropped and counted)"},
    {"adopt-store", BOOL(adopt_store), NULL,
     "start with the store as it is although it is not the one this data folder's journal was "
     "indexed into, or lacks opens the journal no longer holds (see docs/RECOVERY.md)"},
    {"log-level", STR(log_level), "LEVEL", "debug, info, warn or error (info)"},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

void sp_config_defaults(sp_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:8080");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./data");
    snprintf(cfg->store, sizeof(cfg->store), "sqlite");
    snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
    snprintf(cfg->webhook_events, sizeof(cfg->webhook_events), "all");
    snprintf(cfg->answer_after, sizeof(cfg->answer_after), "journal");
    cfg->max_connections = 4096;
    cfg->timeout = 15;
    cfg->batch_max = 4096;
    cfg->unknown_campaigns_max = SP_CONFIG_UNKNOWN_CAMPAIGNS;
    cfg->unknown_opens_max = SP_CONFIG_UNKNOWN_OPENS;
    cfg->journal_spill = 64;
}

static const opt_t *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && 0 == strncmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

static int set_option(sp_config_t *cfg, const opt_t *o, const char *value, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    switch (o->kind) {
    case OPT_STR:
        if (strlen(value) >= o->size) {
            snprintf(err, errlen, "--%s: value too long", o->name);
            return -1;
        }
        snprintf(base + o->offset, o->size, "%s", value);
        return 0;
    case OPT_INT: {
        char *end;
        errno = 0;
        long n = strtol(value, &end, 10);
        if (errno || end == value || *end || n < 0 || n > INT_MAX) {
            snprintf(err, errlen, "--%s: expected a non-negative number, got '%s'", o->name, value);
            return -1;
        }
        *(int *)(base + o->offset) = (int)n;
        return 0;
    }
    case OPT_BOOL:
        if (0 == strcmp(value, "1") || 0 == strcmp(value, "true") || 0 == strcmp(value, "yes") ||
            0 == strcmp(value, "on"))
            *(bool *)(base + o->offset) = true;
        else if (0 == strcmp(value, "0") || 0 == strcmp(value, "false") ||
                 0 == strcmp(value, "no") || 0 == strcmp(value, "off"))
            *(bool *)(base + o->offset) = false;
        else {
            snprintf(err, errlen, "--%s: expected true or false, got '%s'", o->name, value);
            return -1;
        }
        return 0;
    case OPT_STRS:
    case OPT_CIDRS: {
        size_t *n = (size_t *)(base + o->count);
        if (*n >= SP_CONFIG_LIST_MAX) {
            snprintf(err, errlen, "--%s: at most %d values", o->name, SP_CONFIG_LIST_MAX);
            return -1;
        }
        if (OPT_CIDRS == o->kind) {
            sp_net_cidr_t *list = (sp_net_cidr_t *)(base + o->offset);
            if (0 != sp_net_parse_cidr(value, &list[*n])) {
                snprintf(err, errlen, "--%s: not an address or CIDR: '%s'", o->name, value);
                return -1;
            }
        } else {
            char **list = (char **)(base + o->offset);
            list[*n] = strdup(value);
            if (!list[*n])
                abort();
        }
        (*n)++;
        return 0;
    }
    }
    return -1;
}

/* A list from a stronger source replaces the weaker one's (flags win over the environment,
 * which wins over the file): the first value a source gives for a list empties it. */
static void start_list(sp_config_t *cfg, const opt_t *o, bool started[N_OPTIONS])
{
    size_t i = (size_t)(o - options);
    if ((OPT_STRS != o->kind && OPT_CIDRS != o->kind) || started[i])
        return;
    started[i] = true;
    char *base = (char *)cfg;
    size_t *n = (size_t *)(base + o->count);
    if (OPT_STRS == o->kind)
        for (size_t k = 0; k < *n; k++)
            free(((char **)(base + o->offset))[k]);
    *n = 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(sp_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    bool started[N_OPTIONS] = {false};
    while (0 == rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if ('\0' == *s || '#' == *s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        const opt_t *o = find_option(key, strlen(key));
        if (!o) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, key);
            rc = -1;
            break;
        }
        start_list(cfg, o, started);
        rc = set_option(cfg, o, value, err, errlen);
        if (0 != rc) {
            char why[512];
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
        }
    }
    fclose(f);
    return rc;
}

static int load_env(sp_config_t *cfg, char *err, size_t errlen)
{
    bool started[N_OPTIONS] = {false};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char name[64] = "SPYPIXEL_";
        size_t o = strlen(name);
        for (const char *p = options[i].name; *p && o + 1 < sizeof(name); p++)
            name[o++] = '-' == *p ? '_' : (char)toupper((unsigned char)*p);
        name[o] = '\0';
        const char *value = getenv(name);
        if (!value || !*value)
            continue;
        /* A list from the environment is comma-separated. */
        if (OPT_STRS == options[i].kind || OPT_CIDRS == options[i].kind) {
            char *copy = strdup(value), *save = NULL;
            if (!copy)
                abort();
            int rc = 0;
            start_list(cfg, &options[i], started);
            for (char *t = strtok_r(copy, ",", &save); t && 0 == rc; t = strtok_r(NULL, ",", &save))
                rc = set_option(cfg, &options[i], trim(t), err, errlen);
            free(copy);
            if (rc)
                return -1;
        } else if (0 != set_option(cfg, &options[i], value, err, errlen)) {
            return -1;
        }
    }
    return 0;
}

int sp_config_load(sp_config_t *cfg, int argc, char **argv, char **rest, int *n_rest, char *err,
                   size_t errlen)
{
    *n_rest = 0;
    /* The file first, wherever --config stands, so that flags win over it. */
    const char *file = getenv("SPYPIXEL_CONFIG");
    for (int i = 0; i < argc && 0 != strcmp(argv[i], "--"); i++) {
        if (0 == strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a value (FILE)");
                return -1;
            }
            file = argv[++i];
        } else if (0 == strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
    }
    if (file && *file && 0 != load_file(cfg, file, err, errlen))
        return -1;
    if (0 != load_env(cfg, err, errlen))
        return -1;

    bool started[N_OPTIONS] = {false};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (0 == strcmp(a, "--")) {
            while (++i < argc)
                rest[(*n_rest)++] = argv[i];
            break;
        }
        if (0 == strncmp(a, "--config", 8) && ('\0' == a[8] || '=' == a[8])) {
            if ('\0' == a[8])
                i++;
            continue;
        }
        if (0 != strncmp(a, "--", 2)) {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        const opt_t *o = find_option(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            rest[(*n_rest)++] = argv[i]; /* a subcommand's own flag */
            continue;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (OPT_BOOL == o->kind)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value (%s)", o->name, o->arg);
            return -1;
        }
        start_list(cfg, o, started);
        if (0 != set_option(cfg, o, value, err, errlen))
            return -1;
    }
    if (0 != strcmp(cfg->webhook_events, "all") && 0 != strcmp(cfg->webhook_events, "first")) {
        snprintf(err, errlen, "--webhook-events: expected all or first, got '%s'",
                 cfg->webhook_events);
        return -1;
    }
    if (0 != strcmp(cfg->answer_after, "journal") && 0 != strcmp(cfg->answer_after, "store")) {
        snprintf(err, errlen, "--answer-after: expected journal or store, got '%s'",
                 cfg->answer_after);
        return -1;
    }
    cfg->answer_after_store = 0 == strcmp(cfg->answer_after, "store");
    if (0 != strcmp(cfg->store, "sqlite") && 0 != strcmp(cfg->store, "postgres")) {
        snprintf(err, errlen, "--store: expected sqlite or postgres, got '%s'", cfg->store);
        return -1;
    }
    return 0;
}

void sp_config_usage(FILE *out)
{
    fprintf(out, "Settings (flag, or SPYPIXEL_<NAME> in the environment, or NAME = VALUE in "
                 "--config FILE; flags win):\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", options[i].name, options[i].arg ? " " : "",
                 options[i].arg ? options[i].arg : "");
        fprintf(out, "  %-28s %s\n", left, options[i].help);
    }
    fprintf(out, "  %-28s %s\n", "--config FILE", "read settings from FILE (key = value lines)");
}

void sp_config_free(sp_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_geoip; i++)
        free(cfg->geoip[i]);
    for (size_t i = 0; i < cfg->n_webhook; i++)
        free(cfg->webhook[i]);
    cfg->n_geoip = cfg->n_webhook = 0;
}
