/*
 * log.h - leveled logging, one line per event on stderr.
 *
 * A line reads "2024-11-25T00:33:12.345Z INFO  message". srv_log() tests the
 * level before any argument is evaluated or formatted, so a debug line costs
 * one comparison when debug logging is off. Lines are written with a single
 * write(2), so threads never interleave inside a line.
 */
#ifndef CODID_SERVER_LOG_H
#define CODID_SERVER_LOG_H

typedef enum srv_log_level {
    SRV_LOG_ERROR = 0,
    SRV_LOG_WARN = 1,
    SRV_LOG_INFO = 2,
    SRV_LOG_DEBUG = 3
} srv_log_level;

/* The current threshold; read by srv_log(), set once at start-up. */
extern srv_log_level srv_log_threshold;

void srv_log_set_level(srv_log_level level);
/* "error", "warn", "info", "debug": 0 and *out set, or -1. */
int srv_log_level_from_name(const char *name, srv_log_level *out);
const char *srv_log_level_name(srv_log_level level);

void srv_log_write(srv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define srv_log(level, ...)                                                    \
    do {                                                                       \
        if ((level) <= srv_log_threshold) srv_log_write((level), __VA_ARGS__); \
    } while (0)

#endif
