/* test_images: uploaded images are served from one shared copy, within the cache's bound. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "images.h"
#include "store.h"

typedef struct {
    char dir[64];
    sp_config_t cfg;
    sp_store_t *store;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/spypixel-images-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    sp_config_defaults(&fx->cfg);
    snprintf(fx->cfg.data_dir, sizeof(fx->cfg.data_dir), "%s", fx->dir);
    char err[512];
    fx->store = sp_store_open(&fx->cfg, err, sizeof(err));
    if (!fx->store) {
        print_error("%s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    sp_store_close(fx->store);
    sp_config_free(&fx->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (0 != system(cmd))
        return -1;
    free(fx);
    return 0;
}

static void put(fixture_t *fx, const char *id, size_t len, char fill)
{
    char err[256];
    char *data = malloc(len);
    memset(data, fill, len);
    assert_int_equal(0, fx->store->ops->campaign_create(fx->store, "c", 1, err, sizeof(err)) < 0);
    assert_int_equal(
        0, fx->store->ops->image_put(fx->store, id, "c", "image/png", data, len, err, sizeof(err)));
    free(data);
}

static sp_image_t *get(sp_images_t *c, fixture_t *fx, const char *id)
{
    char err[256];
    sp_image_t *im = NULL;
    assert_int_equal(0, sp_images_get(c, fx->store, id, &im, err, sizeof(err)));
    assert_non_null(im);
    return im;
}

static void test_readers_share_one_copy(void **state)
{
    fixture_t *fx = *state;
    put(fx, "a", 1000, 'a');
    sp_images_t *c = sp_images_new(1 << 20);
    sp_image_t *r1 = get(c, fx, "a"), *r2 = get(c, fx, "a"), *r3 = sp_image_ref(r1);
    assert_ptr_equal(r1->data, r2->data);
    assert_int_equal(1000, r1->len);
    assert_string_equal("image/png", r1->mime);
    assert_int_equal('a', ((const char *)r1->data)[999]);
    sp_image_release(r1);
    sp_image_release(r2);
    sp_image_release(r3);
    sp_image_t *r4 = get(c, fx, "a"); /* still cached with no reader */
    assert_int_equal('a', ((const char *)r4->data)[0]);
    sp_image_release(r4);
    sp_images_free(c);
}

static void test_absent(void **state)
{
    fixture_t *fx = *state;
    sp_images_t *c = sp_images_new(1 << 20);
    char err[256];
    sp_image_t *im = (sp_image_t *)1;
    assert_int_equal(1, sp_images_get(c, fx->store, "nope", &im, err, sizeof(err)));
    assert_null(im);
    sp_image_release(NULL);
    sp_images_free(c);
}

static void test_bounded_least_recently_used_out(void **state)
{
    fixture_t *fx = *state;
    put(fx, "a", 1000, 'a');
    put(fx, "b", 1000, 'b');
    put(fx, "c", 1000, 'c');
    sp_images_t *c = sp_images_new(2500);
    sp_image_t *a = get(c, fx, "a");
    const void *a_data = a->data;
    sp_image_release(get(c, fx, "b"));
    sp_image_release(get(c, fx, "a")); /* a used last: b is the least recently used */
    sp_image_t *b_held = get(c, fx, "b");
    sp_image_release(get(c, fx, "c")); /* over 2500 bytes: a goes, held or not */
    sp_image_t *a2 = get(c, fx, "a");  /* read again: b goes, still held */
    assert_ptr_not_equal(a_data, a2->data);
    /* Copies taken out of the cache stay whole for whoever still sends them. */
    assert_int_equal('a', ((const char *)a->data)[999]);
    assert_int_equal('b', ((const char *)b_held->data)[999]);
    sp_image_release(a);
    sp_image_release(a2);
    sp_image_release(b_held);
    sp_images_free(c);
}

static void test_larger_than_the_cache(void **state)
{
    fixture_t *fx = *state;
    put(fx, "big", 5000, 'z');
    sp_images_t *c = sp_images_new(4096);
    sp_image_t *x = get(c, fx, "big"), *y = get(c, fx, "big");
    assert_int_equal(5000, x->len);
    assert_ptr_not_equal(x->data, y->data); /* served, not kept */
    sp_image_release(x);
    sp_images_free(c);
    assert_int_equal('z', ((const char *)y->data)[4999]); /* outlives the cache */
    sp_image_release(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_share_one_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_least_recently_used_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_larger_than_the_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
