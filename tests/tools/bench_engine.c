/*
 * bench_engine.c - the engine side of bench/ (bench/speed.py drives it).
 *
 *   bench_engine create --config CONFIG.json --out DIR [--seed S]
 *       a model folder with seeded random weights (eng_model_create +
 *       eng_model_save), so that codid and the eager reference load the same
 *       file without a trained checkpoint.
 *   bench_engine serve --model DIR [--threads N]
 *       loads the model once, then answers commands read from stdin, one
 *       line each, so that a driver can interleave it with the eager side
 *       in the same time window:
 *         forward N REPS          REPS timed forwards at batch N
 *         train BATCH REPS        REPS timed CoDi steps (controlnet adapter,
 *                                 sr x4, as the default distill job)
 *         sgemm SIZE REPS         REPS timed SIZE^3 SGEMMs through OpenBLAS
 *         blas_threads N          OpenBLAS threads from now on (codid's
 *                                 eng_ctx_create sets 1)
 *         quit
 *       Answers: "ms T1 ... cpu C1 ..." (wall-clock and process CPU
 *       milliseconds, one each per repetition), "ok", or "error MESSAGE".
 *       The first repetition of a shape includes warm-up: the driver
 *       discards it.
 *
 * It measures and prints; it asserts nothing about timings.
 */
#include <dlfcn.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"

static double clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wall-clock and CPU time (all threads of the process) of one repetition:
 * the CPU figure is the steadier one on a machine shared with other jobs. */
typedef struct lap {
    double wall, cpu;
} lap;

static lap lap_start(void) {
    return (lap){clock_ms(CLOCK_MONOTONIC), clock_ms(CLOCK_PROCESS_CPUTIME_ID)};
}

static lap lap_since(lap t0) {
    return (lap){clock_ms(CLOCK_MONOTONIC) - t0.wall, clock_ms(CLOCK_PROCESS_CPUTIME_ID) - t0.cpu};
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static eng_ctx *make_ctx(int threads) {
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    cp.threads = threads;
    eng_ctx *ctx = NULL;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return NULL;
    }
    return ctx;
}

static int cmd_create(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    unsigned long long seed = 0;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'},
                                         {"seed", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'o': out = optarg; break;
            case 's': seed = strtoull(optarg, NULL, 10); break;
            default: return 2;
        }
    }
    if (!config || !out) {
        fprintf(stderr, "usage: bench_engine create --config CONFIG.json --out DIR [--seed S]\n");
        return 2;
    }
    char *json = read_text(config);
    if (!json) {
        fprintf(stderr, "bench_engine: cannot read %s\n", config);
        return 1;
    }
    eng_ctx *ctx = make_ctx(0);
    eng_model *m = NULL;
    eng_error err;
    int status = 1;
    if (ctx && eng_model_create(ctx, json, NULL, seed, &m, &err) == ENG_OK &&
        eng_model_save(m, out, 0, &err) == ENG_OK) {
        eng_model_info info;
        eng_model_get_info(m, &info);
        printf("%s: %lld parameters\n", out, (long long)info.parameters);
        status = 0;
    } else if (ctx) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
    }
    eng_model_free(m);
    eng_ctx_free(ctx);
    free(json);
    return status;
}

/* ---- serve --------------------------------------------------------------- */

typedef struct bench {
    eng_model *model;
    eng_model_info info;
    /* CoDi trainer and its random training images, kept across commands of
     * the same batch size so that only the first step pays the warm-up */
    eng_trainer *trainer;
    int train_batch;
    unsigned char *images;
} bench;

static void print_times(const lap *ms, int reps) {
    printf("ms");
    for (int i = 0; i < reps; i++) printf(" %.3f", ms[i].wall);
    printf(" cpu");
    for (int i = 0; i < reps; i++) printf(" %.3f", ms[i].cpu);
    printf("\n");
}

static int run_forward(bench *b, int n, int reps, lap *ms) {
    int s = b->info.sample_size;
    size_t in_numel = (size_t)n * b->info.in_channels * s * s;
    size_t out_numel = (size_t)n * b->info.out_channels * s * s;
    float *x = malloc(in_numel * sizeof *x), *y = malloc(out_numel * sizeof *y);
    int rc = x && y ? 0 : -1;
    srand(1);
    for (size_t i = 0; x && i < in_numel; i++) x[i] = (float)rand() / RAND_MAX * 2 - 1;
    eng_error err;
    for (int r = 0; rc == 0 && r < reps; r++) {
        lap t0 = lap_start();
        if (eng_model_forward(b->model, x, n, s, s, 500.0f, y, &err) != ENG_OK) {
            printf("error %s\n", err.msg);
            rc = -1;
        }
        ms[r] = lap_since(t0);
    }
    free(x);
    free(y);
    return rc;
}

