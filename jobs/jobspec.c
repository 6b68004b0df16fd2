/*
 * jobspec.c - see jobspec.h. One table says which fields exist, which
 * kinds they apply to, their type, bounds and where they go; a small typed
 * getter per type reads a field and words its own error.
 */
#include "jobs/jobspec.h"
#include "util/json.h"
#include "util/msg.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    K_PRETRAIN = 1 << JOBS_KIND_PRETRAIN,
    K_DISTILL = 1 << JOBS_KIND_DISTILL,
    K_TEACHER = 1 << JOBS_KIND_TEACHER,
    K_CM2 = 1 << JOBS_KIND_CM2,
    K_EVALUATE = 1 << JOBS_KIND_EVALUATE,
    K_CODI = K_DISTILL | K_CM2,
    K_ADAPTER = K_DISTILL | K_TEACHER | K_CM2,
    K_TRAIN = K_PRETRAIN | K_ADAPTER,
    K_ALL = K_TRAIN | K_EVALUATE
};

static const char *const kind_names[JOBS_KIND_COUNT] = {"pretrain", "distill", "teacher", "cm2", "evaluate"};

const char *jobs_kind_name(jobs_kind k) {
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "unknown";
}

int jobs_name_valid(const char *name) {
    size_t n = strlen(name);
    if (n < 1 || n > JOBS_NAME_MAX || !isalpha((unsigned char)name[0])) return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i])) return 0;
    return 1;
}

#define MAX_ID 999999999999999.0

/* ---- typed getters: each names the field in its error -------------------------- */

static int get_int(const cJSON *v, const char *name, double lo, double hi, long long *out, char *msg, size_t msgsz) {
    if (util_json_int(v, name, (long long)lo, (long long)hi, out, NULL, 0) != UTIL_JSON_OK)
        return util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' must be an integer in %.0f..%.0f", name, lo, hi);
    return JOBS_OK;
}

/* lo < x < hi, or lo <= x when lo_closed (and likewise hi). */
static int get_float(const cJSON *v, const char *name, double lo, int lo_closed, double hi, int hi_closed, float *out,
                     char *msg, size_t msgsz) {
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(x) || (lo_closed ? x < lo : x <= lo) || (hi_closed ? x > hi : x >= hi))
        return util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' must be a number in %c%g, %g%c", name,
                        lo_closed ? '[' : '(', lo, hi, hi_closed ? ']' : ')');
    *out = (float)x;
    return JOBS_OK;
}

static int get_bool(const cJSON *v, const char *name, int *out, char *msg, size_t msgsz) {
    if (cJSON_IsBool(v))
        *out = cJSON_IsTrue(v);
    else if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1))
        *out = v->valuedouble == 1;
    else
        return util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' must be true or false", name);
    return JOBS_OK;
}

/* An enum's name / from-name pair (the engine's, for the engine's enums),
 * over int values 0..count-1. */
typedef struct enum_pair {
    int count;
    const char *(*name)(int value);
    int (*from_name)(const char *name, int *out); /* 0, or -1 for an unknown name */
} enum_pair;

#define ENG_ENUM_PAIR(prefix, type, count)                      \
    static const char *prefix##_opt_name(int v) {               \
        return prefix##_name((type)v);                          \
    }                                                           \
    static int prefix##_opt_parse(const char *name, int *out) { \
        type v;                                                 \
        if (prefix##_from_name(name, &v) != ENG_OK) return -1;  \
        *out = (int)v;                                          \
        return 0;                                               \
    }                                                           \
    static const enum_pair prefix##_pair = {count, prefix##_opt_name, prefix##_opt_parse};

