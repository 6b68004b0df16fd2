/*
 * cmd_eval_adapters.c - `codid adapter eval`: the quality table of
 * CODI.md's protocol for one task.
 *
 * The first N held-out images x of a dataset file get their condition
 * c = task(x, seed); each method (an adapter file sampled with K steps)
 * turns c into an output y with image i drawn from seed + i. For each
 * method: PSNR and SSIM of y against x (fidelity), condition consistency
 * PSNR(task(y, seed), c), and, with a classifier, FID-proxy(y, x). The plain
 * non-diffusion reference of the task is scored the same way.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/safetensors.h"
#include "jobs/dataset.h"
#include "server/cli.h"
#include "server/commands.h"
#include "util/clock.h"

#define MAX_METHODS 16
#define GEN_CHUNK   32
#define MAX_STEPS   100000 /* sampler steps of one method, as `codid sample` */

typedef struct method {
    char label[64];
    const char *path; /* NULL: the plain reference */
    int steps;
    eng_sampler sampler;
    int stochastic; /* CoDi: fresh noise between steps */
    uint8_t *out;   /* n images */
    double psnr, ssim, consistency, fid;
    double seconds;
} method;

static int parse_method(char *spec, method *m) {
    /* LABEL=PATH@STEPS[:ddim|codi|stochastic] */
    char *eq = strchr(spec, '='), *at = strrchr(spec, '@');
    if (!eq || !at || at < eq) return -1;
    *eq = *at = '\0';
    snprintf(m->label, sizeof m->label, "%s", spec);
    m->path = eq + 1;
    char *colon = strchr(at + 1, ':');
    m->sampler = ENG_SAMPLER_AUTO;
    if (colon) {
        *colon = '\0';
        if (strcmp(colon + 1, "stochastic") == 0)
            m->sampler = ENG_SAMPLER_CODI, m->stochastic = 1;
        else if (eng_sampler_from_name(colon + 1, &m->sampler) != ENG_OK)
            return -1;
    }
    return srv_cli_int(at + 1, "--method STEPS", 1, MAX_STEPS, &m->steps);
}

static int generate_all(eng_model *m, eng_adapter *a, method *me, const uint8_t *cond, int n, int size, int cc,
                        uint64_t seed, eng_error *err) {
    eng_image conds[GEN_CHUNK], outs[GEN_CHUNK];
    size_t per_c = (size_t)size * size * cc, per_o = (size_t)size * size * 3;
    for (int s = 0; s < n; s += GEN_CHUNK) {
        int k = n - s < GEN_CHUNK ? n - s : GEN_CHUNK;
        for (int i = 0; i < k; i++) {
            conds[i].width = conds[i].height = size;
            conds[i].channels = cc;
            conds[i].data = (uint8_t *)cond + per_c * (s + i);
        }
        eng_gen_params gp;
        eng_gen_params_init(&gp);
        gp.n = k;
        gp.steps = me->steps;
        gp.seed = seed + (uint64_t)s;
        gp.sampler = me->sampler;
        gp.stochastic = me->stochastic;
        int rc = eng_generate(m, a, &gp, conds, outs, err);
        if (rc != ENG_OK) return rc;
        for (int i = 0; i < k; i++) {
            memcpy(me->out + per_o * (s + i), outs[i].data, per_o);
            eng_image_free(&outs[i]);
        }
    }
    return ENG_OK;
}

static int score(method *me, const eng_task_params *task, const jobs_dataset *ds, const uint8_t *cond, int n,
                 uint64_t seed, eng_classifier *cls, eng_error *err) {
    int size = ds->height, cc = eng_task_cond_channels(task, 3);
    eng_images y = {n, size, size, 3, me->out}, x = {n, size, size, 3, ds->pixels};
    if (eng_psnr(&y, &x, &me->psnr, err) || eng_ssim(&y, &x, &me->ssim, err)) return -1;
    uint8_t *recond = malloc((size_t)n * size * size * cc);
    if (!recond) return -1;
    eng_images c = {n, size, size, cc, cond}, rc = {n, size, size, cc, recond};
    int status = eng_task_apply(task, &y, seed, recond, err) || eng_psnr(&rc, &c, &me->consistency, err);
    free(recond);
    if (status) return -1;
    me->fid = -1;
    if (cls && eng_fid_proxy(cls, &y, &x, &me->fid, err)) return -1;
    return 0;
}

