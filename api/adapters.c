/*
 * adapters.c - the adapter cache (adapters.h) and the /v1/adapters
 * endpoints: list, get, delete, by id or name, backed by the registry in
 * the jobs store.
 */
#include "api/adapters.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/render.h"
#include "api/tasks.h"
#include "jobs/jobs.h"
#include "jobs/jobspec.h"

typedef struct cached {
    int64_t id;
    eng_adapter *a;
    int64_t bytes;
    int refs;
    int dead;          /* its row was deleted: free once unused */
    uint64_t last_use; /* for LRU */
} cached;

struct api_adapters {
    pthread_mutex_t lock;
    eng_model *model;
    int capacity;
    cached *items;
    int n, cap;
    uint64_t clock;
};

int api_adapters_start(eng_model *model, int capacity, api_adapters **out, char *msg, size_t msgsz) {
    api_adapters *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->model = model;
    c->capacity = capacity > 0 ? capacity : 1;
    *out = c;
    return 0;
}

void api_adapters_stop(api_adapters *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) eng_adapter_free(c->items[i].a);
    free(c->items);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Under the lock: moves entry i's adapter to the free list. */
static void drop(api_adapters *c, int i, eng_adapter **freed, int *n_freed) {
    freed[(*n_freed)++] = c->items[i].a;
    c->items[i] = c->items[--c->n];
}

/* Under the lock: dead unused entries, then the least recently used unused
 * ones past capacity, go to the free list (room: c->n entries). */
static void sweep(api_adapters *c, eng_adapter **freed, int *n_freed) {
    for (int i = 0; i < c->n;)
        if (c->items[i].dead && c->items[i].refs == 0)
            drop(c, i, freed, n_freed);
        else
            i++;
    while (c->n > c->capacity) {
        int lru = -1;
        for (int i = 0; i < c->n; i++)
            if (c->items[i].refs == 0 && (lru < 0 || c->items[i].last_use < c->items[lru].last_use)) lru = i;
        if (lru < 0) break; /* all in use: over capacity until released */
        drop(c, lru, freed, n_freed);
    }
}

static int find(api_adapters *c, int64_t id) {
    for (int i = 0; i < c->n; i++)
        if (c->items[i].id == id && !c->items[i].dead) return i;
    return -1;
}

static void free_all(eng_adapter **freed, int n) {
    for (int i = 0; i < n; i++) eng_adapter_free(freed[i]);
    free(freed);
}

int api_adapters_acquire(api_adapters *c, int64_t id, const char *path, eng_adapter **out, char *msg, size_t msgsz) {
    eng_adapter *loaded = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&c->lock);
        eng_adapter **freed = malloc(sizeof *freed * (size_t)(c->n + 2));
        int n_freed = 0;
        if (!freed) {
            pthread_mutex_unlock(&c->lock);
            eng_adapter_free(loaded);
            snprintf(msg, msgsz, "out of memory");
            return ENG_ENOMEM;
        }
        int i = find(c, id);
        if (i < 0 && loaded) { /* insert what we loaded */
            if (c->n == c->cap) {
                int cap = c->cap ? c->cap * 2 : 8;
                cached *grown = realloc(c->items, sizeof *grown * (size_t)cap);
                if (!grown) {
                    pthread_mutex_unlock(&c->lock);
                    free_all(freed, n_freed);
                    eng_adapter_free(loaded);
                    snprintf(msg, msgsz, "out of memory");
                    return ENG_ENOMEM;
                }
                c->items = grown;
                c->cap = cap;
            }
            eng_adapter_info info;
            eng_adapter_get_info(loaded, &info);
            c->items[c->n] = (cached){id, loaded, info.memory_bytes, 0, 0, 0};
            i = c->n++;
            loaded = NULL;
        }
        if (i >= 0) {
            c->items[i].refs++;
            c->items[i].last_use = ++c->clock;
            *out = c->items[i].a;
            sweep(c, freed, &n_freed);
            pthread_mutex_unlock(&c->lock);
            free_all(freed, n_freed);
            eng_adapter_free(loaded); /* another thread loaded it first */
            return ENG_OK;
        }
        sweep(c, freed, &n_freed);
        pthread_mutex_unlock(&c->lock);
        free_all(freed, n_freed);

        eng_error err = {0};
        int rc = eng_adapter_load(c->model, path, &loaded, &err);
        if (rc != ENG_OK) {
            snprintf(msg, msgsz, "%s", err.msg);
            return rc;
        }
    }
    eng_adapter_free(loaded);
    snprintf(msg, msgsz, "the adapter could not be cached");
    return ENG_EINTERNAL;
}

void api_adapters_release(api_adapters *c, eng_adapter *a) {
    if (!a) return;
    eng_adapter *gone = NULL;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++) {
        if (c->items[i].a != a) continue;
        if (--c->items[i].refs == 0 && c->items[i].dead) {
            gone = a;
            c->items[i] = c->items[--c->n];
        }
        break;
    }
    pthread_mutex_unlock(&c->lock);
    eng_adapter_free(gone);
}

void api_adapters_forget(api_adapters *c, int64_t id) {
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++)
        if (c->items[i].id == id) c->items[i].dead = 1;
    pthread_mutex_unlock(&c->lock);
}

