/* images: one shared, reference-counted copy of each uploaded tracking image in use. */
/* SPDX-License-Identifier: MIT */
#include "images.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An image is read from the store again after this long, so that a change to it (or its
 * removal) shows within a minute; a read per minute per image in use costs nothing. */
#define IMAGE_TTL_MS 60000
#define BUCKETS      1024

typedef struct entry {
    sp_image_t pub; /* first: an sp_image_t * is an entry * */
    atomic_uint refs;
    char id[72];
    char mime[64];
    int64_t loaded_ms;
    struct entry *prev, *next; /* most recently used first */
    struct entry *hnext;       /* in its bucket */
} entry_t;

struct sp_images {
    pthread_mutex_t lock;
    size_t max_bytes, bytes;
    entry_t *mru, *lru;
    entry_t *table[BUCKETS];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t bucket_of(const char *id)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = h * 33 + *p;
    return h % BUCKETS;
}

sp_images_t *sp_images_new(size_t max_bytes)
{
    sp_images_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    pthread_mutex_init(&c->lock, NULL);
    c->max_bytes = max_bytes;
    return c;
}

sp_image_t *sp_image_ref(sp_image_t *im)
{
    atomic_fetch_add(&((entry_t *)im)->refs, 1);
    return im;
}

void sp_image_release(sp_image_t *im)
{
    if (!im)
        return;
    entry_t *e = (entry_t *)im;
    if (1 == atomic_fetch_sub(&e->refs, 1)) {
        free((void *)e->pub.data);
        free(e);
    }
}

/* Takes E out of the cache, dropping the cache's reference. With the lock held. */
static void evict(sp_images_t *c, entry_t *e)
{
    entry_t **at = &c->table[bucket_of(e->id)];
    while (*at != e)
        at = &(*at)->hnext;
    *at = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->mru = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru = e->prev;
    c->bytes -= e->pub.len;
    sp_image_release(&e->pub);
}

void sp_images_free(sp_images_t *c)
{
    if (!c)
        return;
    while (c->mru)
        evict(c, c->mru);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static entry_t *find(sp_images_t *c, const char *id)
{
    for (entry_t *e = c->table[bucket_of(id)]; e; e = e->hnext)
        if (0 == strcmp(e->id, id))
            return e;
    return NULL;
}

static void to_front(sp_images_t *c, entry_t *e)
{
    if (c->mru == e)
        return;
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru = e->prev;
    e->prev = NULL;
    e->next = c->mru;
    c->mru->prev = e;
    c->mru = e;
}

int sp_images_get(sp_images_t *c, sp_store_t *store, const char *id, sp_image_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (strlen(id) >= sizeof(((entry_t *)0)->id))
        return 1; /* not an ID we make */
    int64_t now = now_ms();
    pthread_mutex_lock(&c->lock);
    entry_t *e = find(c, id);
    if (e && now - e->loaded_ms < IMAGE_TTL_MS) {
        to_front(c, e);
        *out = sp_image_ref(&e->pub);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);

    /* Read outside the lock: an image may be megabytes. Two threads that miss at once
     * both read it; the second keeps the first's copy. */
    entry_t *fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        abort();
    void *data = NULL;
    size_t len = 0;
    int rc = store->ops->image_get(store, id, fresh->mime, sizeof(fresh->mime), &data, &len, err,
                                   errlen);
    if (0 != rc) {
        free(fresh);
        return rc;
    }
    snprintf(fresh->id, sizeof(fresh->id), "%s", id);
    fresh->pub.data = data;
    fresh->pub.len = len;
    fresh->pub.mime = fresh->mime;
    fresh->loaded_ms = now;
    atomic_init(&fresh->refs, 1); /* the caller's */

    pthread_mutex_lock(&c->lock);
    e = find(c, id);
    if (e && e->loaded_ms >= now) { /* another thread's read, as fresh as ours */
        to_front(c, e);
        *out = sp_image_ref(&e->pub);
        pthread_mutex_unlock(&c->lock);
        sp_image_release(&fresh->pub);
        return 0;
    }
    if (e)
        evict(c, e); /* stale: its readers keep their copy */
    if (len <= c->max_bytes) {
        while (c->lru && c->bytes + len > c->max_bytes)
            evict(c, c->lru);
        size_t b = bucket_of(id);
        fresh->hnext = c->table[b];
        c->table[b] = fresh;
        fresh->next = c->mru;
        if (c->mru)
            c->mru->prev = fresh;
        c->mru = fresh;
        if (!c->lru)
            c->lru = fresh;
        c->bytes += len;
        atomic_fetch_add(&fresh->refs, 1); /* the cache's */
    }
    pthread_mutex_unlock(&c->lock);
    *out = &fresh->pub;
    return 0;
}