static void write_grid(const char *path, method *ms, int nm, const uint8_t *cond, const jobs_dataset *ds,
                       const eng_task_params *task, int rows) {
    /* columns: condition | each method | ground truth */
    int size = ds->height, cols = nm + 2, gap = 2, cc = eng_task_cond_channels(task, 3);
    int gw = cols * (size + gap) + gap, gh = rows * (size + gap) + gap;
    uint8_t *g = calloc((size_t)gw * gh * 3, 1);
    if (!g) return;
    for (int r = 0; r < rows; r++)
        for (int col = 0; col < cols; col++)
            for (int yy = 0; yy < size; yy++)
                for (int xx = 0; xx < size; xx++) {
                    uint8_t *dst = g + ((size_t)(gap + r * (size + gap) + yy) * gw + gap + col * (size + gap) + xx) * 3;
                    size_t p = (size_t)r * size * size + (size_t)yy * size + xx;
                    if (col == 0) {
                        const uint8_t *s = cond + p * cc;
                        if (cc == 1)
                            memset(dst, s[0], 3);
                        else if (cc == 4 && s[3] >= 128) {
                            dst[0] = 255;
                            dst[1] = 0;
                            dst[2] = 255;
                        } else
                            memcpy(dst, s, 3);
                    } else if (col == cols - 1) {
                        memcpy(dst, ds->pixels + p * 3, 3);
                    } else {
                        memcpy(dst, ms[col - 1].out + p * 3, 3);
                    }
                }
    srv_cli_write_png(path, g, gw, gh, 3);
    free(g);
}

/* --record: each adapter file gets the figures of the methods that used it,
 * with the protocol they were measured under, as the JSON text of its
 * codid.eval metadata key (GET /v1/adapters/{id} shows it once registered). */
static int record_figures(const method *ms, int nm, const char *data, int n, uint64_t seed,
                          const eng_task_params *task) {
    for (int i = 0; i < nm; i++) {
        if (!ms[i].path) continue;
        int first = 1;
        for (int j = 0; j < i; j++) first &= !(ms[j].path && strcmp(ms[j].path, ms[i].path) == 0);
        if (!first) continue;
        cJSON *o = cJSON_CreateObject(), *res = cJSON_CreateObject();
        const char *base = strrchr(data, '/');
        cJSON_AddStringToObject(o, "data", base ? base + 1 : data);
        cJSON_AddNumberToObject(o, "n", n);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddStringToObject(o, "task", eng_task_name(task->kind));
        cJSON_AddItemToObject(o, "results", res);
        for (int j = i; j < nm; j++) {
            const method *me = &ms[j];
            if (!me->path || strcmp(me->path, ms[i].path) != 0) continue;
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "steps", me->steps);
            cJSON_AddStringToObject(r, "sampler",
                                    me->sampler == ENG_SAMPLER_DDIM ? eng_sampler_name(ENG_SAMPLER_DDIM)
                                    : me->stochastic                ? "codi-stochastic"
                                                                    : eng_sampler_name(ENG_SAMPLER_CODI));
            cJSON_AddNumberToObject(r, "psnr", round(me->psnr * 100) / 100);
            cJSON_AddNumberToObject(r, "ssim", round(me->ssim * 1e4) / 1e4);
            cJSON_AddNumberToObject(r, "consistency", round(me->consistency * 100) / 100);
            if (me->fid >= 0) cJSON_AddNumberToObject(r, "fid_proxy", round(me->fid * 100) / 100);
            cJSON_AddItemToObject(res, me->label, r);
        }
        char *text = cJSON_PrintUnformatted(o), msg[256];
        cJSON_Delete(o);
        int rc = text ? st_set_metadata_file(ms[i].path, "codid.eval", text, msg, sizeof msg) : ST_ENOMEM;
        cJSON_free(text);
        if (rc != ST_OK) {
            fprintf(stderr, "codid: --record: %s: %s\n", ms[i].path, text ? msg : "out of memory");
            return -1;
        }
        fprintf(stderr, "codid: figures recorded in %s\n", ms[i].path);
    }
    return 0;
}

static const char usage[] =
    "usage: codid adapter eval --model DIR --data TEST.cds --task NAME [--factor F] [--canny 0|1]\n"
    "         --method LABEL=ADAPTER@STEPS[:ddim|codi|stochastic] ... [--plain LABEL] [--n 256]\n"
    "         [--seed 0] [--classifier DIR] [--grid OUT.png] [--threads N] [--record]\n"
    "  --record writes each method's figures into its adapter file's metadata (codid.eval)\n";

