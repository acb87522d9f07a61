/* event: one recorded request (an open or a click) and its derived fields. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_EVENT_H
#define SP_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_fields.h"
#include "net.h"
#include "slab.h"

#define SP_ID_MAX          128 /* campaign and recipient IDs, bytes */
#define SP_HEADERS_MAX     64  /* headers kept per request; the rest are dropped */
#define SP_HEADER_NAME_MAX 128
#define SP_HEADER_MAX      4096 /* bytes kept of one header value */
#define SP_FIELD_MAX       128  /* derived text fields */
#define SP_TARGET_MAX      2047 /* a click's destination, bytes */

/* spypixel's own cookies. An event keeps that a request carried one (its name), never its
 * value: the session and the known-browser token open the dashboard, and the self-view
 * cookie marks the sender's browser. */
#define SP_COOKIE_SESSION "sp_session"
#define SP_COOKIE_SELF    "sp_self"
#define SP_COOKIE_DEVICE  "sp_device"
/* What stands in an event for the value of a credential it does not keep. */
#define SP_EVENT_REMOVED "[removed]"

/* What a request was. A print or a forward is a load of the tracking block's print or forward
 * image. A read is no event of its own: the read time of an open of the block, which the
 * writer folds into that open (found by its campaign, recipient, visitor and time). */
typedef enum sp_event_kind {
    SP_EVENT_OPEN = 0,
    SP_EVENT_CLICK = 1,
    SP_EVENT_PRINT = 2,
    SP_EVENT_FORWARD = 3,
    SP_EVENT_READ = 4,
} sp_event_kind_t;

/* A kind's name in JSON and CSV ("open", "click", "print", "forward", "read"). */
const char *sp_event_kind_name(int64_t kind);

/* How an open's read time is known (the engage record of an open or a read). */
typedef enum sp_event_engage {
    SP_ENGAGE_NONE = 0,    /* a lone pixel: no read time asked for */
    SP_ENGAGE_PENDING = 1, /* an open of the block whose image is being held: its read follows */
    SP_ENGAGE_UNMEASURED =
        2, /* an open of the block answered at once (a proxy, a machine, the cap) */
    SP_ENGAGE_MEASURED = 3, /* a read: READ_MS is how long the client kept the image */
    SP_ENGAGE_CUT = 4,      /* a read cut short by the server (shutdown): READ_MS a lower bound */
} sp_event_engage_t;

/* What became of an event the writer indexed. */
typedef enum sp_event_outcome {
    SP_OUTCOME_PENDING = 0,
    SP_OUTCOME_STORED,
    SP_OUTCOME_UNKNOWN_CAMPAIGN, /* its campaign does not exist: kept apart, to be adopted */
    SP_OUTCOME_UNKNOWN_REFUSED,  /* the same, but the store keeps as many unknown campaigns as it
                                  * may: counted, not kept */
    SP_OUTCOME_ADOPTED_ALREADY,  /* an adopted open whose kept copy was adopted before: not
                                  * stored twice */
    SP_OUTCOME_UNMATCHED,        /* a read whose open is not stored (erased, expired, an unknown
                                  * campaign's): nothing to fold it into */
    SP_OUTCOME_FAILED,
} sp_event_outcome_t;

/* The kinds of field (event_fields.h). */
typedef enum sp_field_kind {
    SP_FIELD_ID,
    SP_FIELD_TIME,
    SP_FIELD_KIND,
    SP_FIELD_CLASS,
    SP_FIELD_TEXT,
    SP_FIELD_TEXT_OR_NULL,
    SP_FIELD_OBJECT,
    SP_FIELD_COORD,
    SP_FIELD_DURATION,
} sp_field_kind_t;

#define SP_FIELD_C_ID           int64_t
#define SP_FIELD_C_TIME         int64_t
#define SP_FIELD_C_KIND         int64_t
#define SP_FIELD_C_CLASS        int64_t
#define SP_FIELD_C_TEXT         const char *
#define SP_FIELD_C_TEXT_OR_NULL const char *
#define SP_FIELD_C_OBJECT       const char *
#define SP_FIELD_C_COORD        double
#define SP_FIELD_C_DURATION     int64_t

/* One stored event: the fields of event_fields.h, in its order. Read back from a store, its
 * strings are borrowed for the callback's duration; made from an event (sp_event_row), the
 * event holds them. */
typedef struct sp_event_row {
#define SP_EVENT_ROW_MEMBER(member, name, kind, csv, from) SP_FIELD_C_##kind member;
    SP_EVENT_FIELDS(SP_EVENT_ROW_MEMBER)
#undef SP_EVENT_ROW_MEMBER
} sp_event_row_t;

