/*
 * generate.c - POST /v1/generate.
 *
 * Unconditional requests (no adapter) are validated on the event-loop
 * thread and handed straight to the batcher. A request with an adapter
 * also needs torch before it can queue (loading the adapter, Canny edges),
 * so after validation it is suspended and prepared on a prepare thread
 * (api/tasks.h): the adapter is taken from the cache (api/adapters.h), the
 * image decoded and turned into the adapter's condition (api/condition.h),
 * and then the request joins the batcher's queue, whose batches group
 * requests of the same adapter. The batcher calls on_generated() on its
 * own thread, which writes the response (a PNG, or JSON with base64 PNGs)
 * and resumes the connection.
 *
 * The body is JSON ({"adapter": "sr4", "image": "<base64 PNG or data
 * URL>", ...}) or multipart/form-data with the same fields, the images as
 * file parts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/adapters.h"
#include "api/api.h"
#include "api/condition.h"
#include "api/tasks.h"
#include "api/upload.h"
#include "jobs/jobs.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/png.h"

#define SEED_HEADER_MAX 24
#define ADAPTER_REF_MAX 80
#define FORM_PARTS_MAX  16

typedef struct gen_input {
    int n, steps, steps_given;
    int seed_given;
    uint64_t seed;
    double eta;
    int return_condition;          /* answer with the condition image too */
    int stochastic;                /* CoDi with fresh noise between steps */
    char adapter[ADAPTER_REF_MAX]; /* "" when none */
    uint8_t *image, *mask;         /* PNG bytes (malloc'd), or NULL */
    size_t image_len, mask_len;
    eng_preprocess preprocess;
} gen_input;

typedef struct gen_job {
    api_gen_request req;
    api_request *r;
    api_app *app;
    int want_png;
    gen_input in;
    int64_t adapter_id;
    char adapter_path[4096];
    eng_image cond;
} gen_job;

static void gen_job_free(gen_job *job) {
    free(job->in.image);
    free(job->in.mask);
    free(job->cond.data);
    free(job);
}

/* ---- request parsing -------------------------------------------------- */

/* An integer field in [min, max]; limit names the setting behind max. */
static api_status int_field(api_request *r, const cJSON *v, int min, int max, const char *limit, int *out) {
    long long x;
    int rc = util_json_int(v, v->string, min, max, &x, NULL, 0);
    if (rc == UTIL_JSON_ENOTINT) return api_problem(r, API_BAD_REQUEST, "%s: must be an integer", v->string);
    if (rc == UTIL_JSON_EBELOW)
        return api_problem(r, API_BAD_REQUEST, "%s: %.0f is below the minimum %d", v->string, v->valuedouble, min);
    if (rc == UTIL_JSON_EABOVE)
        return api_problem(r, API_BAD_REQUEST, "%s: %.0f is over %s (%d)", v->string, v->valuedouble, limit, max);
    *out = (int)x;
    return API_OK;
}

/* A base64 PNG (or data URL) in a JSON string. */
static api_status image_field(api_request *r, const cJSON *v, size_t max, uint8_t **out, size_t *len) {
    if (!cJSON_IsString(v))
        return api_problem(r, API_BAD_REQUEST, "%s: must be a string: a base64 PNG or a data: URL", v->string);
    const char *payload;
    size_t plen;
    char msg[200];
    if (util_data_url_strip(v->valuestring, strlen(v->valuestring), &payload, &plen, msg, sizeof msg) != 0 ||
        util_base64_decode(payload, plen, max, out, len, msg, sizeof msg) != 0)
        return api_problem(r, API_BAD_REQUEST, "%s: %s", v->string, msg);
    if (*len == 0) {
        free(*out);
        *out = NULL;
        return api_problem(r, API_BAD_REQUEST, "%s: empty", v->string);
    }
    return API_OK;
}

