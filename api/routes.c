/* routes.c - every endpoint the daemon serves, in one table, with the
 * access each needs (api/auth.h) and whether it takes uploads (bodies up to
 * max_upload_bytes). openapi.yaml describes the same list. */
#include "api/api.h"
#include "api/auth.h"

#define PUBLIC   API_ACCESS_PUBLIC
#define GENERATE API_ACCESS_GENERATE
#define ADMIN    API_ACCESS_ADMIN

const api_route api_routes[] = {
    {"GET", "/", api_web_page, PUBLIC, 0},
    {"GET", "/app.js", api_web_page, PUBLIC, 0},
    {"GET", "/app.css", api_web_page, PUBLIC, 0},
    {"GET", "/healthz", api_healthz, PUBLIC, 0},
    {"GET", "/readyz", api_readyz, PUBLIC, 0},
    {"GET", "/metrics", api_metrics, ADMIN, 0},
    {"GET", "/v1/capabilities", api_capabilities, GENERATE, 0},
    {"GET", "/v1/models", api_models_list, GENERATE, 0},
    {"POST", "/v1/generate", api_generate, GENERATE, 0},
    {"POST", "/v1/datasets", api_datasets_create, GENERATE, 1},
    {"GET", "/v1/datasets", api_datasets_list, GENERATE, 0},
    {"GET", "/v1/datasets/{id}", api_datasets_get, GENERATE, 0},
    {"GET", "/v1/datasets/{id}/preview", api_datasets_preview, GENERATE, 0},
    {"DELETE", "/v1/datasets/{id}", api_datasets_delete, ADMIN, 0},
    {"POST", "/v1/jobs", api_jobs_create, GENERATE, 0},
    {"GET", "/v1/jobs", api_jobs_list, GENERATE, 0},
    {"GET", "/v1/jobs/{id}", api_jobs_get, GENERATE, 0},
    {"POST", "/v1/jobs/{id}/cancel", api_jobs_cancel, GENERATE, 0},
    {"GET", "/v1/jobs/{id}/events", api_jobs_events, GENERATE, 0},
    {"GET", "/v1/jobs/{id}/loss", api_jobs_loss, GENERATE, 0},
    {"GET", "/v1/adapters", api_adapters_list, GENERATE, 0},
    {"GET", "/v1/adapters/{id}", api_adapters_get, GENERATE, 0},
    {"DELETE", "/v1/adapters/{id}", api_adapters_delete, ADMIN, 0},
};

const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
