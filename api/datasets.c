/*
 * datasets.c - /v1/datasets: import (a built-in set, uploaded PNG files in
 * multipart/form-data, a tar of PNGs, or, with an admin key, a folder on
 * the server), list, get, delete.
 *
 * An import runs on the import thread (api/tasks.h) while the request is
 * suspended: uploaded files go from the request body to jobs/dataset.h's
 * in-memory PNG importer (each must decode as a PNG within max_pixels, and
 * is decoded once), which writes a dataset file under data_dir/datasets/
 * fitted to the served model: images centre-cropped and resized to its
 * sample_size and converted to its channels unless size/channels say
 * otherwise. Nothing in an upload (file names, tar member names) ever
 * names a path on the server: they only label messages.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/render.h"
#include "api/tasks.h"
#include "api/upload.h"
#include "jobs/dataset.h"
#include "jobs/jobs.h"
#include "jobs/jobspec.h"
#include "util/json.h"
#include "util/log.h"
#include "util/png.h"

#define UPLOAD_FILES_MAX 100000
#define FILE_LABEL_MAX   120

typedef enum import_kind { IMPORT_BUILTIN, IMPORT_FOLDER, IMPORT_MULTIPART, IMPORT_TAR } import_kind;

typedef struct upload_file {
    char label[FILE_LABEL_MAX]; /* for messages: the part or member and its name */
    const uint8_t *data;
    size_t len;
} upload_file;

typedef struct import_job {
    api_request *r;
    api_app *app;
    const api_scrub *scrub; /* what the client may see, decided on the event loop */
    import_kind kind;
    char name[JOBS_NAME_MAX + 1];
    char source[32], split[8];
    char folder[PATH_MAX];
    int size, channels, limit;
    upload_file *files;
    int n_files;
    api_part *parts; /* multipart: what files point into */
} import_job;

static void import_job_free(import_job *j) {
    free(j->files);
    free(j->parts);
    free(j);
}

/* ---- request parsing ------------------------------------------------------ */

