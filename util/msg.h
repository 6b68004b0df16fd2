/*
 * msg.h - the one way a function reports why it failed: it formats the
 * reason into the caller's buffer (msg, msgsz; either may be NULL/0, and the
 * text is truncated to fit) and returns its status code in the same
 * statement:
 *
 *     if (n < 0) return util_msg(msg, msgsz, JOBS_EINVAL, "n: %d is negative", n);
 */
#ifndef CODID_UTIL_MSG_H
#define CODID_UTIL_MSG_H

#include <stdarg.h>
#include <stddef.h>

int util_msg(char *msg, size_t msgsz, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int util_vmsg(char *msg, size_t msgsz, int code, const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

#endif
