#include "util/clock.h"

double util_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double util_mono_s(void) {
    return util_mono_ms() / 1e3;
}

int64_t util_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec util_deadline(clockid_t clock, double ms) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    if (ms < 0) ms = 0;
    int64_t ns = (int64_t)ts.tv_nsec + (int64_t)(ms * 1e6);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}
