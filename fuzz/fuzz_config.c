/* fuzz_config: a --config file's key = value lines (config.c). */
/* SPDX-License-Identifier: MIT */
#include "../src/config.c"

#include "fuzz.h"

/*
 * The input is a configuration file, read by the same loop as --config FILE over a memory
 * stream. Read or refused, the settings must stay within their limits, an error must be a
 * message, and what the lists hold must be freed.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (0 == size)
        return 0; /* fmemopen wants a buffer */
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        abort();
    sp_config_t cfg;
    char err[512] = "";
    sp_config_defaults(&cfg);
    int rc = load_lines(&cfg, f, "fuzz.conf", err, sizeof(err));
    fclose(f);
    FUZZ_CHECK(0 == rc || (-1 == rc && err[0] && fuzz_terminated(err, sizeof(err))));
    FUZZ_CHECK(cfg.n_geoip <= SP_CONFIG_LIST_MAX && cfg.n_webhook <= SP_CONFIG_LIST_MAX &&
               cfg.n_trusted_proxy <= SP_CONFIG_LIST_MAX);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (OPT_STR == options[i].kind)
            FUZZ_CHECK(fuzz_terminated((char *)&cfg + options[i].offset, options[i].size));
    for (size_t i = 0; i < cfg.n_trusted_proxy; i++)
        FUZZ_CHECK(cfg.trusted_proxy[i].prefix <= 128);
    FUZZ_CHECK(cfg.threads >= 0 && cfg.max_connections >= 0 && cfg.timeout >= 0 &&
               cfg.batch_max >= 0 && cfg.retention >= 0 && cfg.self_ip_window >= 0);
    sp_config_free(&cfg);
    return 0;
}
