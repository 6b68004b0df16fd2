/*
 * log.c - see log.h. Lines longer than LOG_LINE_MAX are cut, never split:
 * a log line is one event.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

util_log_level util_log_threshold = UTIL_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void util_log_set_level(util_log_level level) {
    util_log_threshold = level;
}

int util_log_level_from_name(const char *name, util_log_level *out) {
    for (int i = 0; i <= UTIL_LOG_DEBUG; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (util_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *util_log_level_name(util_log_level level) {
    return level >= UTIL_LOG_ERROR && level <= UTIL_LOG_DEBUG ? level_names[level] : "?";
}

void util_log_write(util_log_level level, const char *fmt, ...) {
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    len += (size_t)snprintf(line + len, sizeof line - len, ".%03ldZ %s ", ts.tv_nsec / 1000000, level_tags[level]);

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    len += (size_t)n;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';

    /* stderr may be a closed pipe at shutdown; a lost log line is no error. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
