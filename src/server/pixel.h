/* pixel: the tracking endpoints (the seed's URL, /o/ pixels, /c/ links, /i/ images) and their
 * answers. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_PIXEL_H
#define SP_PIXEL_H

#include "auth.h"
#include "engage.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "token.h"

/* The 1x1 transparent GIF every tracking request gets. */
extern const unsigned char sp_pixel_gif[43];

typedef struct sp_pixel sp_pixel_t;

typedef struct sp_pixel_options {
    const sp_config_t *cfg; /* --anonymize-ip, --sync-full, --answer-after store */
    sp_journal_t *journal;  /* where each open is recorded before it is answered */
    sp_ingest_t *ingest;    /* what --answer-after store waits for */
    sp_auth_t *auth;        /* visitor IDs, self-view cookies and addresses */
    sp_token_t *tokens;     /* opens the opaque URLs */
    sp_engage_t *engage;    /* the tracking block's held read-time images */
} sp_pixel_options_t;

/* The tracking endpoints with OPT's parts (borrowed until sp_pixel_free), and the shared
 * copies of what they send (the GIF's answer, the uploaded images). Out of memory aborts. */
sp_pixel_t *sp_pixel_new(const sp_pixel_options_t *opt);

/* Once the server has stopped (no answer sends an image any more). NULL is a no-op. */
void sp_pixel_free(sp_pixel_t *px);

/* Adds GET and HEAD of /spy-pixel.gif?campaign=ID&email=ADDR, /o/TOKEN.gif, /c/TOKEN (a
 * redirect) and /i/TOKEN.EXT. Each answers with its image (or redirect) whatever it is
 * sent, and a GET whose ID or token holds is recorded in the journal before the answer; a
 * tracked link whose token does not hold gets 404, never a Location. With --sync-full the
 * answer waits (parked) until the record is on disk, with --answer-after store until it is
 * in the store. */
void sp_pixel_routes(sp_http_routes_t *routes, sp_pixel_t *px);

#endif
