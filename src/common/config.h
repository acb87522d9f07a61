/* config: one settings table read from defaults, a file, the environment and flags. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "net.h"

#define SP_CONFIG_LIST_MAX 32
/* Where the set-up script installs the DB-IP Lite City files (`make install` builds geo.o
 * and config.o with its own DATADIR). */
#ifndef SP_GEO_DEFAULT_DIR
#define SP_GEO_DEFAULT_DIR "/usr/local/share/spypixel/geoip"
#endif

#define SP_CONFIG_LIKELY_FORWARD_AFTER_S 600 /* --likely-forward-after: see tally.h */
/* --batch-max: most opens in one commit. A backlog is indexed in commits this large: each
 * commit writes every page it dirtied into the WAL and then the database, and the pages an
 * open dirties at random (its recipient, its person, its place among the recipient's events)
 * are shared by more opens in a larger commit. At 300,000 opens 16,384 a commit indexed twice
 * as many a second as 4,096, with a third of the writes, for 7 KB of memory per open held
 * (BENCHMARKS.md, "The writer's commits"). Below the index rate batches stay small. */
#define SP_CONFIG_BATCH_MAX 16384

/* Opens of campaigns that do not exist: how many IDs, and how many of each one's newest
 * opens, are kept apart unless configured. A kept open is its journal record, under 1 KiB
 * for a mail client's request and at most about 16 KiB (the request header limit). */
#define SP_CONFIG_UNKNOWN_CAMPAIGNS 100
#define SP_CONFIG_UNKNOWN_OPENS     10000

/* Where an installed binary looks by default; `make install` builds config.o with the
 * installed paths, the build tree keeps these. */
#ifndef SP_DEFAULT_DATA_DIR
#define SP_DEFAULT_DATA_DIR "./data"
#endif
#ifndef SP_DEFAULT_CONFIG_FILE
#define SP_DEFAULT_CONFIG_FILE "" /* read when it exists and no other is named; "" none */
#endif

/* Which commands a setting is for (their --help lists it). Every command accepts every
 * setting, so that one configuration file serves them all. */
#define SP_CONFIG_STORE 1u /* data, store, pg: every command that opens the store */
#define SP_CONFIG_LOG   2u /* log-level, log-format */
#define SP_CONFIG_LINKS 4u /* public-url: commands that make tracking URLs */
#define SP_CONFIG_SERVE 8u /* the server's own */
#define SP_CONFIG_ALL   15u

typedef struct sp_config {
    char *listen[SP_CONFIG_LIST_MAX]; /* [http://|https://]HOST:PORT, at least one */
    size_t n_listen;
    char tls_cert[512], tls_key[512]; /* PEM files; both or neither */
    char data_dir[512];               /* holds spypixel.db and the signing key */
    char store[16];                   /* "sqlite" or "postgres" */
    char pg[1024];                    /* libpq connection string */
    char *geoip[SP_CONFIG_LIST_MAX];
    size_t n_geoip;
    sp_net_cidr_t trusted_proxy[SP_CONFIG_LIST_MAX];
    size_t n_trusted_proxy;
    char *webhook[SP_CONFIG_LIST_MAX];
    size_t n_webhook;
    char webhook_secret[256];
    char webhook_events[16]; /* "all" or "first" */
    char apple_egress[512];
    char public_url[256]; /* scheme://host[:port] used in the URLs the API hands out */
    char log_level[8];
    char log_format[8];    /* "logfmt" or "json" */
    char config_file[512]; /* the file the settings were read from, or "" */
    int threads;           /* request threads; 0 = one per core */
    int max_connections;   /* across all threads */
    int read_time_max;     /* the block's read-time images held at once (0: none) */
    int timeout;           /* idle connection timeout, seconds */
    int batch_max;         /* most events in one commit */
    int retention;         /* days; 0 keeps events forever */
    int self_ip_window;    /* minutes; 0 turns the rule off */
    bool anonymize_ip;
    bool no_geoip;
    bool sync_full;          /* fsync the journal and every commit (power-loss safe) */
    int journal_spill;       /* MiB held in memory while the journal cannot be written */
    bool adopt_store;        /* start with a store the journal was not indexed into */
    char answer_after[16];   /* "journal" or "store" */
    bool answer_after_store; /* derived from it */

    /* Opens of campaigns that do not exist. */
    bool auto_create_campaigns; /* create the campaign (otherwise: kept apart, bounded) */
    int unknown_campaigns_max;  /* most such IDs kept */
    int unknown_opens_max;      /* newest opens kept per such ID */
    int likely_forward_after;   /* seconds from a recipient's first open to a likely forward */

    /* What one client may hold or see (http.c, guard.c). */
    int header_timeout; /* seconds a request (head, unauthenticated body) has to arrive; 0: none */
    int max_connections_per_ip; /* 0: no cap */
    int body_memory;            /* MiB all request bodies in flight may hold together */
    bool metrics_public;        /* /metrics for anyone, not only loopback and API tokens */
} sp_config_t;

/* Fills CFG with the defaults (allocates: sp_config_free releases). */
void sp_config_defaults(sp_config_t *cfg);

/* Applies a "key = value" file, then SPYPIXEL_* variables, then the flags in
 * ARGV[0..ARGC). Flags that are not settings are left in REST (borrowed pointers into
 * ARGV), in order, as positional arguments. Returns 0, or -1 with a message in ERR
 * (an unknown flag, a bad value). "--config FILE" may appear among the flags. */
int sp_config_load(sp_config_t *cfg, int argc, char **argv, char **rest, int *n_rest, char *err,
                   size_t errlen);

/* Prints the settings for SCOPE (SP_CONFIG_* bits) as help text: flag, meaning, default,
 * environment variable. */
void sp_config_usage(FILE *out, unsigned scope);

typedef enum sp_config_form {
    SP_CONFIG_EFFECTIVE, /* "key = value" lines of CFG, secrets masked */
    SP_CONFIG_EXAMPLE,   /* a configuration file: each key commented out with its default */
    SP_CONFIG_JSON,      /* the settings table: name, flag, env, key, default, scope, help */
} sp_config_form_t;

/* Prints the settings table in FORM; CFG gives the values (the defaults for EXAMPLE and
 * JSON: pass a config fresh from sp_config_defaults). */
void sp_config_print(FILE *out, const sp_config_t *cfg, sp_config_form_t form);

/* Frees the lists the loader allocated. */
void sp_config_free(sp_config_t *cfg);

#endif
