/*
 * metrics.c - GET /metrics in the Prometheus text format (version 0.0.4).
 *
 * Requests are counted by route (the pattern, so that ids do not multiply
 * series) and status, with a latency histogram per route; both are written
 * by the HTTP layer's observe hook on the event-loop thread and read here,
 * with relaxed atomics. Batch sizes are observed per generate request (the
 * images of the engine call it rode in) on the batcher thread. Gauges
 * (queue depth, jobs by state, memory) are read when scraped.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/adapters.h"
#include "api/api.h"
#include "api/sse.h"
#include "api/tasks.h"
#include "util/buf.h"

#define MAX_ROUTES        32 /* routes past this count as unmatched */
#define METRICS_MAX_BYTES (1 << 20)

static const int status_codes[] = {
#define STATUS_CODE_(name, code, title) code,
    API_STATUS_TABLE(STATUS_CODE_)
#undef STATUS_CODE_
};
#define N_STATUS (sizeof status_codes / sizeof status_codes[0] + 1) /* + "other" */

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define N_LAT (sizeof latency_bounds / sizeof latency_bounds[0])
static const int batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_BATCH (sizeof batch_bounds / sizeof batch_bounds[0])

/* Index MAX_ROUTES holds requests that matched no route. */
static atomic_uint_fast64_t requests[MAX_ROUTES + 1][N_STATUS];
static atomic_uint_fast64_t latency[MAX_ROUTES + 1][N_LAT + 1];
static atomic_uint_fast64_t latency_us[MAX_ROUTES + 1];
static atomic_uint_fast64_t batches[N_BATCH + 1];
static atomic_uint_fast64_t batch_images_sum;

