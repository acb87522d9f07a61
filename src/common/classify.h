/* classify: the class of every open and click (human, proxy, machine, self), from a rule table. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_CLASSIFY_H
#define SP_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"

/* Only human and proxy events count in total_views and unique_views; machine and self events are
 * shown and counted apart (docs/CLASSES.md). */
typedef enum sp_class {
    SP_CLASS_HUMAN = 0, /* a person's client fetched it */
    SP_CLASS_PROXY,     /* a person's open, relayed by a mail provider's image proxy */
    SP_CLASS_MACHINE,   /* fetched with no person reading: prefetch, scanners, link checkers */
    SP_CLASS_SELF,      /* the sender's own view */
    SP_CLASS_COUNT
} sp_class_t;

/* "human", "proxy", "machine", "self"; "unknown" for a value out of range. Static string. */
const char *sp_class_name(sp_class_t c);

/* The class called NAME (exact, lower case). 0, or -1 when NAME is NULL or no class. */
int sp_class_from_name(const char *name, sp_class_t *out);

/* One request, as the classifier sees it. Everything is borrowed for the call only. */
typedef struct sp_classify_input {
    bool is_click;             /* a tracked-link click rather than an image load */
    const char *user_agent;    /* may be NULL */
    const sp_net_addr_t *peer; /* the client address (after trusted-proxy handling); may be NULL */
    /* Looks up a request header by case-insensitive name; NULL when absent. HEADER may be NULL
     * (no headers). */
    const char *(*header)(const void *ctx, const char *name);
    const void *header_ctx;
    /* Decided by the caller: a Referer from the dashboard, the dashboard's self-view cookie, an
     * address the dashboard was used from recently. */
    bool self_referer, self_cookie, self_ip;
} sp_classify_input_t;

typedef struct sp_classify_result {
    sp_class_t klass;
    const char *rule; /* static name of the deciding rule; "default-human" when none matched */
    const char *via;  /* static display name of the proxy or scanner, or NULL */
} sp_classify_result_t;

/* The built-in rules plus Apple's egress ranges. Immutable once open: share it between threads. */
typedef struct sp_classifier sp_classifier_t;

/* APPLE_EGRESS_PATH: optional file of Apple's published iCloud Private Relay / Mail Privacy
 * Protection egress ranges (https://mask-api.icloud.com/egress-ip-ranges.csv): one CIDR or
 * address per line, or CSV lines whose first field is one ("172.224.226.0/27,GB,GB-EN,London,"),
 * '#' comments, blank lines. NULL for none: Apple's own 17.0.0.0/8 is always known.
 * Returns a classifier the caller frees with sp_classify_close, or NULL with a message in ERR
 * (naming the line for a bad one) when the file is unreadable or a line is no range. */
sp_classifier_t *sp_classify_open(const char *apple_egress_path, char *err, size_t errlen);

/* Frees C; NULL is a no-op. No sp_classify call on C may be running. */
void sp_classify_close(sp_classifier_t *c);

/* How many ranges the egress file gave (0 for none or a NULL classifier). */
size_t sp_classify_egress_count(const sp_classifier_t *c);

/* Classifies IN into OUT. Thread-safe, never fails: the first matching rule decides, and
 * "default-human" when none does. A NULL C knows only the built-in Apple network. */
void sp_classify(const sp_classifier_t *c, const sp_classify_input_t *in,
                 sp_classify_result_t *out);

/* One row of the rule table, for docs and the dashboard. All strings are static. */
typedef struct sp_classify_rule_info {
    const char *name;
    sp_class_t klass;
    const char *reason; /* why the rule exists and how sure it is */
    const char *source; /* URL or document the rule comes from */
    const char *via;    /* what the result's via is set to, or NULL */
} sp_classify_rule_info_t;

/* The rule table in the order it is tried, "default-human" last. Static; COUNT gets its length. */
const sp_classify_rule_info_t *sp_classify_rules(size_t *count);

#endif
