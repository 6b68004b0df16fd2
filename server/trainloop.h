/*
 * trainloop.h - the command-line training loop shared by `codid pretrain`
 * and `codid adapter train`: steps a trainer to its total, logs progress and
 * a loss CSV, checkpoints every M steps and on SIGTERM/SIGINT, resumes from
 * an existing checkpoint, exports at the end.
 */
#ifndef CODID_SERVER_TRAINLOOP_H
#define CODID_SERVER_TRAINLOOP_H

#include "engine/engine.h"

typedef struct srv_train_opts {
    int total_steps;
    const char *checkpoint; /* NULL: none */
    int checkpoint_every;
    const char *log_path; /* loss CSV, appended; NULL: none */
    int log_every;        /* progress line on stderr every N steps */
    const char *out;      /* export target */
    int fp16;             /* export weights as F16 */
    const char *extra_metadata_json;
} srv_train_opts;

/* 0 done and exported, 3 stopped by a signal (checkpointed), 1 failure. */
int srv_train_loop(eng_trainer *t, const srv_train_opts *o);

#endif
