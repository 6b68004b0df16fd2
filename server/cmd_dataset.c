/* cmd_dataset.c - `codid dataset import|grid`, over jobs/dataset.h. */
#include "server/commands.h"

#include "jobs/dataset.h"
#include "server/cli.h"
#include "util/clock.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_GAP       2
#define GRID_MAX_COUNT 1024

static const char usage[] =
    "usage: codid dataset import --source cifar10|fashion-mnist|DIR --out FILE\n"
    "                            [--split train|test] [--size N] [--channels 1|3|4]\n"
    "                            [--limit N] [--cifar-dir DIR] [--fashion-mnist-dir DIR]\n"
    "       codid dataset grid --in FILE --out PNG [--count N]\n"
    "\n"
    "import writes a dataset file from CIFAR-10 (default dir " JOBS_CIFAR10_DEFAULT_DIR ", see `make data`),\n"
    "Fashion-MNIST (" JOBS_FASHION_MNIST_DEFAULT_DIR ") or a folder of PNG files\n"
    "(write ./cifar10 for a folder of that name). --size and --channels default to\n"
    "the source's own (a PNG folder: 32 and 3); other sizes are centre-cropped and\n"
    "resized. grid draws the first N (default 64, at most 1024) images as one PNG.\n";

typedef struct opt {
    const char *name;
    const char **value;
} opt;

/* Fills the values of --name value pairs; -1 on an unknown or valueless one. */
static int parse_opts(int argc, char **argv, const opt *opts) {
    for (int i = 0; i < argc; i++) {
        const opt *o = opts;
        while (o->name && strcmp(argv[i], o->name) != 0) o++;
        if (!o->name || i + 1 == argc) {
            fprintf(stderr, "codid dataset: %s %s\n", argv[i], o->name ? "needs a value" : "is not an option here");
            return -1;
        }
        *o->value = argv[++i];
    }
    return 0;
}

/* srv_cli_int for a flag that may be absent: NULL leaves *out as it is. */
static int parse_int(const char *name, const char *s, int lo, int hi, int *out) {
    return s ? srv_cli_int(s, name, lo, hi, out) : 0;
}

static int cmd_import(int argc, char **argv) {
    const char *source = NULL, *out = NULL, *split = NULL, *size = NULL, *channels = NULL, *limit = NULL,
               *cifar_dir = NULL, *fmnist_dir = NULL;
    const opt opts[] = {{"--source", &source},
                        {"--out", &out},
                        {"--split", &split},
                        {"--size", &size},
                        {"--channels", &channels},
                        {"--limit", &limit},
                        {"--cifar-dir", &cifar_dir},
                        {"--fashion-mnist-dir", &fmnist_dir},
                        {NULL, NULL}};
    if (parse_opts(argc, argv, opts) != 0) return 2;
    if (!source || !out) {
        fprintf(stderr, "codid dataset import: --source and --out are required\n%s", usage);
        return 2;
    }
    jobs_import_params p;
    jobs_import_params_init(&p);
    if (strcmp(source, "cifar10") == 0) {
        p.source = JOBS_SOURCE_CIFAR10;
        p.dir = cifar_dir;
    } else if (strcmp(source, "fashion-mnist") == 0) {
        p.source = JOBS_SOURCE_FASHION_MNIST;
        p.dir = fmnist_dir;
    } else {
        p.source = JOBS_SOURCE_PNG_DIR;
        p.dir = source;
    }
    if (split) p.split = split;
    if (parse_int("--size", size, 1, JOBS_DATASET_MAX_SIDE, &p.size) != 0 ||
        parse_int("--channels", channels, 1, 4, &p.channels) != 0 ||
        parse_int("--limit", limit, 1, JOBS_DATASET_MAX_COUNT, &p.limit) != 0)
        return 2;

    double t0 = util_mono_s();
    jobs_import_stats st;
    char msg[512];
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    double secs = util_mono_s() - t0;
    for (int i = 0; i < st.nreasons; i++) printf("skipped %s\n", st.reasons[i]);
    if (st.skipped > st.nreasons) printf("(%d more skips not shown)\n", st.skipped - st.nreasons);
    if (rc != 0) {
        fprintf(stderr, "codid dataset import: %s\n", msg);
        return 1;
    }
    jobs_dataset ds;
    if (jobs_dataset_map(out, &ds, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid dataset import: wrote a file that does not read back: %s\n", msg);
        return 1;
    }
    printf("imported %d images (%dx%dx%d, %s), skipped %d, in %.2f s: %s\n", st.imported, ds.height, ds.width,
           ds.channels, ds.labels ? "labelled" : "no labels", st.skipped, secs, out);
    jobs_dataset_unmap(&ds);
    return 0;
}

static int cmd_grid(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *count_s = NULL;
    const opt opts[] = {{"--in", &in}, {"--out", &out}, {"--count", &count_s}, {NULL, NULL}};
    int count = 64;
    if (parse_opts(argc, argv, opts) != 0 || parse_int("--count", count_s, 1, GRID_MAX_COUNT, &count) != 0) return 2;
    if (!in || !out) {
        fprintf(stderr, "codid dataset grid: --in and --out are required\n%s", usage);
        return 2;
    }
    jobs_dataset ds;
    char msg[512];
    if (jobs_dataset_map(in, &ds, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid dataset grid: %s\n", msg);
        return 1;
    }
    if (count > ds.count) count = ds.count;
    int cols = (int)ceil(sqrt(count)), rows = (count + cols - 1) / cols, c = ds.channels;
    int gw = cols * ds.width + (cols + 1) * GRID_GAP, gh = rows * ds.height + (rows + 1) * GRID_GAP;
    uint8_t *grid = calloc((size_t)gw * gh, (size_t)c);
    int rc = 1;
    if (!grid) {
        fprintf(stderr, "codid dataset grid: out of memory\n");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        int x0 = GRID_GAP + (i % cols) * (ds.width + GRID_GAP);
        int y0 = GRID_GAP + (i / cols) * (ds.height + GRID_GAP);
        const uint8_t *img = jobs_dataset_image(&ds, i);
        for (int y = 0; y < ds.height; y++)
            memcpy(grid + ((size_t)(y0 + y) * gw + x0) * c, img + (size_t)y * ds.width * c, (size_t)ds.width * c);
    }
    if (srv_cli_write_png(out, grid, gw, gh, c) != 0) goto done;
    printf("wrote %d of %d images as a %dx%d grid: %s\n", count, ds.count, cols, rows, out);
    rc = 0;
done:
    free(grid);
    jobs_dataset_unmap(&ds);
    return rc;
}

int srv_cmd_dataset(int argc, char **argv) {
    if (srv_cli_help(argc, argv, usage)) return 0;
    if (argc >= 2 && strcmp(argv[1], "import") == 0) return cmd_import(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "grid") == 0) return cmd_grid(argc - 2, argv + 2);
    fputs(usage, stderr);
    return 2;
}
