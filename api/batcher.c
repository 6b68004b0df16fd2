/*
 * batcher.c - the inference thread.
 *
 * One thread owns generation: torch's intra-op pool is per calling thread
 * (eng_set_threads), so the thread budget for generation is set once, here,
 * and no HTTP thread ever waits on a forward pass.
 *
 * Queue
 * -----
 * HTTP handlers call api_batcher_submit(), which appends the request to a
 * FIFO list under `lock` and signals `more`; it refuses when queue_max
 * requests already wait (the handler answers 429) or once stopping began.
 * The batcher owns a submitted request until it calls the request's done()
 * callback, on this thread, exactly once; after done() it never touches the
 * request again.
 *
 * Batches
 * -------
 * The thread takes the oldest request, then every waiting request with the
 * same key (adapter, steps, eta, stochastic) that fits in max_batch images. While the
 * batch holds fewer images than the previous one did, it waits up to
 * batch_wait_ms for more to arrive before running: under steady load the
 * clients answered by one batch come back for the next one and batches keep
 * their size, while a lone request at low load runs at once instead of
 * paying the wait (bench/RESULTS.md, 'Serving'). All requests of a batch
 * go through one eng_generate() call. That call takes one seed and makes
 * image i from seed + i, the same image whatever the batch, so a request may
 * join a batch only where its seeds continue the batch's run: a request with
 * an explicit seed joins when its seed is the next one, a request without a
 * seed is given the next one. Every request thus gets the images an
 * unbatched call with its (reported) seed would make: the same noise and the
 * same arithmetic, except that libtorch's CPU kernels are not batch-invariant
 * (oneDNN convolutions, a 1-row GEMM), so a rare sample may come out one
 * level off (tests/api_batching.test.sh measures it; a known bug). Requests
 * with unrelated explicit seeds run as separate engine calls.
 *
 * Abandoned requests
 * ------------------
 * A suspended HTTP connection is not watched by libmicrohttpd, so the batcher
 * asks each request's client_gone() when it takes the request from the queue
 * (a gone client's request is dropped before it runs) and after every sampling
 * step (the engine call is cancelled when every client of the batch left). A
 * request that waited longer than queue_timeout_ms fails instead of running.
 *
 * Shutdown
 * --------
 * api_batcher_stop() sets `stopping`: submissions are refused, the running
 * batch finishes (or is cancelled through the progress callback once the
 * grace period passes), then the thread fails every waiting request with
 * ESHUTDOWN and exits.
 */
#include "api/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/png.h"

struct api_batcher {
    api_batcher_params p;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the queue and stopping */
    pthread_cond_t more;  /* a request arrived, or stopping began */
    api_gen_request *head, *tail;
    int queued;
    int stopping;
    atomic_int cancel;       /* the running engine call should stop */
    api_gen_request **batch; /* room for the requests of one batch */
    int last_images;         /* images in the previous batch (batcher thread) */
};

/* The batch being formed or run; lives on the batcher thread's stack. */
typedef struct batch {
    api_batcher *b;
    api_gen_request **reqs;
    int n_reqs;
    int images;
    eng_adapter *adapter;
    int steps;
    float eta;
    int stochastic;
    uint64_t seed, next_seed;
} batch;

static uint64_t random_seed(int n) {
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != sizeof x) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
    }
    /* seed + i stays below the limit for all n images */
    return x % (API_SEED_LIMIT - (uint64_t)n);
}

static void fail_req(api_gen_request *req, api_gen_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_req(api_gen_request *req, api_gen_status status, const char *fmt, ...) {
    req->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->msg, sizeof req->msg, fmt, ap);
    va_end(ap);
}

void api_gen_request_release(api_gen_request *req) {
    if (req->pngs)
        for (int i = 0; i < req->n; i++) free(req->pngs[i]);
    free(req->pngs);
    free(req->png_lens);
    req->pngs = NULL;
    req->png_lens = NULL;
}