enum {
    FIELD_N,
    FIELD_STEPS,
    FIELD_SEED,
    FIELD_ETA,
    FIELD_ADAPTER,
    FIELD_IMAGE,
    FIELD_MASK,
    FIELD_PRE,
    FIELD_RETURN_COND,
    FIELD_STOCHASTIC,
    N_FIELDS
};
static const char *const field_names[N_FIELDS] = {
    "n", "steps", "seed", "eta", "adapter", "image", "mask", "preprocess", "return_condition", "stochastic"};
#define KNOWN_FIELDS "n, steps, seed, eta, adapter, image, mask, preprocess, return_condition, stochastic"

static api_status parse_fields(api_request *r, const api_limits *cfg, const cJSON *doc, int *seen, gen_input *in) {
    api_status st = API_OK;
    for (cJSON *v = doc->child; v && st == API_OK; v = v->next) {
        int f = 0;
        while (f < N_FIELDS && strcmp(v->string, field_names[f]) != 0) f++;
        if (f == N_FIELDS) {
            st = api_problem(r, API_BAD_REQUEST, "%s: unknown field (known: " KNOWN_FIELDS ")", v->string);
        } else if (seen[f]++) {
            st = api_problem(r, API_BAD_REQUEST, "%s: given twice", v->string);
        } else if (f == FIELD_N) {
            st = int_field(r, v, 1, cfg->max_n, "max_n", &in->n);
        } else if (f == FIELD_STEPS) {
            st = int_field(r, v, 1, cfg->max_steps, "max_steps", &in->steps);
            in->steps_given = 1;
        } else if (f == FIELD_SEED) {
            long long seed;
            if (util_json_int(v, "seed", 0, (long long)API_SEED_LIMIT - 1, &seed, NULL, 0) != UTIL_JSON_OK) {
                st = api_problem(r, API_BAD_REQUEST, "seed: must be an integer in [0, 2^53 - 1]");
            } else {
                in->seed = (uint64_t)seed;
                in->seed_given = 1;
            }
        } else if (f == FIELD_ETA) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
                st = api_problem(r, API_BAD_REQUEST, "eta: must be a number in [0, 1]");
            else
                in->eta = v->valuedouble;
        } else if (f == FIELD_ADAPTER) {
            long long id;
            if (util_json_int(v, "adapter", 1, 999999999999999LL, &id, NULL, 0) == UTIL_JSON_OK)
                snprintf(in->adapter, sizeof in->adapter, "%lld", id);
            else if (cJSON_IsString(v) && *v->valuestring && strlen(v->valuestring) < sizeof in->adapter)
                snprintf(in->adapter, sizeof in->adapter, "%s", v->valuestring);
            else
                st = api_problem(r, API_BAD_REQUEST, "adapter: must be an adapter name or a positive integer id");
        } else if (f == FIELD_IMAGE || f == FIELD_MASK) {
            uint8_t **dst = f == FIELD_IMAGE ? &in->image : &in->mask;
            size_t *len = f == FIELD_IMAGE ? &in->image_len : &in->mask_len;
            st = image_field(r, v, (size_t)cfg->max_body_bytes, dst, len);
        } else if (f == FIELD_STOCHASTIC) {
            if (!cJSON_IsBool(v))
                st = api_problem(r, API_BAD_REQUEST, "stochastic: must be true or false");
            else
                in->stochastic = cJSON_IsTrue(v);
        } else if (f == FIELD_RETURN_COND) {
            if (!cJSON_IsBool(v))
                st = api_problem(r, API_BAD_REQUEST, "return_condition: must be true or false");
            else
                in->return_condition = cJSON_IsTrue(v);
        } else if (!cJSON_IsString(v) || eng_preprocess_from_name(v->valuestring, &in->preprocess) != ENG_OK) {
            st = api_problem(r, API_BAD_REQUEST, "preprocess: must be one of none, canny, sobel, gray, task");
        }
    }
    return st;
}

