/*
 * worker.c - the training workers.
 *
 * Threads
 * -------
 * jobs_workers_start() starts `workers` threads (a config key, default 1).
 * Each first sets its own intra-op thread budget, `train_threads`, with
 * eng_set_threads(): torch's pool is per calling thread, so training and the
 * generation thread are budgeted apart. Each owns a store connection opened
 * for it at start, so a worker never waits behind an HTTP reader's
 * statement. A worker loops: claim a job, run it to an end, claim the next.
 * An idle worker sleeps on the pool's condition variable for
 * JOBS_IDLE_POLL_MS and looks again: a job submitted by another process
 * (`codid jobs submit` against a running daemon) is found without any
 * signal, and stopping wakes every sleeper at once.
 *
 * Claiming
 * --------
 * jobs_store_claim() is a single UPDATE ... RETURNING of the oldest queued
 * row. SQLite runs it under its write lock, so two workers (or two
 * processes) never claim the same job; there is no in-memory queue to keep
 * in step with the database.
 *
 * Running
 * -------
 * The worker maps the dataset file read-only, builds the trainer (pretrain:
 * a fresh model from the job's `config` or the served model's; adapters: on
 * the served base, which they share read-only with generation: engine.h,
 * 'Threads', says what may run at once on one model), resumes from
 * the job's checkpoint when one exists, and steps. Every JOBS_PROGRESS_EVERY
 * steps (and at the first and last) it writes the progress columns and a
 * progress event in one transaction: loss, the loss smoothed with an EMA of
 * JOBS_LOSS_SMOOTHING, it/s over this run and the ETA.
 *
 * Cancellation
 * ------------
 * Cancelling a queued job is done by the store alone. For a running job the
 * store sets cancel_requested; the worker reads that column before every
 * step, so the job ends `cancelled` within one step of the request.
 *
 * Checkpoints, stopping and crashes
 * ---------------------------------
 * Every checkpoint_every steps the trainer's whole state (weights, EMA,
 * optimizer moments, step, RNG state) goes to checkpoints/job-<id>.safetensors,
 * written by the engine to a temporary name, fsynced and renamed.
 * jobs_workers_stop() raises `stopping`: each worker finishes the step in
 * progress, checkpoints, and moves its job back to `queued`, so the next
 * start resumes it. After a crash the job is still `running` in the store;
 * start-up requeues it (jobs.c), and the steps since its last checkpoint are
 * done again with the same numbers, the RNG state being in the checkpoint.
 * A checkpoint that cannot be written (disk full, an I/O error) is logged
 * and tried again at the next one, the last good checkpoint kept; after
 * CHECKPOINT_TRIES failures in a row the job fails with the reason (the
 * errno's words), rather than train on with nothing to resume from.
 *
 * The end
 * -------
 * After the last step the worker checkpoints once more (from here on a crash
 * redoes no step), exports the adapter to adapters/<name>-<id>.safetensors
 * (temporary name + rename, by the engine), then registers the adapter and
 * marks the job succeeded in one transaction. A crash between export and
 * commit leaves a file nobody refers to; the resumed job writes the same
 * bytes over it and registers it then. Registration only happens in the
 * commit that ends a running job, and UNIQUE(adapters.job_id) backs that up,
 * so a job's adapter is registered exactly once. The checkpoint is removed
 * once the job has ended, whichever way.
 *
 * A job that crashes the daemon at the same point each time is not retried
 * forever: start-up fails it after JOBS_MAX_STALLED_RECOVERIES crashes in a
 * row with no new checkpoint between them (store.h), while a machine
 * preempted any number of times finishes its job, each run adding at least
 * one checkpoint. The crash points of util/crash.h (step, export, register)
 * let tests kill the daemon at these moments.
 */
#include "jobs/worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/dataset.h"
#include "jobs/evaluate.h"
#include "jobs/jobspec.h"
#include "jobs/store.h"
#include "util/clock.h"
#include "util/crash.h"
#include "util/log.h"

