/*
 * serve.c - "codid serve": start-up and shutdown order.
 *
 * Start-up: settings, data directory, signal mask, engine context, jobs
 * store (lock, crash recovery), HTTP server (so /healthz answers and a bad
 * address fails fast), model, batcher, training workers, and only then
 * /readyz turns ready. SIGTERM and SIGINT are blocked in every thread and taken by
 * sigwait() here, so no handler runs in a random thread.
 *
 * Shutdown: not ready, stop accepting, stop the batcher (waiting requests
 * fail with 503, the running batch finishes within a grace period), let the
 * resumed responses go out, stop HTTP, stop the jobs (each worker finishes
 * its step, checkpoints and requeues its job), free model and context.
 */
#include "server/serve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/adapters.h"
#include "api/api.h"
#include "api/auth.h"
#include "api/sse.h"
#include "api/tasks.h"
#include "jobs/jobs.h"
#include "server/config.h"
#include "util/log.h"

#define EXIT_RUNTIME      1
#define EXIT_USAGE        2
#define DRAIN_MS          5000
#define IMPORTS_QUEUE_MAX 4   /* dataset imports waiting (then 429) */
#define SSE_POLL_MS       250 /* how often event streams look for new events */
#define SSE_HEARTBEAT_MS  15000

/* The untrained stand-in when no model folder is given or found: small
 * enough to sample in milliseconds on a CPU. */
static const char tiny_unet_config[] =
    "{\"_class_name\": \"UNet2DModel\", \"sample_size\": 16, \"in_channels\": 3, "
    "\"out_channels\": 3, \"block_out_channels\": [32, 64], \"layers_per_block\": 1, "
    "\"down_block_types\": [\"DownBlock2D\", \"AttnDownBlock2D\"], "
    "\"up_block_types\": [\"AttnUpBlock2D\", \"UpBlock2D\"], \"norm_num_groups\": 8}";

/* v-prediction, as the default model: an epsilon base makes CoDi's x-space
 * loss ill-conditioned at large t (CODI.md, 'Parameterization'). */
static const char tiny_scheduler_config[] =
    "{\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\"}";

