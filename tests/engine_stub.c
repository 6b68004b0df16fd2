/*
 * engine_stub.c - see engine_stub.h. The names and defaults are the real
 * engine's (the C++ under engine/), so that jobs/jobspec.c validates as it does
 * against it; everything else is as small as a stand-in can be.
 */
#include "tests/engine_stub.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/safetensors.h"

struct eng_ctx {
    int unused;
};
struct eng_model {
    int unused;
};
struct eng_adapter {
    int64_t id;
};
struct eng_trainer {
    int done, total;
};

static struct eng_ctx the_ctx;
static struct eng_model the_model;
static atomic_int adapters_alive, trainers_alive, step_delay_us;
static _Thread_local int thread_budget = 1;

eng_model *stub_model(void) {
    return &the_model;
}
eng_ctx *stub_ctx(void) {
    return &the_ctx;
}
int64_t stub_adapter_id(const eng_adapter *a) {
    return a->id;
}
int stub_adapters_alive(void) {
    return atomic_load(&adapters_alive);
}
int stub_trainers_alive(void) {
    return atomic_load(&trainers_alive);
}
void stub_set_step_delay_us(int us) {
    atomic_store(&step_delay_us, us);
}

static int fail(eng_error *err, int code, const char *what) {
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s", what);
    }
    return code;
}

/* ---- (names and task defaults: engine/names.c, linked as it is) ------------------------ */

void eng_set_threads(int n) {
    thread_budget = n > 0 ? n : 1;
}
int eng_get_threads(void) {
    return thread_budget;
}

int eng_task_apply(const eng_task_params *p, const eng_images *in, uint64_t seed, uint8_t *cond_out, eng_error *err) {
    (void)seed;
    (void)err;
    size_t n = (size_t)in->n * in->height * in->width * eng_task_cond_channels(p, in->channels);
    memset(cond_out, 128, n);
    return ENG_OK;
}
/* ---- the model ------------------------------------------------------------------ */

void eng_model_get_info(const eng_model *m, eng_model_info *out) {
    (void)m;
    memset(out, 0, sizeof *out);
    out->in_channels = out->out_channels = 3;
    out->sample_size = 16;
    snprintf(out->hash, sizeof out->hash, "0123456789abcdef");
    snprintf(out->name, sizeof out->name, "stub");
}
const char *eng_model_config_json(const eng_model *m) {
    (void)m;
    return "{\"sample_size\":16}";
}

/* ---- generation ------------------------------------------------------------------ */

int eng_generate(eng_model *m, eng_adapter *a, const eng_gen_params *p, const eng_image *cond, eng_image *out,
                 eng_error *err) {
    (void)m;
    (void)a;
    (void)cond;
    for (int s = 1; s <= p->steps; s++) {
        int us = atomic_load(&step_delay_us);
        if (us) usleep((useconds_t)us);
        if (p->progress && p->progress(s, p->steps, p->user)) return fail(err, ENG_ECANCELLED, "cancelled");
    }
    for (int i = 0; i < p->n; i++) {
        out[i] = (eng_image){16, 16, 3, malloc(16 * 16 * 3)};
        if (!out[i].data) {
            for (int k = 0; k < i; k++) eng_image_free(&out[k]);
            return fail(err, ENG_ENOMEM, "out of memory");
        }
        memset(out[i].data, (int)((p->seed + (uint64_t)i) & 255), 16 * 16 * 3);
    }
    return ENG_OK;
}
void eng_image_free(eng_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
}

/* ---- adapters --------------------------------------------------------------------- */

int eng_adapter_load(eng_model *m, const char *path, eng_adapter **out, eng_error *err) {
    (void)m;
    const char *num = strrchr(path, '-');
    eng_adapter *a = malloc(sizeof *a);
    if (!a) return fail(err, ENG_ENOMEM, "out of memory");
    a->id = num ? atoll(num + 1) : 0;
    atomic_fetch_add(&adapters_alive, 1);
    *out = a;
    return ENG_OK;
}
void eng_adapter_get_info(const eng_adapter *a, eng_adapter_info *out) {
    (void)a;
    memset(out, 0, sizeof *out);
    out->kind = ENG_ADAPTER_LITE;
    eng_task_params_init(&out->task, ENG_TASK_SR);
    out->distilled = 1;
    out->memory_bytes = 1024;
}
void eng_adapter_free(eng_adapter *a) {
    if (!a) return;
    atomic_fetch_sub(&adapters_alive, 1);
    free(a);
}