void api_metrics_observe(api_request *r, unsigned status, double ms) {
    const api_route *route = api_request_route(r);
    size_t ri = route ? (size_t)(route - api_routes) : MAX_ROUTES;
    if (ri > MAX_ROUTES) ri = MAX_ROUTES;
    size_t si = N_STATUS - 1;
    for (size_t i = 0; i + 1 < N_STATUS; i++)
        if ((unsigned)status_codes[i] == status) si = i;
    atomic_fetch_add_explicit(&requests[ri][si], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_LAT && ms / 1000 > latency_bounds[b]) b++;
    atomic_fetch_add_explicit(&latency[ri][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_us[ri], (uint_fast64_t)(ms * 1000), memory_order_relaxed);
}

void api_metrics_batch(int batch_images) {
    size_t b = 0;
    while (b < N_BATCH && batch_images > batch_bounds[b]) b++;
    atomic_fetch_add_explicit(&batches[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&batch_images_sum, (uint_fast64_t)batch_images, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void out(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(util_buf *b, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) util_buf_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void route_labels(size_t ri, char *buf, size_t bufsz) {
    if (ri < api_routes_count)
        snprintf(buf, bufsz, "method=\"%s\",route=\"%s\"", api_routes[ri].method, api_routes[ri].pattern);
    else
        snprintf(buf, bufsz, "method=\"\",route=\"unmatched\"");
}

static void write_requests(util_buf *b) {
    out(b, "# HELP codid_http_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE codid_http_requests_total counter\n");
    char labels[160];
    for (size_t ri = 0; ri <= MAX_ROUTES; ri++) {
        if (ri >= api_routes_count && ri != MAX_ROUTES) continue;
        route_labels(ri, labels, sizeof labels);
        for (size_t si = 0; si < N_STATUS; si++) {
            uint64_t n = get(&requests[ri][si]);
            if (!n) continue;
            if (si + 1 < N_STATUS)
                out(b, "codid_http_requests_total{%s,status=\"%d\"} %" PRIu64 "\n", labels, status_codes[si], n);
            else
                out(b, "codid_http_requests_total{%s,status=\"other\"} %" PRIu64 "\n", labels, n);
        }
    }
    out(b, "# HELP codid_http_request_duration_seconds Time from request headers to the end of the response.\n"
           "# TYPE codid_http_request_duration_seconds histogram\n");
    for (size_t ri = 0; ri <= MAX_ROUTES; ri++) {
        if (ri >= api_routes_count && ri != MAX_ROUTES) continue;
        route_labels(ri, labels, sizeof labels);
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_LAT; k++) {
            cum += get(&latency[ri][k]);
            if (k < N_LAT)
                out(b, "codid_http_request_duration_seconds_bucket{%s,le=\"%g\"} %" PRIu64 "\n", labels,
                    latency_bounds[k], cum);
            else
                out(b, "codid_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", labels, cum);
        }
        out(b, "codid_http_request_duration_seconds_sum{%s} %.6f\n", labels, (double)get(&latency_us[ri]) / 1e6);
        out(b, "codid_http_request_duration_seconds_count{%s} %" PRIu64 "\n", labels, cum);
    }
}

static void write_batches(util_buf *b) {
    out(b, "# HELP codid_generate_batch_images Images in the engine call each generate request rode in.\n"
           "# TYPE codid_generate_batch_images histogram\n");
    uint64_t cum = 0;
    for (size_t k = 0; k <= N_BATCH; k++) {
        cum += get(&batches[k]);
        if (k < N_BATCH)
            out(b, "codid_generate_batch_images_bucket{le=\"%d\"} %" PRIu64 "\n", batch_bounds[k], cum);
        else
            out(b, "codid_generate_batch_images_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    out(b, "codid_generate_batch_images_sum %" PRIu64 "\n", get(&batch_images_sum));
    out(b, "codid_generate_batch_images_count %" PRIu64 "\n", cum);
}

static void write_gauges(util_buf *b, api_app *app) {
    int ready = atomic_load_explicit(&app->ready, memory_order_acquire);
    out(b,
        "# HELP codid_ready 1 once the model is loaded and requests are served.\n"
        "# TYPE codid_ready gauge\ncodid_ready %d\n",
        ready);
    if (!ready) return;
    out(b,
        "# HELP codid_generate_queue_depth Generate requests waiting for the batcher.\n"
        "# TYPE codid_generate_queue_depth gauge\ncodid_generate_queue_depth %d\n",
        api_batcher_queued(app->batcher));
    out(b,
        "# HELP codid_tasks_pending Requests being prepared or imported off the event loop.\n"
        "# TYPE codid_tasks_pending gauge\n"
        "codid_tasks_pending{pool=\"prepare\"} %d\ncodid_tasks_pending{pool=\"import\"} %d\n",
        api_tasks_pending(app->prep), api_tasks_pending(app->imports));
    out(b,
        "# HELP codid_event_streams Open job event streams.\n"
        "# TYPE codid_event_streams gauge\ncodid_event_streams %d\n",
        api_sse_count(app->sse));
    int64_t counts[5];
    char msg[128];
    if (jobs_store_job_counts(app->store, counts, msg, sizeof msg) == JOBS_OK) {
        out(b, "# HELP codid_jobs Jobs in the store, by state.\n# TYPE codid_jobs gauge\n");
        for (int s = 0; s < 5; s++)
            out(b, "codid_jobs{state=\"%s\"} %" PRId64 "\n", jobs_state_name((jobs_state)s), counts[s]);
    }
    out(b,
        "# HELP codid_model_memory_bytes Weights of the base model resident on its device.\n"
        "# TYPE codid_model_memory_bytes gauge\ncodid_model_memory_bytes{model=\"%s\",device=\"%s\"} %" PRId64 "\n",
        app->model_info.name, eng_ctx_device_name(app->ctx), app->model_info.memory_bytes);
    int loaded = 0;
    int64_t bytes = api_adapters_memory(app->adapters, &loaded);
    out(b,
        "# HELP codid_adapters_loaded Adapters loaded for generation.\n"
        "# TYPE codid_adapters_loaded gauge\ncodid_adapters_loaded %d\n"
        "# HELP codid_adapter_memory_bytes Weights of the loaded adapters.\n"
        "# TYPE codid_adapter_memory_bytes gauge\ncodid_adapter_memory_bytes %" PRId64 "\n",
        loaded, bytes);
}

api_status api_metrics(api_request *r) {
    api_app *app = api_request_app(r);
    util_buf b;
    util_buf_init(&b, METRICS_MAX_BYTES);
    write_requests(&b);
    write_batches(&b);
    write_gauges(&b, app);
    size_t len;
    char *text = util_buf_take(&b, &len);
    if (!text) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory writing metrics");
    return api_respond(r, API_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
