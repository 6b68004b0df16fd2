/*
 * test_batcher.c - api/batcher.c over the engine's tiny random model.
 *
 * Which requests share an engine call is made certain, not left to timing:
 * a first request's done() callback, which runs on the batcher thread,
 * holds that thread until the test has queued every request of the case,
 * so the next batch is formed from a queue whose content the test knows.
 * Checked: requests with the same key (adapter, steps, eta) ride in one
 * call and others do not; seeds continue (seed, seed + n, ...) through a
 * batch, an explicit seed joins only where it continues the run; max_batch
 * splits a batch; a full queue refuses (done() not called); stopping
 * answers every waiting request with ESHUTDOWN, once, and refuses new ones.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/batcher.h"
#include "engine/engine.h"
#include "tests/test.h"
#include "util/clock.h"

static const char *TINY = "{\"sample_size\":8,\"in_channels\":3,\"out_channels\":3,\"block_out_channels\":[8,16],"
                          "\"down_block_types\":[\"DownBlock2D\",\"DownBlock2D\"],"
                          "\"up_block_types\":[\"UpBlock2D\",\"UpBlock2D\"],\"layers_per_block\":1,"
                          "\"norm_num_groups\":4}";

static eng_ctx *ctx;
static eng_model *model;

/* A request and what its done() saw. */
typedef struct probe {
    api_gen_request req; /* first: done() gets &req */
    int done_calls;
    int hold; /* done() holds the batcher thread until release() */
} probe;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int holding, released;

static void on_done(api_gen_request *r) {
    probe *p = (probe *)r;
    api_gen_request_release(r);
    pthread_mutex_lock(&mu);
    p->done_calls++;
    pthread_cond_broadcast(&cv);
    if (p->hold) {
        holding = 1;
        pthread_cond_broadcast(&cv);
        while (!released) pthread_cond_wait(&cv, &mu);
        holding = 0;
    }
    pthread_mutex_unlock(&mu);
}

static void probe_init(probe *p, int n, int steps, int seed_given, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->req.n = n;
    p->req.steps = steps;
    p->req.seed_given = seed_given;
    p->req.seed = seed;
    p->req.done = on_done;
}

/* Waits (bounded: a hang, not a speed test) for done_calls > 0 on every
 * probe; 0 on a hang. */
