/*
 * jobs.h - the jobs subsystem's door for the daemon, the HTTP handlers and
 * the command line.
 *
 * Start-up and shutdown, in two steps around the model's loading:
 * jobs_system_open() takes the data directory's lock, opens the store (so
 * that HTTP authentication can read keys before the server listens), puts
 * jobs left `running` by a crash back in the queue and removes temporary
 * files a crash left behind; jobs_system_start_workers() starts the
 * training workers once the base model is there. jobs_system_stop() has the
 * workers checkpoint and requeue their jobs, then closes everything.
 *
 * Operations: each takes a store (jobs_system_store() for the daemon's
 * shared connection, or one from jobs_store_open() for a command-line
 * tool), validates, and returns a cJSON value that the caller owns (free
 * with cJSON_Delete) ready to be sent as a response body. Times in that
 * JSON are ISO 8601 UTC strings with milliseconds.
 *
 * Return codes are those of store.h; an HTTP layer maps them as
 * JOBS_EINVAL 400/422, JOBS_ENOTFOUND 404, JOBS_ESTATE, JOBS_EEXIST and
 * JOBS_EINUSE 409, anything else 500. A reference to a dataset or adapter
 * is its name, or its id as decimal text.
 */
#ifndef CODID_JOBS_JOBS_H
#define CODID_JOBS_JOBS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "jobs/store.h"

#define JOBS_LIST_LIMIT_MAX 200
#define JOBS_LOCK_NAME      "codid.lock"

/* ---- start-up and shutdown ------------------------------------------------- */

typedef struct jobs_system jobs_system;

typedef struct jobs_system_params {
    int workers;       /* training threads; 0: this daemon trains nothing */
    int train_threads; /* intra-op threads per worker; 0: torch's default */
    eng_ctx *ctx;
    eng_model *model; /* the served base model */
} jobs_system_params;

/* 0, or -1 with a message (another process holds the data directory, the
 * database is locked, corrupt or too new). data_dir must exist. */
int jobs_system_open(const char *data_dir, jobs_system **out, char *msg, size_t msgsz);
/* 0, or -1 with a message (a bad count, a thread that cannot start). */
int jobs_system_start_workers(jobs_system *s, const jobs_system_params *p, char *msg, size_t msgsz);
/* The connection HTTP threads share (its calls are serialised). */
jobs_store *jobs_system_store(jobs_system *s);
void jobs_system_stop(jobs_system *s);

/* ---- jobs -------------------------------------------------------------------- */

/* Validates the job (jobs/jobspec.h; the dataset, teacher and adapter it
 * names must be registered, its adapter name free) and queues it. */
int jobs_submit(jobs_store *st, const char *json, int64_t *id, char *msg, size_t msgsz);
/* {id, kind, status, params, created_at, started_at, finished_at, progress
 * {step, total, loss, loss_smooth, lr, it_per_s, eta_s}, error, result,
 * cancel_requested, attempts, checkpoint} */
int jobs_get(jobs_store *st, int64_t id, cJSON **out, char *msg, size_t msgsz);
/* {"jobs": [...newest first], "next_cursor": id or null}. status: NULL for
 * any; cursor: 0 for the newest, else the previous page's next_cursor;
 * limit: 1..JOBS_LIST_LIMIT_MAX. */
int jobs_list(jobs_store *st, const char *status, int64_t cursor, int limit, cJSON **out, char *msg, size_t msgsz);
/* Cancels a queued job at once, asks a running one to stop at its next
 * step. *out (when out is not NULL) receives the job afterwards. */
int jobs_cancel(jobs_store *st, int64_t id, cJSON **out, char *msg, size_t msgsz);
/* [{id, ts, kind, data}, ...] with ids above after_id, oldest first:
 * an SSE stream sends each with its id and resumes from Last-Event-ID. */
int jobs_events_since(jobs_store *st, int64_t id, int64_t after_id, int limit, cJSON **out, char *msg, size_t msgsz);

/* ---- datasets ----------------------------------------------------------------- */

/* Registers an existing dataset file (jobs/dataset.h); count, size,
 * channels and labels are read from it. source: how it was made ("cifar10",
 * "fashion-mnist", "png", "upload", "file"); split may be NULL. */
int jobs_dataset_register(jobs_store *st, const char *name, const char *path, const char *source, const char *split,
                          int skipped, cJSON **out, char *msg, size_t msgsz);
int jobs_dataset_list(jobs_store *st, cJSON **out, char *msg, size_t msgsz);
int jobs_dataset_get(jobs_store *st, const char *ref, cJSON **out, char *msg, size_t msgsz);
/* JOBS_EINUSE while a queued or running job names it. The file is removed
 * too when it lies in data_dir/datasets/. */
int jobs_dataset_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz);

/* ---- adapters ------------------------------------------------------------------ */

/* Registers an adapter file trained elsewhere; task, kind and base hash
 * come from its metadata. */
int jobs_adapter_register(jobs_store *st, const char *name, const char *path, cJSON **out, char *msg, size_t msgsz);
/* Registers the adapters shipped in DIR (DIR/<folder>/<name>.safetensors,
 * as under models/adapters/) that were trained for the base whose content
 * hash is base_hash, each under its file name without the extension. One
 * already registered under that name from the same file is left as it is;
 * a name taken by another adapter, a file for another base and an
 * unreadable file are logged and skipped. *registered counts the new ones.
 * JOBS_OK unless DIR exists and cannot be read or the store fails. */
int jobs_adapter_register_dir(jobs_store *st, const char *dir, const char *base_hash, int *registered, char *msg,
                              size_t msgsz);
int jobs_adapter_list(jobs_store *st, cJSON **out, char *msg, size_t msgsz);
int jobs_adapter_get(jobs_store *st, const char *ref, cJSON **out, char *msg, size_t msgsz);
/* JOBS_EINUSE while a queued or running job (a cm2 teacher, an evaluation)
 * names it. The file is removed too when it lies in data_dir/adapters/. */
int jobs_adapter_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz);

#endif
