/* models.c - GET /v1/models: the base model this daemon serves. */
#include "api/api.h"

static cJSON *model_json(const api_app *app) {
    const eng_model_info *info = &app->model_info;
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddStringToObject(m, "id", info->name);
    cJSON_AddStringToObject(m, "name", info->name);
    cJSON_AddBoolToObject(m, "trained", info->trained);
    if (!info->trained) cJSON_AddStringToObject(m, "note", "untrained random weights: generated images are noise");
    cJSON_AddNumberToObject(m, "sample_size", info->sample_size);
    cJSON_AddNumberToObject(m, "in_channels", info->in_channels);
    cJSON_AddNumberToObject(m, "out_channels", info->out_channels);
    cJSON_AddNumberToObject(m, "parameters", (double)info->parameters);
    cJSON_AddNumberToObject(m, "memory_bytes", (double)info->memory_bytes);
    cJSON_AddStringToObject(m, "device", eng_ctx_device_name(app->ctx));
    cJSON_AddStringToObject(m, "prediction_type", eng_prediction_name(info->prediction));
    cJSON_AddNumberToObject(m, "train_timesteps", info->train_timesteps);
    cJSON_AddStringToObject(m, "hash", info->hash);
    const char *config = eng_model_config_json(app->model);
    cJSON *cfg = config ? cJSON_Parse(config) : NULL;
    cJSON_AddItemToObject(m, "config", cfg ? cfg : cJSON_CreateObject());
    return m;
}

api_status api_models_list(api_request *r) {
    api_app *app = api_request_app(r);
    cJSON *doc = cJSON_CreateObject();
    cJSON *models = doc ? cJSON_AddArrayToObject(doc, "models") : NULL;
    if (!models) {
        cJSON_Delete(doc);
        return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    }
    if (atomic_load_explicit(&app->ready, memory_order_acquire)) {
        cJSON *m = model_json(app);
        if (!m) {
            cJSON_Delete(doc);
            return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
        }
        cJSON_AddItemToArray(models, m);
    }
    return api_respond_json(r, API_OK, doc);
}