static const char default_model[] = "models/cifar10-base";

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p */
static int make_dirs(const char *path, char *msg, size_t msgsz) {
    char buf[SRV_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(msg, msgsz, "data_dir: path too long");
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(msg, msgsz, "data_dir: cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c) break;
    }
    if (!is_dir(path)) {
        snprintf(msg, msgsz, "data_dir: %s is not a directory", path);
        return -1;
    }
    return 0;
}

/* The --model folder, else models/cifar10-base here or under share_dir,
 * else the tiny random model. */
static const char *pick_model(const srv_config *cfg, char *buf, size_t bufsz) {
    if (*cfg->model) return cfg->model;
    if (is_dir(default_model)) return default_model;
    if (*cfg->share_dir) {
        snprintf(buf, bufsz, "%s/%s", cfg->share_dir, default_model);
        if (is_dir(buf)) return buf;
    }
    util_log(UTIL_LOG_INFO, "no %s in the current directory%s%s: using %s", default_model,
             *cfg->share_dir ? " or under " : "", cfg->share_dir, SRV_MODEL_RANDOM_TINY);
    return SRV_MODEL_RANDOM_TINY;
}

static int load_model(const char *which, eng_ctx *ctx, eng_model **out) {
    eng_error err = {0};
    int rc = strcmp(which, SRV_MODEL_RANDOM_TINY) == 0
                 ? eng_model_create(ctx, tiny_unet_config, tiny_scheduler_config, 0, out, &err)
                 : eng_model_load(ctx, which, out, &err);
    if (rc != ENG_OK) {
        util_log(UTIL_LOG_ERROR, "cannot load model %s: %s: %s", which, eng_strerror(rc), err.msg);
        return -1;
    }
    eng_model_info info;
    eng_model_get_info(*out, &info);
    util_log(UTIL_LOG_INFO, "model %s (%s): %lld parameters, %dx%d, %d channels, %s, hash %s", info.name, which,
             (long long)info.parameters, info.sample_size, info.sample_size, info.out_channels,
             eng_prediction_name(info.prediction), info.hash);
    if (!info.trained)
        util_log(UTIL_LOG_WARN, "model %s has untrained random weights: its images are noise", info.name);
    return 0;
}

/* The adapters shipped with the model (adapters_dir; by default the
 * adapters/ folder beside the model's, as models/adapters/ beside
 * models/cifar10-base) join the registry, so that a fresh daemon serves
 * them by name. */
/* The paths a client without an admin key must not see (api/render.h): the
 * data directory and the folder that holds the model and its shipped
 * adapters, each as configured and as resolved. */
static void set_scrub(api_app *app, const char *data_dir, const char *model_dir) {
    const char *dirs[2] = {data_dir, model_dir};
    const char *labels[2] = {"<data_dir>", "<models>"};
    api_scrub *sc = &app->scrub;
    sc->n = 0;
    for (int d = 0; d < 2; d++) {
        char given[SRV_PATH_MAX];
        snprintf(given, sizeof given, "%s", dirs[d]);
        if (d == 1) { /* the model's parent folder: models/ holds adapters/ too */
            char *slash = strrchr(given, '/');
            while (slash && slash > given && slash[1] == '\0') *slash = '\0', slash = strrchr(given, '/');
            if (!slash) continue; /* a bare name (random-tiny): nothing on disk */
            *slash = '\0';
        }
        size_t n = strlen(given);
        while (n > 1 && given[n - 1] == '/') given[--n] = '\0';
        char *real = realpath(given, NULL);
        const char *forms[2] = {given, real};
        for (int f = 0; f < 2 && sc->n < API_SCRUB_MAX; f++) {
            if (!forms[f] || strlen(forms[f]) < 2) continue;
            snprintf(app->scrub_paths[sc->n], sizeof app->scrub_paths[sc->n], "%s", forms[f]);
            sc->prefix[sc->n] = app->scrub_paths[sc->n];
            sc->label[sc->n] = labels[d];
            sc->n++;
        }
        free(real);
    }
}

static int register_shipped_adapters(const srv_config *cfg, const char *model_dir, eng_model *model,
                                     jobs_store *store) {
    char dir[SRV_PATH_MAX + 16], msg[512];
    if (strcmp(cfg->adapters_dir, "none") == 0) return 0;
    if (*cfg->adapters_dir) {
        snprintf(dir, sizeof dir, "%s", cfg->adapters_dir);
    } else {
        if (strcmp(model_dir, SRV_MODEL_RANDOM_TINY) == 0) return 0;
        size_t n = strlen(model_dir);
        while (n > 1 && model_dir[n - 1] == '/') n--; /* "models/base/" */
        while (n > 0 && model_dir[n - 1] != '/') n--; /* "models/" */
        snprintf(dir, sizeof dir, "%.*sadapters", (int)n, model_dir);
    }
    eng_model_info info;
    eng_model_get_info(model, &info);
    int added = 0;
    if (jobs_adapter_register_dir(store, dir, info.hash, &added, msg, sizeof msg) != JOBS_OK) {
        util_log(UTIL_LOG_ERROR, "adapters_dir: %s", msg);
        return -1;
    }
    if (added) util_log(UTIL_LOG_INFO, "%d shipped adapter%s registered from %s", added, added == 1 ? "" : "s", dir);
    return 0;
}

static void print_usage(void) {
    printf("usage: codid serve [flags]\n\nflags (each also read from its environment variable "
           "or a config-file key):\n");
    srv_config_print_help(stdout);
}

int srv_cmd_serve(int argc, char **argv) {
    srv_config cfg;
    char msg[SRV_PATH_MAX + 256];
    int rc = srv_config_load(&cfg, argc, argv, msg, sizeof msg);
    if (rc == SRV_CONFIG_HELP) {
        print_usage();
        return 0;
    }
    if (rc != SRV_CONFIG_OK) {
        fprintf(stderr, "codid serve: %s\n", msg);
        return EXIT_USAGE;
    }
    util_log_set_level(cfg.log_level);
    if (*cfg.config) util_log(UTIL_LOG_INFO, "settings from %s", cfg.config);
    if (make_dirs(cfg.data_dir, msg, sizeof msg) != 0) {
        util_log(UTIL_LOG_ERROR, "%s", msg);
        return EXIT_USAGE;
    }

    /* Before any thread exists, so that every thread inherits the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = cfg.threads;
    eng_ctx *ctx = NULL;
    eng_error err = {0};
    if ((rc = eng_ctx_create(&cp, &ctx, &err)) != ENG_OK) {
        util_log(UTIL_LOG_ERROR, "engine: %s: %s", eng_strerror(rc), err.msg);
        return EXIT_RUNTIME;
    }
    util_log(UTIL_LOG_INFO, "engine on %s, %d generation threads", eng_ctx_device_name(ctx),
             cfg.threads ? cfg.threads : eng_get_threads());

    /* before the server listens: authentication reads keys from the store */
    jobs_system *jobs = NULL;
    if (jobs_system_open(cfg.data_dir, &jobs, msg, sizeof msg) != 0) {
        util_log(UTIL_LOG_ERROR, "jobs: %s", msg);
        eng_ctx_free(ctx);
        return EXIT_RUNTIME;
    }
    api_app app = {.cfg = {.max_body_bytes = cfg.max_body_bytes,
                           .max_upload_bytes = cfg.max_upload_bytes,
                           .max_pixels = cfg.max_pixels,
                           .max_n = cfg.max_n,
                           .max_steps = cfg.max_steps,
                           .queue_max = cfg.queue_max,
                           .max_streams = cfg.max_streams},
                   .ctx = ctx,
                   .store = jobs_system_store(jobs)};
    snprintf(app.cfg.cors_origins, sizeof app.cfg.cors_origins, "%s", cfg.cors_origins);
    snprintf(app.cfg.cifar10_dir, sizeof app.cfg.cifar10_dir, "%s", cfg.cifar10_dir);
    snprintf(app.cfg.fashion_mnist_dir, sizeof app.cfg.fashion_mnist_dir, "%s", cfg.fashion_mnist_dir);
    atomic_init(&app.ready, 0);
    char host[128];
    int port = 0;
    srv_config_listen_split(cfg.listen, host, sizeof host, &port);
    int n_keys = 0;
    if (jobs_store_key_count(app.store, &n_keys, msg, sizeof msg) != JOBS_OK) {
        util_log(UTIL_LOG_ERROR, "keys: %s", msg);
        jobs_system_stop(jobs);
        eng_ctx_free(ctx);
        return EXIT_RUNTIME;
    }
    if (n_keys == 0 && !api_host_is_loopback(host) && !cfg.insecure) {
        util_log(UTIL_LOG_ERROR,
                 "no API key is configured, so %s (not loopback) would serve anyone: "
                 "create one (codid keys create --scope admin --data-dir %s) or pass --insecure",
                 host, cfg.data_dir);
        jobs_system_stop(jobs);
        eng_ctx_free(ctx);
        return EXIT_USAGE;
    }
    if (n_keys == 0) util_log(UTIL_LOG_INFO, "no API key configured: requests are not authenticated");
    api_server_params hp = {
        .host = host,
        .port = port,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .app = &app,
        .max_body_bytes = (size_t)cfg.max_body_bytes,
        .max_upload_bytes = (size_t)cfg.max_upload_bytes,
        .timeout_s = (unsigned)cfg.request_timeout_s,
        .guard = {.header_timeout_s = cfg.header_timeout_s,
                  .body_timeout_s = cfg.body_timeout_s,
                  .max_connections = cfg.max_connections,
                  .max_connections_per_client = cfg.max_connections_per_client,
                  .rate_per_min = cfg.rate_limit_per_min,
                  .rate_burst = cfg.rate_limit_burst,
                  .rate_loopback = cfg.rate_limit_loopback},
        .max_header_bytes = (size_t)cfg.max_header_bytes,
        .max_headers = cfg.max_headers,
        .admit = api_admit,
        .observe = api_metrics_observe,
    };
    api_server *server = NULL;
    if (api_server_start(&hp, &server, msg, sizeof msg) != 0) {
        util_log(UTIL_LOG_ERROR, "%s", msg);
        jobs_system_stop(jobs);
        eng_ctx_free(ctx);
        return EXIT_USAGE;
    }
    util_log(UTIL_LOG_INFO, "listening on http://%s%s%s:%d (data in %s)", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", api_server_port(server), cfg.data_dir);

    int exit_code = 0;
    eng_model *model = NULL;
    api_batcher *batcher = NULL;
    char model_buf[SRV_PATH_MAX + sizeof default_model + 1];
    const char *model_dir = pick_model(&cfg, model_buf, sizeof model_buf);
    if (load_model(model_dir, ctx, &model) != 0) {
        exit_code = EXIT_RUNTIME;
    } else {
        api_batcher_params bp = {
            .model = model,
            .threads = cfg.threads,
            .max_batch = cfg.max_batch,
            .batch_wait_ms = cfg.batch_wait_ms,
            .queue_max = cfg.queue_max,
            .queue_timeout_ms = cfg.request_timeout_s * 1000,
        };
        if (api_batcher_start(&bp, &batcher, msg, sizeof msg) != 0) {
            util_log(UTIL_LOG_ERROR, "%s", msg);
            exit_code = EXIT_RUNTIME;
        }
    }
    if (exit_code == 0) {
        jobs_system_params jp = {cfg.workers, cfg.train_threads, ctx, model};
        if (jobs_system_start_workers(jobs, &jp, msg, sizeof msg) != 0) {
            util_log(UTIL_LOG_ERROR, "jobs: %s", msg);
            exit_code = EXIT_RUNTIME;
        }
    }

    if (exit_code == 0 && register_shipped_adapters(&cfg, model_dir, model, app.store) != 0) exit_code = EXIT_RUNTIME;
    if (exit_code == 0) set_scrub(&app, cfg.data_dir, model_dir);
    if (exit_code == 0) {
        int heartbeat = cfg.request_timeout_s * 1000 / 2;
        if (heartbeat > SSE_HEARTBEAT_MS) heartbeat = SSE_HEARTBEAT_MS;
        if (api_adapters_start(model, cfg.adapter_cache, &app.adapters, msg, sizeof msg) != 0 ||
            api_tasks_start("prepare", 1, cfg.queue_max, cfg.threads, &app.prep, msg, sizeof msg) != 0 ||
            api_tasks_start("import", 1, IMPORTS_QUEUE_MAX, 0, &app.imports, msg, sizeof msg) != 0 ||
            api_sse_start(app.store, cfg.max_streams, SSE_POLL_MS, heartbeat, &app.sse, msg, sizeof msg) != 0) {
            util_log(UTIL_LOG_ERROR, "%s", msg);
            exit_code = EXIT_RUNTIME;
        }
    }

    if (exit_code == 0) {
        app.model = model;
        eng_model_get_info(model, &app.model_info);
        app.batcher = batcher;
        atomic_store_explicit(&app.ready, 1, memory_order_release);
        util_log(UTIL_LOG_INFO, "ready");
        int sig = 0;
        sigwait(&stop_signals, &sig);
        util_log(UTIL_LOG_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        atomic_store_explicit(&app.ready, 0, memory_order_release);
    }

    api_server_quiesce(server);
    api_tasks_stop(app.prep); /* what it holds still joins the batcher's queue */
    if (batcher) api_batcher_stop(batcher, cfg.request_timeout_s * 1000);
    api_tasks_stop(app.imports);
    api_sse_stop(app.sse);
    if (api_server_drain(server, DRAIN_MS) != 0)
        util_log(UTIL_LOG_WARN, "requests still open after %d ms: closing them", DRAIN_MS);
    api_server_stop(server);
    jobs_system_stop(jobs);
    api_batcher_free(batcher);
    api_adapters_stop(app.adapters);
    eng_model_free(model);
    eng_ctx_free(ctx);
    if (exit_code == 0) util_log(UTIL_LOG_INFO, "stopped");
    return exit_code;
}
