/* json.c - see json.h. */
#include "util/json.h"

#include <math.h>

#include "util/msg.h"

int util_json_int(const cJSON *v, const char *name, long long lo, long long hi, long long *out, char *msg,
                  size_t msgsz) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return util_msg(msg, msgsz, UTIL_JSON_ENOTINT, "%s: must be an integer", name);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return util_msg(msg, msgsz, v->valuedouble < (double)lo ? UTIL_JSON_EBELOW : UTIL_JSON_EABOVE,
                        "%s: must be in %lld..%lld", name, lo, hi);
    *out = (long long)v->valuedouble;
    return UTIL_JSON_OK;
}
