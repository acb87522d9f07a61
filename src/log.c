/* log: leveled, structured (logfmt) log lines on standard error. */
/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sp_log_level_t min_level = SP_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int sp_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (0 == strcmp(name, level_names[i])) {
            min_level = (sp_log_level_t)i;
            return 0;
        }
    return -1;
}

const char *sp_log_quote(const char *s, char *buf, unsigned long len)
{
    size_t o = 0;
    if (len < 3) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s && o + 5 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ('"' == c || '\\' == c) {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || 0x7f == c) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

void sp_log(sp_log_level_t level, const char *msg, const char *fields, ...)
{
    if (level < min_level)
        return;

    char line[2048], quoted[512];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);

    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, level_names[level],
                     sp_log_quote(msg, quoted, sizeof(quoted)));
    if (fields && *fields && n > 0 && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fields);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fields, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}
