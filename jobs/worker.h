/*
 * worker.h - the training worker threads: they claim queued jobs from the
 * store and run them to the end (see worker.c for the design).
 */
#ifndef CODID_JOBS_WORKER_H
#define CODID_JOBS_WORKER_H

#include <stddef.h>

#include "engine/engine.h"

#define JOBS_WORKERS_MAX    64
#define JOBS_PROGRESS_EVERY 10  /* steps between progress rows */
#define JOBS_IDLE_POLL_MS   250 /* how often an idle worker looks for jobs */
#define JOBS_LOSS_SMOOTHING 0.98

typedef struct jobs_workers jobs_workers;

typedef struct jobs_workers_params {
    const char *data_dir; /* codid.db, checkpoints/, adapters/, models/ */
    int workers;          /* threads; 0 starts none */
    int train_threads;    /* intra-op threads of each; 0: torch's default */
    eng_ctx *ctx;         /* pretrain jobs build their model on it */
    eng_model *model;     /* the served base model: adapters train on it */
} jobs_workers_params;

/* Starts p->workers threads, each with its own store connection. The
 * directories must exist. Returns 0, or -1 with a message. */
int jobs_workers_start(const jobs_workers_params *p, jobs_workers **out, char *msg, size_t msgsz);

/* Every worker finishes its current step, checkpoints, and puts its job
 * back in the queue; the threads are joined and w freed. */
void jobs_workers_stop(jobs_workers *w);

#endif