#define DIR_MAX  1024                           /* data_dir, as the daemon's settings allow */
#define PATH_BUF (DIR_MAX + JOBS_NAME_MAX + 64) /* a file under it */

typedef struct worker {
    struct jobs_workers *pool;
    int index;
    jobs_store *st;
    pthread_t thread;
    int started;
} worker;

struct jobs_workers {
    jobs_workers_params p;
    char data_dir[DIR_MAX];
    atomic_int stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int n;
    worker w[JOBS_WORKERS_MAX];
};

/* How a job's run ended, before the store is told. */
typedef enum outcome {
    OUT_SUCCEEDED, /* committed by the run itself */
    OUT_FAILED,
    OUT_CANCELLED,
    OUT_REQUEUED /* stopping: back to the queue */
} outcome;

/* One job being run by one worker. */
typedef struct run {
    worker *w;
    const jobs_job *job;
    jobs_spec spec;
    jobs_dataset_info dsinfo;
    jobs_dataset ds;
    int mapped;
    char checkpoint[PATH_BUF];
    int checkpoint_failures; /* in a row */
    int step;                /* steps done, for messages */
    outcome interrupted;     /* evaluate: why the progress callback stopped it */
    char msg[512];
} run;

static int stopping(const worker *w) {
    return atomic_load(&w->pool->stopping);
}

static int cancel_requested(run *r) {
    int requested = 0;
    char msg[256];
    if (jobs_store_cancel_requested(r->w->st, r->job->id, &requested, msg, sizeof msg) != JOBS_OK)
        util_log(UTIL_LOG_WARN, "job %lld: %s", (long long)r->job->id, msg);
    return requested;
}

static void record_progress(run *r, const jobs_progress *p) {
    char msg[256];
    if (jobs_store_progress(r->w->st, r->job->id, p, msg, sizeof msg) != JOBS_OK)
        util_log(UTIL_LOG_WARN, "job %lld: progress not recorded: %s", (long long)r->job->id, msg);
}

/* "<kind>-<task>-<id>" (or "pretrain-<id>") when the job names none. */
static void adapter_name(const run *r, char *out, size_t outsz) {
    if (*r->spec.name)
        snprintf(out, outsz, "%s", r->spec.name);
    else if (r->spec.kind == JOBS_KIND_PRETRAIN)
        snprintf(out, outsz, "pretrain-%lld", (long long)r->job->id);
    else
        snprintf(out, outsz, "%s-%s-%lld", jobs_kind_name(r->spec.kind), eng_task_name(r->spec.train.task.kind),
                 (long long)r->job->id);
}

/* ---- training ------------------------------------------------------------------ */

#define CHECKPOINT_TRIES 3

/* 0, or -1 with the reason in r->msg (then r->checkpoint_failures says how
 * many failed in a row). */
static int save_checkpoint(run *r, eng_trainer *t) {
    eng_error err = {0};
    char msg[256];
    if (eng_trainer_save_checkpoint(t, r->checkpoint, &err) != ENG_OK) {
        r->checkpoint_failures++;
        snprintf(r->msg, sizeof r->msg, "checkpoint at step %d failed (%d in a row): %s", eng_trainer_steps_done(t),
                 r->checkpoint_failures, err.msg);
        util_log(UTIL_LOG_WARN, "job %lld: %s", (long long)r->job->id, r->msg);
        return -1;
    }
    r->checkpoint_failures = 0;
    if (jobs_store_set_checkpoint(r->w->st, r->job->id, r->checkpoint, eng_trainer_steps_done(t), msg, sizeof msg) !=
        JOBS_OK)
        util_log(UTIL_LOG_WARN, "job %lld: %s", (long long)r->job->id, msg);
    util_log(UTIL_LOG_DEBUG, "job %lld: checkpoint at step %d", (long long)r->job->id, eng_trainer_steps_done(t));
    return 0;
}

/* The job's identity in the exported file: nothing that differs between
 * an interrupted and an uninterrupted run of the same job. */
