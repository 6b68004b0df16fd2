/*
 * jobs.c - /v1/jobs: submit (202), list (status filter, cursor paging),
 * get, cancel, the event stream (Server-Sent Events, api/sse.h) and the
 * loss curve (CSV, or a PNG plot, util/plot.h). Validation and storage are
 * the jobs subsystem's (jobs/jobs.h); this file maps them onto HTTP.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/render.h"
#include "api/sse.h"
#include "jobs/jobs.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/msg.h"
#include "util/plot.h"

#define JOBS_PAGE_DEFAULT  20
#define LOSS_ROWS_MAX      100000 /* progress rows a loss curve reads at most */
#define LOSS_PAGE          1000
#define LOSS_CSV_MAX_BYTES (8 << 20)
#define PLOT_W_DEFAULT     640
#define PLOT_H_DEFAULT     360

/* The links of a job, and the adapter it made. */
static void add_links(cJSON *job) {
    cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    if (!cJSON_IsNumber(id)) return;
    char base[48], buf[96];
    snprintf(base, sizeof base, "/v1/jobs/%lld", (long long)id->valuedouble);
    cJSON *links = cJSON_AddObjectToObject(job, "links");
    if (!links) return;
    cJSON_AddStringToObject(links, "self", base);
    snprintf(buf, sizeof buf, "%s/events", base);
    cJSON_AddStringToObject(links, "events", buf);
    snprintf(buf, sizeof buf, "%s/loss", base);
    cJSON_AddStringToObject(links, "loss", buf);
    snprintf(buf, sizeof buf, "%s/cancel", base);
    cJSON_AddStringToObject(links, "cancel", buf);
    cJSON *result = cJSON_GetObjectItemCaseSensitive(job, "result");
    cJSON *adapter = cJSON_GetObjectItemCaseSensitive(result, "adapter_id");
    if (cJSON_IsNumber(adapter)) {
        snprintf(buf, sizeof buf, "/v1/adapters/%lld", (long long)adapter->valuedouble);
        cJSON_AddStringToObject(links, "adapter", buf);
    }
}

/* Answers with the job as JSON, with its links. */
static api_status respond_job(api_request *r, api_status status, const jobs_job *j) {
    cJSON *job = api_job_json(j);
    if (!job) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    api_scrub_tree(api_request_scrub(r), job);
    add_links(job);
    return api_respond_json(r, status, job);
}

/* The {id} of the path as a job id; answers 404 when it cannot be one. */
static int path_job_id(api_request *r, int64_t *id) {
    if (api_parse_id(api_request_param(r, "id"), id) == 0) return 0;
    api_problem(r, API_NOT_FOUND, "job '%.40s' not found (job ids are positive integers)", api_request_param(r, "id"));
    return -1;
}

/* Whether the request's Content-Type, when given, is JSON. */
static int json_content(api_request *r) {
    const char *ct = api_request_header(r, "Content-Type");
    if (!ct) return 1;
    size_t n = strcspn(ct, "; ");
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0); /* curl -d */
}

api_status api_jobs_create(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    if (!json_content(r))
        return api_problem(r, API_UNSUPPORTED_MEDIA_TYPE, "Content-Type: a job is a JSON object (application/json)");
    size_t len;
    const char *body = api_request_body(r, &len);
    if (len == 0) return api_problem(r, API_BAD_REQUEST, "body: empty; a job is a JSON object");
    size_t at = 0;
    cJSON *doc = NULL;
    int parsed = util_json_parse(body, len, &doc, &at);
    if (parsed == UTIL_JSON_ENOMEM) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    if (!doc) return api_problem(r, API_BAD_REQUEST, "body: invalid JSON near byte %zu", at);
    int is_object = cJSON_IsObject(doc);
    char *text = is_object ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!is_object) return api_problem(r, API_BAD_REQUEST, "body: must be a JSON object");
    if (!text) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");

    int64_t id = 0;
    char msg[512];
    int rc = jobs_submit(app->store, text, &id, msg, sizeof msg);
    cJSON_free(text);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    jobs_job job;
    rc = jobs_store_job_get(app->store, id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    api_status st = respond_job(r, API_ACCEPTED, &job);
    jobs_job_clear(&job);
    if (st != API_ACCEPTED) return st;
    char location[48];
    snprintf(location, sizeof location, "/v1/jobs/%lld", (long long)id);
    api_response_header(r, "Location", location);
    return API_ACCEPTED;
}

