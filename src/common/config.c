/* config: one settings table read from defaults, a file, the environment and flags. */
/* SPDX-License-Identifier: MIT */
#include "config.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

typedef enum { OPT_STR, OPT_INT, OPT_BOOL, OPT_CIDRS, OPT_STRS } opt_kind_t;

typedef struct {
    const char *name; /* flag without "--"; the file key; SPYPIXEL_<NAME> in upper case */
    opt_kind_t kind;
    size_t offset;
    size_t size;  /* buffer size for OPT_STR */
    size_t count; /* offset of the count for lists */
    const char *arg;
    unsigned scope; /* SP_CONFIG_* */
    const char *help;
} opt_t;

#define STR(f)   OPT_STR, offsetof(sp_config_t, f), sizeof(((sp_config_t *)0)->f), 0
#define INT(f)   OPT_INT, offsetof(sp_config_t, f), 0, 0
#define BOOL(f)  OPT_BOOL, offsetof(sp_config_t, f), 0, 0
#define LIST(f)  OPT_STRS, offsetof(sp_config_t, f), 0, offsetof(sp_config_t, n_##f)
#define CIDRS(f) OPT_CIDRS, offsetof(sp_config_t, f), 0, offsetof(sp_config_t, n_##f)

#define SERVE SP_CONFIG_SERVE
#define STORE SP_CONFIG_STORE
#define LOG   SP_CONFIG_LOG
#define LINKS (SP_CONFIG_SERVE | SP_CONFIG_LINKS)

/* The one settings table: flags, environment and file all go through it. Defaults are
 * in sp_config_defaults, and the help shows them from there. */
