/* fuzz_config: a --config file's key = value lines (config.c). */
/* SPDX-License-Identifier: MIT */
#include "../src/common/config.c"

#include "fuzz.h"

/*
 * The input is a configuration file, read by the same loop as --config FILE over a memory
 * stream. Read or refused, the settings must stay within their limits, an error must be a
 * message, and what the lists hold must be freed. And a comment changes nothing, however
 * long: the file read again after a comment line made of its own bytes gives the same
 * settings, or is refused as well.
 */

/* Reads the SIZE bytes at DATA into CFG (defaults first); the loader's answer. */
static int load(const void *data, size_t size, sp_config_t *cfg, char *err, size_t errlen)
{
    sp_config_defaults(cfg);
    err[0] = '\0';
    if (0 == size)
        return 0; /* fmemopen wants a buffer; an empty file sets nothing */
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        abort();
    int rc = load_lines(cfg, f, "fuzz.conf", err, errlen);
    fclose(f);
    return rc;
}

static void check_limits(const sp_config_t *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (OPT_STRS == options[i].kind || OPT_CIDRS == options[i].kind)
            FUZZ_CHECK(*(const size_t *)((const char *)cfg + options[i].count) <=
                       SP_CONFIG_LIST_MAX);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (OPT_STR == options[i].kind)
            FUZZ_CHECK(fuzz_terminated((const char *)cfg + options[i].offset, options[i].size));
    for (size_t i = 0; i < cfg->n_trusted_proxy; i++)
        FUZZ_CHECK(cfg->trusted_proxy[i].prefix <= 128);
    FUZZ_CHECK(cfg->threads >= 0 && cfg->max_connections >= 0 && cfg->timeout >= 0 &&
               cfg->batch_max >= 0 && cfg->retention >= 0 && cfg->self_ip_window >= 0);
}

static void check_same(const sp_config_t *a, const sp_config_t *b)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        const char *pa = (const char *)a + o->offset, *pb = (const char *)b + o->offset;
        switch (o->kind) {
        case OPT_STR:
            FUZZ_CHECK(0 == strcmp(pa, pb));
            break;
        case OPT_INT:
            FUZZ_CHECK(*(const int *)pa == *(const int *)pb);
            break;
        case OPT_BOOL:
            FUZZ_CHECK(*(const bool *)pa == *(const bool *)pb);
            break;
        case OPT_STRS:
        case OPT_CIDRS: {
            size_t n = *(const size_t *)((const char *)a + o->count);
            FUZZ_CHECK(n == *(const size_t *)((const char *)b + o->count));
            for (size_t k = 0; k < n; k++)
                if (OPT_STRS == o->kind) {
                    FUZZ_CHECK(0 == strcmp(((char *const *)pa)[k], ((char *const *)pb)[k]));
                } else {
                    const sp_net_cidr_t *ca = (const sp_net_cidr_t *)pa + k,
                                        *cb = (const sp_net_cidr_t *)pb + k;
                    FUZZ_CHECK(0 == memcmp(ca->addr.b, cb->addr.b, 16) && ca->prefix == cb->prefix);
                }
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sp_config_t cfg, again;
    char err[512], err2[512];
    int rc = load(data, size, &cfg, err, sizeof(err));
    FUZZ_CHECK(0 == rc || (-1 == rc && err[0] && fuzz_terminated(err, sizeof(err))));
    check_limits(&cfg);

    /* "#" and the input's own bytes, without line ends and NULs, to past 4 KiB. */
    size_t cap = 4200 + size;
    char *file = malloc(cap + size), *p = file;
    if (!file)
        abort();
    *p++ = '#';
    while ((size_t)(p - file) < 4100) {
        size_t before = (size_t)(p - file);
        for (size_t i = 0; i < size; i++)
            if ('\n' != data[i] && '\0' != data[i])
                *p++ = (char)data[i];
        if ((size_t)(p - file) == before)
            *p++ = 'x';
    }
    *p++ = '\n';
    memcpy(p, data, size);
    int rc2 = load(file, (size_t)(p - file) + size, &again, err2, sizeof(err2));
    FUZZ_CHECK(rc2 == rc);
    if (0 == rc)
        check_same(&cfg, &again);
    free(file);
    sp_config_free(&again);
    sp_config_free(&cfg);
    return 0;
}
