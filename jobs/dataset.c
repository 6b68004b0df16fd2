/*
 * dataset.c - the dataset file format (see dataset.h): the mapped reader
 * and the atomic writer. The importers that fill the writer from CIFAR-10,
 * Fashion-MNIST, PNG folders and PNGs in memory are in dataset_import.c.
 *
 * Trainers read a dataset through a read-only mmap and never copy it; that
 * is safe because a dataset file is never changed in place: the writer fills
 * a temporary file beside the target, fsyncs it and renames it over the
 * target, so a mapping always sees one complete file (and a crash leaves
 * either the old file or the new one).
 */
#include "jobs/dataset.h"

#include "util/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "CODIDSET"
/* Whole dataset file: more than any source we import, far less than a disk. */
#define MAX_FILE_BYTES ((uint64_t)64 << 30)

static uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int jobs_dataset_shape_valid(uint32_t h, uint32_t w, uint32_t c) {
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
    else if (!jobs_dataset_shape_valid(height, width, channels))
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

int jobs_dataset_writer_open(jobs_dataset_writer *w, const char *path, int height, int width, int channels,
                             int has_labels, char *msg, size_t msgsz) {
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

void jobs_dataset_writer_abort(jobs_dataset_writer *w) {
    if (w->fp) {
        fclose(w->fp);
        unlink(w->tmp);
    }
    free(w->labels);
    memset(w, 0, sizeof *w);
}

int jobs_dataset_writer_add(jobs_dataset_writer *w, const uint8_t *pixels, int label, char *msg, size_t msgsz) {
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

int jobs_dataset_writer_finish(jobs_dataset_writer *w, char *msg, size_t msgsz) {
    if (w->count == 0) {
        util_msg(msg, msgsz, 0, "no image could be imported");
        jobs_dataset_writer_abort(w);
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
        jobs_dataset_writer_abort(w);
        return -1;
    }
    int rc = fclose(w->fp);
    w->fp = NULL;
    if (rc != 0 || rename(w->tmp, w->path) != 0) {
        util_msg(msg, msgsz, 0, "%s: %s", w->path, strerror(errno));
        unlink(w->tmp);
        jobs_dataset_writer_abort(w);
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