/* A file part's bytes, copied (the body outlives nothing we hand away). */
static api_status take_file(api_request *r, const api_part *p, int *seen, uint8_t **out, size_t *len) {
    if ((*seen)++) return api_problem(r, API_BAD_REQUEST, "%s: given twice", p->name);
    if (p->len == 0) return api_problem(r, API_BAD_REQUEST, "%s: empty file", p->name);
    *out = malloc(p->len);
    if (!*out) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    memcpy(*out, p->data, p->len);
    *len = p->len;
    return API_OK;
}

/* multipart/form-data: files image and mask; the other fields as text,
 * read as JSON values (numbers) or else strings. */
static api_status parse_form(api_request *r, const api_limits *cfg, const char *ct, int *seen, gen_input *in) {
    size_t len;
    const uint8_t *body = (const uint8_t *)api_request_body(r, &len);
    api_part *parts = NULL;
    int n = 0;
    char msg[256];
    if (api_multipart_parse(ct, body, len, FORM_PARTS_MAX, &parts, &n, msg, sizeof msg) != 0)
        return api_problem(r, API_BAD_REQUEST, "%s", msg);
    cJSON *doc = cJSON_CreateObject();
    api_status st = doc ? API_OK : api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    for (int i = 0; i < n && st == API_OK; i++) {
        const api_part *p = &parts[i];
        if (*p->filename && strcmp(p->name, "image") == 0) {
            st = take_file(r, p, &seen[FIELD_IMAGE], &in->image, &in->image_len);
        } else if (*p->filename && strcmp(p->name, "mask") == 0) {
            st = take_file(r, p, &seen[FIELD_MASK], &in->mask, &in->mask_len);
        } else if (*p->filename) {
            st = api_problem(r, API_BAD_REQUEST, "%s: unknown file field (files: image, mask)", p->name);
        } else {
            char *text = strndup((const char *)p->data, p->len);
            cJSON *v = NULL;
            if (text && (strcmp(p->name, "adapter") != 0 && strcmp(p->name, "preprocess") != 0 &&
                         strcmp(p->name, "image") != 0 && strcmp(p->name, "mask") != 0))
                v = cJSON_Parse(text);
            if (!v && text) v = cJSON_CreateString(text);
            free(text);
            if (!v)
                st = api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
            else
                cJSON_AddItemToObject(doc, p->name, v);
        }
    }
    free(parts);
    if (st == API_OK) st = parse_fields(r, cfg, doc, seen, in);
    cJSON_Delete(doc);
    return st;
}

static api_status parse_input(api_request *r, const api_limits *cfg, gen_input *in) {
    memset(in, 0, sizeof *in);
    in->n = 1;
    int seen[N_FIELDS] = {0};

    const char *ct = api_request_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) return parse_form(r, cfg, ct, seen, in);
    if (ct && strncasecmp(ct, "application/json", 16) != 0 &&
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) /* what curl -d says */
        return api_problem(r, API_UNSUPPORTED_MEDIA_TYPE,
                           "Content-Type: '%.60s' is not application/json or multipart/form-data", ct);

    size_t len;
    const char *body = api_request_body(r, &len);
    while (len && (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) body++, len--;
    if (len == 0) return API_OK; /* no body: every default */

    size_t at = 0;
    cJSON *doc = NULL;
    if (util_json_parse(body, len, &doc, &at) == UTIL_JSON_ENOMEM)
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    if (!doc) return api_problem(r, API_BAD_REQUEST, "body: invalid JSON near byte %zu", at);
    api_status st = cJSON_IsObject(doc) ? parse_fields(r, cfg, doc, seen, in)
                                        : api_problem(r, API_BAD_REQUEST, "body: must be a JSON object");
    cJSON_Delete(doc);
    return st;
}

/* ---- completion, on the batcher thread -------------------------------- */

/* The condition as a base64 PNG: one channel or RGB; inpaint's masked
 * image without its mask channel. NULL when out of memory. */