static int content_is(const char *ct, const char *type) {
    size_t n = strlen(type);
    return ct && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Shared by every form: name, size, channels, limit. */
static api_status check_common(api_request *r, import_job *j) {
    if (*j->name && !jobs_name_valid(j->name))
        return api_problem(r, API_BAD_REQUEST, "name: 1-%d letters, digits, '.', '_' or '-', starting with a letter",
                           JOBS_NAME_MAX);
    if (j->size < 1 || j->size > JOBS_DATASET_MAX_SIDE)
        return api_problem(r, API_BAD_REQUEST, "size: must be 1..%d", JOBS_DATASET_MAX_SIDE);
    if (j->channels != 1 && j->channels != 3 && j->channels != 4)
        return api_problem(r, API_BAD_REQUEST, "channels: must be 1, 3 or 4");
    return API_OK;
}

static api_status int_value(api_request *r, const char *field, const cJSON *v, int lo, int hi, int *out) {
    long long x;
    char msg[160];
    if (util_json_int(v, field, lo, hi, &x, msg, sizeof msg) != UTIL_JSON_OK)
        return api_problem(r, API_BAD_REQUEST, "%s", msg);
    *out = (int)x;
    return API_OK;
}

static api_status string_value(api_request *r, const char *field, const cJSON *v, char *out, size_t outsz) {
    if (!cJSON_IsString(v)) return api_problem(r, API_BAD_REQUEST, "%s: must be a string", field);
    if (strlen(v->valuestring) >= outsz)
        return api_problem(r, API_BAD_REQUEST, "%s: longer than %zu bytes", field, outsz - 1);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return API_OK;
}

static api_status parse_json(api_request *r, import_job *j) {
    size_t len;
    const char *body = api_request_body(r, &len);
    if (len == 0)
        return api_problem(r, API_BAD_REQUEST,
                           "body: empty; send {\"builtin\": \"cifar10\", ...}, PNG files "
                           "(multipart/form-data) or a tar of PNGs (application/x-tar)");
    size_t at = 0;
    cJSON *doc = NULL;
    if (util_json_parse(body, len, &doc, &at) == UTIL_JSON_ENOMEM)
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    if (!doc) return api_problem(r, API_BAD_REQUEST, "body: invalid JSON near byte %zu", at);
    api_status st = cJSON_IsObject(doc) ? API_OK : api_problem(r, API_BAD_REQUEST, "body: must be a JSON object");
    char builtin[32] = "", split[16] = "", folder[PATH_MAX] = "";
    int seen_split = 0;
    for (cJSON *v = cJSON_IsObject(doc) ? doc->child : NULL; v && st == API_OK; v = v->next) {
        const char *k = v->string;
        if (cJSON_GetObjectItemCaseSensitive(doc, k) != v)
            st = api_problem(r, API_BAD_REQUEST, "%s: given twice", k);
        else if (strcmp(k, "builtin") == 0)
            st = string_value(r, k, v, builtin, sizeof builtin);
        else if (strcmp(k, "split") == 0)
            st = string_value(r, k, v, split, sizeof split), seen_split = 1;
        else if (strcmp(k, "folder") == 0)
            st = string_value(r, k, v, folder, sizeof folder);
        else if (strcmp(k, "name") == 0)
            st = string_value(r, k, v, j->name, sizeof j->name);
        else if (strcmp(k, "limit") == 0)
            st = int_value(r, k, v, 1, JOBS_DATASET_MAX_COUNT, &j->limit);
        else if (strcmp(k, "size") == 0)
            st = int_value(r, k, v, 1, JOBS_DATASET_MAX_SIDE, &j->size);
        else if (strcmp(k, "channels") == 0)
            st = int_value(r, k, v, 1, 4, &j->channels);
        else
            st = api_problem(r, API_BAD_REQUEST,
                             "%s: unknown field (known: builtin, split, folder, name, limit, size, channels)", k);
    }
    cJSON_Delete(doc);
    if (st != API_OK) return st;
    if (!*builtin == !*folder)
        return api_problem(r, API_BAD_REQUEST, "body: give exactly one of builtin (cifar10, fashion-mnist) and folder");
    if (*builtin) {
        if (strcmp(builtin, "cifar10") != 0 && strcmp(builtin, "fashion-mnist") != 0)
            return api_problem(r, API_BAD_REQUEST, "builtin: '%.64s' is not cifar10 or fashion-mnist", builtin);
        if (!seen_split) snprintf(split, sizeof split, "train");
        if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
            return api_problem(r, API_BAD_REQUEST, "split: '%.64s' is not train or test", split);
        j->kind = IMPORT_BUILTIN;
        snprintf(j->source, sizeof j->source, "%s", builtin);
        snprintf(j->split, sizeof j->split, "%s", strcmp(split, "test") == 0 ? "test" : "train");
        if (!*j->name) snprintf(j->name, sizeof j->name, "%s-%s", builtin, split);
        return API_OK;
    }
    if (seen_split) return api_problem(r, API_BAD_REQUEST, "split: applies to builtin datasets only");
    if (!api_request_is_admin(r))
        return api_problem(r, API_FORBIDDEN, "folder: importing a folder on the server needs an admin key");
    if (folder[0] != '/') return api_problem(r, API_BAD_REQUEST, "folder: must be an absolute path");
    char *real = realpath(folder, NULL);
    struct stat sb;
    int ok = real && stat(real, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (ok) snprintf(j->folder, sizeof j->folder, "%s", real);
    free(real);
    if (!ok) return api_problem(r, API_BAD_REQUEST, "folder: '%.200s' is not a readable directory", folder);
    j->kind = IMPORT_FOLDER;
    snprintf(j->source, sizeof j->source, "png");
    if (!*j->name) snprintf(j->name, sizeof j->name, "folder-%.8s", api_request_id(r));
    return API_OK;
}

static api_status add_file(api_request *r, import_job *j, const char *label, const uint8_t *data, size_t len) {
    if (j->n_files == UPLOAD_FILES_MAX)
        return api_problem(r, API_CONTENT_TOO_LARGE, "body: more than %d files", UPLOAD_FILES_MAX);
    if (j->n_files % 256 == 0) {
        upload_file *grown = realloc(j->files, sizeof *grown * (size_t)(j->n_files + 256));
        if (!grown) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
        j->files = grown;
    }
    upload_file *f = &j->files[j->n_files++];
    snprintf(f->label, sizeof f->label, "%s", label);
    for (char *p = f->label; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') *p = '?';
    f->data = data;
    f->len = len;
    return API_OK;
}

/* A small text field of a form as an integer. */
static api_status form_int(api_request *r, const api_part *p, int lo, int hi, int *out) {
    char buf[24];
    if (p->len == 0 || p->len >= sizeof buf)
        return api_problem(r, API_BAD_REQUEST, "%s: must be an integer in %d..%d", p->name, lo, hi);
    memcpy(buf, p->data, p->len);
    buf[p->len] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || v < lo || v > hi)
        return api_problem(r, API_BAD_REQUEST, "%s: must be an integer in %d..%d", p->name, lo, hi);
    *out = (int)v;
    return API_OK;
}

static api_status parse_multipart(api_request *r, import_job *j, const char *ct) {
    size_t len;
    const uint8_t *body = (const uint8_t *)api_request_body(r, &len);
    char msg[256];
    if (api_multipart_parse(ct, body, len, UPLOAD_FILES_MAX + 8, &j->parts, &j->n_files, msg, sizeof msg) != 0)
        return api_problem(r, API_BAD_REQUEST, "%s", msg);
    int n_parts = j->n_files;
    j->n_files = 0;
    api_status st = API_OK;
    for (int i = 0; i < n_parts && st == API_OK; i++) {
        const api_part *p = &j->parts[i];
        if (*p->filename) {
            char label[FILE_LABEL_MAX];
            snprintf(label, sizeof label, "file %d '%.80s'", j->n_files, p->filename);
            st = add_file(r, j, label, p->data, p->len);
        } else if (strcmp(p->name, "name") == 0) {
            if (p->len == 0 || p->len > JOBS_NAME_MAX)
                st = api_problem(r, API_BAD_REQUEST, "name: 1-%d characters", JOBS_NAME_MAX);
            else
                memcpy(j->name, p->data, p->len), j->name[p->len] = '\0';
        } else if (strcmp(p->name, "size") == 0) {
            st = form_int(r, p, 1, JOBS_DATASET_MAX_SIDE, &j->size);
        } else if (strcmp(p->name, "channels") == 0) {
            st = form_int(r, p, 1, 4, &j->channels);
        } else {
            st =
                api_problem(r, API_BAD_REQUEST,
                            "%s: unknown form field (known: name, size, channels, and files with a filename)", p->name);
        }
    }
    if (st == API_OK && j->n_files == 0)
        st = api_problem(r, API_BAD_REQUEST, "body: no files (parts with a filename) in the form");
    j->kind = IMPORT_MULTIPART;
    snprintf(j->source, sizeof j->source, "upload");
    if (!*j->name) snprintf(j->name, sizeof j->name, "upload-%.8s", api_request_id(r));
    return st;
}

typedef struct tar_walk {
    api_request *r;
    import_job *j;
    api_status st;
} tar_walk;

static int on_member(const api_tar_member *m, void *user) {
    tar_walk *w = user;
    const char *base = strrchr(m->name, '/');
    base = base ? base + 1 : m->name;
    if (base[0] == '.' || !*base) return 0; /* hidden files such as macOS's ._x.png */
    char label[FILE_LABEL_MAX];
    snprintf(label, sizeof label, "member '%.80s'", m->name);
    if (!has_suffix(base, ".png")) {
        w->st = api_problem(w->r, API_BAD_REQUEST, "%s: not a .png file (the archive must hold PNG images)", label);
        return 1;
    }
    w->st = add_file(w->r, w->j, label, m->data, m->len);
    return w->st != API_OK;
}

static api_status parse_tar(api_request *r, import_job *j) {
    size_t len;
    const uint8_t *body = (const uint8_t *)api_request_body(r, &len);
    char msg[256];
    const char *q = api_request_query(r, "name");
    if (q && strlen(q) < sizeof j->name)
        snprintf(j->name, sizeof j->name, "%s", q);
    else if (q)
        return api_problem(r, API_BAD_REQUEST, "name: 1-%d characters", JOBS_NAME_MAX);
    static const char *const ints[] = {"size", "channels"};
    for (int i = 0; i < 2; i++) {
        const char *v = api_request_query(r, ints[i]);
        if (!v) continue;
        char *end;
        long x = strtol(v, &end, 10);
        if (!*v || *end || x < 1 || x > JOBS_DATASET_MAX_SIDE)
            return api_problem(r, API_BAD_REQUEST, "%s: must be an integer", ints[i]);
        *(i == 0 ? &j->size : &j->channels) = (int)x;
    }
    tar_walk w = {r, j, API_OK};
    int rc = api_tar_each(body, len, on_member, &w, msg, sizeof msg);
    if (w.st != API_OK) return w.st;
    if (rc != 0) return api_problem(r, API_BAD_REQUEST, "body: %s", msg);
    if (j->n_files == 0) return api_problem(r, API_BAD_REQUEST, "body: the archive holds no .png files");
    j->kind = IMPORT_TAR;
    snprintf(j->source, sizeof j->source, "upload");
    if (!*j->name) snprintf(j->name, sizeof j->name, "upload-%.8s", api_request_id(r));
    return API_OK;
}

/* ---- the import, on the import thread ------------------------------------- */

static void run_import(void *arg) {
    import_job *j = arg;
    api_app *app = j->app;
    api_request *r = j->r;
    const char *data_dir = jobs_store_data_dir(app->store);
    char out[PATH_MAX], msg[512];
    /* the request id keeps concurrent imports of one name apart */
    snprintf(out, sizeof out, "%s/datasets/%s-%s.cds", data_dir, j->name, api_request_id(r));

    jobs_import_params p;
    jobs_import_params_init(&p);
    p.size = j->size;
    p.channels = j->channels;
    p.limit = j->limit;
    p.split = j->split;
    int failed = 0;
    jobs_png_blob *pngs = NULL;
    if (j->kind == IMPORT_BUILTIN) {
        int cifar = strcmp(j->source, "cifar10") == 0;
        p.source = cifar ? JOBS_SOURCE_CIFAR10 : JOBS_SOURCE_FASHION_MNIST;
        p.dir = cifar ? app->cfg.cifar10_dir : app->cfg.fashion_mnist_dir;
    } else if (j->kind == IMPORT_FOLDER) {
        p.source = JOBS_SOURCE_PNG_DIR;
        p.dir = j->folder;
    } else {
        p.source = JOBS_SOURCE_PNG_MEMORY;
        pngs = malloc(sizeof *pngs * (size_t)j->n_files);
        for (int i = 0; pngs && i < j->n_files; i++) pngs[i] = (jobs_png_blob){j->files[i].data, j->files[i].len};
        p.pngs = pngs;
        p.n_pngs = j->n_files;
        p.max_pixels = (size_t)app->cfg.max_pixels;
        if (!pngs) {
            api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
            failed = 1;
        }
    }
    jobs_import_stats stats;
    memset(&stats, 0, sizeof stats);
    int rc = failed ? JOBS_ERR : jobs_dataset_import(&p, out, &stats, msg, sizeof msg);
    free(pngs);
    if (!failed && rc != JOBS_OK) {
        failed = 1;
        if (j->kind == IMPORT_BUILTIN)
            api_problem(r, API_SERVICE_UNAVAILABLE, "builtin: %s is not available on this server: %s (%s_dir)",
                        j->source, msg, strcmp(j->source, "cifar10") == 0 ? "cifar10" : "fashion_mnist");
        else if (j->kind != IMPORT_FOLDER && rc == JOBS_ERR)
            api_jobs_problem(r, rc, msg); /* ours, not the upload's: writing the file, or memory */
        else if (stats.failed >= 0 && rc == JOBS_ELIMIT)
            api_problem(r, API_UNPROCESSABLE_CONTENT, "%s: %s (max_pixels %lld)", j->files[stats.failed].label, msg,
                        (long long)app->cfg.max_pixels);
        else if (stats.failed >= 0)
            api_problem(r, API_BAD_REQUEST, "%s: not a valid PNG: %s", j->files[stats.failed].label, msg);
        else
            api_problem(r, API_BAD_REQUEST, "%s: %s%s%s", j->kind == IMPORT_FOLDER ? "folder" : "body", msg,
                        stats.nreasons ? "; first skipped: " : "", stats.nreasons ? stats.reasons[0] : "");
    }
    jobs_dataset_info d = {0};
    if (!failed) {
        int rc = jobs_dataset_register(app->store, j->name, out, j->source, *j->split ? j->split : NULL, stats.skipped,
                                       &d, msg, sizeof msg);
        if (rc != JOBS_OK) {
            unlink(out);
            api_jobs_problem(r, rc, msg);
            failed = 1;
        }
    }
    if (!failed) {
        cJSON *ds = api_dataset_json(&d);
        api_scrub_tree(j->scrub, ds);
        cJSON *warnings = cJSON_AddArrayToObject(ds, "warnings");
        for (int i = 0; warnings && i < stats.nreasons; i++)
            cJSON_AddItemToArray(warnings, cJSON_CreateString(stats.reasons[i]));
        char location[48];
        snprintf(location, sizeof location, "/v1/datasets/%lld", (long long)d.id);
        util_log(UTIL_LOG_INFO, "dataset %s: %d images imported, %d skipped", j->name, stats.imported, stats.skipped);
        if (ds)
            api_respond_json(r, API_CREATED, ds);
        else
            api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
        api_response_header(r, "Location", location);
    }
    jobs_dataset_info_clear(&d);
    import_job_free(j);
    api_request_resume(r);
}

api_status api_datasets_create(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    import_job *j = calloc(1, sizeof *j);
    if (!j) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    j->r = r;
    j->app = app;
    j->scrub = api_request_scrub(r);
    j->size = app->model_info.sample_size;
    j->channels = app->model_info.in_channels;
    const char *ct = api_request_header(r, "Content-Type");
    api_status st;
    if (!ct || content_is(ct, "application/json") || content_is(ct, "application/x-www-form-urlencoded"))
        st = parse_json(r, j);
    else if (content_is(ct, "multipart/form-data"))
        st = parse_multipart(r, j, ct);
    else if (content_is(ct, "application/x-tar"))
        st = parse_tar(r, j);
    else
        st = api_problem(r, API_UNSUPPORTED_MEDIA_TYPE,
                         "Content-Type: '%.60s' is not application/json, multipart/form-data or application/x-tar", ct);
    if (st == API_OK) st = check_common(r, j);
    if (st == API_OK) {
        jobs_dataset_info existing;
        char msg[256];
        if (jobs_dataset_get(app->store, j->name, &existing, msg, sizeof msg) == JOBS_OK) {
            jobs_dataset_info_clear(&existing);
            st = api_problem(r, API_CONFLICT, "name: a dataset named '%s' exists already", j->name);
        }
    }
    if (st != API_OK) {
        import_job_free(j);
        return st;
    }
    api_request_suspend(r);
    if (api_tasks_submit(app->imports, run_import, j) == 0) return API_SUSPENDED;
    import_job_free(j);
    st = api_problem(r, API_TOO_MANY_REQUESTS, "too many dataset imports waiting; try again later");
    api_response_header(r, "Retry-After", "5");
    api_request_resume(r);
    return st;
}

api_status api_datasets_list(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    jobs_dataset_info *items = NULL;
    int n = 0;
    char msg[512];
    int rc = jobs_store_dataset_list(app->store, &items, &n, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    const api_scrub *scrub = api_request_scrub(r);
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "datasets");
    for (int i = 0; i < n; i++) {
        cJSON *item = api_dataset_json(&items[i]);
        api_scrub_tree(scrub, item);
        cJSON_AddItemToArray(arr, item);
        jobs_dataset_info_clear(&items[i]);
    }
    free(items);
    if (!arr) {
        cJSON_Delete(doc);
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    }
    return api_respond_json(r, API_OK, doc);
}

api_status api_datasets_get(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    jobs_dataset_info d;
    char msg[512];
    int rc = jobs_dataset_get(app->store, api_request_param(r, "id"), &d, msg, sizeof msg);
    if (rc == JOBS_EINVAL) rc = JOBS_ENOTFOUND; /* a path that names nothing */
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    cJSON *doc = api_dataset_json(&d);
    api_scrub_tree(api_request_scrub(r), doc);
    jobs_dataset_info_clear(&d);
    if (!doc) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    return api_respond_json(r, API_OK, doc);
}

api_status api_datasets_delete(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    char msg[512];
    int rc = jobs_dataset_delete(app->store, api_request_param(r, "id"), msg, sizeof msg);
    if (rc == JOBS_EINVAL) rc = JOBS_ENOTFOUND;
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    return api_respond(r, API_NO_CONTENT, "application/json", NULL, 0);
}

/* GET /v1/datasets/{id}/preview?count=N: the first N images (1..64,
 * default 16) side by side in rows of 8, one pixel apart, as one PNG.
 * A few kilobytes of a memory-mapped file: small enough for the event
 * loop, like the loss plot. */
#define PREVIEW_MAX  64
#define PREVIEW_COLS 8
api_status api_datasets_preview(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    int count = 16;
    const char *q = api_request_query(r, "count");
    if (q) {
        char *end;
        long v = strtol(q, &end, 10);
        if (*q == '\0' || *end || v < 1 || v > PREVIEW_MAX)
            return api_problem(r, API_BAD_REQUEST, "count: must be an integer in 1..%d", PREVIEW_MAX);
        count = (int)v;
    }
    jobs_dataset_info d;
    char msg[512];
    int rc = jobs_dataset_get(app->store, api_request_param(r, "id"), &d, msg, sizeof msg);
    if (rc == JOBS_EINVAL) rc = JOBS_ENOTFOUND;
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    jobs_dataset ds;
    rc = d.path ? jobs_dataset_map(d.path, &ds, msg, sizeof msg) : -1;
    int has_path = d.path != NULL;
    jobs_dataset_info_clear(&d);
    if (rc != 0) return api_problem(r, API_INTERNAL_SERVER_ERROR, "dataset file: %s", has_path ? msg : "none");
    if (count > ds.count) count = ds.count;
    int cols = count < PREVIEW_COLS ? count : PREVIEW_COLS, rows = (count + cols - 1) / cols, c = ds.channels;
    int gw = cols * (ds.width + 1) - 1, gh = rows * (ds.height + 1) - 1;
    uint8_t *grid = count > 0 ? calloc((size_t)gw * gh, (size_t)c) : NULL;
    uint8_t *png = NULL;
    size_t len = 0;
    rc = grid ? 0 : -1;
    snprintf(msg, sizeof msg, "%s", count > 0 ? "out of memory" : "the dataset is empty");
    for (int i = 0; grid && i < count; i++) {
        int x0 = (i % cols) * (ds.width + 1), y0 = (i / cols) * (ds.height + 1);
        const uint8_t *img = jobs_dataset_image(&ds, i);
        for (int y = 0; y < ds.height; y++)
            memcpy(grid + ((size_t)(y0 + y) * gw + x0) * c, img + (size_t)y * ds.width * c, (size_t)ds.width * c);
    }
    if (grid) rc = util_png_encode(grid, gw, gh, c, &png, &len, msg, sizeof msg);
    free(grid);
    jobs_dataset_unmap(&ds);
    if (rc != 0) return api_problem(r, count > 0 ? API_INTERNAL_SERVER_ERROR : API_CONFLICT, "preview: %s", msg);
    return api_respond(r, API_OK, "image/png", png, len);
}
