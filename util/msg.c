#include "util/msg.h"

#include <stdio.h>

int util_vmsg(char *msg, size_t msgsz, int code, const char *fmt, va_list ap) {
    if (msg && msgsz) vsnprintf(msg, msgsz, fmt, ap);
    return code;
}

int util_msg(char *msg, size_t msgsz, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    util_vmsg(msg, msgsz, code, fmt, ap);
    va_end(ap);
    return code;
}
