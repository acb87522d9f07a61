/* pixel: the tracking endpoints (the seed's URL, /o/ pixels, /c/ links) and their answers. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_PIXEL_H
#define SP_PIXEL_H

#include "http.h"

/* The 1x1 transparent GIF every tracking request gets. */
extern const unsigned char sp_pixel_gif[43];

/* Builds the shared image answer (with the no-cache headers). */
struct MHD_Response *sp_pixel_response_new(void);

/* GET /spy-pixel.gif?campaign=ID&email=ADDR */
enum MHD_Result sp_pixel_seed(sp_request_t *req);
/* GET /o/TOKEN.gif and GET /c/TOKEN; PATH is what follows the prefix. */
enum MHD_Result sp_pixel_opaque(sp_request_t *req, const char *path);
enum MHD_Result sp_pixel_click(sp_request_t *req, const char *path);
/* GET /i/TOKEN.EXT: an uploaded image; every load is an open. */
enum MHD_Result sp_pixel_image(sp_request_t *req, const char *path);

/* Sends the answer; called again for a parked request once its record is on disk
 * (--sync-full) or in the store (--answer-after store). */
enum MHD_Result sp_pixel_finish(sp_request_t *req);

/* The journal's synced and the ingest's indexed callback: resumes the parked connection
 * WAITER. */
void sp_pixel_resume(void *ctx, void *waiter);

#endif