/* One of an enum's values by its name; *out is the value. */
static int get_enum(const cJSON *v, const char *name, const enum_pair *e, int *out, char *msg, size_t msgsz) {
    if (cJSON_IsString(v) && e->from_name(v->valuestring, out) == 0) return JOBS_OK;
    char list[256] = "";
    for (int i = 0; i < e->count; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", e->name(i));
    return util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' must be one of %s", name, list);
}

int jobs_ref_parse(const char *text, jobs_ref *out) {
    memset(out, 0, sizeof *out);
    size_t n = text ? strlen(text) : 0;
    if (n > 0 && n < 16 && strspn(text, "0123456789") == n) {
        out->id = strtoll(text, NULL, 10);
        return out->id > 0 ? 0 : -1;
    }
    if (!text || !jobs_name_valid(text)) return -1;
    snprintf(out->name, sizeof out->name, "%s", text);
    return 0;
}

/* A name, or an id: a positive integer or a string of digits. */
static int get_ref(const cJSON *v, const char *name, jobs_ref *out, char *msg, size_t msgsz) {
    memset(out, 0, sizeof *out);
    if (cJSON_IsNumber(v)) {
        long long id;
        if (get_int(v, name, 1, MAX_ID, &id, msg, msgsz) != JOBS_OK) return JOBS_EINVAL;
        out->id = id;
        return JOBS_OK;
    }
    if (cJSON_IsString(v) && jobs_ref_parse(v->valuestring, out) == 0) return JOBS_OK;
    return util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' must be a registered name or a positive id", name);
}

/* ---- the task object ------------------------------------------------------------- */

/* The task parameters' bounds (also described by jobs_spec_describe). */
#define SR_FACTOR_MIN 2
#define SR_FACTOR_MAX 8
#define MAX_SIGMA_MIN 0.5
#define MAX_SIGMA_MAX 16
#define MAX_NOISE_MIN 0.02
#define MAX_NOISE_MAX 2

static int parse_task(const cJSON *v, eng_task_params *task, char *msg, size_t msgsz) {
    if (!cJSON_IsObject(v))
        return util_msg(msg, msgsz, JOBS_EINVAL,
                        "field 'task' must be an object such as {\"name\": \"sr\", \"factor\": 4}");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
    eng_task_kind kind;
    if (!cJSON_IsString(name) || eng_task_from_name(name->valuestring, &kind) != ENG_OK || kind == ENG_TASK_NONE)
        return util_msg(msg, msgsz, JOBS_EINVAL,
                        "field 'task.name' must be one of sr, inpaint, colorize, edges, deblur, denoise");
    eng_task_params_init(task, kind);
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        const char *key = item->string;
        int rc = JOBS_OK;
        long long iv;
        if (strcmp(key, "name") == 0) {
            continue;
        } else if (strcmp(key, "factor") == 0 && kind == ENG_TASK_SR) {
            rc = get_int(item, "task.factor", SR_FACTOR_MIN, SR_FACTOR_MAX, &iv, msg, msgsz);
            if (rc == JOBS_OK && iv != 2 && iv != 4 && iv != 8)
                rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'task.factor' must be 2, 4 or 8");
            task->factor = (int)iv;
        } else if (strcmp(key, "canny") == 0 && kind == ENG_TASK_EDGES) {
            rc = get_bool(item, "task.canny", &task->canny, msg, msgsz);
        } else if (strcmp(key, "max_sigma") == 0 && kind == ENG_TASK_DEBLUR) {
            rc = get_float(item, "task.max_sigma", MAX_SIGMA_MIN, 1, MAX_SIGMA_MAX, 1, &task->max_sigma, msg, msgsz);
        } else if (strcmp(key, "max_noise") == 0 && kind == ENG_TASK_DENOISE) {
            rc = get_float(item, "task.max_noise", MAX_NOISE_MIN, 1, MAX_NOISE_MAX, 1, &task->max_noise, msg, msgsz);
        } else {
            rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'task.%.64s' is unknown for task '%.64s'", key,
                          name->valuestring);
        }
        if (rc != JOBS_OK) return rc;
    }
    return JOBS_OK;
}

/* ---- the job ------------------------------------------------------------------------ */

