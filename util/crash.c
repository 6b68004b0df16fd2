/*
 * crash.c - see crash.h. The variable is read once per process.
 */
#include "util/crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char want_point[64], want_detail[256];
static int armed, has_detail;

static void read_env(void) {
    const char *v = getenv("CODID_CRASH_AT");
    if (!v || !*v) return;
    const char *colon = strchr(v, ':');
    size_t n = colon ? (size_t)(colon - v) : strlen(v);
    if (n >= sizeof want_point) return;
    memcpy(want_point, v, n);
    want_point[n] = '\0';
    if (colon) {
        snprintf(want_detail, sizeof want_detail, "%s", colon + 1);
        has_detail = 1;
    }
    armed = 1;
}

void util_crash_point(const char *point, const char *detail) {
    pthread_once(&once, read_env);
    if (!armed || strcmp(point, want_point) != 0) return;
    if (has_detail && strcmp(detail ? detail : "", want_detail) != 0) return;
    util_log(UTIL_LOG_WARN, "crash point %s:%s reached (CODID_CRASH_AT): SIGKILL", point, detail ? detail : "");
    raise(SIGKILL);
}

void util_crash_point_int(const char *point, long long detail) {
    char text[24];
    snprintf(text, sizeof text, "%lld", detail);
    util_crash_point(point, text);
}
