/* scan_rules: the recipient-side scanner's tables: tracking hosts, hiding styles, parameters. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SCAN_RULES_H
#define SP_SCAN_RULES_H

#include <stdbool.h>
#include <stddef.h>

/* Where a host rule applies, and what it needs (sp_scan_host_rule_t.flags). */
#define SP_SCAN_ON_IMAGE    0x1u /* images and other resources a mail client loads on opening */
#define SP_SCAN_ON_LINK     0x2u /* links the reader may follow */
#define SP_SCAN_ON_ANY      (SP_SCAN_ON_IMAGE | SP_SCAN_ON_LINK)
#define SP_SCAN_PIXEL_URL   0x4u /* an image with this URL is an open pixel whatever its size */
#define SP_SCAN_NEEDS_TOKEN 0x8u /* the URL's last path segment must be an opaque token */

/* A tracking service known by where its URLs point. All fields are static strings. */
typedef struct sp_scan_host_rule {
    const char *name;   /* short and stable, shown as the finding's "rule": "mailchimp" */
    const char *vendor; /* who runs it: "Mailchimp" */
    /* "list-manage.com" matches that host and every subdomain of it; a pattern holding * ? or [
     * is an fnmatch glob on the whole host, ASCII case ignored; NULL matches any host. */
    const char *host;
    const char *path; /* fnmatch glob on the URL's path ('*' crosses '/'); NULL for any path */
    unsigned flags;
    const char *reason;
} sp_scan_host_rule_t;

/* The first rule that matches HOST (lower case, may be NULL for none) and PATH (the URL's path,
 * still percent-encoded; may be NULL) for a URL used as ON (SP_SCAN_ON_IMAGE or
 * SP_SCAN_ON_LINK). LAST_IS_TOKEN tells whether the last path segment is an opaque token, for the
 * rules that need one. NULL when none matches. */
const sp_scan_host_rule_t *sp_scan_rules_match_host(const char *host, const char *path, unsigned on,
                                                    bool last_is_token);

/* How a style declaration hides what it sits on. */
typedef enum sp_scan_style_role {
    SP_SCAN_STYLE_HIDES, /* hides the element and everything in it */
    /* A width or height: on the image itself it is one of its dimensions; on a parent it hides
     * the image only together with overflow:hidden on the same element. */
    SP_SCAN_STYLE_SIZE,
} sp_scan_style_role_t;

typedef enum sp_scan_style_test {
    SP_SCAN_STYLE_IS,      /* the value is WORD (ASCII case ignored, !important dropped) */
    SP_SCAN_STYLE_AT_MOST, /* the value is a number or length (px, pt, em...) <= LIMIT; a
                            * percentage never matches */
} sp_scan_style_test_t;

typedef struct sp_scan_style_rule {
    const char *property; /* lower case */
    sp_scan_style_role_t role;
    sp_scan_style_test_t test;
    const char *word;   /* SP_SCAN_STYLE_IS */
    double limit;       /* the numeric tests, in CSS px for lengths */
    const char *reason; /* why it hides an image */
} sp_scan_style_rule_t;

/* The style table; *N gets its length. */
const sp_scan_style_rule_t *sp_scan_rules_styles(size_t *n);

/* Query parameters that identify the recipient on the page a link leads to. */
typedef struct sp_scan_param_rule {
    const char *name; /* exact, case-sensitive as the vendors write them */
    const char *vendor;
    const char *reason;
} sp_scan_param_rule_t;

const sp_scan_param_rule_t *sp_scan_rules_params(size_t *n);

/* The rule for the query parameter NAME (LEN bytes), or NULL. */
const sp_scan_param_rule_t *sp_scan_rules_match_param(const char *name, size_t len);

/* True when HOST and PATH (as in sp_scan_rules_match_host) are a share endpoint: a link that
 * carries a URL in a parameter without being a redirect, the page a share button shares. */
bool sp_scan_rules_is_share(const char *host, const char *path);

/* What a forward-detection selector names. */
typedef enum sp_scan_sel_kind {
    SP_SCAN_SEL_TYPE,  /* an element: blockquote */
    SP_SCAN_SEL_CLASS, /* .OutlookMessageHeader */
    SP_SCAN_SEL_ID,    /* #divRplyFwdMsg */
    SP_SCAN_SEL_ATTR,  /* [type=cite] */
} sp_scan_sel_kind_t;

/* A selector that matches only in a copy of the message that a mail client quoted or forwarded:
 * the markup the client wraps around the original. All strings are static. */
typedef struct sp_scan_forward_rule {
    sp_scan_sel_kind_t kind;
    const char *name;  /* element, class or id; ASCII case ignored */
    const char *value; /* SP_SCAN_SEL_ATTR: the attribute's value (ASCII case ignored), or NULL */
    /* The message's own HTML may use it too (a newsletter quotes with <blockquote>): it counts
     * only around the styled element, "blockquote #_t", not as the styled element itself. */
    bool ancestor_only;
    const char *shown;  /* as a selector: "div.OutlookMessageHeader" */
    const char *reason; /* which clients put it there, and when */
} sp_scan_forward_rule_t;

const sp_scan_forward_rule_t *sp_scan_rules_forward(size_t *n);

/* The forward rule for a simple selector of KIND: NAME (element, class or id; for an attribute,
 * its name) and, for an attribute, VALUE (NULL when the selector tests no value). NULL when none
 * matches. */
const sp_scan_forward_rule_t *sp_scan_rules_match_forward(sp_scan_sel_kind_t kind, const char *name,
                                                          const char *value);

/* Headers that ask the recipient's client to report the reading back. */
typedef struct sp_scan_header_rule {
    const char *header;
    const char *reason;
} sp_scan_header_rule_t;

const sp_scan_header_rule_t *sp_scan_rules_headers(size_t *n);

/* True when HOST equals DOMAIN or is a subdomain of it (ASCII case ignored). */
bool sp_scan_rules_host_is(const char *host, const char *domain);

#endif