/* ---- training ---------------------------------------------------------------------- */

static int create(const eng_train_params *p, eng_trainer **out, eng_error *err) {
    eng_trainer *t = calloc(1, sizeof *t);
    if (!t) return fail(err, ENG_ENOMEM, "out of memory");
    t->total = p->total_steps;
    atomic_fetch_add(&trainers_alive, 1);
    *out = t;
    return ENG_OK;
}
int eng_trainer_create_pretrain(eng_ctx *ctx, const char *config_json, const char *scheduler_json,
                                const eng_train_params *p, const eng_images *data, eng_trainer **out, eng_error *err) {
    (void)ctx;
    (void)config_json;
    (void)scheduler_json;
    (void)data;
    return create(p, out, err);
}
int eng_trainer_create_adapter(eng_model *m, const eng_train_params *p, const eng_images *data, eng_trainer **out,
                               eng_error *err) {
    (void)m;
    (void)data;
    return create(p, out, err);
}
int eng_trainer_step(eng_trainer *t, eng_step_stats *stats, eng_error *err) {
    (void)err;
    t->done++;
    *stats = (eng_step_stats){t->done, 1.0f / (float)t->done, 1e-3f, 1.0f};
    return ENG_OK;
}
int eng_trainer_steps_done(const eng_trainer *t) {
    return t->done;
}

/* A one-tensor file holding the step, written as the engine writes its files. */
static int write_step(const eng_trainer *t, const char *path, const char *extra, eng_error *err) {
    st_writer *w = st_writer_new();
    float v = (float)t->done;
    int64_t shape[1] = {1};
    char msg[256] = "out of memory";
    int rc = w ? st_writer_add(w, "step", ST_F32, 1, shape, &v, sizeof v) : ST_ENOMEM;
    if (rc == ST_OK && extra) rc = st_writer_set_metadata(w, "codid.extra", extra);
    if (rc == ST_OK) rc = st_writer_save(w, path, msg, sizeof msg);
    st_writer_free(w);
    return rc == ST_OK ? ENG_OK : fail(err, ENG_EIO, msg);
}
int eng_trainer_save_checkpoint(eng_trainer *t, const char *path, eng_error *err) {
    return write_step(t, path, NULL, err);
}
int eng_trainer_load_checkpoint(eng_trainer *t, const char *path, eng_error *err) {
    st_file f;
    char msg[256];
    if (st_open(path, &f, msg, sizeof msg) != ST_OK) return fail(err, ENG_EIO, msg);
    const st_tensor *s = st_find(&f, "step");
    float v = 0;
    if (s) memcpy(&v, s->data, sizeof v);
    t->done = (int)v;
    st_close(&f);
    return s ? ENG_OK : fail(err, ENG_EFORMAT, "no step in the checkpoint");
}
int eng_trainer_export(eng_trainer *t, const char *path, int fp16, const char *extra_metadata_json, eng_error *err) {
    (void)fp16;
    return write_step(t, path, extra_metadata_json, err);
}
void eng_trainer_free(eng_trainer *t) {
    if (!t) return;
    atomic_fetch_sub(&trainers_alive, 1);
    free(t);
}

int eng_default_steps(const eng_model *m, const eng_adapter *a, int evaluation) {
    (void)m;
    return a ? ENG_CODI_DEFAULT_STEPS : evaluation ? ENG_DDIM_EVALUATION_STEPS : ENG_DDIM_DEFAULT_STEPS;
}
int eng_adapter_probe(const char *path, eng_adapter_info *out, char **metadata_json, eng_error *err) {
    (void)path, (void)out;
    if (metadata_json) *metadata_json = NULL;
    return fail(err, ENG_EFORMAT, "the stub engine reads no adapter files");
}
