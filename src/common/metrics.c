/* metrics: process-wide counters, served in Prometheus text format at /metrics. */
/* SPDX-License-Identifier: MIT */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "classify.h"

sp_metrics_t sp_metrics;

char *sp_metrics_render(const char *extra)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        abort();
#define SP_METRIC_PRINT(name, help)                                                                \
    fprintf(f,                                                                                     \
            "# HELP spypixel_" #name "_total " help "\n# TYPE spypixel_" #name                     \
            "_total counter\nspypixel_" #name "_total %llu\n",                                     \
            (unsigned long long)atomic_load(&sp_metrics.name));
    SP_METRICS(SP_METRIC_PRINT)
#undef SP_METRIC_PRINT
    fprintf(f, "# HELP spypixel_events_total recorded events by class\n"
               "# TYPE spypixel_events_total counter\n");
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        fprintf(f, "spypixel_events_total{class=\"%s\"} %llu\n", sp_class_name((sp_class_t)i),
                (unsigned long long)atomic_load(&sp_metrics.class_events[i]));
    if (extra)
        fputs(extra, f);
    fclose(f);
    return out;
}
