/*
 * cmd_model.c - command-line tools around the base model:
 *
 *   codid forward  --model DIR --input IN.safetensors --timestep T --output OUT.safetensors
 *       one UNet evaluation of the tensor `sample` (to check a converted or
 *       downloaded checkpoint against another implementation);
 *   codid pretrain --data SET --config CONFIG.json --out DIR [...]
 *       unconditional pretraining with checkpoints, resume and a loss log;
 *   codid sample   --model DIR --out GRID.png [--n 64 --steps 50 --seed 0]
 *       a grid of unconditional DDIM samples.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/safetensors.h"
#include "jobs/dataset.h"
#include "server/cli.h"
#include "server/commands.h"
#include "server/trainloop.h"
#include "util/plot.h"

/* ---- forward ------------------------------------------------------------ */

static const char forward_usage[] = "usage: codid forward --model DIR --input IN.safetensors --timestep T "
                                    "--output OUT.safetensors [--threads N]\n";

int srv_cmd_forward(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL;
    float timestep = NAN;
    int threads = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},  {"timestep", required_argument, 0, 't'},
        {"threads", required_argument, 0, 'j'}, {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, forward_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': model = optarg; break;
            case 'i': input = optarg; break;
            case 'o': output = optarg; break;
            case 't':
                if (srv_cli_float(optarg, "--timestep", &timestep)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return 2;
        }
    }
    if (!model || !input || !output || isnan(timestep)) return srv_cli_usage_error(forward_usage);
    char msg[256];
    st_file in;
    int rc = st_open(input, &in, msg, sizeof msg);
    if (rc != ST_OK) {
        fprintf(stderr, "codid: %s: %s\n", input, msg);
        return 1;
    }
    const st_tensor *s = st_find(&in, "sample");
    if (!s || s->ndim != 4) {
        fprintf(stderr, "codid: %s has no 4-d tensor named 'sample'\n", input);
        st_close(&in);
        return 1;
    }
    size_t numel = (size_t)(s->shape[0] * s->shape[1] * s->shape[2] * s->shape[3]);
    float *x = malloc(numel * sizeof(float));
    for (size_t i = 0; x && i < numel; i++) {
        if (s->dtype == ST_F32) {
            memcpy(&x[i], s->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, s->data + 2 * i, 2);
            x[i] = s->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
    }
    int n = (int)s->shape[0], ch = (int)s->shape[1], h = (int)s->shape[2], w = (int)s->shape[3];
    st_close(&in);
    eng_ctx *ctx = x ? srv_cli_ctx(threads) : NULL;
    eng_model *m = ctx ? srv_cli_model(ctx, model) : NULL;
    eng_error err;
    int status = 1;
    if (m) {
        eng_model_info info;
        eng_model_get_info(m, &info);
        size_t out_numel = (size_t)n * info.out_channels * h * w;
        float *y = malloc(out_numel * sizeof(float));
        if (ch != info.in_channels) {
            fprintf(stderr, "codid: 'sample' has %d channels; the model takes %d\n", ch, info.in_channels);
        } else if (y && eng_model_forward(m, x, n, h, w, timestep, y, &err) != ENG_OK) {
            fprintf(stderr, "codid: %s\n", err.msg);
        } else if (y) {
            st_writer *wr = st_writer_new();
            int64_t shape[4] = {n, info.out_channels, h, w};
            if (wr && st_writer_add(wr, "sample", ST_F32, 4, shape, y, out_numel * 4) == ST_OK &&
                st_writer_save(wr, output, msg, sizeof msg) == ST_OK) {
                status = 0;
            } else {
                fprintf(stderr, "codid: cannot write %s: %s\n", output, msg);
            }
            st_writer_free(wr);
        }
        free(y);
    }
    eng_model_free(m);
    eng_ctx_free(ctx);
    free(x);
    return status;
}

/* ---- pretrain ----------------------------------------------------------- */

static const char pretrain_usage[] = "usage: codid pretrain --data SET --config CONFIG.json --out DIR [--steps N]\n"
                                     "         [--batch B] [--lr LR] [--warmup N] [--ema DECAY] [--seed S]\n"
                                     "         [--prediction v_prediction|epsilon] [--threads N] [--checkpoint FILE]\n"
                                     "         [--checkpoint-every M] [--log LOSS.csv] [--log-every N]\n";