static int await_done(probe *ps, int n) {
    struct timespec ts = util_deadline(CLOCK_REALTIME, 600000);
    pthread_mutex_lock(&mu);
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        while (ps[i].done_calls == 0 && ok) ok = pthread_cond_timedwait(&cv, &mu, &ts) == 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Submits the holder and returns once the batcher thread is inside its
 * done(), where it stays until release(). */
static int hold_batcher(api_batcher *b, probe *holder) {
    probe_init(holder, 1, 1, 1, 1);
    holder->hold = 1;
    pthread_mutex_lock(&mu);
    released = 0;
    pthread_mutex_unlock(&mu);
    if (api_batcher_submit(b, &holder->req) != SRV_BATCH_OK) return 0;
    struct timespec ts = util_deadline(CLOCK_REALTIME, 600000);
    pthread_mutex_lock(&mu);
    int ok = 1;
    while (!holding && ok) ok = pthread_cond_timedwait(&cv, &mu, &ts) == 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void release(void) {
    pthread_mutex_lock(&mu);
    released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static api_batcher *start(int max_batch, int queue_max) {
    api_batcher_params p = {.model = model,
                            .threads = 1,
                            .max_batch = max_batch,
                            .batch_wait_ms = 0,
                            .queue_max = queue_max,
                            .queue_timeout_ms = 600000};
    api_batcher *b = NULL;
    char msg[256];
    if (api_batcher_start(&p, &b, msg, sizeof msg) != 0) printf("# batcher: %s\n", msg);
    return b;
}

TEST(same_key_shares_a_call_and_seeds_continue) {
    api_batcher *b = start(8, 16);
    CHECK(b);
    probe holder, r[5];
    CHECK(hold_batcher(b, &holder));
    probe_init(&r[0], 2, 2, 0, 0);     /* the batch's first: a random seed S */
    probe_init(&r[1], 1, 2, 0, 0);     /* S + 2 */
    probe_init(&r[2], 1, 3, 0, 0);     /* other steps: its own call */
    probe_init(&r[3], 1, 2, 1, 12345); /* a seed that continues nothing: its own call */
    probe_init(&r[4], 1, 2, 0, 0);     /* S + 3, behind the two above */
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(api_batcher_submit(b, &r[i].req), SRV_BATCH_OK);
    release();
    CHECK(await_done(r, 5));
    for (int i = 0; i < 5; i++) {
        CHECK_MSG(r[i].req.status == API_GEN_OK, "request %d: %d %s", i, r[i].req.status, r[i].req.msg);
        CHECK_EQ_INT(r[i].done_calls, 1);
    }
    CHECK_EQ_INT(r[0].req.batch_images, 4);
    CHECK_EQ_INT(r[1].req.batch_images, 4);
    CHECK_EQ_INT(r[4].req.batch_images, 4);
    CHECK_EQ_INT(r[2].req.batch_images, 1);
    CHECK_EQ_INT(r[3].req.batch_images, 1);
    CHECK(r[0].req.seed < API_SEED_LIMIT);
    CHECK(r[1].req.seed == r[0].req.seed + 2);
    CHECK(r[4].req.seed == r[0].req.seed + 3);
    CHECK(r[3].req.seed == 12345);
    api_batcher_stop(b, 10000);
    api_batcher_free(b);
}

TEST(explicit_seeds_join_only_where_they_continue) {
    api_batcher *b = start(8, 16);
    CHECK(b);
    probe holder, r[4];
    CHECK(hold_batcher(b, &holder));
    probe_init(&r[0], 2, 2, 1, 1000);
    probe_init(&r[1], 1, 2, 1, 1003); /* a gap: not the next seed */
    probe_init(&r[2], 1, 2, 1, 1002); /* the next one */
    probe_init(&r[3], 1, 2, 0, 0);    /* given the one after: 1003 */
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(api_batcher_submit(b, &r[i].req), SRV_BATCH_OK);
    release();
    CHECK(await_done(r, 4));
    for (int i = 0; i < 4; i++) CHECK_MSG(r[i].req.status == API_GEN_OK, "request %d: %s", i, r[i].req.msg);
    CHECK_EQ_INT(r[0].req.batch_images, 4);
    CHECK_EQ_INT(r[2].req.batch_images, 4);
    CHECK_EQ_INT(r[3].req.batch_images, 4);
    CHECK_EQ_INT(r[3].req.seed, 1003);
    /* 1003 was taken by the time its turn came: a call of its own */
    CHECK_EQ_INT(r[1].req.batch_images, 1);
    CHECK_EQ_INT(r[1].req.seed, 1003);
    api_batcher_stop(b, 10000);
    api_batcher_free(b);
}

TEST(max_batch_splits) {
    api_batcher *b = start(2, 16);
    CHECK(b);
    probe holder, r[3];
    CHECK(hold_batcher(b, &holder));
    for (int i = 0; i < 3; i++) {
        probe_init(&r[i], 1, 1, 0, 0);
        CHECK_EQ_INT(api_batcher_submit(b, &r[i].req), SRV_BATCH_OK);
    }
    release();
    CHECK(await_done(r, 3));
    CHECK_EQ_INT(r[0].req.batch_images, 2);
    CHECK_EQ_INT(r[1].req.batch_images, 2);
    CHECK_EQ_INT(r[2].req.batch_images, 1);
    CHECK(r[1].req.seed == r[0].req.seed + 1);
    api_batcher_stop(b, 10000);
    api_batcher_free(b);
}

TEST(full_queue_refuses) {
    api_batcher *b = start(8, 2);
    CHECK(b);
    probe holder, r[3];
    CHECK(hold_batcher(b, &holder));
    for (int i = 0; i < 3; i++) probe_init(&r[i], 1, 1, 0, 0);
    CHECK_EQ_INT(api_batcher_submit(b, &r[0].req), SRV_BATCH_OK);
    CHECK_EQ_INT(api_batcher_submit(b, &r[1].req), SRV_BATCH_OK);
    CHECK_EQ_INT(api_batcher_queued(b), 2);
    CHECK_EQ_INT(api_batcher_submit(b, &r[2].req), SRV_BATCH_EFULL);
    release();
    CHECK(await_done(r, 2));
    CHECK(r[0].req.status == API_GEN_OK && r[1].req.status == API_GEN_OK);
    api_batcher_stop(b, 10000);
    api_batcher_free(b);
    CHECK_EQ_INT(r[2].done_calls, 0); /* refused: still the caller's */
}

typedef struct stopper {
    api_batcher *b;
    pthread_t thread;
} stopper;

static void *stop_main(void *arg) {
    stopper *s = arg;
    api_batcher_stop(s->b, 600000);
    return NULL;
}

TEST(stop_answers_every_waiting_request) {
    api_batcher *b = start(8, 64);
    CHECK(b);
    probe holder, r[2], late[64];
    CHECK(hold_batcher(b, &holder));
    probe_init(&r[0], 1, 2, 0, 0);
    probe_init(&r[1], 1, 3, 0, 0);
    CHECK_EQ_INT(api_batcher_submit(b, &r[0].req), SRV_BATCH_OK);
    CHECK_EQ_INT(api_batcher_submit(b, &r[1].req), SRV_BATCH_OK);
    /* stop (it joins the thread, so from another thread), and see that it
     * began: submissions are refused from then on. Those that slipped in
     * before are waiting requests like the others. */
    stopper s = {.b = b};
    CHECK(pthread_create(&s.thread, NULL, stop_main, &s) == 0);
    int queued_late = 0, rc = SRV_BATCH_OK;
    while (queued_late < 62) {
        probe_init(&late[queued_late], 1, 1, 0, 0);
        rc = api_batcher_submit(b, &late[queued_late].req);
        if (rc != SRV_BATCH_OK) break;
        queued_late++;
        sched_yield();
    }
    if (rc == SRV_BATCH_OK) { /* the queue filled first: wait for the refusal */
        probe extra;
        do {
            probe_init(&extra, 1, 1, 0, 0);
            rc = api_batcher_submit(b, &extra.req);
            sched_yield();
        } while (rc == SRV_BATCH_EFULL);
    }
    release();
    pthread_join(s.thread, NULL);
    CHECK_EQ_INT(rc, SRV_BATCH_ESTOPPED);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(r[i].done_calls, 1);
        CHECK_EQ_INT(r[i].req.status, API_GEN_ESHUTDOWN);
    }
    for (int i = 0; i < queued_late; i++) {
        CHECK_EQ_INT(late[i].done_calls, 1);
        CHECK_EQ_INT(late[i].req.status, API_GEN_ESHUTDOWN);
    }
    CHECK_EQ_INT(holder.done_calls, 1);
    CHECK_EQ_INT(holder.req.status, API_GEN_OK); /* the running batch finished */
    probe after;
    probe_init(&after, 1, 1, 0, 0);
    CHECK_EQ_INT(api_batcher_submit(b, &after.req), SRV_BATCH_ESTOPPED);
    api_batcher_free(b);
}

int main(void) {
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    cp.threads = 1;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK || eng_model_create(ctx, TINY, NULL, 5, &model, &err) != ENG_OK) {
        printf("FAIL setup: %s\n", err.msg);
        return 1;
    }
    RUN(same_key_shares_a_call_and_seeds_continue);
    RUN(explicit_seeds_join_only_where_they_continue);
    RUN(max_batch_splits);
    RUN(full_queue_refuses);
    RUN(stop_answers_every_waiting_request);
    eng_model_free(model);
    eng_ctx_free(ctx);
    return TEST_SUMMARY();
}