static const char *kind_opt_name(int v) {
    return jobs_kind_name((jobs_kind)v);
}
static int kind_opt_parse(const char *name, int *out) {
    for (int i = 0; i < JOBS_KIND_COUNT; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}
static const enum_pair kind_pair = {JOBS_KIND_COUNT, kind_opt_name, kind_opt_parse};
/* Stored specs may say "prediction": "v": eng_prediction_from_name takes it. */
ENG_ENUM_PAIR(eng_adapter_kind, eng_adapter_kind, ENG_ADAPTER_COUNT)
ENG_ENUM_PAIR(eng_ode_model, eng_ode_model, ENG_ODE_COUNT)
ENG_ENUM_PAIR(eng_consistency_space, eng_consistency_space, ENG_CONSISTENCY_COUNT)
ENG_ENUM_PAIR(eng_loss_weight, eng_loss_weight, ENG_LOSS_WEIGHT_COUNT)
ENG_ENUM_PAIR(eng_prediction, eng_prediction, ENG_PRED_COUNT)
_Static_assert(sizeof(eng_adapter_kind) == sizeof(int) && sizeof(eng_prediction) == sizeof(int) &&
                   sizeof(eng_ode_model) == sizeof(int) && sizeof(eng_consistency_space) == sizeof(int) &&
                   sizeof(eng_loss_weight) == sizeof(int),
               "enum fields are stored as int");

typedef enum field_type { F_KIND, F_REF, F_TASK, F_INT, F_SEED, F_FLOAT, F_BOOL, F_ENUM, F_NAME, F_CONFIG } field_type;

typedef struct field {
    const char *name;
    unsigned kinds; /* K_* bits of the kinds it applies to */
    field_type type;
    size_t offset;            /* of its value in jobs_spec */
    double lo, hi;            /* F_INT, F_FLOAT bounds */
    int lo_open, hi_open;     /* F_FLOAT: bound excluded */
    const enum_pair *options; /* F_ENUM */
} field;

#define AT(member) offsetof(jobs_spec, member)
#define MAX_SEED   9007199254740992.0 /* 2^53: exact in a JSON number */

static const field fields[] = {
    {"kind", K_ALL, F_KIND, 0, 0, 0, 0, 0, NULL},
    {"dataset", K_ALL, F_REF, AT(dataset), 0, 0, 0, 0, NULL},
    {"seed", K_ALL, F_SEED, AT(train.seed), 0, MAX_SEED, 0, 0, NULL},
    {"task", K_ADAPTER, F_TASK, AT(train.task), 0, 0, 0, 0, NULL},
    {"adapter_kind", K_ADAPTER, F_ENUM, AT(train.adapter_kind), 0, 0, 0, 0, &eng_adapter_kind_pair},
    {"steps", K_TRAIN, F_INT, AT(train.total_steps), 1, 1e8, 0, 0, NULL},
    {"batch_size", K_TRAIN, F_INT, AT(train.batch_size), 1, 4096, 0, 0, NULL},
    {"lr", K_TRAIN, F_FLOAT, AT(train.lr), 0, 1, 1, 1, NULL},
    {"warmup", K_TRAIN, F_INT, AT(train.warmup_steps), 0, 1e8, 0, 0, NULL},
    {"ema_decay", K_TRAIN, F_FLOAT, AT(train.ema_decay), 0, 1, 0, 1, NULL},
    {"name", K_TRAIN, F_NAME, AT(name), 0, 0, 0, 0, NULL},
    {"checkpoint_every", K_TRAIN, F_INT, AT(checkpoint_every), 1, 1e8, 0, 0, NULL},
    {"n_grid", K_CODI, F_INT, AT(train.n_grid), 2, 1000, 0, 0, NULL},
    {"lambda", K_CODI, F_FLOAT, AT(train.lambda), 0, 1e6, 0, 0, NULL},
    {"ode_model", K_CODI, F_ENUM, AT(train.ode_model), 0, 0, 0, 0, &eng_ode_model_pair},
    {"consistency_space", K_CODI, F_ENUM, AT(train.consistency), 0, 0, 0, 0, &eng_consistency_space_pair},
    {"shared_t", K_CODI, F_BOOL, AT(train.shared_t), 0, 0, 0, 0, NULL},
    {"loss_weight", K_CODI, F_ENUM, AT(train.loss_weight), 0, 0, 0, 0, &eng_loss_weight_pair},
    {"teacher", K_CM2, F_REF, AT(teacher), 0, 0, 0, 0, NULL},
    {"config", K_PRETRAIN, F_CONFIG, AT(model_config), 0, 0, 0, 0, NULL},
    {"prediction", K_PRETRAIN, F_ENUM, AT(train.prediction), 0, 0, 0, 0, &eng_prediction_pair},
    {"adapter", K_EVALUATE, F_REF, AT(adapter), 0, 0, 0, 0, NULL},
    {"n", K_EVALUATE, F_INT, AT(eval_n), 1, 100000, 0, 0, NULL},
    {"sample_steps", K_EVALUATE, F_INT, AT(sample_steps), 1, 1000, 0, 0, NULL},
};

static int parse_field(const field *f, const cJSON *v, jobs_spec *s, char *msg, size_t msgsz) {
    void *dst = (char *)s + f->offset;
    long long iv = 0;
    int rc = JOBS_OK;
    switch (f->type) {
        case F_KIND: break;
        case F_REF: rc = get_ref(v, f->name, dst, msg, msgsz); break;
        case F_TASK: rc = parse_task(v, dst, msg, msgsz); break;
        case F_INT:
            rc = get_int(v, f->name, f->lo, f->hi, &iv, msg, msgsz);
            *(int *)dst = (int)iv;
            break;
        case F_SEED:
            rc = get_int(v, f->name, f->lo, f->hi, &iv, msg, msgsz);
            *(uint64_t *)dst = (uint64_t)iv;
            break;
        case F_FLOAT: rc = get_float(v, f->name, f->lo, !f->lo_open, f->hi, !f->hi_open, dst, msg, msgsz); break;
        case F_BOOL: rc = get_bool(v, f->name, dst, msg, msgsz); break;
        case F_ENUM: rc = get_enum(v, f->name, f->options, dst, msg, msgsz); break;
        case F_NAME:
            if (!cJSON_IsString(v) || !jobs_name_valid(v->valuestring))
                return util_msg(msg, msgsz, JOBS_EINVAL,
                                "field 'name' must be 1-%d letters, digits, '.', '_' or '-', starting with a letter",
                                JOBS_NAME_MAX);
            snprintf(dst, JOBS_NAME_MAX + 1, "%s", v->valuestring);
            break;
        case F_CONFIG:
            if (!cJSON_IsObject(v))
                return util_msg(msg, msgsz, JOBS_EINVAL, "field 'config' must be a UNet2DModel config object");
            if (!(*(char **)dst = cJSON_PrintUnformatted(v))) return util_msg(msg, msgsz, JOBS_ERR, "out of memory");
            break;
    }
    return rc;
}

static const eng_train_kind train_kinds[] = {ENG_TRAIN_PRETRAIN, ENG_TRAIN_DISTILL, ENG_TRAIN_TEACHER, ENG_TRAIN_CM2,
                                             ENG_TRAIN_DISTILL};

int jobs_spec_parse(const char *json, jobs_spec *out, char *msg, size_t msgsz) {
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    if (json && util_json_parse(json, strlen(json), &root, NULL) == UTIL_JSON_ENOMEM)
        return util_msg(msg, msgsz, JOBS_ERR, "out of memory parsing the job");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return util_msg(msg, msgsz, JOBS_EINVAL, "the job must be a JSON object");
    }
    int kind = 0;
    int rc = get_enum(cJSON_GetObjectItemCaseSensitive(root, "kind"), "kind", &kind_pair, &kind, msg, msgsz);
    if (rc == JOBS_OK) {
        out->kind = (jobs_kind)kind;
        eng_train_params_init(&out->train, train_kinds[kind]);
        out->checkpoint_every = JOBS_CHECKPOINT_EVERY_DEFAULT;
        out->eval_n = JOBS_EVAL_N_DEFAULT;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (rc != JOBS_OK) break;
        const field *f = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !f; i++)
            if (strcmp(item->string, fields[i].name) == 0) f = &fields[i];
        if (!f)
            rc = util_msg(msg, msgsz, JOBS_EINVAL, "field '%.64s' is unknown", item->string);
        else if (!(f->kinds & (1u << kind)))
            rc = util_msg(msg, msgsz, JOBS_EINVAL, "field '%s' does not apply to a %s job", f->name, kind_names[kind]);
        else
            rc = parse_field(f, item, out, msg, msgsz);
    }
    if (rc == JOBS_OK && !cJSON_HasObjectItem(root, "dataset"))
        rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'dataset' is required");
    if (rc == JOBS_OK && (K_ADAPTER & (1u << kind)) && !cJSON_HasObjectItem(root, "task"))
        rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'task' is required for a %s job", kind_names[kind]);
    if (rc == JOBS_OK && kind == JOBS_KIND_CM2 && !cJSON_HasObjectItem(root, "teacher"))
        rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'teacher' is required for a cm2 job");
    if (rc == JOBS_OK && kind == JOBS_KIND_EVALUATE && !cJSON_HasObjectItem(root, "adapter"))
        rc = util_msg(msg, msgsz, JOBS_EINVAL, "field 'adapter' is required for an evaluate job");
    cJSON_Delete(root);
    if (rc != JOBS_OK) jobs_spec_free(out);
    return rc;
}

