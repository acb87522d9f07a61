/* live: Server-Sent Events to dashboards, fed by the writer after each commit. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_LIVE_H
#define SP_LIVE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "event.h"

typedef struct sp_live sp_live_t;
typedef struct sp_live_sub sp_live_sub_t;

/* Starts the hub and its heartbeat thread (a ": ping" comment every PING_S seconds keeps
 * proxies from closing idle streams and finds clients that went away). */
sp_live_t *sp_live_new(int ping_s);

/* Ends every stream: their connections are resumed and finish. Call before the HTTP
 * daemon stops (it must not stop with suspended connections). */
void sp_live_close(sp_live_t *live);

/* Frees the hub, after the daemon has stopped and so every stream is gone. */
void sp_live_free(sp_live_t *live);

/* Sends one SSE message (TEXT is "event: ...\ndata: ...\n\n") to the streams of CAMPAIGN
 * and to the all-campaigns streams. A slow stream whose buffer is full loses the message
 * and is told with an "event: overflow" so that the page reloads. */
void sp_live_publish(sp_live_t *live, const char *campaign, const char *text, size_t len);

/* The writer's commit callback (sp_ingest_commit_fn, CTX the hub): each stored event, as the
 * API shows it (sp_serialize_event), to the streams of its campaign as "event: open" or
 * "event: click". Nothing is built when no one listens. */
void sp_live_on_commit(void *ctx, sp_event_t *const *evs, size_t n);

/* One subscriber's side, whatever carries its bytes: the messages of CAMPAIGN ("" for all
 * campaigns), up to 256 KiB behind (then one "event: overflow" and the end). */
typedef void (*sp_live_wake_fn)(void *ctx);

/* Subscribes to CAMPAIGN; its first bytes (the opening: "retry: 2000\n: open\n\n") are
 * there at once. When sp_live_read finds nothing, it calls SLEEP(CTX) and, once something
 * comes (or the hub closes), WAKE(CTX), once: both under the hub's lock, so they must not
 * call back into it. NULL when the hub is closing or holds 256 subscribers. */
sp_live_sub_t *sp_live_subscribe(sp_live_t *live, const char *campaign, sp_live_wake_fn sleep,
                                 sp_live_wake_fn wake, void *ctx);

/* Takes up to MAX bytes of what SUB is sent into BUF: how many; 0 when there is nothing yet
 * (SUB is asleep until its WAKE); -1 when the stream has ended (the hub closed, or SUB fell
 * 256 KiB behind and was sent "event: overflow"). */
ssize_t sp_live_read(sp_live_sub_t *sub, char *buf, size_t max);

/* Ends SUB and frees it. NULL is a no-op. */
void sp_live_unsubscribe(sp_live_sub_t *sub);

/* A response streaming CAMPAIGN's messages ("" for all campaigns) to CONN. The caller
 * queues it with MHD_queue_response and destroys its reference. NULL when the hub is
 * closing or full. */
struct MHD_Response *sp_live_stream(sp_live_t *live, struct MHD_Connection *conn,
                                    const char *campaign);

#endif
