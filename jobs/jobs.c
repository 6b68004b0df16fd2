/*
 * jobs.c - see jobs.h: start-up and shutdown of the jobs subsystem, and its
 * operations. Validation lives in jobspec.c, SQL in store*.c, training in
 * worker.c; this file joins them. It returns the store's structs: their
 * JSON is the HTTP layer's (api/render.h).
 */
#include "jobs/jobs.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/dataset.h"
#include "jobs/jobspec.h"
#include "jobs/worker.h"
#include "util/log.h"
#include "util/msg.h"

struct jobs_system {
    char data_dir[PATH_MAX];
    int lock_fd;
    jobs_store *st;
    jobs_workers *workers;
};

/* Subdirectories of data_dir the subsystem writes. */
static const char *const subdirs[] = {"checkpoints", "adapters", "models", "datasets"};

/* ---- start-up ------------------------------------------------------------------- */

/* One daemon per data directory: a second would requeue the first one's
 * running jobs at its start-up. */
static int lock_data_dir(const char *data_dir, int *fd_out, char *msg, size_t msgsz) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", data_dir, JOBS_LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(msg, msgsz, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(msg, msgsz, "%s",
                 errno == EWOULDBLOCK ? "another codid process serves this data directory" : strerror(errno));
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

/* A temporary name of ours: path.tmp (safetensors and engine writers) or
 * path.tmp-XXXXXX (mkstemp: the dataset writer). */
static int is_temporary(const char *name) {
    const char *t = strstr(name, ".tmp");
    while (t && t[4] != '\0' && t[4] != '-') t = strstr(t + 1, ".tmp");
    return t != NULL;
}

/* Removes the temporary files in dir (and, depth > 0, in its subdirectories):
 * the remains of writes a crash interrupted before their rename. */
static void remove_temporaries(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth > 0) {
            remove_temporaries(path, depth - 1);
        } else if (S_ISREG(sb.st_mode) && is_temporary(e->d_name)) {
            if (unlink(path) == 0)
                util_log(UTIL_LOG_INFO, "jobs: removed %s, left by an interrupted write", path);
            else
                util_log(UTIL_LOG_WARN, "jobs: cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
}

int jobs_system_open(const char *data_dir, jobs_system **out, char *msg, size_t msgsz) {
    jobs_system *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    s->lock_fd = -1;
    if (strlen(data_dir) >= sizeof s->data_dir) {
        snprintf(msg, msgsz, "data directory path too long");
        goto fail;
    }
    snprintf(s->data_dir, sizeof s->data_dir, "%s", data_dir);
    if (lock_data_dir(data_dir, &s->lock_fd, msg, msgsz) != 0) goto fail;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", data_dir, subdirs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            snprintf(msg, msgsz, "cannot create %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    if (jobs_store_open(data_dir, 0, &s->st, msg, msgsz) != JOBS_OK) goto fail;
    int n = 0;
    if (jobs_store_requeue_running(s->st, &n, msg, msgsz) != JOBS_OK) goto fail;
    if (n)
        util_log(UTIL_LOG_INFO, "jobs: %d job%s found running after a crash: queued to resume", n, n == 1 ? "" : "s");
    /* models/ holds a folder per pretrained model */
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", data_dir, subdirs[i]);
        remove_temporaries(path, strcmp(subdirs[i], "models") == 0);
    }
    *out = s;
    return 0;
fail:
    jobs_system_stop(s);
    return -1;
}

int jobs_system_start_workers(jobs_system *s, const jobs_system_params *p, char *msg, size_t msgsz) {
    if (s->workers) {
        snprintf(msg, msgsz, "the workers run already");
        return -1;
    }
    jobs_workers_params wp = {s->data_dir, p->workers, p->train_threads, p->ctx, p->model};
    if (jobs_workers_start(&wp, &s->workers, msg, msgsz) != 0) return -1;
    if (p->train_threads)
        util_log(UTIL_LOG_INFO, "jobs: %d worker%s, %d intra-op threads each", p->workers, p->workers == 1 ? "" : "s",
                 p->train_threads);
    else
        util_log(UTIL_LOG_INFO, "jobs: %d worker%s, torch's default intra-op threads", p->workers,
                 p->workers == 1 ? "" : "s");
    return 0;
}

jobs_store *jobs_system_store(jobs_system *s) {
    return s->st;
}

void jobs_system_stop(jobs_system *s) {
    if (!s) return;
    jobs_workers_stop(s->workers);
    jobs_store_close(s->st);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s);
}

