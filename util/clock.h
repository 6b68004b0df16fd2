/*
 * clock.h - the clocks codid reads. Durations and deadlines use the
 * monotonic clock (never stepped by NTP); timestamps that are stored or shown
 * use the wall clock.
 */
#ifndef CODID_UTIL_CLOCK_H
#define CODID_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in milliseconds and in seconds (durations). */
double util_mono_ms(void);
double util_mono_s(void);
/* Wall-clock milliseconds since the Unix epoch (stored timestamps). */
int64_t util_wall_ms(void);
/* The instant ms milliseconds from now on `clock`, for pthread_cond_timedwait
 * (the clock its condition variable waits on) and pthread_timedjoin_np
 * (CLOCK_REALTIME). */
struct timespec util_deadline(clockid_t clock, double ms);

#endif