/* Completes a list linked through next. */
static void complete_all(api_gen_request *list) {
    while (list) {
        api_gen_request *next = list->next;
        list->next = NULL;
        list->done(list);
        list = next;
    }
}

static void unlink_req(api_batcher *b, api_gen_request *prev, api_gen_request *req) {
    if (prev)
        prev->next = req->next;
    else
        b->head = req->next;
    if (b->tail == req) b->tail = prev;
    req->next = NULL;
    b->queued--;
}

/* A request that must not run: its client left or it waited too long.
 * Moves it to *failed and returns 1. Called under the lock. */
static int drop_if_stale(api_batcher *b, api_gen_request *req, double now, api_gen_request **failed) {
    if (req->client_gone && req->client_gone(req))
        fail_req(req, API_GEN_EGONE, "the client disconnected");
    else if (now - req->enqueued_ms > b->p.queue_timeout_ms)
        fail_req(req, API_GEN_ETIMEDOUT, "waited %.0f ms in the queue, over %d ms", now - req->enqueued_ms,
                 b->p.queue_timeout_ms);
    else
        return 0;
    req->next = *failed;
    *failed = req;
    return 1;
}

static void batch_add(batch *bt, api_gen_request *req) {
    if (!req->seed_given) {
        req->seed = bt->n_reqs == 0 ? random_seed(req->n) : bt->next_seed;
    }
    if (bt->n_reqs == 0) {
        bt->adapter = req->adapter;
        bt->steps = req->steps;
        bt->eta = req->eta;
        bt->stochastic = req->stochastic;
        bt->seed = req->seed;
        bt->next_seed = req->seed;
    }
    bt->reqs[bt->n_reqs++] = req;
    bt->images += req->n;
    bt->next_seed += (uint64_t)req->n;
}

static int batch_fits(const batch *bt, const api_gen_request *req, int max_batch) {
    if (req->adapter != bt->adapter || req->steps != bt->steps || req->eta != bt->eta ||
        req->stochastic != bt->stochastic)
        return 0;
    if (bt->images + req->n > max_batch) return 0;
    if (req->seed_given) return req->seed == bt->next_seed;
    return bt->next_seed + (uint64_t)req->n <= API_SEED_LIMIT;
}

/* Moves every waiting request that fits into bt. Under the lock. */
static void batch_scan(api_batcher *b, batch *bt, api_gen_request **failed) {
    double now = util_mono_ms();
    api_gen_request *prev = NULL, *req = b->head;
    while (req && bt->images < b->p.max_batch) {
        api_gen_request *next = req->next;
        int first = bt->n_reqs == 0;
        if (first || batch_fits(bt, req, b->p.max_batch)) {
            unlink_req(b, prev, req);
            if (!drop_if_stale(b, req, now, failed)) batch_add(bt, req);
        } else {
            prev = req;
        }
        req = next;
    }
}

static void timed_wait(api_batcher *b, double ms) {
    struct timespec ts = util_deadline(CLOCK_MONOTONIC, ms);
    pthread_cond_timedwait(&b->more, &b->lock, &ts);
}

/* Forms the next batch (possibly empty when every waiting request was
 * stale). Under the lock; returns 0 when the thread should exit. */
static int next_batch(api_batcher *b, batch *bt, api_gen_request **failed) {
    while (!b->stopping && !b->head) pthread_cond_wait(&b->more, &b->lock);
    if (b->stopping) return 0;
    double deadline = util_mono_ms() + b->p.batch_wait_ms;
    int target = b->last_images < 1 ? 1 : b->last_images;
    if (target > b->p.max_batch) target = b->p.max_batch;
    for (;;) {
        batch_scan(b, bt, failed);
        if (bt->n_reqs == 0 && !b->head) break;
        if (bt->images >= target || b->stopping) break;
        double left = deadline - util_mono_ms();
        if (left <= 0) break;
        timed_wait(b, left);
    }
    if (bt->n_reqs > 0) b->last_images = bt->images;
    return 1;
}

