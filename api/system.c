/* system.c - liveness and readiness probes. */
#include "api/api.h"

api_status api_healthz(api_request *r) {
    cJSON *doc = cJSON_CreateObject();
    if (doc) cJSON_AddStringToObject(doc, "status", "ok");
    return api_respond_json(r, API_OK, doc);
}

api_status api_readyz(api_request *r) {
    api_app *app = api_request_app(r);
    if (!atomic_load_explicit(&app->ready, memory_order_acquire))
        return api_problem(r, API_SERVICE_UNAVAILABLE, "not ready: the model is loading or the daemon is stopping");
    cJSON *doc = cJSON_CreateObject();
    if (doc) {
        cJSON_AddStringToObject(doc, "status", "ready");
        cJSON_AddStringToObject(doc, "model", app->model_info.name);
    }
    return api_respond_json(r, API_OK, doc);
}