static int run_train(bench *b, int batch, int reps, lap *ms) {
    eng_error err;
    if (b->trainer && b->train_batch != batch) {
        eng_trainer_free(b->trainer);
        b->trainer = NULL;
    }
    if (!b->trainer) {
        enum { N_IMAGES = 512 };
        int s = b->info.sample_size, c = b->info.in_channels;
        free(b->images);
        b->images = malloc((size_t)N_IMAGES * s * s * c);
        if (!b->images) return -1;
        srand(2);
        for (size_t i = 0; i < (size_t)N_IMAGES * s * s * c; i++) b->images[i] = (unsigned char)rand();
        eng_images data = {N_IMAGES, s, s, c, b->images};
        eng_train_params p;
        eng_train_params_init(&p, ENG_TRAIN_DISTILL);
        p.batch_size = batch;
        p.total_steps = 1000000;
        if (eng_trainer_create_adapter(b->model, &p, &data, &b->trainer, &err) != ENG_OK) {
            printf("error %s\n", err.msg);
            return -1;
        }
        b->train_batch = batch;
    }
    for (int r = 0; r < reps; r++) {
        eng_step_stats st;
        lap t0 = lap_start();
        if (eng_trainer_step(b->trainer, &st, &err) != ENG_OK) {
            printf("error %s\n", err.msg);
            return -1;
        }
        ms[r] = lap_since(t0);
    }
    return 0;
}

/* OpenBLAS is loaded with libtorch; reached through the dynamic linker so
 * that this tool links nothing the daemon does not. */
typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b_, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);

static int run_sgemm(int size, int reps, lap *ms) {
    sgemm_fn sgemm = (sgemm_fn)dlsym(RTLD_DEFAULT, "cblas_sgemm");
    if (!sgemm) {
        printf("error cblas_sgemm not found (is OpenBLAS loaded?)\n");
        return -1;
    }
    size_t nn = (size_t)size * size;
    float *a = malloc(nn * sizeof *a), *bm = malloc(nn * sizeof *bm), *c = malloc(nn * sizeof *c);
    int rc = a && bm && c ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        a[i] = (float)(i % 7) * 0.25f;
        bm[i] = (float)(i % 5) * 0.5f;
    }
    enum { ROW_MAJOR = 101, NO_TRANS = 111 };
    for (int r = 0; rc == 0 && r < reps; r++) {
        lap t0 = lap_start();
        sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, size, size, size, 1.0f, a, size, bm, size, 0.0f, c, size);
        ms[r] = lap_since(t0);
    }
    free(a);
    free(bm);
    free(c);
    return rc;
}

static int cmd_serve(int argc, char **argv) {
    const char *model = NULL;
    long threads = 2;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 'j'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': model = optarg; break;
            case 'j': threads = strtol(optarg, NULL, 10); break;
            default: return 2;
        }
    }
    if (!model || threads < 1) {
        fprintf(stderr, "usage: bench_engine serve --model DIR [--threads N]\n");
        return 2;
    }
    eng_ctx *ctx = make_ctx((int)threads);
    if (!ctx) return 1;
    bench b = {0};
    eng_error err;
    if (eng_model_load(ctx, model, &b.model, &err) != ENG_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        eng_ctx_free(ctx);
        return 1;
    }
    eng_model_get_info(b.model, &b.info);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %lld parameters, %d threads\n", (long long)b.info.parameters, eng_get_threads());
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32];
        int x = 0, reps = 0;
        int got = sscanf(line, "%31s %d %d", cmd, &x, &reps);
        if (got >= 1 && strcmp(cmd, "quit") == 0) break;
        if (got == 2 && strcmp(cmd, "blas_threads") == 0 && x >= 1) {
            set_threads_fn set = (set_threads_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
            if (set) set(x);
            printf(set ? "ok\n" : "error openblas_set_num_threads not found\n");
            continue;
        }
        if (got != 3 || x < 1 || reps < 1 || reps > 10000) {
            printf("error bad command: %s", line);
            continue;
        }
        lap *ms = malloc((size_t)reps * sizeof *ms);
        int rc = -1;
        if (!ms)
            printf("error out of memory\n");
        else if (strcmp(cmd, "forward") == 0)
            rc = run_forward(&b, x, reps, ms);
        else if (strcmp(cmd, "train") == 0)
            rc = run_train(&b, x, reps, ms);
        else if (strcmp(cmd, "sgemm") == 0)
            rc = run_sgemm(x, reps, ms);
        else
            printf("error unknown command %s\n", cmd);
        if (rc == 0) print_times(ms, reps);
        free(ms);
    }
    eng_trainer_free(b.trainer);
    free(b.images);
    eng_model_free(b.model);
    eng_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "create") == 0) return cmd_create(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_engine create|serve ... (see tests/tools/bench_engine.c)\n");
    return 2;
}
