/*
 * api.h - the daemon's HTTP resources: the state handlers share (api_app),
 * the route table, and one handler per endpoint (a file per resource).
 */
#ifndef CODID_API_API_H
#define CODID_API_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "api/batcher.h"
#include "api/http.h"
#include "api/render.h"
#include "engine/engine.h"
#include "jobs/store.h"

typedef struct api_tasks api_tasks;
typedef struct api_adapters api_adapters;
typedef struct api_sse api_sse;

/* Built by server/serve.c; handlers read it through api_request_app(). The
 * model fields, the batcher, the store and the helpers below may be read
 * only after `ready` reads 1 (an acquire that pairs with the release that
 * published them); they stay valid until the HTTP server is stopped.
 * model_info is taken once at load, so that the event-loop thread never
 * calls into torch. `store` is set before the server starts when the data
 * directory can be opened (auth reads keys from it). */
/* The request limits and settings handlers apply, copied from the daemon's
 * configuration by whoever builds the app (server/serve.c). */
typedef struct api_limits {
    int64_t max_body_bytes;
    int64_t max_upload_bytes; /* dataset uploads */
    int64_t max_pixels;
    int max_n;
    int max_steps;
    int queue_max;   /* generate requests waiting; then 429 */
    int max_streams; /* open event streams */
    char cors_origins[1024];
    char cifar10_dir[1024]; /* built-in dataset sources */
    char fashion_mnist_dir[1024];
} api_limits;

typedef struct api_app {
    api_limits cfg;
    eng_ctx *ctx;
    eng_model *model;
    eng_model_info model_info;
    api_batcher *batcher;
    jobs_store *store;      /* the jobs subsystem's shared connection */
    api_tasks *prep;        /* generate: adapter loads, image preparation */
    api_tasks *imports;     /* POST /v1/datasets */
    api_adapters *adapters; /* adapters loaded for generation */
    api_scrub scrub;        /* the server's paths, hidden from non-admin clients */
    char scrub_paths[API_SCRUB_MAX][1024];
    api_sse *sse; /* job event streams */
    atomic_int ready;
} api_app;

extern const api_route api_routes[];
extern const size_t api_routes_count;

/* Answers 503 and returns 1 while the app is not ready. */
int api_not_ready(api_request *r);
/* A jobs_status (jobs/jobs.h) as a problem, the one place the jobs layer's
 * codes become HTTP statuses: EINVAL 400, ENOTFOUND 404, ESTATE, EEXIST,
 * EINUSE 409, ELIMIT 422, EBUSY 503 (with Retry-After), else 500; msg is
 * the detail. */
api_status api_jobs_problem(api_request *r, int rc, const char *msg);
/* A "{id}" path segment as a job id: 0 and *id, or -1 (not digits). */
int api_parse_id(const char *s, int64_t *id);
/* A Last-Event-ID header as an event id (0 or more): 0 and *id, or -1. */
int api_parse_event_id(const char *s, int64_t *id);

/* system.c */
api_status api_healthz(api_request *r);
api_status api_readyz(api_request *r);
/* metrics.c */
api_status api_metrics(api_request *r);
void api_metrics_observe(api_request *r, unsigned status, double ms);
void api_metrics_batch(int batch_images);
/* web.c: the page at / (index.html, app.js, app.css) */
api_status api_web_page(api_request *r);
/* capabilities.c */
api_status api_capabilities(api_request *r);
/* models.c */
api_status api_models_list(api_request *r);
/* generate.c */
api_status api_generate(api_request *r);
/* datasets.c */
api_status api_datasets_create(api_request *r);
api_status api_datasets_list(api_request *r);
api_status api_datasets_get(api_request *r);
api_status api_datasets_preview(api_request *r);
api_status api_datasets_delete(api_request *r);
/* jobs.c */
api_status api_jobs_create(api_request *r);
api_status api_jobs_list(api_request *r);
api_status api_jobs_get(api_request *r);
api_status api_jobs_cancel(api_request *r);
api_status api_jobs_events(api_request *r);
api_status api_jobs_loss(api_request *r);
/* adapters.c */
api_status api_adapters_list(api_request *r);
api_status api_adapters_get(api_request *r);
api_status api_adapters_delete(api_request *r);

#endif
