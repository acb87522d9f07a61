/* images: one shared, reference-counted copy of each uploaded tracking image in use. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_IMAGES_H
#define SP_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#include "store_ops.h"

typedef struct sp_images sp_images_t;

/* One image's bytes, read-only for its holders; freed when the last reference goes. */
typedef struct sp_image {
    const void *data;
    size_t len;
    const char *mime;
} sp_image_t;

/* A cache of at most MAX_BYTES of images (least recently used out first). An image taken
 * out while answers still send it lives until the last of them is done. */
sp_images_t *sp_images_new(size_t max_bytes);

/* Frees the cache; images still referenced stay valid until released. */
void sp_images_free(sp_images_t *c);

/* Image ID: from the cache, or read from STORE (this thread's connection) and kept. 0 with
 * *OUT (a reference: give it to sp_image_release), 1 when there is no such image, -1 with
 * ERR. Thread-safe. */
int sp_images_get(sp_images_t *c, sp_store_t *store, const char *id, sp_image_t **out, char *err,
                  size_t errlen);

/* Another reference to IM. */
sp_image_t *sp_image_ref(sp_image_t *im);

/* Drops a reference; the last one frees the bytes. Any thread; NULL is a no-op. */
void sp_image_release(sp_image_t *im);

#endif
