/* config: one settings table read from defaults, a file, the environment and flags. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "net.h"

#define SP_CONFIG_LIST_MAX 32

/* Opens of campaigns that do not exist: how many IDs, and how many of each one's newest
 * opens, are kept apart unless configured. A kept open is its journal record, under 1 KiB
 * for a mail client's request and at most about 16 KiB (the request header limit). */
#define SP_CONFIG_UNKNOWN_CAMPAIGNS 100
#define SP_CONFIG_UNKNOWN_OPENS     10000

typedef struct sp_config {
    char listen[128];   /* HOST:PORT */
    char data_dir[512]; /* holds spypixel.db and the signing key */
    char store[16];     /* "sqlite" or "postgres" */
    char pg[1024];      /* libpq connection string */
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
    int threads;         /* request threads; 0 = one per core */
    int max_connections; /* across all threads */
    int timeout;         /* idle connection timeout, seconds */
    int batch_max;       /* most events in one commit */
    int retention;       /* days; 0 keeps events forever */
    int self_ip_window;  /* minutes; 0 turns the rule off */
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
} sp_config_t;

/* Fills CFG with the defaults. */
void sp_config_defaults(sp_config_t *cfg);

/* Applies a "key = value" file, then SPYPIXEL_* variables, then the flags in
 * ARGV[0..ARGC). Flags that are not settings are left in REST (borrowed pointers into
 * ARGV), in order, as positional arguments. Returns 0, or -1 with a message in ERR
 * (an unknown flag, a bad value). "--config FILE" may appear among the flags. */
int sp_config_load(sp_config_t *cfg, int argc, char **argv, char **rest, int *n_rest, char *err,
                   size_t errlen);

/* Prints the settings table as help text (flag, environment variable, meaning). */
void sp_config_usage(FILE *out);

/* Frees the lists the loader allocated. */
void sp_config_free(sp_config_t *cfg);

#endif