void api_adapters_sweep(api_adapters *c) {
    pthread_mutex_lock(&c->lock);
    eng_adapter **freed = malloc(sizeof *freed * (size_t)(c->n + 1));
    int n_freed = 0;
    if (freed) sweep(c, freed, &n_freed);
    pthread_mutex_unlock(&c->lock);
    if (freed) free_all(freed, n_freed);
}

int api_adapters_loaded(api_adapters *c, int64_t id) {
    pthread_mutex_lock(&c->lock);
    int yes = find(c, id) >= 0;
    pthread_mutex_unlock(&c->lock);
    return yes;
}

int64_t api_adapters_memory(api_adapters *c, int *count) {
    int64_t bytes = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++) bytes += c->items[i].bytes;
    *count = c->n;
    pthread_mutex_unlock(&c->lock);
    return bytes;
}

/* ---- endpoints -------------------------------------------------------- */

static void sweep_task(void *arg) {
    api_adapters_sweep(arg);
}

/* An adapter as JSON, with "loaded" (whether generation has it in memory). */
/* Adds "sampling": how generate samples with the adapter. CoDi in 1..N
 * steps for a distilled one, DDIM up to max_steps for a teacher. Read from
 * the registry's metadata, which holds a shipped file's codid.* keys
 * (distilled, n_grid) or the parameters of the job that trained it. */
static void add_sampling(api_app *app, cJSON *a) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "metadata");
    const cJSON *distilled = cJSON_GetObjectItemCaseSensitive(m, "distilled");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(m, "n_grid");
    int is_distilled = 0, n_grid = 0;
    if (cJSON_IsString(distilled)) {
        is_distilled = strcmp(distilled->valuestring, "1") == 0;
        n_grid = cJSON_IsString(grid) ? atoi(grid->valuestring) : 0;
    } else {
        char *params = cJSON_PrintUnformatted(m), msg[256];
        jobs_spec spec;
        if (params && jobs_spec_parse(params, &spec, msg, sizeof msg) == JOBS_OK) {
            is_distilled = spec.kind == JOBS_KIND_DISTILL || spec.kind == JOBS_KIND_CM2;
            n_grid = spec.train.n_grid;
            jobs_spec_free(&spec);
        }
        cJSON_free(params);
    }
    int max = is_distilled && n_grid > 0 ? n_grid : app->cfg.max_steps;
    if (max > app->cfg.max_steps) max = app->cfg.max_steps;
    cJSON *s = cJSON_AddObjectToObject(a, "sampling");
    if (!s) return;
    cJSON_AddStringToObject(s, "sampler", is_distilled ? "codi" : "ddim");
    cJSON_AddNumberToObject(s, "min_steps", 1);
    cJSON_AddNumberToObject(s, "max_steps", max);
    cJSON_AddNumberToObject(s, "default_steps",
                            is_distilled ? (max < ENG_CODI_DEFAULT_STEPS ? max : ENG_CODI_DEFAULT_STEPS)
                                         : ENG_DDIM_DEFAULT_STEPS);
}

static cJSON *adapter_json(api_app *app, const jobs_adapter_info *a, const api_scrub *scrub) {
    cJSON *o = api_adapter_json(a);
    api_scrub_tree(scrub, o);
    cJSON_AddBoolToObject(o, "loaded", api_adapters_loaded(app->adapters, a->id));
    if (o) add_sampling(app, o);
    return o;
}

api_status api_adapters_list(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    jobs_adapter_info *items = NULL;
    int n = 0;
    char msg[512];
    int rc = jobs_store_adapter_list(app->store, &items, &n, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    const api_scrub *scrub = api_request_scrub(r);
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "adapters");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, adapter_json(app, &items[i], scrub));
        jobs_adapter_info_clear(&items[i]);
    }
    free(items);
    if (!arr) {
        cJSON_Delete(doc);
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    }
    return api_respond_json(r, API_OK, doc);
}

api_status api_adapters_get(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    jobs_adapter_info a;
    char msg[512];
    int rc = jobs_adapter_get(app->store, api_request_param(r, "id"), &a, msg, sizeof msg);
    if (rc == JOBS_EINVAL) rc = JOBS_ENOTFOUND; /* a path that names nothing */
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    cJSON *doc = adapter_json(app, &a, api_request_scrub(r));
    jobs_adapter_info_clear(&a);
    if (!doc) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    return api_respond_json(r, API_OK, doc);
}

api_status api_adapters_delete(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    const char *ref = api_request_param(r, "id");
    jobs_adapter_info a;
    char msg[512];
    int rc = jobs_adapter_get(app->store, ref, &a, msg, sizeof msg);
    if (rc == JOBS_EINVAL) rc = JOBS_ENOTFOUND;
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    int64_t id = a.id;
    jobs_adapter_info_clear(&a);
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    rc = jobs_adapter_delete(app->store, idtext, msg, sizeof msg);
    if (rc != JOBS_OK) return api_jobs_problem(r, rc, msg);
    api_adapters_forget(app->adapters, id);
    /* freed on a prepare thread; if its queue is full, the next acquire does it */
    api_tasks_submit(app->prep, sweep_task, app->adapters);
    return api_respond(r, API_NO_CONTENT, "application/json", NULL, 0);
}
