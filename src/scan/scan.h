/* scan: the recipient's side: finds the trackers in .eml and mbox files and strips them. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SCAN_H
#define SP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What a finding is (docs/SCAN.md). */
typedef enum sp_scan_kind {
    SP_SCAN_PIXEL,   /* a remote image that is invisible (1x1, hidden) or an open-pixel URL */
    SP_SCAN_IMAGE,   /* a visible remote image (or CSS image, stylesheet...) that tracks */
    SP_SCAN_LINK,    /* a tracked link: redirect, click-tracking host, per-recipient ID */
    SP_SCAN_RECEIPT, /* a read-receipt request header; its url is "mailto:ADDRESS" */
} sp_scan_kind_t;

/* "pixel", "image", "link", "receipt". Static string. */
const char *sp_scan_kind_name(sp_scan_kind_t kind);

#define SP_SCAN_MATCH_MAX 8

/* One rule that matched a URL. */
typedef struct sp_scan_match {
    const char *rule; /* static, stable name: "mailchimp", "tiny-image", "recipient-address" */
    char *reason;     /* owned by the report: why this makes the URL a tracker */
} sp_scan_match_t;

/* One tracker in one message, found once per message however often the URL appears. All the
 * strings are owned by the report. */
typedef struct sp_scan_finding {
    char *file;
    size_t message;   /* 1-based index of the message in its file */
    char *message_id; /* the Message-ID without <>, or NULL */
    sp_scan_kind_t kind;
    char *url;
    char *host;         /* lower case; "" when the URL has none */
    const char *vendor; /* static: who runs the tracker when a host rule named it, or NULL */
    char *target;       /* a tracked link's destination, when its URL carries it; or NULL */
    size_t n_matches;
    sp_scan_match_t matches[SP_SCAN_MATCH_MAX]; /* the first is the main reason */
} sp_scan_finding_t;

/* The findings of one or more scans, in the order found. Zero it, or use SP_SCAN_REPORT_INIT. */
typedef struct sp_scan_report {
    sp_scan_finding_t *findings;
    size_t n, cap;
    size_t messages; /* messages read */
    /* Filled by sp_scan_strip only: */
    size_t removed;   /* tracking images and resources taken out, read-receipt headers dropped */
    size_t rewritten; /* tracked links replaced by their destination or cleaned of IDs */
    size_t kept;      /* tracked links left as they were: their destination is the tracker's */
} sp_scan_report_t;

#define SP_SCAN_REPORT_INIT                                                                        \
    {                                                                                              \
        0                                                                                          \
    }

/* Frees what REPORT holds and zeroes it; it may be used again. */
void sp_scan_report_free(sp_scan_report_t *report);

/* Scans PATH ("-" for standard input), an RFC 5322 message or an mbox (a file that starts with
 * "From "), and appends its findings to REPORT. 0, or -1 with a message in ERR when the file
 * cannot be read (REPORT is then unchanged). Damaged MIME is read as far as it goes. GMime and
 * libxml2 are initialised on first use. */
int sp_scan_file(const char *path, sp_scan_report_t *report, char *err, size_t errlen);

/* The same for a message or mbox held in memory; NAME is what the findings give as their file. */
int sp_scan_memory(const char *name, const void *data, size_t len, sp_scan_report_t *report,
                   char *err, size_t errlen);

/* Writes PATH ("-" for standard input) to OUT without its trackers: tracking images and
 * resources removed, tracked links replaced by their destination where the URL carries it (and
 * cleaned of per-recipient parameters), read-receipt headers dropped; everything else as it
 * was. An mbox is written back as an mbox. The findings and the counts go to REPORT. 0, or -1
 * with a message in ERR (unreadable input, a write error on OUT). */
int sp_scan_strip(const char *path, FILE *out, sp_scan_report_t *report, char *err, size_t errlen);

/* The destination of a tracked redirect URL, when it carries one in a query parameter (url=,
 * u=, redirect=, q=..., plain, percent-encoded or base64) or a path segment, unwrapped through
 * nested redirects and cleaned of per-recipient parameters. A malloc'd string the caller frees,
 * or NULL when the URL carries no destination on another host. */
char *sp_scan_link_target(const char *url);

/* The command: spypixel scan [--json] FILE... | spypixel scan --strip FILE. ARGV[0] is the first
 * argument after "scan". Prints its output and errors itself; returns the exit code: 0, 1 when a
 * file could not be read (the others are still scanned), 2 for bad usage. */
int sp_scan_main(int argc, char **argv);

/* The command's help text. */
#define SP_SCAN_HELP                                                                               \
    "usage: spypixel scan [--json] FILE...\n"                                                      \
    "       spypixel scan --strip FILE > CLEAN.eml\n"                                              \
    "Lists the trackers in .eml or mbox files (FILE '-' reads standard input): remote images\n"    \
    "that are 1x1 or hidden, images and links on known tracking hosts, URLs that carry the\n"      \
    "recipient's address (as is, URL-encoded, base64 or hashed) or a long opaque token,\n"         \
    "CSS images that load only when the message is printed or forwarded, shared tracker\n"         \
    "images (Gmail's cleardot.gif), tracked links (redirects, per-recipient parameters)\n"         \
    "and read-receipt requests.\n"                                                                 \
    "docs/SCAN.md lists every rule and its reason.\n"                                              \
    "  --json   print one JSON list of findings: file, message, message_id, kind (pixel,\n"        \
    "           image, link, receipt), url, host, vendor, rule, reason, rules, target\n"           \
    "  --strip  write FILE to standard output without its trackers: tracking images and CSS\n"     \
    "           images are removed (print and forward style rules with them), read-receipt\n"      \
    "           headers dropped; a tracked link whose destination is in its URL (url=, u=,\n"      \
    "           redirect=, q=...) is replaced by that destination, cleaned of per-recipient\n"     \
    "           parameters (mc_eid, _hsenc...); a tracked link whose destination only the\n"       \
    "           tracker knows is kept as it is, because removing it would break the message.\n"    \
    "           A summary goes to standard error.\n"                                               \
    "Exit status: 0 when every file was read, 1 when one could not be, 2 for bad usage.\n"

#endif