void jobs_spec_free(jobs_spec *s) {
    if (!s) return;
    cJSON_free(s->model_config);
    s->model_config = NULL;
}

int jobs_spec_total(const jobs_spec *s) {
    return s->kind == JOBS_KIND_EVALUATE ? s->eval_n : s->train.total_steps;
}

static const char *const type_names[] = {"kind",   "ref",     "task", "integer", "integer",
                                         "number", "boolean", "enum", "name",    "object"};

/* A float as the decimal it was written as (0.001, not 0.0010000000474974513). */
static cJSON *float_json(float x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", x);
    return cJSON_CreateNumber(strtod(buf, NULL));
}

/* A field's default in a freshly initialised spec of one kind, or NULL
 * where the field has none worth showing (references, names, objects). */
static cJSON *field_default(const field *f, const jobs_spec *s) {
    const void *at = (const char *)s + f->offset;
    switch (f->type) {
        case F_INT: return cJSON_CreateNumber(*(const int *)at);
        case F_SEED: return cJSON_CreateNumber((double)*(const uint64_t *)at);
        case F_FLOAT: return float_json(*(const float *)at);
        case F_BOOL: return cJSON_CreateBool(*(const int *)at);
        case F_ENUM: return cJSON_CreateString(f->options->name(*(const int *)at));
        default: return NULL;
    }
}

