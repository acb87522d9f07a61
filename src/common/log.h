/* log: leveled, structured log lines (logfmt or JSON) on standard error. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_LOG_H
#define SP_LOG_H

typedef enum sp_log_level {
    SP_LOG_DEBUG = 0,
    SP_LOG_INFO,
    SP_LOG_WARN,
    SP_LOG_ERROR,
} sp_log_level_t;

/* Lines below LEVEL are dropped. "debug", "info", "warn", "error"; -1 on a bad name. */
int sp_log_set_level(const char *name);

/* "logfmt" (the default) or "json": one object a line, {"ts", "level", "msg", and each
 * field as a member: a number when the value is one, else a string}. -1 on a bad name. */
int sp_log_set_format(const char *name);

/* Writes one line: ts=... level=... msg="MSG" followed by FIELDS, which the caller
 * formats as logfmt (key=value ...). Values that came from a request must go through
 * sp_log_quote first. Thread-safe: the line is written with one write(2). */
void sp_log(sp_log_level_t level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes S for a logfmt value into BUF: "..." with \" \\ and control bytes escaped, cut
 * to fit. Returns BUF. */
const char *sp_log_quote(const char *s, char *buf, unsigned long len);

#define sp_log_info(msg, ...)  sp_log(SP_LOG_INFO, msg, __VA_ARGS__)
#define sp_log_warn(msg, ...)  sp_log(SP_LOG_WARN, msg, __VA_ARGS__)
#define sp_log_error(msg, ...) sp_log(SP_LOG_ERROR, msg, __VA_ARGS__)
#define sp_log_debug(msg, ...) sp_log(SP_LOG_DEBUG, msg, __VA_ARGS__)

#endif