/* Each field's index: SP_EVENT_FIELD_<member>. */
enum {
#define SP_EVENT_FIELD_INDEX(member, name, kind, csv, from) SP_EVENT_FIELD_##member,
    SP_EVENT_FIELDS(SP_EVENT_FIELD_INDEX)
#undef SP_EVENT_FIELD_INDEX
        SP_EVENT_N_FIELDS
};

/* A field as the code that loops over them sees it. */
typedef struct sp_event_field {
    const char *name; /* column, JSON key, CSV header */
    sp_field_kind_t kind;
    int csv;       /* CSV column from 1; 0: not in the CSV */
    size_t offset; /* of its member in sp_event_row_t */
} sp_event_field_t;

/* The fields, in event_fields.h's order. */
extern const sp_event_field_t sp_event_fields[SP_EVENT_N_FIELDS];

/* Field F of ROW by its kind's C type (ID, TIME, KIND, CLASS: int; the three text kinds: text;
 * COORD: coord), and the same to set it. */
static inline int64_t sp_event_row_int(const sp_event_row_t *row, const sp_event_field_t *f)
{
    return *(const int64_t *)(const void *)((const char *)row + f->offset);
}
static inline const char *sp_event_row_text(const sp_event_row_t *row, const sp_event_field_t *f)
{
    return *(const char *const *)(const void *)((const char *)row + f->offset);
}
static inline double sp_event_row_coord(const sp_event_row_t *row, const sp_event_field_t *f)
{
    return *(const double *)(const void *)((const char *)row + f->offset);
}
static inline void sp_event_row_set_int(sp_event_row_t *row, const sp_event_field_t *f, int64_t v)
{
    *(int64_t *)(void *)((char *)row + f->offset) = v;
}
static inline void sp_event_row_set_text(sp_event_row_t *row, const sp_event_field_t *f,
                                         const char *v)
{
    *(const char **)(void *)((char *)row + f->offset) = v;
}
static inline void sp_event_row_set_coord(sp_event_row_t *row, const sp_event_field_t *f, double v)
{
    *(double *)(void *)((char *)row + f->offset) = v;
}

typedef struct sp_header {
    const char *name; /* points into the event's own buffer */
    const char *value;
} sp_header_t;

typedef struct sp_event {
    int64_t id;    /* set by the store */
    int64_t ts_ms; /* UTC milliseconds since the epoch */
    sp_event_kind_t kind;
    int klass; /* sp_class_t, derived by enrichment */
    char campaign[SP_ID_MAX + 1];
    char recipient[SP_ID_MAX + 1]; /* "" when the URL named none */

    /* What the writer reads of an event a batch after the reader made it, here together
     * with the above: kept apart by the kilobyte of texts enrichment derives (below, which the
     * writer reads as the row's copies), these were a dozen cache lines an event, each a miss
     * as the tally and the writer went over the batch (4% of one core's realistic replay). */
    bool first_view; /* set by the store: the recipient's (or client's) first counted open */
    /* Set by the store: the first open of a campaign that did not exist, kept apart under a
     * new unknown ID or (auto_create) its campaign created; and how many older opens kept
     * under its unknown ID made way for the newer ones. */
    bool campaign_new;
    uint32_t dropped;

    /* Set by the writer. */
    sp_event_outcome_t outcome;
    int64_t journal_end; /* the journal position just past this event's record */
    size_t held;         /* set by the ingest's reader: sp_event_held as it queued the event */

    /* Its stored form (sp_event_row), made on first use and kept; ROW_TEXTS holds its texts. */
    bool row_made;
    sp_event_row_t row;
    char *row_texts;
    /* Its row's headers as the stores keep them (sp_intern_split_event): split once tried; the
     * set and the apart values in one block, HEADERS_SET NULL when the headers are kept whole.
     * Forgotten with the row. */
    bool headers_split;
    char *headers_set, *headers_apart;
    /* Its row's user agent and header set as the stores' caches of interned texts look them up
     * (sp_intern_event_keys): each one's length and hash, made once by the ingest's reader, so
     * that the writer reads each text once (to compare it) rather than three times. Forgotten
     * with the row. */
    bool keys_made;
    size_t agent_len, set_len;
    uint64_t agent_hash, set_hash;
    uint64_t agent_token, set_token; /* sp_intern_seen_token's, 0 when none */
    /* An open kept apart under an unknown campaign and now adopted: its row among the kept
     * opens, which the store takes out as it stores the open (0: none). */
    int64_t adopt_row;

    /* A click's destination, in the header storage (sp_event_set_target); "" when none. Not an
     * array of its own: 2 KB of every open, held by the thousands while a batch is stored. */
    const char *target;
    sp_net_addr_t addr;
    char ip[SP_NET_ADDR_MAX];
    char visitor[40]; /* first-party visitor cookie value, "" when none */
    /* The tracking block's read time: how it is known, and for a read its milliseconds (-1:
     * none). */
    sp_event_engage_t engage;
    int64_t read_ms;

    /* Every request header, in order, names and values borrowed from the event. */
    /* Its slots follow the header storage: SP_HEADERS_MAX of them, as many as it holds once
     * decoded (a whole array in the struct was 1 KB of every event held for its batch). */
    sp_header_t *headers;
    size_t n_headers, header_slots;
    const char *user_agent; /* borrowed from headers, or NULL */
    const char *referer;
    const char *cookie;

    bool self_referer, self_cookie, self_ip;

    /* Derived by enrichment. */
    char browser[SP_FIELD_MAX], browser_version[SP_FIELD_MAX];
    char os[SP_FIELD_MAX], os_version[SP_FIELD_MAX];
    char device[SP_FIELD_MAX], device_brand[SP_FIELD_MAX], device_model[SP_FIELD_MAX];
    char arch[32];
    char country[4], region[SP_FIELD_MAX], city[SP_FIELD_MAX];
    char geo_label[16]; /* "private", "loopback", "unknown"... or "" */
    double latitude, longitude;
    bool has_coords;
    char rule[64];          /* the class rule that decided */
    char via[SP_FIELD_MAX]; /* proxy or scanner that fetched it, "" when none */
    char engagement[16];    /* "glanced"... "unmeasured" (sp_tally_engagement), "" when none */

    /* The slab it was made in (sp_event_decode_in), which its row's texts and split headers
     * are carved from too when made on the slab's thread; NULL: malloc's. */
    sp_slab_t *slab;
    size_t buf_used, buf_size;
    char buf[]; /* header names and values */
} sp_event_t;