static char *export_metadata(const run *r, const char *name) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job_id", (double)r->job->id);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "params", cJSON_Parse(r->job->params));
    cJSON_AddStringToObject(o, "dataset", r->dsinfo.name);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static outcome export_and_register(run *r, eng_trainer *t, double loss_smooth) {
    const jobs_spec *s = &r->spec;
    char name[JOBS_NAME_MAX + 1], path[PATH_BUF];
    adapter_name(r, name, sizeof name);
    int pretrain = s->kind == JOBS_KIND_PRETRAIN;
    snprintf(path, sizeof path, "%s/%s/%s-%lld%s", r->w->pool->data_dir, pretrain ? "models" : "adapters", name,
             (long long)r->job->id, pretrain ? "" : ".safetensors");
    char *extra = export_metadata(r, name);
    eng_error err = {0};
    util_crash_point_int("export", r->job->id);
    /* a pretrained model ships in fp16 like the bundled ones; adapters keep
     * full precision, being small */
    if (!extra || eng_trainer_export(t, path, pretrain, extra, &err) != ENG_OK) {
        snprintf(r->msg, sizeof r->msg, "export to %.200s failed: %s", path, extra ? err.msg : "out of memory");
        cJSON_free(extra);
        return OUT_FAILED;
    }
    cJSON_free(extra);

    cJSON *result = cJSON_CreateObject();
    cJSON_AddStringToObject(result, pretrain ? "model_path" : "adapter_path", path);
    cJSON_AddStringToObject(result, "name", name);
    cJSON_AddNumberToObject(result, "steps", eng_trainer_steps_done(t));
    if (isfinite(loss_smooth)) cJSON_AddNumberToObject(result, "loss_smooth", loss_smooth);
    char *result_json = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);

    util_crash_point_int("register", r->job->id);
    jobs_adapter_info a = {0};
    eng_model_info mi;
    eng_model_get_info(r->w->pool->p.model, &mi);
    snprintf(a.name, sizeof a.name, "%s", name);
    a.path = path;
    snprintf(a.task, sizeof a.task, "%s", eng_task_name(s->train.task.kind));
    snprintf(a.kind, sizeof a.kind, "%s", eng_adapter_kind_name(s->train.adapter_kind));
    snprintf(a.base_hash, sizeof a.base_hash, "%s", mi.hash);
    a.metadata = r->job->params;

    int rc = result_json
                 ? jobs_store_succeed(r->w->st, r->job->id, pretrain ? NULL : &a, result_json, r->msg, sizeof r->msg)
                 : JOBS_ERR;
    cJSON_free(result_json);
    if (rc != JOBS_OK) {
        if (!result_json) snprintf(r->msg, sizeof r->msg, "out of memory");
        if (!pretrain) unlink(path);
        return OUT_FAILED;
    }
    util_log(UTIL_LOG_INFO, "job %lld: succeeded: %s%s%s", (long long)r->job->id, path, pretrain ? "" : ", adapter ",
             pretrain ? "" : name);
    return OUT_SUCCEEDED;
}