/* Adds v to o (under name, or to an array when name is NULL); when v is
 * NULL (its creation failed) or cannot be added, *ok drops to 0 and v is
 * freed: jobs_spec_describe returns all or nothing. */
static void put(cJSON *o, const char *name, cJSON *v, int *ok) {
    if (v && (name ? cJSON_AddItemToObject(o, name, v) : cJSON_AddItemToArray(o, v))) return;
    cJSON_Delete(v);
    *ok = 0;
}

/* Whether a field has no default to show (field_default returns NULL). */
static int field_default_none(const field *f) {
    return f->type != F_INT && f->type != F_SEED && f->type != F_FLOAT && f->type != F_BOOL && f->type != F_ENUM;
}

cJSON *jobs_spec_describe(void) {
    cJSON *doc = cJSON_CreateObject();
    cJSON *kinds = cJSON_AddArrayToObject(doc, "kinds");
    cJSON *fs = cJSON_AddArrayToObject(doc, "fields");
    cJSON *defaults = cJSON_AddObjectToObject(doc, "defaults");
    if (!kinds || !fs || !defaults) {
        cJSON_Delete(doc);
        return NULL;
    }
    int ok = 1;
    int n_kinds = (int)(sizeof kind_names / sizeof kind_names[0]);
    for (int k = 0; k < n_kinds; k++) {
        put(kinds, NULL, cJSON_CreateString(kind_names[k]), &ok);
        jobs_spec s = {
            .kind = (jobs_kind)k, .checkpoint_every = JOBS_CHECKPOINT_EVERY_DEFAULT, .eval_n = JOBS_EVAL_N_DEFAULT};
        eng_train_params_init(&s.train, train_kinds[k]);
        cJSON *d = cJSON_AddObjectToObject(defaults, kind_names[k]);
        ok &= d != NULL;
        for (size_t i = 0; d && i < sizeof fields / sizeof fields[0]; i++) {
            if ((fields[i].kinds & (1u << k)) && !field_default_none(&fields[i]))
                put(d, fields[i].name, field_default(&fields[i], &s), &ok);
        }
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const field *f = &fields[i];
        cJSON *o = cJSON_CreateObject();
        put(fs, NULL, o, &ok);
        if (!ok) break;
        ok &= cJSON_AddStringToObject(o, "name", f->name) != NULL;
        cJSON *ks = cJSON_AddArrayToObject(o, "kinds");
        ok &= ks != NULL;
        for (int k = 0; ks && k < n_kinds; k++)
            if (f->kinds & (1u << k)) put(ks, NULL, cJSON_CreateString(kind_names[k]), &ok);
        ok &= cJSON_AddStringToObject(o, "type", type_names[f->type]) != NULL;
        if (f->type == F_INT || f->type == F_SEED || f->type == F_FLOAT) {
            ok &= cJSON_AddNumberToObject(o, "minimum", f->lo) != NULL;
            ok &= cJSON_AddNumberToObject(o, "maximum", f->hi) != NULL;
            if (f->lo_open) cJSON_AddBoolToObject(o, "exclusive_minimum", 1);
            if (f->hi_open) cJSON_AddBoolToObject(o, "exclusive_maximum", 1);
        }
        if (f->type == F_ENUM) {
            cJSON *opts = cJSON_AddArrayToObject(o, "options");
            ok &= opts != NULL;
            for (int v = 0; opts && v < f->options->count; v++)
                put(opts, NULL, cJSON_CreateString(f->options->name(v)), &ok);
        }
    }
    cJSON *tp = cJSON_AddArrayToObject(doc, "task_params");
    ok &= tp != NULL;
    static const struct {
        eng_task_kind task;
        const char *name, *type;
        double lo, hi;
    } task_fields[] = {{ENG_TASK_SR, "factor", "integer", SR_FACTOR_MIN, SR_FACTOR_MAX},
                       {ENG_TASK_EDGES, "canny", "boolean", 0, 0},
                       {ENG_TASK_DEBLUR, "max_sigma", "number", MAX_SIGMA_MIN, MAX_SIGMA_MAX},
                       {ENG_TASK_DENOISE, "max_noise", "number", MAX_NOISE_MIN, MAX_NOISE_MAX}};
    for (size_t i = 0; tp && i < sizeof task_fields / sizeof task_fields[0]; i++) {
        cJSON *o = cJSON_CreateObject();
        put(tp, NULL, o, &ok);
        if (!ok) break;
        eng_task_params d;
        eng_task_params_init(&d, task_fields[i].task);
        ok &= cJSON_AddStringToObject(o, "task", eng_task_name(task_fields[i].task)) != NULL;
        ok &= cJSON_AddStringToObject(o, "name", task_fields[i].name) != NULL;
        ok &= cJSON_AddStringToObject(o, "type", task_fields[i].type) != NULL;
        if (task_fields[i].task == ENG_TASK_SR) {
            cJSON *opts = cJSON_AddArrayToObject(o, "options");
            ok &= opts != NULL;
            for (int f = SR_FACTOR_MIN; opts && f <= SR_FACTOR_MAX; f *= 2) put(opts, NULL, cJSON_CreateNumber(f), &ok);
            ok &= cJSON_AddNumberToObject(o, "default", d.factor) != NULL;
        } else if (task_fields[i].task == ENG_TASK_EDGES) {
            ok &= cJSON_AddBoolToObject(o, "default", d.canny) != NULL;
        } else {
            ok &= cJSON_AddNumberToObject(o, "minimum", task_fields[i].lo) != NULL;
            ok &= cJSON_AddNumberToObject(o, "maximum", task_fields[i].hi) != NULL;
            put(o, "default", float_json(task_fields[i].task == ENG_TASK_DEBLUR ? d.max_sigma : d.max_noise), &ok);
        }
    }
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}
