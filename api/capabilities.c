/*
 * capabilities.c - GET /v1/capabilities: what this daemon can do and the
 * limits it enforces, for clients that build their forms from it (the web
 * page at / does, and has no bounds of its own). Names come from the
 * engine's and the job spec's own tables wherever those exist.
 */
#include <stdio.h>

#include "api/api.h"
#include "api/condition.h"
#include "jobs/dataset.h"
#include "jobs/jobspec.h"

static cJSON *model_json(const api_app *app) {
    const eng_model_info *info = &app->model_info;
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddStringToObject(m, "name", info->name);
    cJSON_AddStringToObject(m, "kind", "pixel"); /* the only kind eng_model_load reads today */
    cJSON_AddNumberToObject(m, "sample_size", info->sample_size);
    cJSON_AddNumberToObject(m, "channels", info->in_channels);
    cJSON_AddBoolToObject(m, "trained", info->trained);
    cJSON_AddStringToObject(m, "prediction_type", eng_prediction_name(info->prediction));
    cJSON_AddStringToObject(m, "device", eng_ctx_device_name(app->ctx));
    return m;
}

static cJSON *sampler_json(const char *name, const char *used_by, int default_steps, int max_steps) {
    cJSON *s = cJSON_CreateObject();
    if (!s) return NULL;
    cJSON_AddStringToObject(s, "name", name);
    cJSON_AddStringToObject(s, "used_by", used_by);
    cJSON_AddNumberToObject(s, "min_steps", 1);
    if (max_steps > 0) cJSON_AddNumberToObject(s, "max_steps", max_steps); /* else each adapter's N: its sampling */
    cJSON_AddNumberToObject(s, "default_steps", default_steps);
    cJSON_AddBoolToObject(s, "eta", max_steps > 0);
    cJSON_AddBoolToObject(s, "stochastic", max_steps <= 0); /* CoDi's multistep sampler with fresh noise */
    return s;
}

static cJSON *tasks_json(const api_app *app) {
    cJSON *arr = cJSON_CreateArray();
    for (int k = ENG_TASK_SR; arr && k <= ENG_TASK_DENOISE; k++) {
        eng_task_params p;
        eng_task_params_init(&p, (eng_task_kind)k);
        cJSON *t = cJSON_CreateObject();
        if (!t) break;
        cJSON_AddItemToArray(arr, t);
        cJSON_AddStringToObject(t, "name", eng_task_name((eng_task_kind)k));
        cJSON_AddNumberToObject(t, "condition_channels", eng_task_cond_channels(&p, app->model_info.in_channels));
        cJSON_AddBoolToObject(t, "mask", k == ENG_TASK_INPAINT);
    }
    return arr;
}

static cJSON *limits_json(const api_limits *cfg) {
    cJSON *l = cJSON_CreateObject();
    if (!l) return NULL;
    cJSON_AddNumberToObject(l, "max_n", cfg->max_n);
    cJSON_AddNumberToObject(l, "max_steps", cfg->max_steps);
    cJSON_AddNumberToObject(l, "max_pixels", (double)cfg->max_pixels);
    cJSON_AddNumberToObject(l, "max_body_bytes", (double)cfg->max_body_bytes);
    cJSON_AddNumberToObject(l, "max_upload_bytes", (double)cfg->max_upload_bytes);
    cJSON_AddNumberToObject(l, "queue_max", cfg->queue_max);
    cJSON_AddNumberToObject(l, "max_streams", cfg->max_streams);
    cJSON_AddNumberToObject(l, "seed_max", (double)(API_SEED_LIMIT - 1));
    return l;
}

/* What POST /v1/datasets imports (api/datasets.c checks the same names). */
static cJSON *datasets_json(void) {
    static const char *const builtins[] = {"cifar10", "fashion-mnist"}, *const splits[] = {"train", "test"};
    cJSON *d = cJSON_CreateObject();
    if (!d) return NULL;
    cJSON_AddItemToObject(d, "builtins", cJSON_CreateStringArray(builtins, 2));
    cJSON_AddItemToObject(d, "splits", cJSON_CreateStringArray(splits, 2));
    cJSON_AddNumberToObject(d, "max_size", JOBS_DATASET_MAX_SIDE);
    return d;
}

api_status api_capabilities(api_request *r) {
    if (api_not_ready(r)) return API_SERVICE_UNAVAILABLE;
    api_app *app = api_request_app(r);
    cJSON *doc = cJSON_CreateObject();
    cJSON *samplers = doc ? cJSON_AddArrayToObject(doc, "samplers") : NULL;
    cJSON *pre = doc ? cJSON_AddArrayToObject(doc, "preprocesses") : NULL;
    cJSON *kinds = doc ? cJSON_AddArrayToObject(doc, "adapter_kinds") : NULL;
    if (!samplers || !pre || !kinds) {
        cJSON_Delete(doc);
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    }
    cJSON_AddItemToObject(doc, "model", model_json(app));
    cJSON_AddItemToArray(samplers, sampler_json("ddim", "the base model and teacher adapters", ENG_DDIM_DEFAULT_STEPS,
                                                app->cfg.max_steps));
    cJSON_AddItemToArray(samplers,
                         sampler_json("codi", "distilled adapters, in 1 to N steps (GET /v1/adapters: sampling)",
                                      ENG_CODI_DEFAULT_STEPS, 0));
    cJSON_AddItemToObject(doc, "tasks", tasks_json(app));
    for (int p = 0; p < ENG_PRE_COUNT; p++)
        cJSON_AddItemToArray(pre, cJSON_CreateString(eng_preprocess_name((eng_preprocess)p)));
    for (int k = ENG_ADAPTER_CONTROLNET; k <= ENG_ADAPTER_LITE; k++)
        cJSON_AddItemToArray(kinds, cJSON_CreateString(eng_adapter_kind_name((eng_adapter_kind)k)));
    cJSON_AddItemToObject(doc, "datasets", datasets_json());
    cJSON_AddItemToObject(doc, "jobs", jobs_spec_describe());
    cJSON_AddItemToObject(doc, "limits", limits_json(&app->cfg));
    return api_respond_json(r, API_OK, doc);
}
