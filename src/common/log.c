/* log: leveled, structured log lines (logfmt or JSON) on standard error. */
/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sp_log_level_t min_level = SP_LOG_INFO;
static bool json_lines;
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

int sp_log_set_format(const char *name)
{
    if (0 == strcmp(name, "logfmt"))
        json_lines = false;
    else if (0 == strcmp(name, "json"))
        json_lines = true;
    else
        return -1;
    return 0;
}

/* Appends the JSON string of the bytes S[0..N) to OUT (bounded by CAP). */
static size_t json_string(char *out, size_t o, size_t cap, const char *s, size_t n)
{
    if (o + 2 >= cap)
        return o;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ('"' == c || '\\' == c) {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || 0x7f == c) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Rewrites logfmt FIELDS (key=value key="quoted \" value") as JSON members after a comma
 * into OUT from O. A quoted value loses sp_log_quote's escapes, then gets JSON's. */
static size_t json_fields(char *out, size_t o, size_t cap, const char *f)
{
    char value[2048];
    while (*f && o + 16 < cap) {
        while (' ' == *f)
            f++;
        const char *key = f;
        while (*f && '=' != *f && ' ' != *f)
            f++;
        size_t klen = (size_t)(f - key);
        if (!klen)
            break;
        size_t v = 0;
        bool quoted = false;
        if ('=' == *f) {
            f++;
            if ('"' == *f) {
                quoted = true;
                for (f++; *f && '"' != *f && v + 1 < sizeof(value); f++) {
                    int hi, lo;
                    if ('\\' == f[0] && f[1] && 'x' != f[1]) {
                        value[v++] = *++f;
                    } else if ('\\' == f[0] && 'x' == f[1] && (hi = hexval(f[2])) >= 0 &&
                               (lo = hexval(f[3])) >= 0) {
                        value[v++] = (char)(hi * 16 + lo);
                        f += 3;
                    } else {
                        value[v++] = *f;
                    }
                }
                if ('"' == *f)
                    f++;
            } else {
                while (*f && ' ' != *f && v + 1 < sizeof(value))
                    value[v++] = *f++;
            }
        }
        value[v] = '\0';
        out[o++] = ',';
        o = json_string(out, o, cap, key, klen);
        if (o + 1 < cap)
            out[o++] = ':';
        /* A bare integer stays a number; anything else is a string. */
        bool numeric = !quoted && v > 0 && v < 19;
        for (size_t i = 0; numeric && i < v; i++)
            numeric = (value[i] >= '0' && value[i] <= '9') || (0 == i && '-' == value[i] && v > 1);
        if (numeric && o + v < cap) {
            memcpy(out + o, value, v);
            o += v;
        } else {
            o = json_string(out, o, cap, value, v);
        }
    }
    return o;
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

    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    char formatted[2048] = "";
    if (fields && *fields) {
        va_list ap;
        va_start(ap, fields);
        vsnprintf(formatted, sizeof(formatted), fields, ap);
        va_end(ap);
    }
    int n;
    if (json_lines) {
        size_t o = (size_t)snprintf(
            line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        o = json_string(line, o, sizeof(line) - 3, msg, strlen(msg));
        o = json_fields(line, o, sizeof(line) - 3, formatted);
        line[o++] = '}';
        n = (int)o;
    } else {
        n = snprintf(line, sizeof(line), "ts=%s level=%s msg=%s", ts, level_names[level],
                     sp_log_quote(msg, quoted, sizeof(quoted)));
        if (formatted[0] && n > 0 && (size_t)n < sizeof(line) - 2) {
            line[n++] = ' ';
            int m = snprintf(line + n, sizeof(line) - (size_t)n, "%s", formatted);
            if (m > 0)
                n += m;
        }
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}