/* Asks memory for the lines of EV the writer reads in its passes over a batch (its IDs, kind,
 * class, outcome, and whether its row is made), some events ahead of their use: a batch's
 * events were made long before, and a pass that does little with each waited on each. */
static inline void sp_event_prefetch(const sp_event_t *ev)
{
    __builtin_prefetch(ev, 1);
    __builtin_prefetch(&ev->row_made, 1);
}

/* Asks memory for what storing EV's row reads (the row, its texts, its split headers: a
 * couple of kilobytes made a batch before), some events ahead of its insert, whose reads each
 * waited on memory in turn: with TEXTS false, the lines that say where the texts are (a few
 * events sooner); with TEXTS true, the row and its texts. */
void sp_event_prefetch_row(const sp_event_t *ev, bool texts);

/* Asks memory for what freeing EV reads and writes, some events ahead of its free: with BLOCKS
 * false, its own block's header and the lines that say where its other blocks are (a few
 * events sooner); with BLOCKS true, those blocks' headers. */
void sp_event_prefetch_free(const sp_event_t *ev, bool blocks);

/* Allocates an event with BUF_SIZE bytes of header storage. Aborts when out of memory.
 * The caller frees it with sp_event_free. */
sp_event_t *sp_event_new(size_t buf_size);
void sp_event_free(sp_event_t *ev);

/* EV as it is stored and shown: every field of event_fields.h, taken from the event the first
 * time (so, once enrichment is done: later changes to EV but its id are not seen), with every
 * text made well-formed UTF-8, each ill-formed part replaced by U+FFFD (Unicode's "maximal
 * subpart" practice, as WHATWG's decoder does): the one repair of request text, made before a
 * store, a stream or a webhook sees it. Its texts are copies in one block EV keeps with it
 * until freed (or until sp_event_row_forget). */
const sp_event_row_t *sp_event_row(sp_event_t *ev);

/* EV's row, if made, is made again at its next use: for a change to a field the row holds. */
void sp_event_row_forget(sp_event_t *ev);

/* The bytes of memory EV holds: itself with its header storage, its row's texts and its split
 * headers, as the allocator counts them. */
size_t sp_event_held(const sp_event_t *ev);

/* For the stores' statements: the fields' names joined by ", " into COLS (LEN bytes), the ID
 * first when WITH_ID (the store assigns it: it is no column of an INSERT); and into PARAMS
 * (PLEN bytes; may be NULL) a numbered parameter per field but the ID, "?1, ?2..." with MARK
 * '?' (SQLite), "$1, $2..." with '$' (PostgreSQL). Aborts when they do not fit. */
