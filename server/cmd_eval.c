/*
 * cmd_eval.c - the quality measurements of CODI.md 'Measuring quality' from
 * the command line, over engine.h's metrics:
 *
 *   codid eval train-classifier --data SET --test SET --out DIR [...]
 *       trains the evaluation classifier whose features give the FID-proxy;
 *   codid eval accuracy   --classifier DIR --data SET
 *   codid eval fid        --classifier DIR --a SET --b SET [--n N]
 *   codid eval sample-fid --model DIR [--random] [--n 2000 --steps 50 ...]
 *       the FID-proxy of a base model's unconditional DDIM samples against
 *       the CIFAR-10 test set (--random: an untrained model of DIR's config);
 *   codid eval psnr|ssim  --a PNG --b PNG
 *
 * A SET is a dataset file (jobs/dataset.h), a folder of PNG files (imported
 * at the classifier's size into a temporary dataset file), or one PNG grid
 * as `codid sample` draws it (tiles of the classifier's size, 2-pixel
 * gutters, read row by row). Results go to stdout as key=value pairs.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "jobs/dataset.h"
#include "server/cli.h"
#include "server/commands.h"
#include "util/clock.h"
#include "util/png.h"

#define DEFAULT_CLASSIFIER "models/cifar10-classifier"
#define DEFAULT_REFERENCE  "data/cifar10-test.cds"
#define GRID_GAP           2          /* `codid sample`'s gutter */
#define MAX_PNG_PIXELS     (1u << 26) /* one decoded PNG */

/* ---- image sets ------------------------------------------------------------ */

typedef struct eval_set {
    eng_images imgs;
    const uint8_t *labels; /* NULL unless a dataset file with labels */
    jobs_dataset ds;
    int mapped;
    uint8_t *owned; /* the tiles of a grid */
} eval_set;