static int on_progress(int step, int steps, void *user) {
    (void)step, (void)steps;
    batch *bt = user;
    if (atomic_load(&bt->b->cancel)) return 1;
    for (int i = 0; i < bt->n_reqs; i++) {
        api_gen_request *req = bt->reqs[i];
        if (!req->client_gone || !req->client_gone(req)) return 0;
    }
    return 1; /* nobody is waiting for these images */
}

static void encode_images(api_gen_request *req, const eng_image *imgs) {
    double t0 = util_mono_ms();
    req->pngs = calloc((size_t)req->n, sizeof *req->pngs);
    req->png_lens = calloc((size_t)req->n, sizeof *req->png_lens);
    if (!req->pngs || !req->png_lens) {
        fail_req(req, API_GEN_ENOMEM, "out of memory for the encoded images");
        return;
    }
    for (int i = 0; i < req->n; i++) {
        const eng_image *im = &imgs[i];
        char msg[200];
        if (util_png_encode(im->data, im->width, im->height, im->channels, &req->pngs[i], &req->png_lens[i], msg,
                            sizeof msg) != 0) {
            fail_req(req, API_GEN_EENGINE, "PNG encoding failed: %s", msg);
            return;
        }
    }
    req->encode_ms = util_mono_ms() - t0;
}

static void run_batch(api_batcher *b, batch *bt) {
    double t0 = util_mono_ms();
    for (int i = 0; i < bt->n_reqs; i++) {
        bt->reqs[i]->queue_ms = t0 - bt->reqs[i]->enqueued_ms;
        bt->reqs[i]->batch_images = bt->images;
    }
    eng_image *out = calloc((size_t)bt->images, sizeof *out);
    /* one condition per image: each request's, repeated n times */
    eng_image *cond = bt->adapter ? calloc((size_t)bt->images, sizeof *cond) : NULL;
    for (int i = 0, k = 0; cond && i < bt->n_reqs; i++)
        for (int j = 0; j < bt->reqs[i]->n; j++) cond[k++] = *bt->reqs[i]->cond;
    eng_error err = {0};
    int rc = ENG_ENOMEM;
    if (out && (cond || !bt->adapter)) {
        eng_gen_params gp;
        eng_gen_params_init(&gp);
        gp.n = bt->images;
        gp.steps = bt->steps;
        gp.seed = bt->seed;
        gp.eta = bt->eta;
        gp.stochastic = bt->stochastic;
        gp.progress = on_progress;
        gp.user = bt;
        rc = eng_generate(b->p.model, bt->adapter, &gp, cond, out, &err);
    } else {
        snprintf(err.msg, sizeof err.msg, "out of memory");
    }
    double t1 = util_mono_ms();
    util_log(UTIL_LOG_DEBUG, "batch: %d requests, %d images, %d steps, seed %llu: %.1f ms%s%s", bt->n_reqs, bt->images,
             bt->steps, (unsigned long long)bt->seed, t1 - t0, rc ? ", failed: " : "", rc ? err.msg : "");

    int offset = 0;
    for (int i = 0; i < bt->n_reqs; i++) {
        api_gen_request *req = bt->reqs[i];
        req->inference_ms = t1 - t0;
        if (rc == ENG_OK) {
            req->status = API_GEN_OK;
            encode_images(req, out + offset);
            if (req->status != API_GEN_OK) api_gen_request_release(req);
        } else if (rc == ENG_ECANCELLED) {
            if (atomic_load(&b->cancel))
                fail_req(req, API_GEN_ESHUTDOWN, "cancelled: the daemon is stopping");
            else
                fail_req(req, API_GEN_EGONE, "cancelled: every client disconnected");
        } else if (rc == ENG_ENOMEM) {
            fail_req(req, API_GEN_ENOMEM, "%s", err.msg);
        } else {
            fail_req(req, API_GEN_EENGINE, "%s: %s", eng_strerror(rc), err.msg);
        }
        offset += req->n;
    }
    free(cond);
    if (out) {
        if (rc == ENG_OK)
            for (int i = 0; i < bt->images; i++) eng_image_free(&out[i]);
        free(out);
    }
    for (int i = 0; i < bt->n_reqs; i++) bt->reqs[i]->done(bt->reqs[i]);
}