static outcome run_training(run *r) {
    worker *w = r->w;
    const jobs_spec *s = &r->spec;
    eng_train_params p = s->train;
    jobs_adapter_info teacher = {0};
    eng_images imgs = {r->ds.count, r->ds.height, r->ds.width, r->ds.channels, r->ds.pixels};
    eng_trainer *t = NULL;
    eng_error err = {0};
    outcome out = OUT_FAILED;
    int64_t id = r->job->id;

    if (s->kind == JOBS_KIND_CM2) {
        char msg[256];
        if (jobs_store_adapter_get(w->st, s->teacher.id, s->teacher.name, &teacher, msg, sizeof msg) != JOBS_OK) {
            snprintf(r->msg, sizeof r->msg, "teacher: %s", msg);
            goto done;
        }
        p.teacher_path = teacher.path;
    }
    int rc = s->kind == JOBS_KIND_PRETRAIN
                 ? eng_trainer_create_pretrain(
                       w->pool->p.ctx, s->model_config ? s->model_config : eng_model_config_json(w->pool->p.model),
                       NULL, &p, &imgs, &t, &err)
                 : eng_trainer_create_adapter(w->pool->p.model, &p, &imgs, &t, &err);
    if (rc != ENG_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
        goto done;
    }
    int resumed = access(r->checkpoint, F_OK) == 0;
    if (resumed && eng_trainer_load_checkpoint(t, r->checkpoint, &err) != ENG_OK) {
        snprintf(r->msg, sizeof r->msg, "cannot resume: %s", err.msg);
        goto done;
    }
    int first = eng_trainer_steps_done(t), saved = first, total = p.total_steps;
    if (resumed)
        util_log(UTIL_LOG_INFO, "job %lld: resumed at step %d of %d from %s", (long long)id, first, total,
                 r->checkpoint);
    else
        util_log(UTIL_LOG_INFO, "job %lld: %s started: %d steps on %s", (long long)id, jobs_kind_name(s->kind), total,
                 r->dsinfo.name);

    /* the smoothed loss carries on from the last recorded value */
    double smooth = resumed ? r->job->progress.loss_smooth : NAN, start = util_mono_s();
    while ((r->step = eng_trainer_steps_done(t)) < total) {
        if (stopping(w)) {
            if (r->step > saved) save_checkpoint(r, t);
            out = OUT_REQUEUED;
            goto done;
        }
        if (cancel_requested(r)) {
            out = OUT_CANCELLED;
            goto done;
        }
        eng_step_stats st;
        if (eng_trainer_step(t, &st, &err) != ENG_OK) {
            snprintf(r->msg, sizeof r->msg, "step %d: %s", r->step + 1, err.msg);
            goto done;
        }
        smooth = isfinite(smooth) ? JOBS_LOSS_SMOOTHING * smooth + (1 - JOBS_LOSS_SMOOTHING) * st.loss : st.loss;
        util_log(UTIL_LOG_DEBUG, "job %lld: step %d/%d loss %.6f", (long long)id, st.step, total, st.loss);
        util_crash_point_int("step", st.step);
        if (st.step % JOBS_PROGRESS_EVERY == 0 || st.step == total || st.step == first + 1) {
            double rate = (st.step - first) / (util_mono_s() - start);
            jobs_progress pr = {st.step, total, st.loss, smooth, st.lr, rate, (total - st.step) / rate};
            record_progress(r, &pr);
        }
        if (st.step % s->checkpoint_every == 0 && st.step < total) {
            if (save_checkpoint(r, t) == 0)
                saved = st.step;
            else if (r->checkpoint_failures >= CHECKPOINT_TRIES)
                goto done;
        }
    }
    /* before the export: a crash from here on redoes no step */
    if (r->step > saved) save_checkpoint(r, t);
    out = export_and_register(r, t, smooth);
done:
    eng_trainer_free(t);
    jobs_adapter_info_clear(&teacher);
    return out;
}

/* ---- evaluation ------------------------------------------------------------------- */

static int eval_progress(int done, int total, void *user) {
    run *r = user;
    r->step = done;
    jobs_progress pr = {done, total, NAN, NAN, NAN, NAN, NAN};
    record_progress(r, &pr);
    if (stopping(r->w))
        r->interrupted = OUT_REQUEUED;
    else if (cancel_requested(r))
        r->interrupted = OUT_CANCELLED;
    else
        return 0;
    return 1;
}

