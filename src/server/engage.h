/* engage: the tracking block's read-time image, held open a frame a second to time the read. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_ENGAGE_H
#define SP_ENGAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "http.h"
#include "journal.h"

/*
 * An open of the block's image is journaled at once, as every open is; its answer is then an
 * animated GIF of one transparent pixel that gets a frame every FRAME_MS and ends by END_MS. How
 * long the client kept reading it (until its connection closed, or the end) is the open's read
 * time, journaled as a record of its own (an SP_EVENT_READ) when the answer ends, which the
 * writer folds into the open. A crash while it is held loses the read time, never the open.
 *
 * The answer is an http held answer (sp_http_held_response): between frames it waits
 * (sp_http_held_wait from its reader, sp_http_held_resume from this module's one thread), its
 * connection parked by http: it costs its socket,
 * libmicrohttpd's connection and a small record here, and no request thread's time. The thread
 * resumes each connection when its next frame is due, and polls the suspended sockets for a
 * client that hung up (libmicrohttpd does not see a suspended connection's close). At most
 * max_held are held at once; past that the image is the plain one and the open unmeasured.
 */

typedef struct sp_engage sp_engage_t;

typedef struct sp_engage_options {
    sp_journal_t *journal; /* where the reads go */
    int max_held;          /* held at once; 0: none is held, every open of the block unmeasured */
    int frame_ms;          /* between frames (1000) */
    int end_ms;            /* the image ends this long after the open (20000) */
} sp_engage_options_t;

/* Starts the module's thread. NULL with a message in ERR when it cannot. */
sp_engage_t *sp_engage_new(const sp_engage_options_t *opt, char *err, size_t errlen);

/* Ends every held image now (a read then is cut short: SP_ENGAGE_CUT) and holds no more. For
 * the shutdown, before the daemons stop. */
void sp_engage_close(sp_engage_t *e);

/* Joins the thread and frees E (NULL: nothing). After the daemons have stopped. */
void sp_engage_free(sp_engage_t *e);

/* Whether a client may be timed: not a caching image proxy, which fetches the whole image at
 * once whatever its reader does. The writer decides the rest from the open's class. */
bool sp_engage_measurable(const char *user_agent);

/* Takes a place among the held images for an open; false when they are at the cap (or E is
 * closed, or NULL). A place taken is given back by the response's end. */
bool sp_engage_reserve(sp_engage_t *e);

/* The held image's answer to REQ for the open OPEN (its time, campaign, recipient, visitor and
 * address are copied), with a place reserved. The caller adds headers, queues it and
 * destroys its reference, as for any response. Aborts when out of memory. */
struct MHD_Response *sp_engage_response(sp_engage_t *e, sp_request_t *req, const sp_event_t *open);

/* Images held now. */
int sp_engage_held(sp_engage_t *e);

#endif