static void *batcher_main(void *arg) {
    api_batcher *b = arg;
    if (b->p.threads > 0) eng_set_threads(b->p.threads);
    for (;;) {
        batch bt = {.b = b, .reqs = b->batch};
        api_gen_request *failed = NULL;
        pthread_mutex_lock(&b->lock);
        int go_on = next_batch(b, &bt, &failed);
        pthread_mutex_unlock(&b->lock);
        complete_all(failed);
        if (bt.n_reqs) run_batch(b, &bt);
        if (!go_on) break;
    }

    pthread_mutex_lock(&b->lock);
    api_gen_request *left = b->head;
    b->head = b->tail = NULL;
    b->queued = 0;
    pthread_mutex_unlock(&b->lock);
    for (api_gen_request *req = left; req; req = req->next) fail_req(req, API_GEN_ESHUTDOWN, "the daemon is stopping");
    complete_all(left);
    return NULL;
}

int api_batcher_start(const api_batcher_params *p, api_batcher **out, char *msg, size_t msgsz) {
    api_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    b->p = *p;
    /* A batch holds at most max_batch requests (each has n >= 1), or one
     * request larger than max_batch on its own. */
    b->batch = calloc((size_t)(p->max_batch > 0 ? p->max_batch : 1), sizeof *b->batch);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->more, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&b->lock, NULL);
    int rc = b->batch ? pthread_create(&b->thread, NULL, batcher_main, b) : ENOMEM;
    if (rc != 0) {
        snprintf(msg, msgsz, "cannot start the batcher thread: %s", strerror(rc));
        pthread_cond_destroy(&b->more);
        pthread_mutex_destroy(&b->lock);
        free(b->batch);
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

int api_batcher_submit(api_batcher *b, api_gen_request *req) {
    req->next = NULL;
    req->enqueued_ms = util_mono_ms();
    req->pngs = NULL;
    req->png_lens = NULL;
    req->msg[0] = '\0';
    pthread_mutex_lock(&b->lock);
    int rc = b->stopping ? SRV_BATCH_ESTOPPED : b->queued >= b->p.queue_max ? SRV_BATCH_EFULL : SRV_BATCH_OK;
    if (rc == SRV_BATCH_OK) {
        if (b->tail)
            b->tail->next = req;
        else
            b->head = req;
        b->tail = req;
        b->queued++;
        pthread_cond_signal(&b->more);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void api_batcher_stop(api_batcher *b, int grace_ms) {
    pthread_mutex_lock(&b->lock);
    int already = b->stopping;
    b->stopping = 1;
    pthread_cond_signal(&b->more);
    pthread_mutex_unlock(&b->lock);
    if (already) return;

    struct timespec deadline = util_deadline(CLOCK_REALTIME, grace_ms);
    if (pthread_timedjoin_np(b->thread, NULL, &deadline) != 0) {
        util_log(UTIL_LOG_WARN, "generation still running after %d ms: cancelling it", grace_ms);
        atomic_store(&b->cancel, 1);
        pthread_join(b->thread, NULL);
    }
}

int api_batcher_queued(api_batcher *b) {
    pthread_mutex_lock(&b->lock);
    int n = b->queued;
    pthread_mutex_unlock(&b->lock);
    return n;
}

void api_batcher_free(api_batcher *b) {
    if (!b) return;
    pthread_cond_destroy(&b->more);
    pthread_mutex_destroy(&b->lock);
    free(b->batch);
    free(b);
}
