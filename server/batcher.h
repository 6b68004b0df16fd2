/*
 * batcher.h - the inference thread: the one owner of generation.
 *
 * Callers (the HTTP handlers) submit srv_gen_request objects and return at
 * once; the batcher's thread groups compatible requests, runs the engine,
 * encodes PNGs and calls each request's done() on its own thread. The design
 * notes are at the top of batcher.c.
 */
#ifndef CODID_SERVER_BATCHER_H
#define CODID_SERVER_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* Seeds are integers below 2^53 so that they survive a trip through JSON. */
#define SRV_SEED_LIMIT ((uint64_t)1 << 53)

typedef enum srv_gen_status {
    SRV_GEN_OK = 0,
    SRV_GEN_ESHUTDOWN = -1,  /* the daemon is stopping */
    SRV_GEN_ETIMEDOUT = -2,  /* waited longer than the queue timeout */
    SRV_GEN_EGONE = -3,      /* the client disconnected before its images were made */
    SRV_GEN_EENGINE = -4,    /* the engine failed; msg says why */
    SRV_GEN_ENOMEM = -5
} srv_gen_status;

typedef struct srv_gen_request srv_gen_request;

struct srv_gen_request {
    /* Set by the submitter. */
    eng_adapter *adapter; /* NULL: unconditional */
    const eng_image *cond; /* with an adapter: the condition of all n images,
                              at the model's size (the submitter's) */
    int n, steps;
    float eta;
    int seed_given;       /* 0: the batcher picks the seed and reports it */
    uint64_t seed;
    /* 1 when nobody waits for the result any more; called on the batcher
     * thread, may be NULL. */
    int (*client_gone)(srv_gen_request *req);
    /* Called once on the batcher thread with the results below; the
     * batcher never touches req after it returns, so done() may free it. */
    void (*done)(srv_gen_request *req);
    void *user;

    /* Set by the batcher before done(). */
    srv_gen_status status;
    char msg[256];
    uint8_t **pngs;       /* n encoded images (malloc'd) when status is OK */
    size_t *png_lens;
    double queue_ms, inference_ms, encode_ms;
    int batch_images;     /* images made by the engine call this request rode in */

    /* Private to the batcher. */
    srv_gen_request *next;
    double enqueued_ms;
};

/* Frees the outputs (pngs, png_lens) of a completed request; a png whose
 * pointer the caller set to NULL (taken over) is skipped. */
void srv_gen_request_release(srv_gen_request *req);

typedef struct srv_batcher srv_batcher;

typedef struct srv_batcher_params {
    eng_model *model;
    int threads;          /* eng_set_threads() on the batcher thread; 0: leave */
    int max_batch;        /* images per engine call */
    int batch_wait_ms;    /* how long a batch waits for more requests */
    int queue_max;        /* waiting requests; submit refuses beyond */
    int queue_timeout_ms; /* a request that waited longer fails ETIMEDOUT */
} srv_batcher_params;

enum {
    SRV_BATCH_OK = 0,
    SRV_BATCH_EFULL = -1,    /* queue_max requests are waiting */
    SRV_BATCH_ESTOPPED = -2  /* srv_batcher_stop() has begun */
};

int srv_batcher_start(const srv_batcher_params *p, srv_batcher **out, char *msg, size_t msgsz);

/* Queues req (the batcher owns it until done()); on failure req is left to
 * the caller and done() is not called. */
int srv_batcher_submit(srv_batcher *b, srv_gen_request *req);

/* Refuses new requests, fails the waiting ones with ESHUTDOWN, lets the
 * running batch finish (cancelling it past grace_ms) and joins the thread.
 * Submissions after this return ESTOPPED until srv_batcher_free(). */
void srv_batcher_stop(srv_batcher *b, int grace_ms);
/* Requests waiting in the queue now. */
int srv_batcher_queued(srv_batcher *b);
void srv_batcher_free(srv_batcher *b);

#endif