static outcome run_evaluate(run *r) {
    worker *w = r->w;
    const jobs_spec *s = &r->spec;
    jobs_adapter_info info = {0};
    eng_adapter *a = NULL;
    eng_error err = {0};
    char msg[256];
    outcome out = OUT_FAILED;
    if (jobs_store_adapter_get(w->st, s->adapter.id, s->adapter.name, &info, msg, sizeof msg) != JOBS_OK) {
        snprintf(r->msg, sizeof r->msg, "adapter: %s", msg);
        return OUT_FAILED;
    }
    if (eng_adapter_load(w->pool->p.model, info.path, &a, &err) != ENG_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
        goto done;
    }
    util_log(UTIL_LOG_INFO, "job %lld: evaluating adapter %s on %d images of %s", (long long)r->job->id, info.name,
             s->eval_n, r->dsinfo.name);
    jobs_eval_result res;
    int rc = jobs_evaluate(w->pool->p.model, a, &r->ds, s->eval_n, s->sample_steps, s->train.seed, eval_progress, r,
                           &res, r->msg, sizeof r->msg);
    if (rc == ENG_ECANCELLED) {
        out = r->interrupted;
        goto done;
    }
    if (rc != ENG_OK) goto done;

    cJSON *result = cJSON_CreateObject();
    cJSON_AddNumberToObject(result, "adapter_id", (double)info.id);
    cJSON_AddStringToObject(result, "adapter", info.name);
    cJSON_AddStringToObject(result, "dataset", r->dsinfo.name);
    cJSON_AddNumberToObject(result, "n", res.n);
    cJSON_AddNumberToObject(result, "sample_steps", res.steps);
    cJSON *metrics = cJSON_AddObjectToObject(result, "metrics");
    cJSON_AddNumberToObject(metrics, "psnr", res.psnr);
    if (isfinite(res.ssim))
        cJSON_AddNumberToObject(metrics, "ssim", res.ssim);
    else
        cJSON_AddNullToObject(metrics, "ssim");
    char *text = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);
    if (!text) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
    } else if (jobs_store_succeed(w->st, r->job->id, NULL, text, r->msg, sizeof r->msg) == JOBS_OK) {
        util_log(UTIL_LOG_INFO, "job %lld: succeeded: PSNR %.2f dB, SSIM %.4f over %d images", (long long)r->job->id,
                 res.psnr, res.ssim, res.n);
        out = OUT_SUCCEEDED;
    }
    cJSON_free(text);
done:
    eng_adapter_free(a);
    jobs_adapter_info_clear(&info);
    return out;
}

/* ---- one job ------------------------------------------------------------------------ */

static int open_dataset(run *r) {
    const jobs_ref *ref = &r->spec.dataset;
    char msg[256];
    if (jobs_store_dataset_get(r->w->st, ref->id, ref->name, &r->dsinfo, msg, sizeof msg) != JOBS_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", msg);
        return -1;
    }
    if (jobs_dataset_map(r->dsinfo.path, &r->ds, msg, sizeof msg) != 0) {
        snprintf(r->msg, sizeof r->msg, "dataset '%s': %s", r->dsinfo.name, msg);
        return -1;
    }
    r->mapped = 1;
    return 0;
}

/* Tells the store how the run ended (a success is committed already). */
static void end_job(run *r, outcome out) {
    int64_t id = r->job->id;
    char msg[256], why[64];
    int rc = JOBS_OK;
    switch (out) {
        case OUT_SUCCEEDED: break;
        case OUT_FAILED:
            util_log(UTIL_LOG_WARN, "job %lld: failed: %s", (long long)id, r->msg);
            rc = jobs_store_transition(r->w->st, id, JOBS_RUNNING, JOBS_FAILED, r->msg, NULL, msg, sizeof msg);
            break;
        case OUT_CANCELLED:
            snprintf(why, sizeof why, "cancelled at step %d", r->step);
            util_log(UTIL_LOG_INFO, "job %lld: %s", (long long)id, why);
            rc = jobs_store_transition(r->w->st, id, JOBS_RUNNING, JOBS_CANCELLED, why, NULL, msg, sizeof msg);
            break;
        case OUT_REQUEUED:
            util_log(UTIL_LOG_INFO, "job %lld: stopped at step %d; queued to resume", (long long)id, r->step);
            rc = jobs_store_transition(r->w->st, id, JOBS_RUNNING, JOBS_QUEUED, NULL, NULL, msg, sizeof msg);
            break;
    }
    if (rc != JOBS_OK) {
        util_log(UTIL_LOG_ERROR, "job %lld: cannot record its end (%s); it is requeued at the next start",
                 (long long)id, msg);
        return;
    }
    if (out == OUT_REQUEUED) return;
    if (unlink(r->checkpoint) != 0 && errno != ENOENT)
        util_log(UTIL_LOG_WARN, "job %lld: cannot remove %s: %s", (long long)id, r->checkpoint, strerror(errno));
}

