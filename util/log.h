/*
 * log.h - leveled logging, one line per event on stderr.
 *
 * A line reads "2024-11-25T00:33:12.345Z INFO  message". util_log() tests the
 * level before any argument is evaluated or formatted, so a debug line costs
 * one comparison when debug logging is off. Lines are written with a single
 * write(2), so threads never interleave inside a line.
 */
#ifndef CODID_UTIL_LOG_H
#define CODID_UTIL_LOG_H

typedef enum util_log_level {
    UTIL_LOG_ERROR = 0,
    UTIL_LOG_WARN = 1,
    UTIL_LOG_INFO = 2,
    UTIL_LOG_DEBUG = 3
} util_log_level;

/* The current threshold; read by util_log(), set once at start-up. */
extern util_log_level util_log_threshold;

void util_log_set_level(util_log_level level);
/* "error", "warn", "info", "debug": 0 and *out set, or -1. */
int util_log_level_from_name(const char *name, util_log_level *out);
const char *util_log_level_name(util_log_level level);

void util_log_write(util_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define util_log(level, ...)                                                     \
    do {                                                                         \
        if ((level) <= util_log_threshold) util_log_write((level), __VA_ARGS__); \
    } while (0)

#endif