static void set_close(eval_set *s) {
    if (s->mapped) jobs_dataset_unmap(&s->ds);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

static int set_from_grid(const char *path, int side, int channels, eval_set *s) {
    util_image g;
    char msg[256];
    if (util_png_decode_file(path, channels, MAX_PNG_PIXELS, &g, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", path, msg);
        return -1;
    }
    int cell = side + GRID_GAP, cols, rows, x0 = 0;
    if (g.width == side && g.height == side) {
        cols = rows = 1;
    } else if ((g.width - GRID_GAP) % cell == 0 && (g.height - GRID_GAP) % cell == 0) {
        cols = (g.width - GRID_GAP) / cell;
        rows = (g.height - GRID_GAP) / cell;
        x0 = GRID_GAP;
    } else {
        fprintf(stderr, "codid: %s is %dx%d: neither one %dx%d image nor a grid of them with %d-pixel gutters\n", path,
                g.width, g.height, side, side, GRID_GAP);
        util_image_free(&g);
        return -1;
    }
    size_t per = (size_t)side * side * channels;
    s->owned = malloc(per * cols * rows);
    if (!s->owned) {
        util_image_free(&g);
        fprintf(stderr, "codid: out of memory\n");
        return -1;
    }
    for (int i = 0; i < cols * rows; i++) {
        int gx = x0 + (i % cols) * cell, gy = x0 + (i / cols) * cell;
        for (int y = 0; y < side; y++)
            memcpy(s->owned + per * i + (size_t)y * side * channels,
                   g.data + ((size_t)(gy + y) * g.width + gx) * channels, (size_t)side * channels);
    }
    util_image_free(&g);
    s->imgs = (eng_images){cols * rows, side, side, channels, s->owned};
    return 0;
}

static int set_from_dataset(const char *path, eval_set *s) {
    char msg[256];
    if (jobs_dataset_map(path, &s->ds, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", path, msg);
        return -1;
    }
    s->mapped = 1;
    s->imgs = (eng_images){s->ds.count, s->ds.height, s->ds.width, s->ds.channels, s->ds.pixels};
    s->labels = s->ds.labels;
    return 0;
}

/* A PNG folder goes through the dataset importer into a private temporary
 * folder; the mapping outlives the unlinked file. */
static int set_from_folder(const char *path, int side, int channels, int limit, eval_set *s) {
    const char *tmpdir = getenv("TMPDIR");
    char dir[512], file[600], msg[256];
    snprintf(dir, sizeof dir, "%s/codid-eval-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "codid: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(file, sizeof file, "%s/set.cds", dir);
    jobs_import_params ip;
    jobs_import_params_init(&ip);
    ip.source = JOBS_SOURCE_PNG_DIR;
    ip.dir = path;
    ip.size = side;
    ip.channels = channels;
    ip.limit = limit;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&ip, file, &st, msg, sizeof msg);
    if (rc != 0)
        fprintf(stderr, "codid: %s: %s\n", path, msg);
    else if (st.skipped)
        fprintf(stderr, "codid: %s: skipped %d files (first: %s)\n", path, st.skipped, st.reasons[0]);
    if (rc == 0) rc = set_from_dataset(file, s);
    unlink(file);
    rmdir(dir);
    return rc;
}

/* Opens path as a set of side x side x channels images, the first `limit`
 * of them when limit > 0. */
static int set_open(const char *path, int side, int channels, int limit, eval_set *s) {
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "codid: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(path);
    int rc;
    if (S_ISDIR(sb.st_mode))
        rc = set_from_folder(path, side, channels, limit, s);
    else if (len > 4 && strcasecmp(path + len - 4, ".png") == 0)
        rc = set_from_grid(path, side, channels, s);
    else
        rc = set_from_dataset(path, s);
    if (rc == 0 && limit > 0 && s->imgs.n > limit) s->imgs.n = limit;
    return rc;
}

/* ---- train-classifier ----------------------------------------------------- */

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

typedef struct train_log {
    FILE *csv;
    double start, smooth;
    int every;
} train_log;

static int on_train_step(int step, int steps, float loss, float lr, void *user) {
    train_log *l = user;
    double t = util_mono_s() - l->start;
    l->smooth = isnan(l->smooth) ? loss : 0.98 * l->smooth + 0.02 * loss;
    if (l->csv) fprintf(l->csv, "%d,%.5f,%.6g,%.1f\n", step, loss, lr, t);
    if (step % l->every == 0 || step == steps) {
        double rate = step / t;
        fprintf(stderr, "step %d/%d loss %.4f (smoothed %.4f) lr %.2g %.2f it/s eta %.0f s\n", step, steps, loss,
                l->smooth, lr, rate, (steps - step) / rate);
        if (l->csv) fflush(l->csv);
    }
    return stop_requested;
}

static int accuracy_of(eng_classifier *c, const eval_set *s, const char *path, double *acc) {
    eng_error err;
    if (!s->labels) {
        fprintf(stderr, "codid: %s has no labels\n", path);
        return -1;
    }
    if (eng_classifier_accuracy(c, &s->imgs, s->labels, acc, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* "32,64,128" -> a JSON array body */
static int widths_json(const char *s, char *out, size_t cap) {
    size_t used = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',')) return -1;
        int k = snprintf(out + used, cap - used, "%s%ld", used ? "," : "", v);
        if (k < 0 || (size_t)k >= cap - used) return -1;
        used += (size_t)k;
        p = *end ? end + 1 : end;
    }
    return used ? 0 : -1;
}

static const char train_usage[] = "usage: codid eval train-classifier --data SET --test SET --out DIR [--steps 5000]\n"
                                  "         [--batch 128] [--lr 2e-3] [--warmup 200] [--weight-decay 0.05]\n"
                                  "         [--widths 48,96,192] [--groups 8] [--seed 0] [--threads N]\n"
                                  "         [--log LOSS.csv] [--log-every 100]\n";

static int cmd_train(int argc, char **argv) {
    const char *data = NULL, *test = NULL, *out = NULL, *log_path = NULL, *widths = "48,96,192";
    int threads = 0, groups = 8, log_every = 100;
    eng_classifier_train_params p;
    eng_classifier_train_params_init(&p);
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"test", required_argument, 0, 't'},
                                         {"out", required_argument, 0, 'o'},
                                         {"steps", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 'l'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"weight-decay", required_argument, 0, 'W'},
                                         {"widths", required_argument, 0, 'C'},
                                         {"groups", required_argument, 0, 'g'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"log", required_argument, 0, 'L'},
                                         {"log-every", required_argument, 0, 'E'},
                                         {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, train_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd': data = optarg; break;
            case 't': test = optarg; break;
            case 'o': out = optarg; break;
            case 'C': widths = optarg; break;
            case 'L': log_path = optarg; break;
            case 's':
                if (srv_cli_int(optarg, "--steps", 1, 100000000, &p.total_steps)) return 2;
                break;
            case 'b':
                if (srv_cli_int(optarg, "--batch", 1, 4096, &p.batch_size)) return 2;
                break;
            case 'w':
                if (srv_cli_int(optarg, "--warmup", 0, 100000000, &p.warmup_steps)) return 2;
                break;
            case 'S':
                if (srv_cli_seed(optarg, &p.seed)) return 2;
                break;
            case 'g':
                if (srv_cli_int(optarg, "--groups", 1, 1024, &groups)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            case 'E':
                if (srv_cli_int(optarg, "--log-every", 1, 100000000, &log_every)) return 2;
                break;
            case 'l':
                if (srv_cli_float(optarg, "--lr", &p.lr)) return 2;
                break;
            case 'W':
                if (srv_cli_float(optarg, "--weight-decay", &p.weight_decay)) return 2;
                break;
            default: return 2;
        }
    }
    char wbuf[256];
    if (!data || !test || !out || widths_json(widths, wbuf, sizeof wbuf) != 0) return srv_cli_usage_error(train_usage);
    eval_set tr, te;
    if (set_open(data, 0, 0, 0, &tr) != 0) return 1;
    if (set_open(test, 0, 0, 0, &te) != 0) {
        set_close(&tr);
        return 1;
    }
    int status = 1;
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_classifier *cls = NULL, *reloaded = NULL;
    eng_error err;
    train_log log = {NULL, 0, NAN, log_every};
    char config[512], meta[512];
    double acc = 0, acc16 = 0;
    if (!ctx) goto done;
    if (!tr.labels) {
        fprintf(stderr, "codid: %s has no labels\n", data);
        goto done;
    }
    snprintf(config, sizeof config,
             "{\"image_size\":%d,\"in_channels\":%d,\"num_classes\":10,\"widths\":[%s],\"norm_num_groups\":%d}",
             tr.imgs.height, tr.imgs.channels, wbuf, groups);
    if (tr.imgs.height != tr.imgs.width) {
        fprintf(stderr, "codid: %s: the classifier takes square images\n", data);
        goto done;
    }
    if (eng_classifier_create(ctx, config, p.seed, &cls, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    eng_classifier_info info;
    eng_classifier_get_info(cls, &info);
    fprintf(stderr, "codid: classifier %s, %lld parameters, %d features; %d training images\n", config,
            (long long)info.parameters, info.feature_dim, tr.imgs.n);
    if (log_path && !(log.csv = fopen(log_path, "w"))) {
        fprintf(stderr, "codid: cannot open %s: %s\n", log_path, strerror(errno));
        goto done;
    }
    if (log.csv) fprintf(log.csv, "step,loss,lr,seconds\n");
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    p.progress = on_train_step;
    p.user = &log;
    log.start = util_mono_s();
    if (eng_classifier_train(cls, &p, &tr.imgs, tr.labels, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        status = err.code == ENG_ECANCELLED ? 3 : 1;
        goto done;
    }
    double seconds = util_mono_s() - log.start;
    if (accuracy_of(cls, &te, test, &acc) != 0) goto done;
    snprintf(meta, sizeof meta,
             "{\"codid.steps\":\"%d\",\"codid.batch\":\"%d\",\"codid.lr\":\"%g\",\"codid.seconds\":\"%.0f\","
             "\"codid.test_accuracy_fp32\":\"%.4f\"}",
             p.total_steps, p.batch_size, p.lr, seconds, acc);
    if (eng_classifier_save(cls, out, 1, meta, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    /* the figure that counts is that of the weights as stored (F16) */
    if (!(reloaded = srv_cli_classifier(ctx, out)) || accuracy_of(reloaded, &te, test, &acc16) != 0) goto done;
    printf("steps=%d batch=%d seconds=%.0f parameters=%lld test_accuracy=%.4f test_accuracy_fp32=%.4f\n", p.total_steps,
           p.batch_size, seconds, (long long)info.parameters, acc16, acc);
    status = 0;
done:
    if (log.csv) fclose(log.csv);
    eng_classifier_free(reloaded);
    eng_classifier_free(cls);
    eng_ctx_free(ctx);
    set_close(&te);
    set_close(&tr);
    return status;
}

/* ---- accuracy and fid ------------------------------------------------------ */

static const char accuracy_usage[] =
    "usage: codid eval accuracy --data SET.cds [--classifier " DEFAULT_CLASSIFIER "] [--n N] [--threads N]\n";

static int cmd_accuracy(int argc, char **argv) {
    const char *cdir = DEFAULT_CLASSIFIER, *data = NULL;
    int threads = 0, n = 0;
    static const struct option opts[] = {{"classifier", required_argument, 0, 'c'},
                                         {"data", required_argument, 0, 'd'},
                                         {"n", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 'j'},
                                         {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, accuracy_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'c': cdir = optarg; break;
            case 'd': data = optarg; break;
            case 'n':
                if (srv_cli_int(optarg, "--n", 1, JOBS_DATASET_MAX_COUNT, &n)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return 2;
        }
    }
    if (!data) return srv_cli_usage_error(accuracy_usage);
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_classifier *cls = ctx ? srv_cli_classifier(ctx, cdir) : NULL;
    eval_set s;
    int status = 1;
    double acc;
    if (cls && set_open(data, 0, 0, n, &s) == 0) {
        if (accuracy_of(cls, &s, data, &acc) == 0) {
            printf("accuracy=%.4f n=%d\n", acc, s.imgs.n);
            status = 0;
        }
        set_close(&s);
    }
    eng_classifier_free(cls);
    eng_ctx_free(ctx);
    return status;
}

static int fid_of(eng_classifier *cls, const eng_images *a, const eng_images *b, double *out) {
    eng_error err;
    if (eng_fid_proxy(cls, a, b, out, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static const char fid_usage[] =
    "usage: codid eval fid --a SET --b SET [--classifier " DEFAULT_CLASSIFIER "] [--n N] [--threads N]\n"
    "  SET: a dataset file, a folder of PNGs, or a PNG grid; --n: the first N of each\n";

static int cmd_fid(int argc, char **argv) {
    const char *cdir = DEFAULT_CLASSIFIER, *pa = NULL, *pb = NULL;
    int threads = 0, n = 0;
    static const struct option opts[] = {{"classifier", required_argument, 0, 'c'}, {"a", required_argument, 0, 'a'},
                                         {"b", required_argument, 0, 'b'},          {"n", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 'j'},    {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, fid_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'c': cdir = optarg; break;
            case 'a': pa = optarg; break;
            case 'b': pb = optarg; break;
            case 'n':
                if (srv_cli_int(optarg, "--n", 2, JOBS_DATASET_MAX_COUNT, &n)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return 2;
        }
    }
    if (!pa || !pb) return srv_cli_usage_error(fid_usage);
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_classifier *cls = ctx ? srv_cli_classifier(ctx, cdir) : NULL;
    eval_set a, b;
    int status = 1;
    if (cls) {
        eng_classifier_info info;
        eng_classifier_get_info(cls, &info);
        if (set_open(pa, info.image_size, info.channels, n, &a) == 0) {
            if (set_open(pb, info.image_size, info.channels, n, &b) == 0) {
                double fid;
                if (fid_of(cls, &a.imgs, &b.imgs, &fid) == 0) {
                    printf("fid_proxy=%.4f n_a=%d n_b=%d\n", fid, a.imgs.n, b.imgs.n);
                    status = 0;
                }
                set_close(&b);
            }
            set_close(&a);
        }
    }
    eng_classifier_free(cls);
    eng_ctx_free(ctx);
    return status;
}

/* ---- sample-fid ------------------------------------------------------------- */

/* The model of dir, or with random set an untrained one of dir's
 * config.json (and scheduler_config.json when present), seeded. */
static eng_model *open_model(eng_ctx *ctx, const char *dir, int random, uint64_t seed) {
    if (!random) return srv_cli_model(ctx, dir);
    eng_model *m = NULL;
    eng_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *config = srv_cli_read_text(path, 1 << 20);
    if (!config) {
        fprintf(stderr, "codid: cannot read %s\n", path);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    char *sched = srv_cli_read_text(path, 1 << 20);
    if (eng_model_create(ctx, config, sched, seed, &m, &err) != ENG_OK) fprintf(stderr, "codid: %s\n", err.msg);
    free(sched);
    free(config);
    return m;
}

static const char sample_fid_usage[] =
    "usage: codid eval sample-fid --model DIR [--random] [--n 2000] [--steps 50] [--seed 0]\n"
    "         [--classifier " DEFAULT_CLASSIFIER "] [--ref " DEFAULT_REFERENCE "] [--ref-n N]\n"
    "         [--batch 100] [--threads N]\n"
    "  --random: an untrained model of DIR's config.json, weights seeded with --seed\n";

static int cmd_sample_fid(int argc, char **argv) {
    const char *mdir = NULL, *cdir = DEFAULT_CLASSIFIER, *ref = DEFAULT_REFERENCE;
    long n = 2000, steps = 50, batch = 100;
    int ref_n = 0, threads = 0, random = 0;
    uint64_t seed = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"random", no_argument, 0, 'r'},
                                         {"classifier", required_argument, 0, 'c'},
                                         {"ref", required_argument, 0, 'R'},
                                         {"ref-n", required_argument, 0, 'N'},
                                         {"n", required_argument, 0, 'n'},
                                         {"steps", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 'j'},
                                         {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, sample_fid_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': mdir = optarg; break;
            case 'r': random = 1; break;
            case 'c': cdir = optarg; break;
            case 'R': ref = optarg; break;
            case 'N':
                if (srv_cli_int(optarg, "--ref-n", 2, JOBS_DATASET_MAX_COUNT, &ref_n)) return 2;
                break;
            case 'n':
                if (srv_cli_long(optarg, "--n", 2, 1000000, &n)) return 2;
                break;
            case 's':
                if (srv_cli_long(optarg, "--steps", 1, 100000, &steps)) return 2;
                break;
            case 'S':
                if (srv_cli_seed(optarg, &seed)) return 2;
                break;
            case 'b':
                if (srv_cli_long(optarg, "--batch", 1, 1024, &batch)) return 2;
                break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            default: return 2;
        }
    }
    if (!mdir) return srv_cli_usage_error(sample_fid_usage);
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_classifier *cls = ctx ? srv_cli_classifier(ctx, cdir) : NULL;
    eng_model *m = cls ? open_model(ctx, mdir, random, seed) : NULL;
    eng_image *batch_out = calloc((size_t)batch, sizeof *batch_out);
    uint8_t *pixels = NULL;
    eval_set rs;
    int status = 1, have_ref = 0;
    eng_error err;
    if (!m || !batch_out) goto done;
    eng_classifier_info ci;
    eng_classifier_get_info(cls, &ci);
    if (set_open(ref, ci.image_size, ci.channels, ref_n, &rs) != 0) goto done;
    have_ref = 1;
    size_t per = (size_t)ci.image_size * ci.image_size * ci.channels;
    if (!(pixels = malloc(per * (size_t)n))) {
        fprintf(stderr, "codid: out of memory\n");
        goto done;
    }
    double start = util_mono_s();
    for (long done_n = 0; done_n < n; done_n += batch) {
        eng_gen_params gp;
        eng_gen_params_init(&gp);
        gp.n = (int)(n - done_n < batch ? n - done_n : batch);
        gp.steps = (int)steps;
        gp.seed = seed + (uint64_t)done_n; /* image i uses seed + i */
        if (eng_generate(m, NULL, &gp, NULL, batch_out, &err) != ENG_OK) {
            fprintf(stderr, "codid: %s\n", err.msg);
            goto done;
        }
        int fits = 1;
        for (int i = 0; i < gp.n; i++) {
            fits &= batch_out[i].width == ci.image_size && batch_out[i].height == ci.image_size &&
                    batch_out[i].channels == ci.channels;
            if (fits) memcpy(pixels + per * (size_t)(done_n + i), batch_out[i].data, per);
            eng_image_free(&batch_out[i]);
        }
        if (!fits) {
            fprintf(stderr, "codid: the model's samples do not fit the classifier (%dx%dx%d)\n", ci.image_size,
                    ci.image_size, ci.channels);
            goto done;
        }
        double t = util_mono_s() - start;
        fprintf(stderr, "sampled %ld/%ld (%.1f images/s)\n", done_n + gp.n, n, (done_n + gp.n) / t);
    }
    eng_images samples = {(int)n, ci.image_size, ci.image_size, ci.channels, pixels};
    double fid;
    if (fid_of(cls, &samples, &rs.imgs, &fid) != 0) goto done;
    printf("fid_proxy=%.4f n=%ld steps=%ld seed=%llu ref_n=%d model=%s%s\n", fid, n, steps, (unsigned long long)seed,
           rs.imgs.n, mdir, random ? " (random weights)" : "");
    status = 0;
done:
    if (have_ref) set_close(&rs);
    free(pixels);
    free(batch_out);
    eng_model_free(m);
    eng_classifier_free(cls);
    eng_ctx_free(ctx);
    return status;
}

/* ---- psnr and ssim ----------------------------------------------------------- */

static int cmd_fidelity(int argc, char **argv, int ssim) {
    const char *pa = NULL, *pb = NULL;
    static const struct option opts[] = {
        {"a", required_argument, 0, 'a'}, {"b", required_argument, 0, 'b'}, {0, 0, 0, 0}};
    const char *usage = ssim ? "usage: codid eval ssim --a PNG --b PNG\n" : "usage: codid eval psnr --a PNG --b PNG\n";
    if (srv_cli_help(argc, argv, usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'a': pa = optarg; break;
            case 'b': pb = optarg; break;
            default: return 2;
        }
    }
    if (!pa || !pb) return srv_cli_usage_error(usage);
    util_image a = {0}, b = {0};
    char msg[256];
    int status = 1;
    if (util_png_decode_file(pa, 0, MAX_PNG_PIXELS, &a, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", pa, msg);
    } else if (util_png_decode_file(pb, a.channels, MAX_PNG_PIXELS, &b, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", pb, msg);
    } else {
        eng_images ia = {1, a.height, a.width, a.channels, a.data};
        eng_images ib = {1, b.height, b.width, b.channels, b.data};
        eng_error err;
        double v;
        int rc = ssim ? eng_ssim(&ia, &ib, &v, &err) : eng_psnr(&ia, &ib, &v, &err);
        if (rc != ENG_OK) {
            fprintf(stderr, "codid: %s\n", err.msg);
        } else {
            printf(ssim ? "ssim=%.6f\n" : "psnr_db=%.4f\n", v);
            status = 0;
        }
    }
    util_image_free(&a);
    util_image_free(&b);
    return status;
}

static int cmd_psnr(int argc, char **argv) {
    return cmd_fidelity(argc, argv, 0);
}
static int cmd_ssim(int argc, char **argv) {
    return cmd_fidelity(argc, argv, 1);
}

/* ---- dispatch ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommands[] = {
    {"train-classifier", cmd_train, "train the evaluation classifier (FID-proxy features)"},
    {"accuracy", cmd_accuracy, "a classifier's accuracy on a labelled dataset file"},
    {"fid", cmd_fid, "FID-proxy between two image sets"},
    {"sample-fid", cmd_sample_fid, "FID-proxy of a model's unconditional samples against the test set"},
    {"psnr", cmd_psnr, "PSNR between two PNG images (dB; identical: 100)"},
    {"ssim", cmd_ssim, "SSIM between two PNG images"},
};

int srv_cmd_eval(int argc, char **argv) {
    size_t count = sizeof subcommands / sizeof subcommands[0];
    if (argc >= 2)
        for (size_t i = 0; i < count; i++)
            if (strcmp(argv[1], subcommands[i].name) == 0) return subcommands[i].run(argc - 1, argv + 1);
    /* `codid eval --help` asks for this list; anything else is a mistake */
    int asked = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *to = asked ? stdout : stderr;
    fprintf(to, "usage: codid eval SUBCOMMAND [flags]   (--help on each)\n\nsubcommands:\n");
    for (size_t i = 0; i < count; i++) fprintf(to, "  %-17s %s\n", subcommands[i].name, subcommands[i].summary);
    return asked ? 0 : 2;
}