int srv_cmd_pretrain(int argc, char **argv) {
    const char *data = NULL, *config = NULL, *out = NULL, *ckpt = NULL, *log_path = NULL;
    int threads = 0, every = 500, log_every = 50;
    eng_train_params p;
    eng_train_params_init(&p, ENG_TRAIN_PRETRAIN);
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"config", required_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'},
                                         {"steps", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 'l'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"ema", required_argument, 0, 'e'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"prediction", required_argument, 0, 'p'},
                                         {"checkpoint", required_argument, 0, 'k'},
                                         {"checkpoint-every", required_argument, 0, 'K'},
                                         {"log", required_argument, 0, 'L'},
                                         {"log-every", required_argument, 0, 'E'},
                                         {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, pretrain_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd': data = optarg; break;
            case 'c': config = optarg; break;
            case 'o': out = optarg; break;
            case 'k': ckpt = optarg; break;
            case 'L': log_path = optarg; break;
            case 's':
                if (srv_cli_int(optarg, "--steps", 1, 100000000, &p.total_steps)) return 2;
                break;
            case 'b':
                if (srv_cli_int(optarg, "--batch", 1, 4096, &p.batch_size)) return 2;
                break;
            case 'w':
                if (srv_cli_int(optarg, "--warmup", 0, 1000000, &p.warmup_steps)) return 2;
                break;
            case 'S':
                if (srv_cli_seed(optarg, &p.seed)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            case 'K':
                if (srv_cli_int(optarg, "--checkpoint-every", 1, 100000000, &every)) return 2;
                break;
            case 'E':
                if (srv_cli_int(optarg, "--log-every", 1, 100000000, &log_every)) return 2;
                break;
            case 'l':
                if (srv_cli_float(optarg, "--lr", &p.lr)) return 2;
                break;
            case 'e':
                if (srv_cli_float(optarg, "--ema", &p.ema_decay)) return 2;
                break;
            case 'p':
                if (eng_prediction_from_name(optarg, &p.prediction) != ENG_OK) {
                    fprintf(stderr, "codid: --prediction is %s or %s\n", eng_prediction_name(ENG_PRED_V),
                            eng_prediction_name(ENG_PRED_EPSILON));
                    return 2;
                }
                break;
            default: return 2;
        }
    }
    if (!data || !config || !out) return srv_cli_usage_error(pretrain_usage);
    char msg[256];
    char *config_json = srv_cli_read_text(config, 1 << 20);
    if (!config_json) {
        fprintf(stderr, "codid: cannot read %s\n", config);
        return 1;
    }
    jobs_dataset ds;
    if (jobs_dataset_map(data, &ds, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", data, msg);
        free(config_json);
        return 1;
    }
    int status = 1;
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_trainer *t = NULL;
    eng_error err;
    eng_images imgs = {ds.count, ds.height, ds.width, ds.channels, ds.pixels};
    if (!ctx) goto done;
    if (eng_trainer_create_pretrain(ctx, config_json, NULL, &p, &imgs, &t, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    srv_train_opts o = {p.total_steps, ckpt, every, log_path, log_every, out, 1, NULL};
    status = srv_train_loop(t, &o);
done:
    eng_trainer_free(t);
    eng_ctx_free(ctx);
    jobs_dataset_unmap(&ds);
    free(config_json);
    return status;
}

/* ---- sample ------------------------------------------------------------- */

static const char sample_usage[] =
    "usage: codid sample --model DIR --out GRID.png [--n 64] [--steps 50] [--seed 0] [--threads N]\n";

int srv_cmd_sample(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int n = 64, steps = 50, threads = 0;
    uint64_t seed = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 'o'},
                                         {"n", required_argument, 0, 'n'},
                                         {"steps", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"threads", required_argument, 0, 'j'},
                                         {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, sample_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': model = optarg; break;
            case 'o': out = optarg; break;
            case 'n':
                if (srv_cli_int(optarg, "--n", 1, 1024, &n)) return 2;
                break;
            case 's':
                if (srv_cli_int(optarg, "--steps", 1, 100000, &steps)) return 2;
                break;
            case 'S':
                if (srv_cli_seed(optarg, &seed)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return 2;
        }
    }
    if (!model || !out) return srv_cli_usage_error(sample_usage);
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_model *m = NULL;
    eng_error err;
    int status = 1;
    eng_image *imgs = calloc((size_t)n, sizeof *imgs);
    if (!ctx || !imgs || !(m = srv_cli_model(ctx, model))) goto done;
    eng_gen_params gp;
    eng_gen_params_init(&gp);
    gp.n = n;
    gp.steps = steps;
    gp.seed = seed;
    if (eng_generate(m, NULL, &gp, NULL, imgs, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    /* a square-ish grid with a 2-pixel gutter */
    int cols = (int)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
    int w = imgs[0].width, h = imgs[0].height, ch = imgs[0].channels, gap = 2;
    int gw = cols * (w + gap) + gap, gh = rows * (h + gap) + gap;
    uint8_t *grid = calloc((size_t)gw * gh * ch, 1);
    if (grid) {
        for (int i = 0; i < n; i++) {
            int gx = gap + (i % cols) * (w + gap), gy = gap + (i / cols) * (h + gap);
            for (int y = 0; y < h; y++)
                memcpy(grid + ((size_t)(gy + y) * gw + gx) * ch, imgs[i].data + (size_t)y * w * ch, (size_t)w * ch);
        }
        if (srv_cli_write_png(out, grid, gw, gh, ch) == 0) status = 0;
        free(grid);
    }
    for (int i = 0; i < n; i++) eng_image_free(&imgs[i]);
done:
    free(imgs);
    eng_model_free(m);
    eng_ctx_free(ctx);
    return status;
}

/* ---- plot --------------------------------------------------------------- */

/* codid plot --csv LOSS.csv --out PLOT.png: the loss column (second) of a
 * training log against its step column, raw and smoothed (EMA 0.98). */
int srv_cmd_plot(int argc, char **argv) {
    static const char usage[] = "usage: codid plot --csv LOSS.csv --out PLOT.png\n";
    const char *csv = NULL, *out = NULL;
    static const struct option opts[] = {
        {"csv", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'}, {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            csv = optarg;
        else if (c == 'o')
            out = optarg;
        else
            return 2;
    }
    if (!csv || !out) return srv_cli_usage_error(usage);
    FILE *f = fopen(csv, "r");
    if (!f) {
        fprintf(stderr, "codid: cannot read %s: %s\n", csv, strerror(errno));
        return 1;
    }
    enum { MAX_ROWS = 10000000 };
    size_t cap = 1024, n = 0;
    double *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y);
    char line[256];
    double last_step = -1;
    while (x && y && fgets(line, sizeof line, f) && n < MAX_ROWS) {
        double step, loss;
        /* a resumed run appends to the log: keep the steps increasing */
        if (sscanf(line, "%lf,%lf", &step, &loss) != 2 || step <= last_step) continue;
        if (n == cap) {
            cap *= 2;
            double *nx = realloc(x, cap * sizeof *x), *ny = realloc(y, cap * sizeof *y);
            if (nx) x = nx;
            if (ny) y = ny;
            if (!nx || !ny) break;
        }
        x[n] = last_step = step;
        y[n++] = loss;
    }
    fclose(f);
    int status = 1;
    double *smooth = n ? malloc(n * sizeof *smooth) : NULL;
    if (smooth) {
        for (size_t i = 0; i < n; i++) smooth[i] = i ? 0.98 * smooth[i - 1] + 0.02 * y[i] : y[i];
        util_series s[2] = {{y, {180, 200, 235}}, {smooth, {200, 40, 40}}};
        uint8_t *png = NULL;
        size_t len = 0;
        char msg[256];
        if (util_plot_png(x, (int)n, s, 2, 640, 360, &png, &len, msg, sizeof msg) == 0) {
            if (srv_cli_write_file(out, png, len) == 0) status = 0;
        } else {
            fprintf(stderr, "codid: %s\n", msg);
        }
        free(png);
    } else {
        fprintf(stderr, "codid: %s holds no step,loss rows\n", csv);
    }
    free(smooth);
    free(x);
    free(y);
    return status;
}