static const opt_t options[] = {
    {"listen", LIST(listen), "ADDRESS", SERVE,
     "address to serve on: HOST:PORT, http://HOST:PORT or https://HOST:PORT (repeatable; "
     "HOST:PORT is HTTPS when --tls-cert is set; an empty HOST is every address)"},
    {"tls-cert", STR(tls_cert), "FILE", SERVE,
     "PEM certificate chain for HTTPS (re-read on SIGHUP)"},
    {"tls-key", STR(tls_key), "FILE", SERVE, "PEM private key of --tls-cert (re-read on SIGHUP)"},
    {"data", STR(data_dir), "DIR", STORE | SERVE,
     "data folder: journal, SQLite database (with --store sqlite)"},
    {"store", STR(store), "NAME", STORE | SERVE, "sqlite or postgres"},
    {"pg", STR(pg), "CONNINFO", STORE | SERVE, "PostgreSQL connection string for --store postgres"},
    {"geoip", LIST(geoip), "FILE.mmdb", SERVE,
     "GeoIP database (repeatable; none given: DB-IP Lite City from " SP_GEO_DEFAULT_DIR ")"},
    {"no-geoip", BOOL(no_geoip), NULL, SERVE, "do not look up locations"},
    {"trusted-proxy", CIDRS(trusted_proxy), "CIDR", SERVE,
     "peer whose X-Forwarded-For / Forwarded is believed (repeatable)"},
    {"webhook", LIST(webhook), "URL", SERVE,
     "POST each stored open and click as JSON to URL (repeatable)"},
    {"webhook-events", STR(webhook_events), "WHICH", SERVE,
     "all, or first: only each recipient's first counted open"},
    {"webhook-secret", STR(webhook_secret), "SECRET", SERVE,
     "sign webhook bodies: X-Spypixel-Signature: sha256=HMAC-SHA256(SECRET, body)"},
    {"apple-egress", STR(apple_egress), "FILE", SERVE,
     "Apple's published egress ranges (CSV or CIDRs)"},
    {"public-url", STR(public_url), "URL", LINKS,
     "base URL of tracking links (empty: the request's Host; for spypixel pixel, the first "
     "--listen address)"},
    {"threads", INT(threads), "N", SERVE,
     "request threads per listen address (0: one per core it may run on)"},
    {"max-connections", INT(max_connections), "N", SERVE, "most open connections"},
    {"timeout", INT(timeout), "SECONDS", SERVE, "idle connection timeout"},
    {"read-time-max", INT(read_time_max), "N", SERVE,
     "tracking blocks' read-time images held at once (each up to 20 s); past it the image ends "
     "at once and the open's read time is unmeasured (0: hold none)"},
    {"header-timeout", INT(header_timeout), "SECONDS", SERVE,
     "time a request's head has to arrive, else 408 (0: no limit)"},
    {"max-connections-per-ip", INT(max_connections_per_ip), "N", SERVE,
     "most open connections from one address, trusted proxies apart (0: no cap)"},
    {"body-memory", INT(body_memory), "MIB", SERVE,
     "memory all request bodies in flight may hold together; past it uploads get 503"},
    {"metrics-public", BOOL(metrics_public), NULL, SERVE,
     "serve /metrics to anyone (default: loopback clients and API tokens only)"},
    {"batch-max", INT(batch_max), "N", SERVE, "most opens in one commit"},
    {"retention", INT(retention), "DAYS", SERVE, "delete events older than DAYS (0: keep)"},
    {"self-ip-window", INT(self_ip_window), "MINUTES", SERVE,
     "count opens from an IP that used the dashboard within MINUTES as self (0: off)"},
    {"anonymize-ip", BOOL(anonymize_ip), NULL, SERVE, "store IPv4 /24 and IPv6 /48 only"},
    {"sync-full", BOOL(sync_full), NULL, STORE | SERVE,
     "fsync the journal before each answer and every commit (survives power loss)"},
    {"answer-after", STR(answer_after), "WHEN", SERVE,
     "journal: answer once the open is in this server's journal; store: once it is committed "
     "to the store (slower; with postgres, no open waits on this server's disk)"},
    {"auto-create-campaigns", BOOL(auto_create_campaigns), NULL, SERVE,
     "an open of an unknown campaign creates it (default: kept apart until adopted)"},
    {"unknown-campaigns-max", INT(unknown_campaigns_max), "N", SERVE,
     "most unknown campaign IDs whose opens are kept; more are counted, not kept"},
    {"unknown-opens-max", INT(unknown_opens_max), "N", SERVE,
     "newest opens kept per unknown campaign ID"},
    {"likely-forward-after", INT(likely_forward_after), "SECONDS", SERVE,
     "least time from a recipient's first open to a likely forward (a new client from another "
     "network)"},
    {"journal-spill", INT(journal_spill), "MIB", SERVE,
     "memory that holds opens while the journal cannot be written (a full disk, a read-only "
     "file), written out once it can (0: none, such opens are dropped and counted)"},
    {"adopt-store", BOOL(adopt_store), NULL, SERVE,
     "start with the store as it is although it is not the one this data folder's journal was "
     "indexed into, or lacks opens the journal no longer holds (see docs/RECOVERY.md)"},
    {"log-level", STR(log_level), "LEVEL", LOG, "debug, info, warn or error"},
    {"log-format", STR(log_format), "FORMAT", LOG, "logfmt or json (one object a line)"},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

void sp_config_defaults(sp_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen[cfg->n_listen++] = strdup("127.0.0.1:8080");
    if (!cfg->listen[0])
        abort();
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", SP_DEFAULT_DATA_DIR);
    snprintf(cfg->store, sizeof(cfg->store), "sqlite");
    snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
    snprintf(cfg->log_format, sizeof(cfg->log_format), "logfmt");
    snprintf(cfg->webhook_events, sizeof(cfg->webhook_events), "all");
    snprintf(cfg->answer_after, sizeof(cfg->answer_after), "journal");
    cfg->max_connections = 4096;
    cfg->read_time_max = 2048;
    cfg->timeout = 15;
    cfg->header_timeout = 10;
    cfg->max_connections_per_ip = 256;
    cfg->body_memory = 64;
    cfg->batch_max = SP_CONFIG_BATCH_MAX;
    cfg->unknown_campaigns_max = SP_CONFIG_UNKNOWN_CAMPAIGNS;
    cfg->unknown_opens_max = SP_CONFIG_UNKNOWN_OPENS;
    cfg->likely_forward_after = SP_CONFIG_LIKELY_FORWARD_AFTER_S;
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

/* The settings of the key = value lines of F, read from PATH (named in errors). Each line is
 * read whole, however long, so that the tail of a long line is never read as a line. */
static int load_lines(sp_config_t *cfg, FILE *f, const char *path, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    bool started[N_OPTIONS] = {false};
    while (0 == rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strlen(line) != (size_t)len) {
            snprintf(err, errlen, "%s:%d: a NUL byte in the line", path, lineno);
            rc = -1;
            break;
        }
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
    free(line);
    return rc;
}

static int load_file(sp_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = load_lines(cfg, f, path, err, errlen);
    fclose(f);
    return rc;
}

static void env_name(const opt_t *o, char *buf, size_t len);

static int load_env(sp_config_t *cfg, char *err, size_t errlen)
{
    bool started[N_OPTIONS] = {false};
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char name[64];
        env_name(&options[i], name, sizeof(name));
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
        } else if (sp_has_prefix(argv[i], "--config=")) {
            file = argv[i] + SP_LIT_LEN("--config=");
        }
    }
    /* An installed binary reads its own file when no other is named and it is there. */
    if ((!file || !*file) && SP_DEFAULT_CONFIG_FILE[0] && 0 == access(SP_DEFAULT_CONFIG_FILE, F_OK))
        file = SP_DEFAULT_CONFIG_FILE;
    if (file && *file) {
        if (strlen(file) >= sizeof(cfg->config_file)) {
            snprintf(err, errlen, "--config: file name too long");
            return -1;
        }
        if (0 != load_file(cfg, file, err, errlen))
            return -1;
        snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", file);
    }
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
        if (!sp_has_prefix(a, "--")) {
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
    if (0 != strcmp(cfg->log_format, "logfmt") && 0 != strcmp(cfg->log_format, "json")) {
        snprintf(err, errlen, "--log-format: expected logfmt or json, got '%s'", cfg->log_format);
        return -1;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        snprintf(err, errlen, "--tls-cert and --tls-key go together: %s is missing",
                 cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
        return -1;
    }
    if (0 == cfg->n_listen) {
        snprintf(err, errlen, "--listen: at least one address is needed");
        return -1;
    }
    if (cfg->body_memory < 9) {
        snprintf(err, errlen, "--body-memory: at least 9 (MiB: an image upload is up to 8), got %d",
                 cfg->body_memory);
        return -1;
    }
    if (0 != strcmp(cfg->store, "sqlite") && 0 != strcmp(cfg->store, "postgres")) {
        snprintf(err, errlen, "--store: expected sqlite or postgres, got '%s'", cfg->store);
        return -1;
    }
    return 0;
}

/* The value of option O in CFG as text: lists joined with ", ". */
static void value_text(const sp_config_t *cfg, const opt_t *o, char *buf, size_t len)
{
    const char *base = (const char *)cfg;
    buf[0] = '\0';
    switch (o->kind) {
    case OPT_STR:
        snprintf(buf, len, "%s", base + o->offset);
        break;
    case OPT_INT:
        snprintf(buf, len, "%d", *(const int *)(base + o->offset));
        break;
    case OPT_BOOL:
        snprintf(buf, len, "%s", *(const bool *)(base + o->offset) ? "true" : "false");
        break;
    case OPT_STRS:
    case OPT_CIDRS: {
        size_t n = *(const size_t *)(base + o->count), used = 0;
        for (size_t k = 0; k < n && used < len; k++) {
            char one[SP_NET_ADDR_MAX + 8];
            const char *v = one;
            if (OPT_STRS == o->kind) {
                v = ((char *const *)(base + o->offset))[k];
            } else {
                const sp_net_cidr_t *c = &((const sp_net_cidr_t *)(base + o->offset))[k];
                char addr[SP_NET_ADDR_MAX];
                sp_net_format(&c->addr, addr, sizeof(addr));
                snprintf(one, sizeof(one), "%s/%u", addr, c->addr.v4 ? c->prefix - 96 : c->prefix);
            }
            used += (size_t)snprintf(buf + used, len - used, "%s%s", k ? ", " : "", v);
        }
        break;
    }
    }
}

static bool is_list(const opt_t *o)
{
    return OPT_STRS == o->kind || OPT_CIDRS == o->kind;
}

/* Settings whose values are never printed. */
static bool is_secret(const opt_t *o)
{
    return 0 == strcmp(o->name, "webhook-secret") || 0 == strcmp(o->name, "pg");
}

static void env_name(const opt_t *o, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "SPYPIXEL_");
    for (const char *p = o->name; *p && n + 1 < len; p++)
        buf[n++] = '-' == *p ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

void sp_config_usage(FILE *out, unsigned scope)
{
    sp_config_t defaults;
    sp_config_defaults(&defaults);
    fprintf(out, "Settings (a flag, or SPYPIXEL_<NAME> in the environment, or NAME = VALUE in "
                 "--config FILE; flags win):\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        if (!(o->scope & scope))
            continue;
        char left[64], def[256];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        value_text(&defaults, o, def, sizeof(def));
        fprintf(out, "  %-26s %s", left, o->help);
        if (OPT_BOOL != o->kind && def[0])
            fprintf(out, " [%s]", def);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n", "--config FILE", "read settings from FILE (key = value lines)");
    sp_config_free(&defaults);
}

static void print_json(FILE *out, const sp_config_t *cfg)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        char def[1024], env[64], flag[64];
        static const char *const kinds[] = {"string", "integer", "boolean", "cidr-list",
                                            "string-list"};
        value_text(cfg, o, def, sizeof(def));
        env_name(o, env, sizeof(env));
        snprintf(flag, sizeof(flag), "--%s", o->name);
        json_t *scopes = json_array();
        static const char *const scope_names[] = {"store", "log", "links", "serve"};
        for (unsigned b = 0; b < 4; b++)
            if (o->scope & (1u << b))
                json_array_append_new(scopes, json_string(scope_names[b]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:b, s:s, s:o, s:s}",
                                             "name", o->name, "flag", flag, "env", env, "key",
                                             o->name, "arg", o->arg, "type", kinds[o->kind],
                                             "repeatable", is_list(o), "default", def, "scope",
                                             scopes, "help", o->help));
    }
    char *text = json_dumps(arr, JSON_INDENT(2));
    fprintf(out, "%s\n", text);
    free(text);
    json_decref(arr);
}

