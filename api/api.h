/*
 * api.h - the daemon's HTTP resources: the state handlers share (api_app),
 * the route table, and one handler per endpoint (a file per resource).
 */
#ifndef CODID_API_API_H
#define CODID_API_API_H

#include <stdatomic.h>
#include <stddef.h>

#include "api/http.h"
#include "engine/engine.h"
#include "server/batcher.h"
#include "server/config.h"

/* Built by server/serve.c; handlers read it through api_request_app(). The
 * model and batcher may be read only after `ready` reads 1 (an acquire that
 * pairs with the release that published them); they stay valid until the
 * HTTP server is stopped. */
typedef struct api_app {
    const srv_config *cfg;
    eng_ctx *ctx;
    eng_model *model;
    srv_batcher *batcher;
    atomic_int ready;
} api_app;

extern const api_route api_routes[];
extern const size_t api_routes_count;

/* system.c */
api_status api_healthz(api_request *r);
api_status api_readyz(api_request *r);
/* models.c */
api_status api_models_list(api_request *r);
/* generate.c */
api_status api_generate(api_request *r);

#endif
