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
 * tool), validates, and fills the store's structs (store.h: jobs_job,
 * jobs_event, jobs_dataset_info, jobs_adapter_info), which the caller
 * clears. The JSON of them is the HTTP layer's (api/render.h); only the
 * documents a row stores (a job's params and result, an event's payload,
 * an adapter's metadata) are JSON text. A reference to a dataset or
 * adapter is its name, or its id as decimal text.
 *
 * Status codes, one convention for the whole layer (jobs/status.h): every
 * jobs_ function that can fail returns JOBS_OK (0) or a negative
 * jobs_status, with a message in msg; a function documented as returning
 * -1 returns JOBS_ERR. Each code means one thing to the caller:
 *
 *   JOBS_ERR        a failure of SQLite, the file system or memory: not the
 *                   caller's fault (HTTP 500)
 *   JOBS_ENOTFOUND  no such job, dataset or adapter; no queued job (404)
 *   JOBS_ESTATE     the job's state does not allow this (409)
 *   JOBS_EINVAL     a bad argument, job spec or input file: the message
 *                   names it (400)
 *   JOBS_EEXIST     the name (or the job's adapter) exists already (409)
 *   JOBS_EBUSY      the database stayed locked past the busy timeout
 *                   (503, to be retried)
 *   JOBS_ECORRUPT   the database is not one, or fails its check (500)
 *   JOBS_ETOONEW    the database's schema is newer than this codid (500)
 *   JOBS_EINUSE     a queued or running job still needs it (409)
 *   JOBS_ELIMIT     an input exceeds a limit the caller set, such as an
 *                   image's pixels (422)
 *
 * api_jobs_problem() (api/api.h) is the one place that maps them to HTTP.
 */
#ifndef CODID_JOBS_JOBS_H
#define CODID_JOBS_JOBS_H

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
 * names must be registered, its adapter name free) and queues it. A job is
 * read back with jobs_store_job_get(). */
int jobs_submit(jobs_store *st, const char *json, int64_t *id, char *msg, size_t msgsz);
/* A page of jobs, newest first: *out an array of *n (free each with
 * jobs_job_clear and the array with free()), *next_cursor the cursor of
 * the next page, or 0 after the last. status: NULL for any; cursor: 0 for
 * the newest, else the previous page's next_cursor; limit:
 * 1..JOBS_LIST_LIMIT_MAX. */
int jobs_list(jobs_store *st, const char *status, int64_t cursor, int limit, jobs_job **out, int *n,
              int64_t *next_cursor, char *msg, size_t msgsz);
/* Cancels a queued job at once, asks a running one to stop at its next
 * step. *out (when out is not NULL) receives the job afterwards. */
int jobs_cancel(jobs_store *st, int64_t id, jobs_job *out, char *msg, size_t msgsz);
/* Job id's events with ids above after_id, oldest first (free them with
 * jobs_events_free): an SSE stream sends each with its id and resumes from
 * Last-Event-ID. JOBS_ENOTFOUND when there is no such job. */
int jobs_events_since(jobs_store *st, int64_t id, int64_t after_id, int limit, jobs_event **out, int *n, char *msg,
                      size_t msgsz);

/* The progress job id's events recorded, oldest first: of the (at most
 * limit) events with ids above after_id, the progress ones fill out (limit
 * entries) and *n; *last_id receives the id of the last event read, or
 * after_id when there was none, to read on from. */
int jobs_progress_since(jobs_store *st, int64_t id, int64_t after_id, int limit, jobs_progress *out, int *n,
                        int64_t *last_id, char *msg, size_t msgsz);

/* ---- datasets ----------------------------------------------------------------- */

/* Registers an existing dataset file (jobs/dataset.h); count, size,
 * channels and labels are read from it. source: how it was made ("cifar10",
 * "fashion-mnist", "png", "upload", "file"); split may be NULL. *out (when
 * out is not NULL) receives the new row. */
int jobs_dataset_register(jobs_store *st, const char *name, const char *path, const char *source, const char *split,
                          int skipped, jobs_dataset_info *out, char *msg, size_t msgsz);
/* By reference (name or id); jobs_store_dataset_list() lists them all. */
int jobs_dataset_get(jobs_store *st, const char *ref, jobs_dataset_info *out, char *msg, size_t msgsz);
/* JOBS_EINUSE while a queued or running job names it. The file is removed
 * too when it lies in data_dir/datasets/. */
int jobs_dataset_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz);

/* ---- adapters ------------------------------------------------------------------ */

/* Registers an adapter file trained elsewhere; task, kind and base hash
 * come from its metadata. *out (when out is not NULL) receives the row. */
int jobs_adapter_register(jobs_store *st, const char *name, const char *path, jobs_adapter_info *out, char *msg,
                          size_t msgsz);
/* Registers the adapters shipped in DIR (DIR/<folder>/<name>.safetensors,
 * as under models/adapters/) that were trained for the base whose content
 * hash is base_hash, each under its file name without the extension. One
 * already registered under that name from the same file is left as it is;
 * a name taken by another adapter, a file for another base and an
 * unreadable file are logged and skipped. *registered counts the new ones.
 * JOBS_OK unless DIR exists and cannot be read or the store fails. */
int jobs_adapter_register_dir(jobs_store *st, const char *dir, const char *base_hash, int *registered, char *msg,
                              size_t msgsz);
/* By reference (name or id); jobs_store_adapter_list() lists them all. */
int jobs_adapter_get(jobs_store *st, const char *ref, jobs_adapter_info *out, char *msg, size_t msgsz);
/* JOBS_EINUSE while a queued or running job (a cm2 teacher, an evaluation)
 * names it. The file is removed too when it lies in data_dir/adapters/. */
int jobs_adapter_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz);

#endif