void sp_event_fields_sql(char *cols, size_t len, bool with_id, char *params, size_t plen,
                         char mark);

/* The journal's form of an event: what the request thread knew (time, IDs, address,
 * visitor, self-view evidence, headers, an adopted open's row), not what enrichment derives
 * later. Native byte order: a journal is read back on the machine that wrote it. */
#define SP_EVENT_ENCODED_MAX                                                                       \
    (72 + 5 * (2 + SP_TARGET_MAX + 1) + SP_HEADERS_MAX * (4 + SP_HEADER_NAME_MAX + SP_HEADER_MAX))

/* Writes EV's journal form into BUF (at least SP_EVENT_ENCODED_MAX bytes); returns its
 * length. */
size_t sp_event_encode(const sp_event_t *ev, unsigned char *buf);

/* A new event from a journal form, or NULL when LEN bytes at BUF are not one. */
sp_event_t *sp_event_decode(const void *buf, size_t len);
/* The same, made in SLAB (NULL: malloc's): for the many events of a batch, made one after
 * another and freed together. Freed with sp_event_free as any other. */
sp_event_t *sp_event_decode_in(sp_slab_t *slab, const void *buf, size_t len);

/* Empties EV for reuse as a request thread's scratch event. */
void sp_event_reset(sp_event_t *ev);

/* Sets EV's target to TEXT, cut to SP_TARGET_MAX bytes, copied into its header storage. -1
 * (the target left "") when the storage has no room for it. */
int sp_event_set_target(sp_event_t *ev, const char *text);

/* Copies a header into the event, cut to the limits above, without spypixel's own
 * credentials (see sp_event_scrub_header). Remembers User-Agent, Referer and Cookie.
 * Returns 0, or -1 when the event holds SP_HEADERS_MAX already. */
int sp_event_add_header(sp_event_t *ev, const char *name, size_t name_len, const char *value,
                        size_t value_len);

/* Credentials of spypixel's own that a request may carry to a tracking URL: the values of
 * Authorization, Proxy-Authorization and X-CSRF-Token, and the values of its cookies in
 * Cookie. When header NAME's (NAME_LEN bytes) VALUE (LEN bytes) holds one, writes the value to keep
 * instead into OUT (OUTLEN bytes, NUL-terminated, cut to fit) and returns its length: the header
 * with SP_EVENT_REMOVED for its value, or the cookies with SP_EVENT_REMOVED for the values
 * of ours (each of ours kept once). Returns -1 when VALUE is to be kept as it is. */
long sp_event_scrub_header(const char *name, size_t name_len, const char *value, size_t len,
                           char *out, size_t outlen);

/* A stored headers object (COOKIES false) or cookies object (true), in JSON, with the values
 * sp_event_scrub_header removes replaced: a malloc'd string the caller frees, or NULL when
 * JSON holds none of them (or is not a JSON object) and stays as it is. For stores written
 * before events were scrubbed. */
char *sp_event_scrub_json(const char *json, bool cookies);

/* The first value of header NAME (case-insensitive), or NULL. */
const char *sp_event_header(const sp_event_t *ev, const char *name);

/* Same, shaped for sp_classify_input_t's header callback. */
const char *sp_event_header_cb(const void *ev, const char *name);

/* True when S is a valid campaign or recipient ID: 1..128 bytes of letters, digits and
 * - _ @ + . */
bool sp_event_id_valid(const char *s);

/* The value of cookie NAME in a Cookie header into BUF; 0 or -1 when absent. */
int sp_event_cookie(const char *cookie_header, const char *name, char *buf, size_t len);

/* JSON of the headers ({"Name": "value", ...}, repeated names joined with ", ") and of
 * the cookies ({"name": "value"}). Return malloc'd strings; the caller frees. */
char *sp_event_headers_json(const sp_event_t *ev);
char *sp_event_cookies_json(const sp_event_t *ev);

/* Milliseconds since the epoch, UTC. */
int64_t sp_now_ms(void);

/* TIMEOUT_MS from now on CLOCK_MONOTONIC, for pthread_cond_timedwait on a condition
 * variable set to that clock. */
struct timespec;
void sp_deadline(struct timespec *deadline, int timeout_ms);

/* ISO 8601 "2026-11-25T16:00:00.123Z" into BUF (at least 25 bytes). */
void sp_format_ts(int64_t ts_ms, char *buf, size_t len);

#endif
