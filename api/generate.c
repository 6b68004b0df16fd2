/*
 * generate.c - POST /v1/generate.
 *
 * The handler validates the request on the event-loop thread, suspends the
 * connection and hands a gen_job to the batcher; the batcher calls
 * on_generated() on its own thread, which writes the response (a PNG, or
 * JSON with base64 PNGs) and resumes the connection.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/base64.h"

#define SEED_HEADER_MAX 24

typedef struct gen_job {
    srv_gen_request req;
    api_request *r;
    int want_png;
} gen_job;

/* ---- request parsing -------------------------------------------------- */

typedef struct gen_input {
    int n, steps;
    int seed_given;
    uint64_t seed;
    double eta;
} gen_input;

static int is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble;
}

/* An integer field in [min, max]; limit names the setting behind max. */
static api_status int_field(api_request *r, const cJSON *v, int min, int max, const char *limit,
                            int *out) {
    if (!is_integer(v))
        return api_problem(r, API_BAD_REQUEST, "%s: must be an integer", v->string);
    if (v->valuedouble < min)
        return api_problem(r, API_BAD_REQUEST, "%s: %.0f is below the minimum %d", v->string,
                           v->valuedouble, min);
    if (v->valuedouble > max)
        return api_problem(r, API_BAD_REQUEST, "%s: %.0f is over %s (%d)", v->string,
                           v->valuedouble, limit, max);
    *out = (int)v->valuedouble;
    return API_OK;
}

static api_status parse_input(api_request *r, const srv_config *cfg, gen_input *in) {
    in->n = 1;
    in->steps = 10;
    in->seed_given = 0;
    in->seed = 0;
    in->eta = 0;

    size_t len;
    const char *body = api_request_body(r, &len);
    while (len && (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) body++, len--;
    if (len == 0) return API_OK; /* no body: every default */

    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!doc) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return api_problem(r, API_BAD_REQUEST, "body: invalid JSON near byte %zu", at);
    }
    api_status st = API_OK;
    if (!cJSON_IsObject(doc)) st = api_problem(r, API_BAD_REQUEST, "body: must be a JSON object");

    enum { FIELD_N, FIELD_STEPS, FIELD_SEED, FIELD_ETA, N_FIELDS };
    static const char *const names[N_FIELDS] = {"n", "steps", "seed", "eta"};
    int seen[N_FIELDS] = {0};
    for (cJSON *v = cJSON_IsObject(doc) ? doc->child : NULL; v && st == API_OK; v = v->next) {
        int f = 0;
        while (f < N_FIELDS && strcmp(v->string, names[f]) != 0) f++;
        if (f == N_FIELDS) {
            st = api_problem(r, API_BAD_REQUEST, "%s: unknown field (known: n, steps, seed, eta)",
                             v->string);
        } else if (seen[f]++) {
            st = api_problem(r, API_BAD_REQUEST, "%s: given twice", v->string);
        } else if (f == FIELD_N) {
            st = int_field(r, v, 1, cfg->max_n, "max_n", &in->n);
        } else if (f == FIELD_STEPS) {
            st = int_field(r, v, 1, cfg->max_steps, "max_steps", &in->steps);
        } else if (f == FIELD_SEED) {
            if (!is_integer(v) || v->valuedouble < 0 || v->valuedouble >= (double)SRV_SEED_LIMIT) {
                st = api_problem(r, API_BAD_REQUEST, "seed: must be an integer in [0, 2^53 - 1]");
            } else {
                in->seed = (uint64_t)v->valuedouble;
                in->seed_given = 1;
            }
        } else if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
            st = api_problem(r, API_BAD_REQUEST, "eta: must be a number in [0, 1]");
        } else {
            in->eta = v->valuedouble;
        }
    }
    cJSON_Delete(doc);
    return st;
}

/* ---- completion, on the batcher thread -------------------------------- */