static void run_job(worker *w, const jobs_job *job) {
    run r = {.w = w, .job = job};
    snprintf(r.checkpoint, sizeof r.checkpoint, "%s/checkpoints/job-%lld.safetensors", w->pool->data_dir,
             (long long)job->id);
    outcome out = OUT_FAILED;
    if (jobs_spec_parse(job->params, &r.spec, r.msg, sizeof r.msg) == JOBS_OK && open_dataset(&r) == 0)
        out = r.spec.kind == JOBS_KIND_EVALUATE ? run_evaluate(&r) : run_training(&r);
    end_job(&r, out);
    if (r.mapped) jobs_dataset_unmap(&r.ds);
    jobs_dataset_info_clear(&r.dsinfo);
    jobs_spec_free(&r.spec);
}

/* ---- the threads -------------------------------------------------------------------- */

static void idle_wait(jobs_workers *pool) {
    struct timespec until = util_deadline(CLOCK_MONOTONIC, JOBS_IDLE_POLL_MS);
    pthread_mutex_lock(&pool->lock);
    if (!atomic_load(&pool->stopping)) pthread_cond_timedwait(&pool->wake, &pool->lock, &until);
    pthread_mutex_unlock(&pool->lock);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    eng_set_threads(w->pool->p.train_threads);
    util_log(UTIL_LOG_DEBUG, "jobs: worker %d up, %d intra-op threads", w->index, eng_get_threads());
    while (!stopping(w)) {
        jobs_job job;
        char msg[256];
        int rc = jobs_store_claim(w->st, &job, msg, sizeof msg);
        if (rc == JOBS_OK) {
            run_job(w, &job);
            jobs_job_clear(&job);
            continue;
        }
        if (rc != JOBS_ENOTFOUND) util_log(UTIL_LOG_WARN, "jobs: worker %d cannot claim: %s", w->index, msg);
        idle_wait(w->pool);
    }
    return NULL;
}

int jobs_workers_start(const jobs_workers_params *p, jobs_workers **out, char *msg, size_t msgsz) {
    if (p->workers < 0 || p->workers > JOBS_WORKERS_MAX) {
        snprintf(msg, msgsz, "workers must be in 0..%d", JOBS_WORKERS_MAX);
        return -1;
    }
    if (strlen(p->data_dir) >= DIR_MAX) {
        snprintf(msg, msgsz, "data directory path longer than %d bytes", DIR_MAX - 1);
        return -1;
    }
    jobs_workers *pool = calloc(1, sizeof *pool);
    if (!pool) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    pool->p = *p;
    snprintf(pool->data_dir, sizeof pool->data_dir, "%s", p->data_dir);
    pool->p.data_dir = pool->data_dir;
    atomic_init(&pool->stopping, 0);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->wake, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < p->workers; i++) {
        worker *w = &pool->w[i];
        w->pool = pool;
        w->index = i;
        if (jobs_store_open(pool->data_dir, 0, &w->st, msg, msgsz) != JOBS_OK) goto fail;
    }
    for (int i = 0; i < p->workers; i++) {
        int rc = pthread_create(&pool->w[i].thread, NULL, worker_main, &pool->w[i]);
        if (rc != 0) {
            snprintf(msg, msgsz, "cannot start worker thread: %s", strerror(rc));
            goto fail;
        }
        pool->w[i].started = 1;
        pool->n = i + 1;
    }
    pool->n = p->workers;
    *out = pool;
    return 0;
fail:
    pool->n = p->workers;
    jobs_workers_stop(pool);
    return -1;
}

void jobs_workers_stop(jobs_workers *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stopping, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n; i++) {
        if (pool->w[i].started) pthread_join(pool->w[i].thread, NULL);
        jobs_store_close(pool->w[i].st);
    }
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