/* An optional integer query parameter in [lo, hi]; answers 400 naming it. */
static int int_query(api_request *r, const char *name, long long lo, long long hi, long long def, long long *out) {
    const char *v = api_request_query(r, name);
    *out = def;
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi || !isdigit((unsigned char)*v)) {
        api_problem(r, API_BAD_REQUEST, "%s: must be an integer in %lld..%lld (got '%.40s')", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

api_status api_jobs_list(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    const char *status = api_request_query(r, "status");
    jobs_state state;
    if (status && jobs_state_from_name(status, &state) != 0)
        return api_problem(r, API_BAD_REQUEST,
                           "status: '%.40s' is not one of queued, running, succeeded, failed, cancelled", status);
    long long limit, cursor;
    if (int_query(r, "limit", 1, JOBS_LIST_LIMIT_MAX, JOBS_PAGE_DEFAULT, &limit) != 0) return API_BAD_REQUEST;
    if (int_query(r, "cursor", 1, INT64_MAX / 2, 0, &cursor) != 0) return API_BAD_REQUEST;
    jobs_job *jobs = NULL;
    int n = 0;
    int64_t next = 0;
    char msg[512];
    int rc = jobs_list(app->store, status, cursor, (int)limit, &jobs, &n, &next, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    const api_scrub *scrub = api_request_scrub(r);
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "jobs");
    for (int i = 0; i < n; i++) {
        cJSON *job = api_job_json(&jobs[i]);
        api_scrub_tree(scrub, job);
        add_links(job);
        cJSON_AddItemToArray(arr, job);
        jobs_job_clear(&jobs[i]);
    }
    free(jobs);
    if (next > 0) {
        char link[128];
        snprintf(link, sizeof link, "/v1/jobs?cursor=%lld&limit=%lld%s%s", (long long)next, limit,
                 status ? "&status=" : "", status ? status : "");
        cJSON_AddNumberToObject(doc, "next_cursor", (double)next);
        cJSON_AddStringToObject(doc, "next", link);
    } else {
        cJSON_AddNullToObject(doc, "next_cursor");
        cJSON_AddNullToObject(doc, "next");
    }
    if (!arr) {
        cJSON_Delete(doc);
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    }
    return api_respond_json(r, API_OK, doc);
}

api_status api_jobs_get(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    int64_t id;
    if (path_job_id(r, &id) != 0) return API_NOT_FOUND;
    jobs_job job;
    char msg[512];
    int rc = jobs_store_job_get(app->store, id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    api_status st = respond_job(r, API_OK, &job);
    jobs_job_clear(&job);
    return st;
}

api_status api_jobs_cancel(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    int64_t id;
    if (path_job_id(r, &id) != 0) return API_NOT_FOUND;
    jobs_job job;
    char msg[512];
    int rc = jobs_cancel(app->store, id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    api_status st = respond_job(r, API_OK, &job);
    jobs_job_clear(&job);
    return st;
}

api_status api_jobs_events(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    int64_t id;
    if (path_job_id(r, &id) != 0) return API_NOT_FOUND;
    static const char *const offers[] = {"text/event-stream"};
    if (!api_negotiate(r, offers, 1))
        return api_problem(r, API_NOT_ACCEPTABLE, "Accept: this endpoint answers text/event-stream");
    long long after = 0;
    const char *last = api_request_header(r, "Last-Event-ID");
    if (last) {
        int64_t id64;
        if (api_parse_event_id(last, &id64) != 0)
            return api_problem(r, API_BAD_REQUEST, "Last-Event-ID: must be an event id (got '%.40s')", last);
        after = (long long)id64;
    } else if (int_query(r, "after", 0, INT64_MAX / 2, 0, &after) != 0) {
        return API_BAD_REQUEST;
    }
    jobs_job job;
    char msg[512];
    int rc = jobs_store_job_get(app->store, id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    jobs_job_clear(&job);

    api_stream *s = NULL;
    api_respond_stream(r, API_OK, "text/event-stream", API_SSE_PENDING_MAX, &s);
    if (!s) return API_SERVICE_UNAVAILABLE;
    api_response_header(r, "Cache-Control", "no-cache");
    api_response_header(r, "X-Accel-Buffering", "no");
    if (api_sse_add(app->sse, s, id, after, api_request_scrub(r)) != 0) {
        api_problem(r, API_TOO_MANY_REQUESTS, "too many open event streams (max_streams %d)", app->cfg.max_streams);
        api_response_header(r, "Retry-After", "5");
        return API_TOO_MANY_REQUESTS;
    }
    return API_OK;
}

/* ---- the loss curve ------------------------------------------------------ */

typedef struct loss_rows {
    double *step, *loss, *smooth, *lr;
    int n, cap;
} loss_rows;

static void loss_rows_free(loss_rows *l) {
    free(l->step), free(l->loss), free(l->smooth), free(l->lr);
}

static int loss_push(loss_rows *l, const jobs_progress *p) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        double *a = realloc(l->step, sizeof *a * (size_t)cap);
        if (a) l->step = a;
        double *b = a ? realloc(l->loss, sizeof *b * (size_t)cap) : NULL;
        if (b) l->loss = b;
        double *c = b ? realloc(l->smooth, sizeof *c * (size_t)cap) : NULL;
        if (c) l->smooth = c;
        double *d = c ? realloc(l->lr, sizeof *d * (size_t)cap) : NULL;
        if (d) l->lr = d;
        if (!d) return -1;
        l->cap = cap;
    }
    l->step[l->n] = p->step;
    l->loss[l->n] = p->loss;
    l->smooth[l->n] = p->loss_smooth;
    l->lr[l->n] = p->lr;
    l->n++;
    return 0;
}

/* The job's progress rows that carry a loss (training jobs). */
static int read_loss(jobs_store *st, int64_t id, loss_rows *l, char *msg, size_t msgsz) {
    memset(l, 0, sizeof *l);
    jobs_progress *page = malloc(sizeof *page * LOSS_PAGE);
    if (!page) return util_msg(msg, msgsz, JOBS_ERR, "out of memory");
    int64_t after = 0, last = 0;
    int rc = JOBS_OK;
    for (;;) {
        int n = 0;
        rc = jobs_progress_since(st, id, after, LOSS_PAGE, page, &n, &last, msg, msgsz);
        if (rc != JOBS_OK) break;
        for (int i = 0; i < n && l->n < LOSS_ROWS_MAX && rc == JOBS_OK; i++)
            if (isfinite(page[i].loss) && loss_push(l, &page[i]) != 0)
                rc = util_msg(msg, msgsz, JOBS_ERR, "out of memory");
        if (rc != JOBS_OK || last == after || l->n >= LOSS_ROWS_MAX) break;
        after = last;
    }
    free(page);
    return rc;
}

static void csv_num(util_buf *b, double v, const char *sep) {
    char s[40];
    int n = isfinite(v) ? snprintf(s, sizeof s, "%.8g%s", v, sep) : snprintf(s, sizeof s, "%s", sep);
    util_buf_add(b, s, (size_t)n);
}

api_status api_jobs_loss(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    int64_t id;
    if (path_job_id(r, &id) != 0) return API_NOT_FOUND;
    const char *format = api_request_query(r, "format");
    int png;
    if (format) {
        if (strcmp(format, "csv") != 0 && strcmp(format, "png") != 0)
            return api_problem(r, API_BAD_REQUEST, "format: '%.20s' is not csv or png", format);
        png = strcmp(format, "png") == 0;
    } else {
        static const char *const offers[] = {"text/csv", "image/png"};
        const char *type = api_negotiate(r, offers, 2);
        if (!type) return api_problem(r, API_NOT_ACCEPTABLE, "Accept: this endpoint answers text/csv or image/png");
        png = strcmp(type, "image/png") == 0;
    }
    long long w, h;
    if (int_query(r, "width", UTIL_PLOT_MIN_SIDE, UTIL_PLOT_MAX_SIDE, PLOT_W_DEFAULT, &w) != 0 ||
        int_query(r, "height", UTIL_PLOT_MIN_SIDE, UTIL_PLOT_MAX_SIDE, PLOT_H_DEFAULT, &h) != 0)
        return API_BAD_REQUEST;

    jobs_job job;
    char msg[512];
    int rc = jobs_store_job_get(app->store, id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    jobs_job_clear(&job);
    loss_rows l;
    rc = read_loss(app->store, id, &l, msg, sizeof msg);
    if (rc != JOBS_OK) {
        loss_rows_free(&l);
        return api_jobs_problem(r, rc, msg);
    }
    if (png) {
        util_series series[2] = {{l.loss, {150, 190, 235}}, {l.smooth, {20, 70, 160}}};
        uint8_t *img = NULL;
        size_t len = 0;
        rc = util_plot_png(l.step, l.n, series, 2, (int)w, (int)h, &img, &len, msg, sizeof msg);
        loss_rows_free(&l);
        if (rc != 0) return api_problem(r, API_INTERNAL_SERVER_ERROR, "plot: %s", msg);
        return api_respond(r, API_OK, "image/png", img, len);
    }
    util_buf b;
    util_buf_init(&b, LOSS_CSV_MAX_BYTES);
    util_buf_add(&b, "step,loss,loss_smooth,lr\n", 25);
    for (int i = 0; i < l.n; i++) {
        csv_num(&b, l.step[i], ",");
        csv_num(&b, l.loss[i], ",");
        csv_num(&b, l.smooth[i], ",");
        csv_num(&b, l.lr[i], "\n");
    }
    loss_rows_free(&l);
    size_t len;
    char *text = util_buf_take(&b, &len);
    if (!text) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    return api_respond(r, API_OK, "text/csv; charset=utf-8", text, len);
}