static int bad_ref(const char *noun, const char *ref, char *msg, size_t msgsz) {
    snprintf(msg, msgsz, "'%.80s' is neither a %s name nor an id", ref ? ref : "", noun);
    return JOBS_EINVAL;
}

/* ---- jobs -------------------------------------------------------------------------------- */

/* A registered row a job names must exist when it is submitted. */
static int check_ref(jobs_store *st, const char *field, const jobs_ref *ref, char *msg, size_t msgsz) {
    char why[256];
    int rc;
    if (strcmp(field, "dataset") == 0) {
        jobs_dataset_info d;
        rc = jobs_store_dataset_get(st, ref->id, ref->name, &d, why, sizeof why);
        if (rc == JOBS_OK) jobs_dataset_info_clear(&d);
    } else {
        jobs_adapter_info a;
        rc = jobs_store_adapter_get(st, ref->id, ref->name, &a, why, sizeof why);
        if (rc == JOBS_OK) jobs_adapter_info_clear(&a);
    }
    if (rc == JOBS_ENOTFOUND) {
        snprintf(msg, msgsz, "field '%s': %s", field, why);
        return JOBS_EINVAL;
    }
    if (rc != JOBS_OK) snprintf(msg, msgsz, "%s", why);
    return rc;
}

int jobs_submit(jobs_store *st, const char *json, int64_t *id, char *msg, size_t msgsz) {
    jobs_spec spec;
    int rc = jobs_spec_parse(json, &spec, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    rc = check_ref(st, "dataset", &spec.dataset, msg, msgsz);
    if (rc == JOBS_OK && spec.kind == JOBS_KIND_CM2) rc = check_ref(st, "teacher", &spec.teacher, msg, msgsz);
    if (rc == JOBS_OK && spec.kind == JOBS_KIND_EVALUATE) rc = check_ref(st, "adapter", &spec.adapter, msg, msgsz);
    if (rc == JOBS_OK && *spec.name) {
        jobs_adapter_info a;
        int64_t other = 0;
        char why[256];
        int got = jobs_store_adapter_get(st, 0, spec.name, &a, why, sizeof why);
        if (got == JOBS_OK) {
            jobs_adapter_info_clear(&a);
            snprintf(msg, msgsz, "field 'name': an adapter named '%s' exists already", spec.name);
            rc = JOBS_EEXIST;
        } else if (got != JOBS_ENOTFOUND) {
            snprintf(msg, msgsz, "%s", why);
            rc = got;
        } else if ((rc = jobs_store_job_referencing(st, "name", spec.name, 0, 0, &other, msg, msgsz)) == JOBS_OK &&
                   other) {
            snprintf(msg, msgsz, "field 'name': job %lld will register '%s' already", (long long)other, spec.name);
            rc = JOBS_EEXIST;
        }
    }
    char *canonical = NULL;
    if (rc == JOBS_OK) {
        cJSON *root = cJSON_Parse(json);
        canonical = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        rc = canonical ? jobs_store_job_insert(st, jobs_kind_name(spec.kind), canonical, jobs_spec_total(&spec), id,
                                               msg, msgsz)
                       : util_msg(msg, msgsz, JOBS_ERR, "out of memory");
    }
    cJSON_free(canonical);
    if (rc == JOBS_OK) util_log(UTIL_LOG_INFO, "job %lld: %s queued", (long long)*id, jobs_kind_name(spec.kind));
    jobs_spec_free(&spec);
    return rc;
}

int jobs_list(jobs_store *st, const char *status, int64_t cursor, int limit, jobs_job **out, int *n,
              int64_t *next_cursor, char *msg, size_t msgsz) {
    *out = NULL;
    *n = 0;
    *next_cursor = 0;
    jobs_state state = JOBS_QUEUED;
    if (status && jobs_state_from_name(status, &state) != 0) {
        snprintf(msg, msgsz, "status must be one of queued, running, succeeded, failed, cancelled");
        return JOBS_EINVAL;
    }
    if (limit < 1 || limit > JOBS_LIST_LIMIT_MAX) {
        snprintf(msg, msgsz, "limit must be in 1..%d", JOBS_LIST_LIMIT_MAX);
        return JOBS_EINVAL;
    }
    if (cursor < 0) {
        snprintf(msg, msgsz, "cursor must be a job id");
        return JOBS_EINVAL;
    }
    jobs_job *jobs = NULL;
    int got = 0;
    /* one more than asked tells whether another page follows */
    int rc = jobs_store_job_list(st, status ? (int)state : -1, cursor, limit + 1, &jobs, &got, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    if (got > limit) {
        *next_cursor = jobs[limit - 1].id;
        for (int i = limit; i < got; i++) jobs_job_clear(&jobs[i]);
        got = limit;
    }
    *out = jobs;
    *n = got;
    return JOBS_OK;
}

int jobs_cancel(jobs_store *st, int64_t id, jobs_job *out, char *msg, size_t msgsz) {
    jobs_state state;
    int rc = jobs_store_cancel(st, id, &state, msg, msgsz);
    if (rc == JOBS_OK)
        util_log(UTIL_LOG_INFO, "job %lld: %s", (long long)id,
                 state == JOBS_CANCELLED ? "cancelled while queued" : "cancel requested: stops after its step");
    if (rc == JOBS_OK && out) rc = jobs_store_job_get(st, id, out, msg, msgsz);
    return rc;
}

int jobs_events_since(jobs_store *st, int64_t id, int64_t after_id, int limit, jobs_event **out, int *n, char *msg,
                      size_t msgsz) {
    *out = NULL;
    *n = 0;
    jobs_job j;
    int rc = jobs_store_job_get(st, id, &j, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    jobs_job_clear(&j);
    return jobs_store_events_since(st, id, after_id, limit, out, n, msg, msgsz);
}

static double payload_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int jobs_progress_since(jobs_store *st, int64_t id, int64_t after_id, int limit, jobs_progress *out, int *n,
                        int64_t *last_id, char *msg, size_t msgsz) {
    *n = 0;
    *last_id = after_id;
    jobs_event *ev = NULL;
    int count = 0;
    int rc = jobs_store_events_since(st, id, after_id, limit, &ev, &count, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    for (int i = 0; i < count; i++) {
        *last_id = ev[i].id;
        if (strcmp(ev[i].kind, "progress") != 0) continue;
        /* SQLite wrote the payload (json_object): failing to parse it is
         * memory running out, never a point to skip in silence */
        cJSON *p = cJSON_Parse(ev[i].payload);
        if (!p) {
            jobs_events_free(ev, count);
            *n = 0;
            *last_id = after_id;
            return util_msg(msg, msgsz, JOBS_ERR, "job %lld: out of memory reading its progress", (long long)id);
        }
        double step = payload_num(p, "step"), total = payload_num(p, "total");
        out[*n] = (jobs_progress){isfinite(step) ? (int)step : 0, isfinite(total) ? (int)total : 0,
                                  payload_num(p, "loss"),         payload_num(p, "loss_smooth"),
                                  payload_num(p, "lr"),           payload_num(p, "it_per_s"),
                                  payload_num(p, "eta_s")};
        (*n)++;
        cJSON_Delete(p);
    }
    jobs_events_free(ev, count);
    return JOBS_OK;
}

/* ---- files owned by the data directory ------------------------------------------------- */

/* Whether path lies directly in data_dir/sub (so deleting its row may
 * delete the file too: files registered from elsewhere are left alone). */
static int owned_file(jobs_store *st, const char *sub, const char *path) {
    char dir[PATH_MAX], real_dir[PATH_MAX], real_path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", jobs_store_data_dir(st), sub);
    if (!path || !realpath(dir, real_dir) || !realpath(path, real_path)) return 0;
    size_t n = strlen(real_dir);
    return strncmp(real_path, real_dir, n) == 0 && real_path[n] == '/' && !strchr(real_path + n + 1, '/');
}

static void remove_owned(jobs_store *st, const char *sub, const char *path) {
    if (owned_file(st, sub, path) && unlink(path) != 0 && errno != ENOENT)
        util_log(UTIL_LOG_WARN, "jobs: cannot remove %s: %s", path, strerror(errno));
}

/* JOBS_EINUSE when a queued or running job names the row in one of fields. */
static int check_unused(jobs_store *st, const char *noun, const char *const *fields, const char *name, int64_t id,
                        char *msg, size_t msgsz) {
    for (int i = 0; fields[i]; i++) {
        int64_t job = 0;
        int rc = jobs_store_job_referencing(st, fields[i], name, id, 0, &job, msg, msgsz);
        if (rc != JOBS_OK) return rc;
        if (job) {
            snprintf(msg, msgsz, "%s '%s' is used by job %lld (%s)", noun, name, (long long)job, fields[i]);
            return JOBS_EINUSE;
        }
    }
    return JOBS_OK;
}

/* ---- datasets -------------------------------------------------------------------------------- */

int jobs_dataset_register(jobs_store *st, const char *name, const char *path, const char *source, const char *split,
                          int skipped, jobs_dataset_info *out, char *msg, size_t msgsz) {
    if (!name || !jobs_name_valid(name)) {
        snprintf(msg, msgsz, "a dataset name is 1-%d letters, digits, '.', '_' or '-', starting with a letter",
                 JOBS_NAME_MAX);
        return JOBS_EINVAL;
    }
    char real[PATH_MAX], why[256];
    jobs_dataset ds;
    if (!path || !realpath(path, real)) {
        snprintf(msg, msgsz, "%.200s: %s", path ? path : "(null)", strerror(errno));
        return JOBS_EINVAL;
    }
    if (jobs_dataset_map(real, &ds, why, sizeof why) != 0) {
        snprintf(msg, msgsz, "%.200s: %s", path, why);
        return JOBS_EINVAL;
    }
    jobs_dataset_info d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.source, sizeof d.source, "%s", source ? source : "file");
    snprintf(d.split, sizeof d.split, "%s", split ? split : "");
    d.path = real;
    d.count = ds.count;
    d.size = ds.width;
    d.channels = ds.channels;
    d.labelled = ds.labels != NULL;
    d.skipped = skipped;
    int square = ds.width == ds.height;
    jobs_dataset_unmap(&ds);
    if (!square) {
        snprintf(msg, msgsz, "%.200s: images must be square", path);
        return JOBS_EINVAL;
    }
    /* the copy first: a row once added is not taken back for want of it */
    char *copy = out ? strdup(real) : NULL;
    if (out && !copy) return util_msg(msg, msgsz, JOBS_ERR, "out of memory");
    int rc = jobs_store_dataset_add(st, &d, msg, msgsz);
    if (rc == JOBS_OK && out) {
        *out = d;
        out->path = copy;
    } else {
        free(copy);
    }
    return rc;
}

int jobs_dataset_get(jobs_store *st, const char *ref, jobs_dataset_info *out, char *msg, size_t msgsz) {
    jobs_ref r;
    if (jobs_ref_parse(ref, &r) != 0) return bad_ref("dataset", ref, msg, msgsz);
    return jobs_store_dataset_get(st, r.id, r.name, out, msg, msgsz);
}

int jobs_dataset_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz) {
    static const char *const fields[] = {"dataset", NULL};
    jobs_dataset_info d;
    int rc = jobs_dataset_get(st, ref, &d, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    rc = check_unused(st, "dataset", fields, d.name, d.id, msg, msgsz);
    if (rc == JOBS_OK) rc = jobs_store_dataset_delete(st, d.id, msg, msgsz);
    if (rc == JOBS_OK) remove_owned(st, "datasets", d.path);
    jobs_dataset_info_clear(&d);
    return rc;
}

/* ---- adapters ------------------------------------------------------------------------------ */

int jobs_adapter_register(jobs_store *st, const char *name, const char *path, jobs_adapter_info *out, char *msg,
                          size_t msgsz) {
    if (!name || !jobs_name_valid(name)) {
        snprintf(msg, msgsz, "an adapter name is 1-%d letters, digits, '.', '_' or '-', starting with a letter",
                 JOBS_NAME_MAX);
        return JOBS_EINVAL;
    }
    char real[PATH_MAX];
    if (!path || !realpath(path, real)) {
        snprintf(msg, msgsz, "%.200s: %s", path ? path : "(null)", strerror(errno));
        return JOBS_EINVAL;
    }
    /* the registry's metadata: the file's own (the recipe, the evaluation
     * figures, the task's parameters...) */
    eng_adapter_info info;
    eng_error err;
    jobs_adapter_info a = {0};
    if (eng_adapter_probe(real, &info, &a.metadata, &err) != ENG_OK) {
        snprintf(msg, msgsz, "%s", err.msg);
        return JOBS_EINVAL;
    }
    snprintf(a.name, sizeof a.name, "%s", name);
    a.path = real;
    snprintf(a.task, sizeof a.task, "%s", eng_task_name(info.task.kind));
    snprintf(a.kind, sizeof a.kind, "%s", eng_adapter_kind_name(info.kind));
    snprintf(a.base_hash, sizeof a.base_hash, "%s", info.base_hash);
    if (!a.metadata) return util_msg(msg, msgsz, JOBS_ERR, "%.200s: out of memory for its metadata", path);
    jobs_adapter_info copy = {0};
    if (out && (!(copy.path = strdup(real)) || !(copy.metadata = strdup(a.metadata)))) {
        jobs_adapter_info_clear(&copy);
        free(a.metadata);
        return util_msg(msg, msgsz, JOBS_ERR, "out of memory");
    }
    int rc = jobs_store_adapter_add(st, &a, msg, msgsz);
    if (rc == JOBS_OK && out) {
        *out = a;
        out->path = copy.path;
        out->metadata = copy.metadata;
    } else {
        jobs_adapter_info_clear(&copy);
    }
    free(a.metadata);
    return rc;
}

/* One shipped file: registered unless skipped (see jobs.h). */
static int register_shipped(jobs_store *st, const char *path, const char *name, const char *base_hash, int *registered,
                            char *msg, size_t msgsz) {
    char real[PATH_MAX];
    eng_adapter_info info;
    if (!realpath(path, real) || eng_adapter_probe(real, &info, NULL, NULL) != ENG_OK) {
        util_log(UTIL_LOG_WARN, "shipped adapter %s: unreadable, skipped", path);
        return JOBS_OK;
    }
    if (strcmp(info.base_hash, base_hash) != 0) {
        util_log(UTIL_LOG_INFO, "shipped adapter %s: trained for base %s, not this one: skipped", path, info.base_hash);
        return JOBS_OK;
    }
    jobs_adapter_info a;
    int rc = jobs_store_adapter_get(st, 0, name, &a, msg, msgsz);
    if (rc == JOBS_OK) {
        if (!a.path || strcmp(a.path, real) != 0)
            util_log(UTIL_LOG_WARN, "shipped adapter %s: the name '%s' is taken by %s: skipped", path, name,
                     a.path ? a.path : "another adapter");
        jobs_adapter_info_clear(&a);
        return JOBS_OK;
    }
    if (rc != JOBS_ENOTFOUND) return rc;
    rc = jobs_adapter_register(st, name, real, NULL, msg, msgsz);
    if (rc == JOBS_EINVAL || rc == JOBS_EEXIST) { /* not a codid adapter; a name taken meanwhile */
        util_log(UTIL_LOG_WARN, "shipped adapter %s: %s: skipped", path, msg);
        return JOBS_OK;
    }
    if (rc == JOBS_OK) {
        util_log(UTIL_LOG_INFO, "adapter '%s' registered from %s", name, real);
        (*registered)++;
    }
    return rc;
}

int jobs_adapter_register_dir(jobs_store *st, const char *dir, const char *base_hash, int *registered, char *msg,
                              size_t msgsz) {
    *registered = 0;
    DIR *top = opendir(dir);
    if (!top) {
        if (errno == ENOENT) return JOBS_OK;
        snprintf(msg, msgsz, "%.200s: %s", dir, strerror(errno));
        return JOBS_ERR;
    }
    int rc = JOBS_OK;
    struct dirent *e;
    while (rc == JOBS_OK && (e = readdir(top))) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= (int)sizeof sub) continue;
        DIR *d = opendir(sub);
        if (!d) continue; /* a file beside the folders: a script, a README */
        struct dirent *f;
        while (rc == JOBS_OK && (f = readdir(d))) {
            size_t n = strlen(f->d_name);
            static const char ext[] = ".safetensors";
            if (f->d_name[0] == '.' || n <= sizeof ext - 1 || n - (sizeof ext - 1) > JOBS_NAME_MAX ||
                strcmp(f->d_name + n - (sizeof ext - 1), ext) != 0)
                continue;
            char path[PATH_MAX], name[JOBS_NAME_MAX + 1];
            if (snprintf(path, sizeof path, "%s/%s", sub, f->d_name) >= (int)sizeof path) continue;
            snprintf(name, sizeof name, "%.*s", (int)(n - (sizeof ext - 1)), f->d_name);
            rc = register_shipped(st, path, name, base_hash, registered, msg, msgsz);
        }
        closedir(d);
    }
    closedir(top);
    return rc;
}

int jobs_adapter_get(jobs_store *st, const char *ref, jobs_adapter_info *out, char *msg, size_t msgsz) {
    jobs_ref r;
    if (jobs_ref_parse(ref, &r) != 0) return bad_ref("adapter", ref, msg, msgsz);
    return jobs_store_adapter_get(st, r.id, r.name, out, msg, msgsz);
}

int jobs_adapter_delete(jobs_store *st, const char *ref, char *msg, size_t msgsz) {
    static const char *const fields[] = {"teacher", "adapter", NULL};
    jobs_adapter_info a;
    int rc = jobs_adapter_get(st, ref, &a, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    rc = check_unused(st, "adapter", fields, a.name, a.id, msg, msgsz);
    if (rc == JOBS_OK) rc = jobs_store_adapter_delete(st, a.id, msg, msgsz);
    if (rc == JOBS_OK) remove_owned(st, "adapters", a.path);
    jobs_adapter_info_clear(&a);
    return rc;
}
