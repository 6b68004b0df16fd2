/* routes.c - every endpoint the daemon serves, in one table. */
#include "api/api.h"

const api_route api_routes[] = {
    {"GET", "/healthz", api_healthz},
    {"GET", "/readyz", api_readyz},
    {"GET", "/v1/models", api_models_list},
    {"POST", "/v1/generate", api_generate},
};

const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
