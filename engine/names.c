/*
 * names.c - the engine's enums as names, and back (one table per enum), and
 * the defaults of its parameter structs (*_params_init): in C, so that programs built without
 * libtorch (the ThreadSanitizer build's engine stub, tests/engine_stub.c)
 * use the very same names and defaults. Every name
 * pair follows one rule: *_name gives "unknown" for a value out of range,
 * *_from_name gives ENG_OK and the value, or ENG_EINVAL.
 */
#include <string.h>

#include "engine/engine.h"

static const char *name_of(const char *const *names, int count, int v) {
    return v >= 0 && v < count ? names[v] : "unknown";
}

static int value_of(const char *const *names, int first, int count, const char *name, int *out) {
    for (int i = first; name && i < count; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return ENG_OK;
        }
    return ENG_EINVAL;
}

#define ENG_NAMES(fn, type, count, first, ...)                  \
    static const char *const fn##_names[count] = {__VA_ARGS__}; \
    const char *eng_##fn##_name(type v) {                       \
        return name_of(fn##_names, count, (int)v);              \
    }                                                           \
    static int fn##_value(const char *name, type *out) {        \
        int v;                                                  \
        int rc = value_of(fn##_names, first, count, name, &v);  \
        if (rc == ENG_OK) *out = (type)v;                       \
        return rc;                                              \
    }

ENG_NAMES(device_kind, eng_device_kind, ENG_DEVICE_COUNT, 0, "auto", "cpu", "cuda")
ENG_NAMES(prediction, eng_prediction, ENG_PRED_COUNT, 0, "epsilon", "v_prediction")
ENG_NAMES(sampler, eng_sampler, ENG_SAMPLER_COUNT, 0, "auto", "ddim", "codi")
ENG_NAMES(adapter_kind, eng_adapter_kind, ENG_ADAPTER_COUNT, 0, "controlnet", "lite")
/* "none" names the zero value but is no task a caller may ask for */
ENG_NAMES(task, eng_task_kind, ENG_TASK_COUNT, 1, "none", "sr", "inpaint", "colorize", "edges", "deblur", "denoise")
ENG_NAMES(preprocess, eng_preprocess, ENG_PRE_COUNT, 0, "none", "canny", "sobel", "gray", "task")
ENG_NAMES(train_kind, eng_train_kind, ENG_TRAIN_COUNT, 0, "pretrain", "distill", "teacher", "cm2")
ENG_NAMES(ode_model, eng_ode_model, ENG_ODE_COUNT, 0, "base", "ema")
ENG_NAMES(consistency_space, eng_consistency_space, ENG_CONSISTENCY_COUNT, 0, "x", "eps")
ENG_NAMES(loss_weight, eng_loss_weight, ENG_LOSS_WEIGHT_COUNT, 0, "none", "snr_trunc")

int eng_device_kind_from_name(const char *name, eng_device_kind *out) {
    return device_kind_value(name, out);
}
/* "v", as job specs stored by older versions spell it, is still read */
int eng_prediction_from_name(const char *name, eng_prediction *out) {
    if (name && strcmp(name, "v") == 0) {
        *out = ENG_PRED_V;
        return ENG_OK;
    }
    return prediction_value(name, out);
}
int eng_sampler_from_name(const char *name, eng_sampler *out) {
    return sampler_value(name, out);
}
int eng_adapter_kind_from_name(const char *name, eng_adapter_kind *out) {
    return adapter_kind_value(name, out);
}
int eng_task_from_name(const char *name, eng_task_kind *out) {
    return task_value(name, out);
}
int eng_preprocess_from_name(const char *name, eng_preprocess *out) {
    return preprocess_value(name, out);
}
int eng_train_kind_from_name(const char *name, eng_train_kind *out) {
    return train_kind_value(name, out);
}
int eng_ode_model_from_name(const char *name, eng_ode_model *out) {
    return ode_model_value(name, out);
}
int eng_consistency_space_from_name(const char *name, eng_consistency_space *out) {
    return consistency_space_value(name, out);
}
int eng_loss_weight_from_name(const char *name, eng_loss_weight *out) {
    return loss_weight_value(name, out);
}

const char *eng_strerror(int code) {
    switch (code) {
        case ENG_OK: return "ok";
        case ENG_EINVAL: return "invalid argument";
        case ENG_EIO: return "i/o error";
        case ENG_EFORMAT: return "malformed file or config";
        case ENG_ENOMEM: return "out of memory";
        case ENG_EMISMATCH: return "weights do not fit the model";
        case ENG_ECANCELLED: return "cancelled";
        case ENG_EINTERNAL: return "internal engine error";
        default: return "unknown error";
    }
}

void eng_task_params_init(eng_task_params *p, eng_task_kind kind) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->factor = 4;
    p->canny = 1;
    p->max_sigma = 2.0f;
    p->max_noise = 0.3f;
}

int eng_task_cond_channels(const eng_task_params *p, int image_channels) {
    switch (p->kind) {
        case ENG_TASK_INPAINT: return image_channels + 1;
        case ENG_TASK_COLORIZE:
        case ENG_TASK_EDGES: return 1;
        default: return image_channels;
    }
}

void eng_train_params_init(eng_train_params *p, eng_train_kind kind) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->total_steps = 1000;
    p->batch_size = 64;
    p->lr = kind == ENG_TRAIN_PRETRAIN ? 2e-3f : 1e-3f;
    p->warmup_steps = 100;
    p->weight_decay = 1e-2f;
    p->grad_clip = 1.0f;
    p->ema_decay = kind == ENG_TRAIN_PRETRAIN ? 0.999f : 0.995f;
    p->seed = 0;
    p->hflip = 1;
    p->prediction = ENG_PRED_V;
    p->adapter_kind = ENG_ADAPTER_CONTROLNET;
    eng_task_params_init(&p->task, ENG_TASK_SR);
    p->n_grid = 50;
    p->lambda = kind == ENG_TRAIN_CM2 ? 0.0f : 1.0f;
    p->ode_model = ENG_ODE_BASE;
    p->consistency = ENG_CONSISTENCY_X;
    p->shared_t = 0;
    p->loss_weight = ENG_LOSS_WEIGHT_NONE;
    p->teacher_path = NULL;
}

void eng_gen_params_init(eng_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->n = 1;
    p->steps = 4;
    p->seed = 0;
    p->eta = 0;
    p->clamp = 1;
    p->sampler = ENG_SAMPLER_AUTO;
}