int srv_cmd_adapter_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *cls_dir = NULL, *grid = NULL, *plain = NULL;
    int n = 256, threads = 0, nm = 0, record = 0;
    uint64_t seed = 0;
    method ms[MAX_METHODS];
    memset(ms, 0, sizeof ms);
    eng_task_params task;
    eng_task_params_init(&task, ENG_TASK_NONE);
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"task", required_argument, 0, 't'},  {"factor", required_argument, 0, 'f'},
        {"canny", required_argument, 0, 'c'}, {"method", required_argument, 0, 'M'},
        {"plain", required_argument, 0, 'p'}, {"n", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},  {"classifier", required_argument, 0, 'C'},
        {"grid", required_argument, 0, 'g'},  {"threads", required_argument, 0, 'j'},
        {"record", no_argument, 0, 'R'},      {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': model = optarg; break;
            case 'd': data = optarg; break;
            case 't':
                if (eng_task_from_name(optarg, &task.kind) != ENG_OK) {
                    fprintf(stderr, "codid: unknown task '%s'\n", optarg);
                    return 2;
                }
                break;
            case 'f':
                if (srv_cli_int(optarg, "--factor", 2, 8, &task.factor)) return 2;
                break;
            case 'c':
                if (srv_cli_int(optarg, "--canny", 0, 1, &task.canny)) return 2;
                break;
            case 'M':
                if (nm == MAX_METHODS || parse_method(optarg, &ms[nm])) {
                    fprintf(stderr, "codid: --method is LABEL=ADAPTER@STEPS[:ddim|codi|stochastic] (at most %d)\n",
                            MAX_METHODS);
                    return 2;
                }
                nm++;
                break;
            case 'p': plain = optarg; break;
            case 'n':
                if (srv_cli_int(optarg, "--n", 2, JOBS_DATASET_MAX_COUNT, &n)) return 2;
                break;
            case 's':
                if (srv_cli_seed(optarg, &seed)) return 2;
                break;
            case 'C': cls_dir = optarg; break;
            case 'g': grid = optarg; break;
            case 'R': record = 1; break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return srv_cli_usage_error(usage);
        }
    }
    if (!model || !data || task.kind == ENG_TASK_NONE || (nm == 0 && !plain)) return srv_cli_usage_error(usage);
    if (plain) {
        if (nm == MAX_METHODS) {
            fprintf(stderr, "codid: --plain and --method: at most %d in all\n", MAX_METHODS);
            return 2;
        }
        memmove(&ms[1], &ms[0], sizeof *ms * (size_t)nm);
        memset(&ms[0], 0, sizeof *ms);
        snprintf(ms[0].label, sizeof ms[0].label, "%s", plain);
        nm++;
    }
    char msg[256];
    jobs_dataset ds;
    if (jobs_dataset_map(data, &ds, msg, sizeof msg)) {
        fprintf(stderr, "codid: %s: %s\n", data, msg);
        return 1;
    }
    if (n > ds.count) n = ds.count;
    int status = 1, size = ds.height, cc = eng_task_cond_channels(&task, ds.channels);
    size_t hw = (size_t)size * size;
    eng_ctx *ctx = NULL;
    eng_model *m = NULL;
    eng_classifier *cls = NULL;
    eng_error err;
    uint8_t *cond = malloc((size_t)n * hw * cc);
    eng_images x = {n, size, size, ds.channels, ds.pixels};
    if (!cond || ds.channels != 3 || ds.width != size) {
        fprintf(stderr, "codid: the evaluation set must hold square RGB images\n");
        goto done;
    }
    if (!(ctx = srv_cli_ctx(threads)) || !(m = srv_cli_model(ctx, model)) ||
        (cls_dir && !(cls = srv_cli_classifier(ctx, cls_dir))))
        goto done;
    if (eng_task_apply(&task, &x, seed, cond, &err)) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    for (int i = 0; i < nm; i++) {
        method *me = &ms[i];
        me->out = malloc((size_t)n * hw * 3);
        if (!me->out) goto done;
        double t0 = util_mono_s();
        if (!me->path) {
            eng_images c = {.n = n, .height = size, .width = size, .channels = cc, .data = cond};
            if (eng_task_reference(&task, &c, 3, me->out, &err)) {
                fprintf(stderr, "codid: %s\n", err.msg);
                goto done;
            }
        } else {
            eng_adapter *a = NULL;
            if (eng_adapter_load(m, me->path, &a, &err) || generate_all(m, a, me, cond, n, size, cc, seed, &err)) {
                fprintf(stderr, "codid: %s: %s\n", me->label, err.msg);
                eng_adapter_free(a);
                goto done;
            }
            eng_adapter_free(a);
        }
        me->seconds = util_mono_s() - t0;
        if (score(me, &task, &ds, cond, n, seed, cls, &err)) {
            fprintf(stderr, "codid: scoring %s: %s\n", me->label, err.msg);
            goto done;
        }
        fprintf(stderr, "codid: %s done in %.1f s\n", me->label, me->seconds);
    }
    printf("| method | steps | PSNR (dB) | SSIM | consistency (dB) | FID-proxy | s / image |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nm; i++) {
        method *me = &ms[i];
        char fid[32] = "-", steps[16] = "-";
        if (me->fid >= 0) snprintf(fid, sizeof fid, "%.2f", me->fid);
        if (me->path) snprintf(steps, sizeof steps, "%d", me->steps);
        printf("| %s | %s | %.2f | %.4f | %.2f | %s | %.4f |\n", me->label, steps, me->psnr, me->ssim, me->consistency,
               fid, me->seconds / n);
    }
    printf("\n%d held-out images of %s, task %s, seed %llu.\n", n, data, eng_task_name(task.kind),
           (unsigned long long)seed);
    if (grid) write_grid(grid, ms, nm, cond, &ds, &task, n < 8 ? n : 8);
    status = record && record_figures(ms, nm, data, n, seed, &task) ? 1 : 0;
done:
    for (int i = 0; i < nm; i++) free(ms[i].out);
    free(cond);
    eng_classifier_free(cls);
    eng_model_free(m);
    eng_ctx_free(ctx);
    jobs_dataset_unmap(&ds);
    return status;
}
