/* log: one line per event, key=value fields, to stderr. Never log a secret,
 * an API key or a whole payload. */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF };

/* Sets the lowest level printed (default INFO). Call before starting threads. */
void log_set_level(enum log_level level);
/* Parses "debug|info|warn|error|off". Returns 0 and sets *out, or -1. */
int log_parse_level(const char *s, enum log_level *out);
/* The name log_parse_level accepts for level. */
const char *log_level_name(enum log_level level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
