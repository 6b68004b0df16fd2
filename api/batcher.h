/*
 * batcher.h - the inference thread: the one owner of generation.
 *
 * Callers (the HTTP handlers) submit api_gen_request objects and return at
 * once; the batcher's thread groups compatible requests, runs the engine,
 * encodes PNGs and calls each request's done() on its own thread. The design
 * notes are at the top of batcher.c.
 */
#ifndef CODID_API_BATCHER_H
#define CODID_API_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* Seeds are integers below 2^53 so that they survive a trip through JSON. */
#define API_SEED_LIMIT ((uint64_t)1 << 53)

typedef enum api_gen_status {
    API_GEN_OK = 0,
    API_GEN_ESHUTDOWN = -1, /* the daemon is stopping */
    API_GEN_ETIMEDOUT = -2, /* waited longer than the queue timeout */
    API_GEN_EGONE = -3,     /* the client disconnected before its images were made */
    API_GEN_EENGINE = -4,   /* the engine failed; msg says why */
    API_GEN_ENOMEM = -5
} api_gen_status;

typedef struct api_gen_request api_gen_request;

struct api_gen_request {
    /* Set by the submitter. */
    eng_adapter *adapter;  /* NULL: unconditional */
    const eng_image *cond; /* with an adapter: the condition of all n images,
                              at the model's size (the submitter's) */
    int n, steps;
    float eta;
    int stochastic; /* CoDi: fresh noise between steps (distilled adapters) */
    int seed_given; /* 0: the batcher picks the seed and reports it */
    uint64_t seed;
    /* 1 when nobody waits for the result any more; called on the batcher
     * thread, may be NULL. */
    int (*client_gone)(api_gen_request *req);
    /* Called once on the batcher thread with the results below; the
     * batcher never touches req after it returns, so done() may free it. */
    void (*done)(api_gen_request *req);
    void *user;

    /* Set by the batcher before done(). */
    api_gen_status status;
    char msg[256];
    uint8_t **pngs; /* n encoded images (malloc'd) when status is OK */
    size_t *png_lens;
    double queue_ms, inference_ms, encode_ms;
    int batch_images; /* images made by the engine call this request rode in */

    /* Private to the batcher. */
    api_gen_request *next;
    double enqueued_ms;
};

/* Frees the outputs (pngs, png_lens) of a completed request; a png whose
 * pointer the caller set to NULL (taken over) is skipped. */
void api_gen_request_release(api_gen_request *req);

typedef struct api_batcher api_batcher;

typedef struct api_batcher_params {
    eng_model *model;
    int threads;          /* eng_set_threads() on the batcher thread; 0: leave */
    int max_batch;        /* images per engine call */
    int batch_wait_ms;    /* how long a batch waits for more requests */
    int queue_max;        /* waiting requests; submit refuses beyond */
    int queue_timeout_ms; /* a request that waited longer fails ETIMEDOUT */
} api_batcher_params;

enum {
    SRV_BATCH_OK = 0,
    SRV_BATCH_EFULL = -1,   /* queue_max requests are waiting */
    SRV_BATCH_ESTOPPED = -2 /* api_batcher_stop() has begun */
};

int api_batcher_start(const api_batcher_params *p, api_batcher **out, char *msg, size_t msgsz);

/* Queues req (the batcher owns it until done()); on failure req is left to
 * the caller and done() is not called. */
int api_batcher_submit(api_batcher *b, api_gen_request *req);

/* Refuses new requests, fails the waiting ones with ESHUTDOWN, lets the
 * running batch finish (cancelling it past grace_ms) and joins the thread.
 * Submissions after this return ESTOPPED until api_batcher_free(). */
void api_batcher_stop(api_batcher *b, int grace_ms);
/* Requests waiting in the queue now. */
int api_batcher_queued(api_batcher *b);
void api_batcher_free(api_batcher *b);

#endif