static char *condition_base64(const eng_image *cond, char *msg, size_t msgsz) {
    int c = cond->channels == 4 ? 3 : cond->channels;
    size_t px = (size_t)cond->width * cond->height;
    uint8_t *pixels = malloc(px * c), *png = NULL;
    size_t len = 0;
    char *b64 = NULL;
    size_t b64len;
    if (!pixels) return NULL;
    for (size_t i = 0; i < px; i++) memcpy(pixels + i * c, cond->data + i * cond->channels, (size_t)c);
    if (util_png_encode(pixels, cond->width, cond->height, c, &png, &len, msg, msgsz) == 0)
        util_base64_encode(png, len, util_base64_encoded_len(len), &b64, &b64len, msg, msgsz);
    free(pixels);
    free(png);
    return b64;
}

static api_status respond_images(api_request *r, api_gen_request *req, int want_png, const eng_image *cond) {
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
        if (util_base64_encode(req->pngs[i], req->png_lens[i], util_base64_encoded_len(req->png_lens[i]), &b64, &b64len,
                               msg, sizeof msg) != 0) {
            cJSON_Delete(doc);
            return api_problem(r, API_INTERNAL_SERVER_ERROR, "image %d: %s", i, msg);
        }
        cJSON *s = cJSON_CreateString(b64);
        free(b64);
        if (!s) goto nomem;
        cJSON_AddItemToArray(images, s);
    }
    if (cond) {
        char msg[128];
        char *b64 = condition_base64(cond, msg, sizeof msg);
        cJSON *s = b64 ? cJSON_CreateString(b64) : NULL;
        free(b64);
        if (!s) goto nomem;
        cJSON_AddItemToObject(doc, "condition", s);
    }
    cJSON_AddRawToObject(doc, "seed", seed); /* exact: %g would round 16-digit seeds */
    cJSON_AddNumberToObject(doc, "steps", req->steps);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    if (!t) goto nomem;
    double encode_ms = req->encode_ms + (api_request_age_ms(r) - t0);
    cJSON_AddNumberToObject(t, "queue_ms", round(req->queue_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "inference_ms", round(req->inference_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "encode_ms", round(encode_ms * 1000) / 1000);
    cJSON_AddNumberToObject(t, "total_ms", round(api_request_age_ms(r) * 1000) / 1000);
    cJSON_AddNumberToObject(doc, "batch_images", req->batch_images);
    api_respond_json(r, API_OK, doc);
    api_response_header(r, "X-Seed", seed);
    return API_OK;
nomem:
    cJSON_Delete(doc);
    return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory writing the response");
}

static void on_generated(api_gen_request *req) {
    gen_job *job = req->user;
    api_request *r = job->r;
    switch (req->status) {
        case API_GEN_OK:
            api_metrics_batch(req->batch_images);
            respond_images(r, req, job->want_png, job->in.return_condition ? &job->cond : NULL);
            break;
        case API_GEN_ESHUTDOWN:
        case API_GEN_EGONE:
        case API_GEN_ENOMEM: api_problem(r, API_SERVICE_UNAVAILABLE, "%s", req->msg); break;
        case API_GEN_ETIMEDOUT: api_problem(r, API_SERVICE_UNAVAILABLE, "%s (request_timeout_s)", req->msg); break;
        case API_GEN_EENGINE: api_problem(r, API_INTERNAL_SERVER_ERROR, "%s", req->msg); break;
    }
    api_gen_request_release(req);
    api_adapters_release(job->app->adapters, req->adapter);
    gen_job_free(job);
    api_request_resume(r);
}

static int on_client_gone(api_gen_request *req) {
    return api_request_client_gone(((gen_job *)req->user)->r);
}

/* Queues job (its request suspended) with the batcher; on failure answers
 * and resumes. */
static void submit(gen_job *job) {
    api_request *r = job->r;
    int rc = api_batcher_submit(job->app->batcher, &job->req);
    if (rc == SRV_BATCH_OK) return;
    if (rc == SRV_BATCH_EFULL) {
        api_problem(r, API_TOO_MANY_REQUESTS, "the generation queue is full (queue_max %d requests waiting)",
                    job->app->cfg.queue_max);
        api_response_header(r, "Retry-After", "1");
    } else {
        api_problem(r, API_SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    api_adapters_release(job->app->adapters, job->req.adapter);
    gen_job_free(job);
    api_request_resume(r);
}

/* ---- preparation, on a prepare thread ---------------------------------- */

static api_status decode(api_request *r, const char *field, const uint8_t *png, size_t len, size_t max_pixels,
                         util_image *out) {
    char msg[256];
    int rc = util_png_decode(png, len, 0, max_pixels, out, msg, sizeof msg);
    if (rc == 0) return API_OK;
    if (rc == UTIL_PNG_ELIMIT) return api_problem(r, API_UNPROCESSABLE_CONTENT, "%s: %s (max_pixels)", field, msg);
    return api_problem(r, API_BAD_REQUEST, "%s: %s", field, msg);
}

static void prepare(void *arg) {
    gen_job *job = arg;
    api_request *r = job->r;
    api_app *app = job->app;
    char msg[512];
    eng_adapter *a = NULL;
    int rc = api_adapters_acquire(app->adapters, job->adapter_id, job->adapter_path, &a, msg, sizeof msg);
    if (rc != ENG_OK) {
        if (rc == ENG_EMISMATCH)
            api_problem(r, API_CONFLICT, "adapter: '%s' does not fit the served model: %s", job->in.adapter, msg);
        else
            api_problem(r, API_INTERNAL_SERVER_ERROR, "adapter: '%s' cannot be loaded: %s", job->in.adapter, msg);
        goto fail;
    }
    job->req.adapter = a;
    eng_adapter_info info;
    eng_adapter_get_info(a, &info);
    if (!job->in.steps_given) job->req.steps = eng_default_steps(app->model, a, 0);
    if (job->in.stochastic && !info.distilled) {
        api_problem(r, API_BAD_REQUEST,
                    "stochastic: adapter '%s' samples with DDIM; stochastic applies to distilled "
                    "adapters (CoDi sampling) only",
                    job->in.adapter);
        goto fail;
    }
    if (info.distilled && job->req.steps > info.n_grid) {
        api_problem(r, API_BAD_REQUEST, "steps: adapter '%s' samples in 1..%d steps", job->in.adapter, info.n_grid);
        goto fail;
    }
    util_image img = {0}, mask = {0};
    size_t max_pixels = (size_t)app->cfg.max_pixels;
    if (decode(r, "image", job->in.image, job->in.image_len, max_pixels, &img) != API_OK) goto fail;
    if (job->in.mask && decode(r, "mask", job->in.mask, job->in.mask_len, max_pixels, &mask) != API_OK) {
        util_image_free(&img);
        goto fail;
    }
    api_cond_params cp = {info.task, app->model_info.in_channels, app->model_info.sample_size, job->in.preprocess,
                          job->req.seed};
    api_status st = api_condition_build(&cp, &img, job->in.mask ? &mask : NULL, &job->cond, msg, sizeof msg);
    util_image_free(&img);
    util_image_free(&mask);
    if (st != API_OK) {
        api_problem(r, st, "%s", msg);
        goto fail;
    }
    job->req.cond = &job->cond;
    submit(job);
    return;
fail:
    api_adapters_release(app->adapters, job->req.adapter);
    gen_job_free(job);
    api_request_resume(r);
}

/* ---- the handler ------------------------------------------------------ */

/* The registry row of the adapter the request names (event-loop thread:
 * one indexed read); answers 400 when it names none. */
static api_status find_adapter(api_request *r, api_app *app, gen_job *job) {
    jobs_adapter_info a;
    char msg[256];
    int rc = jobs_adapter_get(app->store, job->in.adapter, &a, msg, sizeof msg);
    if (rc == JOBS_ENOTFOUND || rc == JOBS_EINVAL)
        return api_problem(r, API_BAD_REQUEST, "adapter: no adapter '%s' (GET /v1/adapters lists them)",
                           job->in.adapter);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    api_status st = API_OK;
    if (!a.path || strlen(a.path) >= sizeof job->adapter_path)
        st = api_problem(r, API_INTERNAL_SERVER_ERROR, "adapter: registry row without a usable path");
    else if (strcmp(a.base_hash, app->model_info.hash) != 0)
        st = api_problem(r, API_CONFLICT, "adapter: '%s' was trained on base model %s; this daemon serves %s (%s)",
                         job->in.adapter, a.base_hash, app->model_info.hash, app->model_info.name);
    if (st == API_OK) {
        job->adapter_id = a.id;
        snprintf(job->adapter_path, sizeof job->adapter_path, "%s", a.path);
    }
    jobs_adapter_info_clear(&a);
    return st;
}

api_status api_generate(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);

    gen_job *job = calloc(1, sizeof *job);
    if (!job) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    gen_input *in = &job->in;
    api_status st = parse_input(r, &app->cfg, in);
    if (st == API_OK && !*in->adapter && (in->image || in->mask || in->preprocess))
        st = api_problem(r, API_BAD_REQUEST, "%s: needs an adapter (without one the model samples unconditionally)",
                         in->image  ? "image"
                         : in->mask ? "mask"
                                    : "preprocess");
    if (st == API_OK && !*in->adapter && in->return_condition)
        st = api_problem(r, API_BAD_REQUEST, "return_condition: needs an adapter (no condition without one)");
    if (st == API_OK && *in->adapter && !in->image)
        st = api_problem(r, API_BAD_REQUEST,
                         "image: required with an adapter (a base64 PNG, a data: URL, or a file part)");

    static const char *const offers[] = {"application/json", "image/png"};
    const char *type = st == API_OK ? api_negotiate(r, offers, 2) : NULL;
    if (st == API_OK && !type)
        st = api_problem(r, API_NOT_ACCEPTABLE, "Accept: this endpoint answers application/json or image/png");
    int want_png = type && strcmp(type, "image/png") == 0;
    if (st == API_OK && want_png && in->return_condition)
        st = api_problem(r, API_NOT_ACCEPTABLE, "Accept: image/png holds no condition; return_condition needs JSON");
    if (st == API_OK && want_png && in->n != 1)
        st = api_problem(r, API_NOT_ACCEPTABLE, "Accept: image/png holds one image; n is %d (accept application/json)",
                         in->n);
    if (st == API_OK && in->stochastic && !*in->adapter)
        st = api_problem(r, API_BAD_REQUEST, "stochastic: applies to distilled adapters (CoDi sampling) only");
    if (st == API_OK && *in->adapter) st = find_adapter(r, app, job);
    if (st != API_OK) {
        gen_job_free(job);
        return st;
    }

    job->r = r;
    job->app = app;
    job->want_png = want_png;
    job->req.n = in->n;
    job->req.steps = in->steps_given ? in->steps : eng_default_steps(app->model, NULL, 0);
    job->req.eta = (float)in->eta;
    job->req.stochastic = in->stochastic;
    job->req.seed_given = in->seed_given;
    job->req.seed = in->seed;
    job->req.client_gone = on_client_gone;
    job->req.done = on_generated;
    job->req.user = job;

    api_request_suspend(r);
    if (!*in->adapter) {
        submit(job);
        return API_SUSPENDED;
    }
    if (api_tasks_submit(app->prep, prepare, job) == 0) return API_SUSPENDED;
    st = api_problem(r, API_TOO_MANY_REQUESTS, "the generation queue is full (queue_max %d requests waiting)",
                     app->cfg.queue_max);
    api_response_header(r, "Retry-After", "1");
    gen_job_free(job);
    api_request_resume(r);
    return st;
}
