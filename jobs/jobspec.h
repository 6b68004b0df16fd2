/*
 * jobspec.h - a job's parameters: the JSON object a client submits, parsed
 * and validated into engine parameters.
 *
 *   {"kind": "distill", "dataset": "cifar10-train",
 *    "task": {"name": "sr", "factor": 4}, "adapter_kind": "controlnet",
 *    "steps": 2000, "batch_size": 32, "lr": 1e-3, "seed": 7, "name": "sr4"}
 *
 * kind        pretrain | distill | teacher | cm2 | evaluate (required)
 * dataset     a registered dataset: its name, or its id (a number, or a
 *             string of digits) (required)
 * task        {name, factor, canny, max_sigma, max_noise} (adapter kinds;
 *             required there); name sr|inpaint|colorize|edges|deblur|denoise
 * adapter_kind controlnet | lite
 * steps, batch_size, lr, warmup, ema_decay, seed        the training run
 * n_grid, lambda, ode_model base|ema, consistency_space x|eps, shared_t,
 * loss_weight none|snr_trunc                             CoDi's options
 * teacher     cm2: the teacher adapter (name or id) (required there)
 * config      pretrain: a UNet2DModel config object (default: the served
 *             model's); prediction v|epsilon
 * name        the adapter (or pretrained model) to register; letters,
 *             digits, '.', '_', '-', starting with a letter; default
 *             "<kind>-<task>-<job id>"
 * checkpoint_every  steps between checkpoints (default 100)
 * adapter, n, sample_steps   evaluate: the adapter (name or id), how many
 *             of the dataset's first images (default 16), sampling steps
 *             (default: eng_default_steps, 4 for a distilled adapter,
 *             50 for a teacher)
 *
 * Unknown fields, and fields that do not apply to the kind, are errors, and
 * every error names its field.
 */
#ifndef CODID_JOBS_JOBSPEC_H
#define CODID_JOBS_JOBSPEC_H

#include <stddef.h>

#include "engine/engine.h"
#include "jobs/store.h"

typedef enum jobs_kind {
    JOBS_KIND_PRETRAIN = 0,
    JOBS_KIND_DISTILL = 1,
    JOBS_KIND_TEACHER = 2,
    JOBS_KIND_CM2 = 3,
    JOBS_KIND_EVALUATE = 4,
    JOBS_KIND_COUNT
} jobs_kind;

const char *jobs_kind_name(jobs_kind k);

#define JOBS_CHECKPOINT_EVERY_DEFAULT 100
#define JOBS_EVAL_N_DEFAULT           16

/* A reference to a registered row: by id when id > 0, else by name. */
typedef struct jobs_ref {
    int64_t id;
    char name[JOBS_NAME_MAX + 1];
} jobs_ref;

typedef struct jobs_spec {
    jobs_kind kind;
    jobs_ref dataset;
    jobs_ref teacher;             /* cm2 */
    jobs_ref adapter;             /* evaluate */
    char name[JOBS_NAME_MAX + 1]; /* "" when not given */
    eng_train_params train;       /* teacher_path is left NULL */
    int checkpoint_every;
    char *model_config; /* pretrain: config JSON text, or NULL */
    int eval_n;         /* evaluate */
    int sample_steps;   /* evaluate; 0: by the adapter */
} jobs_spec;

/* "12" is id 12, a valid name is that name: 0, or -1 for neither. */
int jobs_ref_parse(const char *text, jobs_ref *out);

/* JOBS_OK, or JOBS_EINVAL with a message that names the field. */
int jobs_spec_parse(const char *json, jobs_spec *out, char *msg, size_t msgsz);
void jobs_spec_free(jobs_spec *s);

/* The steps the job's progress counts to: training steps, or images
 * evaluated. */
int jobs_spec_total(const jobs_spec *s);

/* The fields above as data, for clients that build a form from them
 * (GET /v1/capabilities): {"kinds": [...], "fields": [{name, kinds, type,
 * minimum, maximum, exclusive_minimum, exclusive_maximum, options}],
 * "defaults": {kind: {field: value}}}, the defaults being what a job of
 * that kind gets when the field is left out. NULL when out of memory. */
struct cJSON *jobs_spec_describe(void);

/* Whether name is a valid registry name (see `name` above). */
int jobs_name_valid(const char *name);

#endif