static api_status respond_images(api_request *r, srv_gen_request *req, int want_png) {
    char seed[SEED_HEADER_MAX];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)req->seed);
    if (want_png) {
        api_respond(r, API_OK, "image/png", req->pngs[0], req->png_lens[0]);
        req->pngs[0] = NULL;
        api_response_header(r, "X-Seed", seed);
        return API_OK;
    }

    double t0 = api_request_age_ms(r);
    cJSON *doc = cJSON_CreateObject();
    cJSON *images = doc ? cJSON_AddArrayToObject(doc, "images") : NULL;
    if (!images) goto nomem;
    for (int i = 0; i < req->n; i++) {
        char *b64;
        size_t b64len;
        char msg[128];
        if (api_base64_encode(req->pngs[i], req->png_lens[i],
                              api_base64_encoded_len(req->png_lens[i]), &b64, &b64len, msg,
                              sizeof msg) != 0) {
            cJSON_Delete(doc);
            return api_problem(r, API_INTERNAL_SERVER_ERROR, "image %d: %s", i, msg);
        }
        cJSON *s = cJSON_CreateString(b64);
        free(b64);
        if (!s) goto nomem;
        cJSON_AddItemToArray(images, s);
    }
    cJSON_AddNumberToObject(doc, "seed", (double)req->seed);
    cJSON_AddNumberToObject(doc, "steps", req->steps);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    if (!t) goto nomem;
    double encode_ms = req->encode_ms + (api_request_age_ms(r) - t0);
    cJSON_AddNumberToObject(t, "queue_ms", round(req->queue_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "inference_ms", round(req->inference_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "encode_ms", round(encode_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "total_ms", round(api_request_age_ms(r) * 1000) / 1000);
    api_respond_json(r, API_OK, doc);
    api_response_header(r, "X-Seed", seed);
    return API_OK;
nomem:
    cJSON_Delete(doc);
    return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory writing the response");
}

static void on_generated(srv_gen_request *req) {
    gen_job *job = req->user;
    api_request *r = job->r;
    switch (req->status) {
    case SRV_GEN_OK: respond_images(r, req, job->want_png); break;
    case SRV_GEN_ESHUTDOWN:
    case SRV_GEN_EGONE:
    case SRV_GEN_ENOMEM: api_problem(r, API_SERVICE_UNAVAILABLE, "%s", req->msg); break;
    case SRV_GEN_ETIMEDOUT:
        api_problem(r, API_SERVICE_UNAVAILABLE, "%s (request_timeout_s)", req->msg);
        break;
    case SRV_GEN_EENGINE: api_problem(r, API_INTERNAL_SERVER_ERROR, "%s", req->msg); break;
    }
    srv_gen_request_release(req);
    free(job);
    api_request_resume(r);
}

static int on_client_gone(srv_gen_request *req) {
    return api_request_client_gone(((gen_job *)req->user)->r);
}

/* ---- the handler ------------------------------------------------------ */

api_status api_generate(api_request *r) {
    api_app *app = api_request_app(r);
    if (!atomic_load_explicit(&app->ready, memory_order_acquire))
        return api_problem(r, API_SERVICE_UNAVAILABLE,
                           "not ready: the model is loading or the daemon is stopping");

    gen_input in;
    api_status st = parse_input(r, app->cfg, &in);
    if (st != API_OK) return st;

    static const char *const offers[] = {"application/json", "image/png"};
    const char *type = api_negotiate(r, offers, 2);
    if (!type)
        return api_problem(r, API_NOT_ACCEPTABLE,
                           "Accept: this endpoint answers application/json or image/png");
    int want_png = strcmp(type, "image/png") == 0;
    if (want_png && in.n != 1)
        return api_problem(r, API_NOT_ACCEPTABLE,
                           "Accept: image/png holds one image; n is %d (accept application/json)",
                           in.n);

    gen_job *job = calloc(1, sizeof *job);
    if (!job) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    job->r = r;
    job->want_png = want_png;
    job->req.adapter = NULL;
    job->req.n = in.n;
    job->req.steps = in.steps;
    job->req.eta = (float)in.eta;
    job->req.seed_given = in.seed_given;
    job->req.seed = in.seed;
    job->req.client_gone = on_client_gone;
    job->req.done = on_generated;
    job->req.user = job;

    api_request_suspend(r);
    int rc = srv_batcher_submit(app->batcher, &job->req);
    if (rc == SRV_BATCH_OK) return API_SUSPENDED;

    free(job);
    if (rc == SRV_BATCH_EFULL) {
        st = api_problem(r, API_TOO_MANY_REQUESTS,
                         "the generation queue is full (queue_max %d requests waiting)",
                         app->cfg->queue_max);
        api_response_header(r, "Retry-After", "1");
    } else {
        st = api_problem(r, API_SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    api_request_resume(r);
    return st;
}
