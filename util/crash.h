/*
 * crash.h - crash points: a test-only way to kill the process at a named
 * moment, to show that what it was doing survives a crash there.
 *
 * The environment variable CODID_CRASH_AT names one point, "POINT" or
 * "POINT:DETAIL" (DETAIL compared whole with the caller's detail). When a
 * thread reaches that point the process logs it and sends itself SIGKILL:
 * no handler, no atexit, no flush, exactly as a kill -9 from outside. With
 * the variable unset (always, outside tests) a crash point costs one load.
 *
 * The points (where they are, their detail):
 *   step      jobs/worker.c, after a training step, before its progress
 *             and checkpoint are written; the step number
 *   export    jobs/worker.c, before the adapter is exported; the job id
 *   register  jobs/worker.c, after the export, before the commit that
 *             registers the adapter and ends the job; the job id
 *   rename    engine/safetensors.c, a file written and fsynced under its
 *             temporary name, not yet renamed; the final name's basename
 */
#ifndef CODID_UTIL_CRASH_H
#define CODID_UTIL_CRASH_H

void util_crash_point(const char *point, const char *detail);
/* The same with an integer detail. */
void util_crash_point_int(const char *point, long long detail);

#endif