/* Wraps TEXT into comment lines of at most 88 columns. */
static void print_comment(FILE *out, const char *text)
{
    while (*text) {
        size_t n = strlen(text);
        if (n > 86) {
            n = 86;
            while (n > 20 && ' ' != text[n])
                n--;
        }
        fprintf(out, "# %.*s\n", (int)n, text);
        text += n;
        while (' ' == *text)
            text++;
    }
}

void sp_config_print(FILE *out, const sp_config_t *cfg, sp_config_form_t form)
{
    if (SP_CONFIG_JSON == form) {
        print_json(out, cfg);
        return;
    }
    if (SP_CONFIG_EXAMPLE == form)
        fprintf(out, "# spypixel configuration: one \"key = value\" a line; a repeatable key is\n"
                     "# given once per value. Every key is shown with its default, commented out.\n"
                     "# The same settings are flags (--key) and environment variables\n"
                     "# (SPYPIXEL_KEY, '-' as '_'); flags win over the environment, which wins\n"
                     "# over this file. See spypixel(1).\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        char value[1024];
        value_text(cfg, o, value, sizeof(value));
        if (SP_CONFIG_EXAMPLE == form) {
            fputc('\n', out);
            print_comment(out, o->help);
        }
        const char *lead = SP_CONFIG_EXAMPLE == form ? "# " : "";
        if (is_secret(o) && value[0] && SP_CONFIG_EFFECTIVE == form) {
            fprintf(out, "%s%s = (set, not shown)\n", lead, o->name);
        } else if (is_list(o) && !value[0] && SP_CONFIG_EFFECTIVE == form) {
            fprintf(out, "# %s = (none)\n", o->name); /* "key =" would add an empty value */
        } else if (is_list(o) && value[0]) {
            /* One line per value, as a file repeats the key. */
            char *save = NULL;
            for (char *t = strtok_r(value, ",", &save); t; t = strtok_r(NULL, ",", &save))
                fprintf(out, "%s%s = %s\n", lead, o->name, t + (' ' == *t));
        } else {
            fprintf(out, "%s%s =%s%s\n", lead, o->name, value[0] ? " " : "", value);
        }
    }
}

void sp_config_free(sp_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_geoip; i++)
        free(cfg->geoip[i]);
    for (size_t i = 0; i < cfg->n_webhook; i++)
        free(cfg->webhook[i]);
    for (size_t i = 0; i < cfg->n_listen; i++)
        free(cfg->listen[i]);
    cfg->n_geoip = cfg->n_webhook = cfg->n_listen = 0;
}
