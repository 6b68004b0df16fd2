/* common.c - small helpers the resource files share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int api_not_ready(api_request *r) {
    api_app *app = api_request_app(r);
    if (atomic_load_explicit(&app->ready, memory_order_acquire)) return 0;
    api_problem(r, API_SERVICE_UNAVAILABLE, "not ready: the model is loading or the daemon is stopping");
    api_response_header(r, "Retry-After", "1");
    return 1;
}

api_status api_jobs_problem(api_request *r, int rc, const char *msg) {
    switch (rc) {
        case JOBS_EINVAL: return api_problem(r, API_BAD_REQUEST, "%s", msg);
        case JOBS_ENOTFOUND: return api_problem(r, API_NOT_FOUND, "%s", msg);
        case JOBS_ESTATE:
        case JOBS_EEXIST:
        case JOBS_EINUSE: return api_problem(r, API_CONFLICT, "%s", msg);
        case JOBS_ELIMIT: return api_problem(r, API_UNPROCESSABLE_CONTENT, "%s", msg);
        case JOBS_EBUSY: {
            api_status st = api_problem(r, API_SERVICE_UNAVAILABLE, "%s", msg);
            api_response_header(r, "Retry-After", "1");
            return st;
        }
        default: return api_problem(r, API_INTERNAL_SERVER_ERROR, "%s", msg);
    }
}

int api_parse_id(const char *s, int64_t *id) {
    if (!s || !*s || strlen(s) > 18 || s[0] == '0') return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *id = v;
    return 0;
}

int api_parse_event_id(const char *s, int64_t *id) {
    if (!s || !*s || strlen(s) > 18) return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *id = v;
    return 0;
}
