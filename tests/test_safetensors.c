/*
 * test_safetensors.c - the safetensors reader, writer and float conversions.
 *
 * Malformed files are built byte by byte here and fed both to st_parse (from
 * a buffer of exactly the file's size, so a sanitizer sees any over-read) and
 * to st_open (from a file in a mkdtemp directory); both must refuse them with
 * the same code and message. The conversions are checked against a reference that finds
 * the nearest half / bfloat16 value by binary search over all of them.
 */
#include "engine/safetensors.h"
#include "tests/test.h"

#include <dirent.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static void path_in_dir(char *out, size_t sz, const char *name) {
    snprintf(out, sz, "%s/%s", g_dir, name);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

static int write_all(const char *path, const uint8_t *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = fwrite(b, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* st_parse on an exact-size copy of the bytes. */
static int parse_copy(const uint8_t *bytes, size_t n, st_file *f, char *msg, size_t msgsz) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, bytes, n);
    return st_parse(copy, n, f, msg, msgsz);
}

static int is_empty(const st_file *f) {
    return !f->tensors && !f->count && !f->metadata_json && !f->buf && !f->size;
}

/* Parses the bytes both ways and returns the code; 1000 when the two ways
 * disagree or a failure leaves something behind in the st_file. */
static int try_bytes(const uint8_t *bytes, size_t n, char *msg, size_t msgsz) {
    st_file f;
    msg[0] = '\0';
    int rc = parse_copy(bytes, n, &f, msg, msgsz);
    if (rc != ST_OK && !is_empty(&f)) return 1000;
    st_close(&f);

    char path[128], omsg[1024];
    path_in_dir(path, sizeof path, "case.safetensors");
    if (write_all(path, bytes, n) != 0) return 1000;
    int orc = st_open(path, &f, omsg, sizeof omsg);
    if (orc != rc) {
        snprintf(msg, msgsz, "st_parse gave %d, st_open %d (%.200s)", rc, orc, omsg);
        return 1000;
    }
    if (orc != ST_OK && (!is_empty(&f) || strcmp(omsg, msg) != 0)) return 1000;
    st_close(&f);
    return rc;
}

/* A file made of the 8-byte length, the header text and datalen bytes. */
static int try_header(const char *hdr, size_t datalen, char *msg, size_t msgsz) {
    size_t hl = strlen(hdr), n = 8 + hl + datalen;
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < datalen; i++) b[8 + hl + i] = (uint8_t)i;
    int rc = try_bytes(b, n, msg, msgsz);
    free(b);
    return rc;
}

#define ENT(name, dtype, shape, offs) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

/* Checks that the header is refused with code and a message containing what. */
#define CHECK_REFUSED(hdr, datalen, code, what)                                              \
    do {                                                                                     \
        char m_[1024];                                                                       \
        int rc_ = try_header(hdr, datalen, m_, sizeof m_);                                   \
        CHECK_MSG(rc_ == (code), "%s: got %d (%s), expected %d", hdr, rc_, m_, (int)(code)); \
        CHECK_MSG(strstr(m_, what), "%s: message '%s' lacks '%s'", hdr, m_, what);           \
    } while (0)

/* ------------------------------------------------------------ round trips */

TEST(round_trip_every_dtype) {
    float a[6] = {1.5f, -2.25f, 0.0f, 3e-8f, 65504.0f, -1e30f};
    uint16_t h[4], bf[4];
    float hv[4] = {1.0f, -0.5f, 0.333251953125f, 65504.0f};
    float bv[4] = {1.0f, -3.140625f, 1e30f, -0.0f};
    for (int i = 0; i < 4; i++) {
        h[i] = st_f32_to_f16(hv[i]);
        bf[i] = st_f32_to_bf16(bv[i]);
    }
    float scalar = 42.0f;
    int64_t sa[2] = {2, 3}, sh[1] = {4}, sb[2] = {2, 2}, sz[2] = {0, 5};

    st_writer *w = st_writer_new();
    CHECK(w);
    CHECK_EQ_INT(st_writer_add(w, "zeta.weight", ST_F32, 2, sa, a, sizeof a), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "half", ST_F16, 1, sh, h, sizeof h), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "brain", ST_BF16, 2, sb, bf, sizeof bf), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar, sizeof scalar), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "empty", ST_F16, 2, sz, NULL, 0), ST_OK);
    CHECK_EQ_INT(st_writer_set_metadata(w, "task", "canny"), ST_OK);
    CHECK_EQ_INT(st_writer_set_metadata(w, "odd", "q\"b\\s\nnl\ttab \x01 h\xc3\xa9"), ST_OK);
    CHECK_EQ_INT(st_writer_set_metadata(w, "task", "depth"), ST_OK);

    char path[128], tmp[140], msg[512];
    path_in_dir(path, sizeof path, "rt.safetensors");
    CHECK_MSG(st_writer_save(w, path, msg, sizeof msg) == ST_OK, "save: %s", msg);
    st_writer_free(w);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    /* layout: 8-byte aligned data area, tensors in insertion order */
    size_t n;
    uint8_t *raw = read_all(path, &n);
    CHECK(raw && n > 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    CHECK_EQ_INT((8 + hl) % 8, 0);
    CHECK_EQ_INT(n, 8 + hl + sizeof a + sizeof h + sizeof bf + sizeof scalar);
    CHECK_EQ_INT(raw[8], '{');
    char *hdr = strndup((const char *)raw + 8, hl);
    free(raw);
    const char *pz = strstr(hdr, "\"zeta.weight\""), *ph = strstr(hdr, "\"half\"");
    const char *pb = strstr(hdr, "\"brain\""), *ps = strstr(hdr, "\"scalar\"");
    int ordered = pz && ph && pb && ps && pz < ph && ph < pb && pb < ps;
    int offsets = strstr(hdr, "\"data_offsets\":[0,24]") && strstr(hdr, "\"data_offsets\":[24,32]") &&
                  strstr(hdr, "\"data_offsets\":[32,40]") && strstr(hdr, "\"data_offsets\":[40,44]") &&
                  strstr(hdr, "\"data_offsets\":[44,44]");
    free(hdr);
    CHECK(ordered);
    CHECK(offsets);

    st_file f;
    CHECK_MSG(st_open(path, &f, msg, sizeof msg) == ST_OK, "open: %s", msg);
    CHECK_EQ_INT(f.count, 5);
    for (size_t i = 1; i < f.count; i++) CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);

    const st_tensor *t = st_find(&f, "zeta.weight");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t->nbytes == sizeof a && memcmp(t->data, a, sizeof a) == 0);
    t = st_find(&f, "half");
    CHECK(t && t->dtype == ST_F16 && t->ndim == 1 && t->shape[0] == 4);
    CHECK(t->nbytes == sizeof h && memcmp(t->data, h, sizeof h) == 0);
    t = st_find(&f, "brain");
    CHECK(t && t->dtype == ST_BF16 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2);
    CHECK(t->nbytes == sizeof bf && memcmp(t->data, bf, sizeof bf) == 0);
    t = st_find(&f, "scalar");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 0 && t->nbytes == 4);
    float sv;
    memcpy(&sv, t->data, 4);
    CHECK_EQ_INT(sv, 42);
    t = st_find(&f, "empty");
    CHECK(t && t->dtype == ST_F16 && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5);
    CHECK_EQ_INT(t->nbytes, 0);
    CHECK(st_find(&f, "nope") == NULL);
    CHECK(st_find(&f, "hal") == NULL);

    char v[64];
    CHECK_EQ_STR(st_metadata_get(&f, "task", v, sizeof v), "depth");
    CHECK_EQ_STR(st_metadata_get(&f, "odd", v, sizeof v), "q\"b\\s\nnl\ttab \x01 h\xc3\xa9");
    CHECK(st_metadata_get(&f, "missing", v, sizeof v) == NULL);
    CHECK(st_metadata_get(&f, "task", v, 5) == NULL); /* "depth" needs 6 bytes */
    CHECK_EQ_STR(st_metadata_get(&f, "task", v, 6), "depth");
    CHECK(f.metadata_json && f.metadata_json[0] == '{' && !strchr(f.metadata_json, '\n'));
    CHECK(strstr(f.metadata_json, "\"task\":\"depth\""));
    st_close(&f);
    st_close(&f); /* closing twice is harmless */
}

TEST(empty_file_and_no_metadata) {
    st_writer *w = st_writer_new();
    char path[128], msg[256], v[16];
    path_in_dir(path, sizeof path, "empty.safetensors");
    CHECK_EQ_INT(st_writer_save(w, path, msg, sizeof msg), ST_OK);
    st_writer_free(w);
    st_file f;
    CHECK_EQ_INT(st_open(path, &f, msg, sizeof msg), ST_OK);
    CHECK_EQ_INT(f.count, 0);
    CHECK_EQ_INT(f.size, 16); /* "{}" padded to 8 bytes */
    CHECK(f.metadata_json == NULL);
    CHECK(st_metadata_get(&f, "task", v, sizeof v) == NULL);
    CHECK(st_find(&f, "x") == NULL);
    st_close(&f);
}

TEST(save_replaces_and_reports_io_errors) {
    float one[1] = {1}, two[2] = {2, 3};
    int64_t s1[1] = {1}, s2[1] = {2};
    char path[128], msg[256];
    path_in_dir(path, sizeof path, "replace.safetensors");

    st_writer *w = st_writer_new();
    CHECK_EQ_INT(st_writer_add(w, "x", ST_F32, 1, s1, one, sizeof one), ST_OK);
    CHECK_EQ_INT(st_writer_save(w, path, msg, sizeof msg), ST_OK);
    st_writer_free(w);
    w = st_writer_new();
    CHECK_EQ_INT(st_writer_add(w, "y", ST_F32, 1, s2, two, sizeof two), ST_OK);
    CHECK_EQ_INT(st_writer_save(w, path, msg, sizeof msg), ST_OK);

    st_file f;
    CHECK_EQ_INT(st_open(path, &f, msg, sizeof msg), ST_OK);
    CHECK(f.count == 1 && st_find(&f, "y") && !st_find(&f, "x"));
    st_close(&f);

    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", g_dir);
    msg[0] = '\0';
    CHECK_EQ_INT(st_writer_save(w, bad, msg, sizeof msg), ST_EIO);
    CHECK(strstr(msg, "cannot create") && strstr(msg, "No such file"));
    st_writer_free(w);
}

TEST(set_metadata_keeps_tensors_and_other_keys) {
    float a[3] = {1, 2, 3};
    uint16_t b[2] = {0x3c00, 0xc000};
    int64_t sa[1] = {3}, sb[2] = {1, 2};
    char path[128], msg[256], v[32];
    path_in_dir(path, sizeof path, "meta.safetensors");
    st_writer *w = st_writer_new();
    CHECK_EQ_INT(st_writer_add(w, "a", ST_F32, 1, sa, a, sizeof a), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F16, 2, sb, b, sizeof b), ST_OK);
    CHECK_EQ_INT(st_writer_set_metadata(w, "task", "sr"), ST_OK);
    CHECK_EQ_INT(st_writer_save(w, path, msg, sizeof msg), ST_OK);
    st_writer_free(w);

    CHECK_EQ_INT(st_set_metadata_file(path, "eval", "{\"psnr\": 20.5}", msg, sizeof msg), ST_OK);
    CHECK_EQ_INT(st_set_metadata_file(path, "task", "inpaint", msg, sizeof msg), ST_OK);
    st_file f;
    CHECK_EQ_INT(st_open(path, &f, msg, sizeof msg), ST_OK);
    const st_tensor *ta = st_find(&f, "a"), *tb = st_find(&f, "b");
    CHECK(f.count == 2 && ta && tb);
    CHECK(ta && ta->dtype == ST_F32 && ta->ndim == 1 && memcmp(ta->data, a, sizeof a) == 0);
    CHECK(tb && tb->dtype == ST_F16 && tb->ndim == 2 && tb->shape[1] == 2 && memcmp(tb->data, b, sizeof b) == 0);
    CHECK(st_metadata_get(&f, "eval", v, sizeof v) && strcmp(v, "{\"psnr\": 20.5}") == 0);
    CHECK(st_metadata_get(&f, "task", v, sizeof v) && strcmp(v, "inpaint") == 0);
    st_close(&f);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", g_dir);
    CHECK(st_set_metadata_file(missing, "k", "v", msg, sizeof msg) != ST_OK);
    CHECK(access(missing, F_OK) != 0);
}

TEST(writer_refuses_bad_tensors) {
    float d[6] = {0};
    int64_t s23[2] = {2, 3}, neg[2] = {-2, -3}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    st_writer *w = st_writer_new();
    CHECK_EQ_INT(st_writer_add(w, "a", ST_F32, 2, s23, d, sizeof d), ST_OK);
    CHECK_EQ_INT(st_writer_add(w, "a", ST_F32, 2, s23, d, sizeof d), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, 2, s23, d, sizeof d - 4), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F16, 2, s23, d, sizeof d), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, 2, neg, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, 9, nine, d, 4), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, -1, NULL, d, 4), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, 2, NULL, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_F32, 2, s23, NULL, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", (st_dtype)7, 2, s23, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "", ST_F32, 2, s23, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, NULL, ST_F32, 2, s23, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "__metadata__", ST_F32, 2, s23, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "bad\xff", ST_F32, 2, s23, d, 24), ST_EINVAL);
    CHECK_EQ_INT(st_writer_set_metadata(w, "k", "\xc3"), ST_EINVAL);
    CHECK_EQ_INT(st_writer_set_metadata(w, NULL, "v"), ST_EINVAL);
    CHECK_EQ_INT(st_writer_add(w, "b", ST_BF16, 2, s23, d, 12), ST_OK);

    char path[128], msg[256];
    path_in_dir(path, sizeof path, "refuse.safetensors");
    CHECK_EQ_INT(st_writer_save(w, path, msg, sizeof msg), ST_OK);
    st_writer_free(w);
    st_file f;
    CHECK_EQ_INT(st_open(path, &f, msg, sizeof msg), ST_OK);
    CHECK_EQ_INT(f.count, 2);
    st_close(&f);
}

/* ------------------------------------------------------- malformed files */

TEST(refuses_short_and_bad_length_prefix) {
    char m[512];
    uint8_t b[32] = {0};
    CHECK_EQ_INT(try_bytes(b, 0, m, sizeof m), ST_ETRUNC);
    CHECK_EQ_INT(try_bytes(b, 7, m, sizeof m), ST_ETRUNC);
    CHECK(strstr(m, "7 bytes"));
    /* header length 0 */
    CHECK_EQ_INT(try_bytes(b, 8, m, sizeof m), ST_EHEADER);
    /* header length larger than the file */
    b[0] = 100;
    memcpy(b + 8, "{}", 2);
    CHECK_EQ_INT(try_bytes(b, 10, m, sizeof m), ST_ETRUNC);
    CHECK(strstr(m, "100"));
    /* header length past the cap, and the largest possible one */
    uint64_t big = (uint64_t)ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(big >> (8 * i));
    CHECK_EQ_INT(try_bytes(b, sizeof b, m, sizeof m), ST_EHEADER);
    CHECK(strstr(m, "cap"));
    memset(b, 0xff, 8);
    CHECK_EQ_INT(try_bytes(b, sizeof b, m, sizeof m), ST_EHEADER);
}

TEST(refuses_bad_json) {
    CHECK_REFUSED("{nope", 0, ST_EHEADER, "not valid JSON");
    CHECK_REFUSED("{\"a\":", 0, ST_EHEADER, "not valid JSON");
    CHECK_REFUSED("[1,2]", 0, ST_EHEADER, "'{'");
    CHECK_REFUSED("\"str\"", 0, ST_EHEADER, "'{'");
    CHECK_REFUSED(" {}", 0, ST_EHEADER, "'{'");
    CHECK_REFUSED("{}x", 0, ST_EHEADER, "after its JSON object");
    CHECK_REFUSED("{}{}", 0, ST_EHEADER, "after its JSON object");
    CHECK_REFUSED("{\"\xff\":1}", 0, ST_EHEADER, "UTF-8");
    CHECK_REFUSED("{\"\xc0\xaf\":1}", 0, ST_EHEADER, "UTF-8"); /* overlong '/' */
    CHECK_REFUSED("{\"a\x01\":5}", 0, ST_EHEADER, "control byte 0x01 at byte 3");
    char m[512];
    static const uint8_t nul_in_key[] = {11, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', 0, 'b', '"', ':', '{', '}', '}', ' '};
    CHECK_EQ_INT(try_bytes(nul_in_key, sizeof nul_in_key, m, sizeof m), ST_EHEADER);
    CHECK(strstr(m, "control byte 0x00"));
    CHECK_REFUSED("{\"a\":5}", 0, ST_EHEADER, "tensor 'a': entry is not a JSON object");
    CHECK_REFUSED("{" ENT("a", "F32", "[1]", "[0,4]") "," ENT("a", "F32", "[1]", "[4,8]") "}", 8, ST_EHEADER,
                  "duplicate key 'a'");
    CHECK_REFUSED("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ST_EHEADER,
                  "duplicate key 'dtype'");
    CHECK_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, ST_EHEADER, "missing key 'data_offsets'");
    CHECK_REFUSED("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, ST_EHEADER,
                  "unknown key 'x'");

    /* nesting far past cJSON's limit must fail, not overflow the stack */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 16);
    strcpy(deep, "{\"a\":");
    size_t len = strlen(deep);
    for (size_t i = 0; i < depth; i++) deep[len++] = '[';
    for (size_t i = 0; i < depth; i++) deep[len++] = ']';
    deep[len++] = '}';
    deep[len] = '\0';
    int rc = try_header(deep, 0, m, sizeof m);
    free(deep);
    CHECK_EQ_INT(rc, ST_EHEADER);

    /* padding after the object is whitespace, which is fine */
    CHECK_EQ_INT(try_header("{}  \n\t ", 0, m, sizeof m), ST_OK);
}

TEST(refuses_unknown_dtypes) {
    CHECK_REFUSED("{" ENT("w", "I64", "[1]", "[0,8]") "}", 8, ST_EDTYPE, "tensor 'w': dtype 'I64'");
    CHECK_REFUSED("{" ENT("w", "F64", "[1]", "[0,8]") "}", 8, ST_EDTYPE, "'F64'");
    CHECK_REFUSED("{" ENT("w", "U8", "[1]", "[0,1]") "}", 1, ST_EDTYPE, "'U8'");
    CHECK_REFUSED("{" ENT("w", "f32", "[1]", "[0,4]") "}", 4, ST_EDTYPE, "'f32'");
    CHECK_REFUSED("{" ENT("w", "", "[1]", "[0,4]") "}", 4, ST_EDTYPE, "''");
    CHECK_REFUSED("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ST_EHEADER, "dtype is not a string");
}

TEST(refuses_bad_shapes) {
    CHECK_REFUSED("{" ENT("w", "F32", "[-1,2]", "[0,8]") "}", 8, ST_EHEADER, "shape[0]");
    CHECK_REFUSED("{" ENT("w", "F32", "[2,-3]", "[0,8]") "}", 8, ST_EHEADER, "shape[1]");
    CHECK_REFUSED("{" ENT("w", "F32", "[2.5]", "[0,8]") "}", 8, ST_EHEADER, "shape[0]");
    CHECK_REFUSED("{" ENT("w", "F32", "[\"2\"]", "[0,8]") "}", 8, ST_EHEADER, "shape[0]");
    CHECK_REFUSED("{" ENT("w", "F32", "[1e300]", "[0,8]") "}", 8, ST_EHEADER, "shape[0]");
    CHECK_REFUSED("{" ENT("w", "F32", "2", "[0,8]") "}", 8, ST_EHEADER, "shape is not an array");
    CHECK_REFUSED("{" ENT("w", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, ST_EHEADER, "more than 8 dims");
    CHECK_REFUSED("{" ENT("w", "F32", "[4294967296,4294967296,4294967296]", "[0,8]") "}", 8, ST_ESIZE, "overflows");
    /* a zero dim makes the tensor empty whatever the others say */
    char m[512];
    CHECK_EQ_INT(try_header("{" ENT("w", "F32", "[4294967296,4294967296,0]", "[0,0]") "}", 0, m, sizeof m), ST_OK);
    CHECK_EQ_INT(try_header("{" ENT("w", "F32", "[1,1,1,1,1,1,1,2]", "[0,8]") "}", 8, m, sizeof m), ST_OK);
}

TEST(refuses_bad_offsets) {
    /* not integers */
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[0.5,8.5]") "}", 8, ST_EHEADER, "data_offsets");
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[\"0\",\"8\"]") "}", 8, ST_EHEADER, "data_offsets");
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[-8,0]") "}", 8, ST_EHEADER, "data_offsets");
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[0,8,8]") "}", 8, ST_EHEADER, "data_offsets");
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[0]") "}", 8, ST_EHEADER, "data_offsets");
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "{}") "}", 8, ST_EHEADER, "data_offsets");
    /* out of range, reversed */
    CHECK_REFUSED("{" ENT("w", "F32", "[2]", "[100,108]") "}", 8, ST_EOFFSET,
                  "tensor 'w': data_offsets [100,108] lie outside the data area of 8 bytes");
    CHECK_REFUSED("{" ENT("w", "F32", "[0]", "[9,9]") "}", 8, ST_EOFFSET, "outside");
    CHECK_REFUSED("{" ENT("w", "F32", "[0]", "[8,0]") "}", 8, ST_EOFFSET, "end before they begin");
    /* overlap, gap, trailing bytes, no tensors but data */
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("b", "F32", "[2]", "[4,12]") "}", 12, ST_EOFFSET,
                  "tensor 'b': data_offsets [4,12] overlap tensor 'a', which ends at 8");
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("z", "F32", "[0]", "[4,4]") "}", 8, ST_EOFFSET,
                  "overlap");
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("b", "F32", "[2]", "[12,20]") "}", 20, ST_EOFFSET,
                  "gap in the data area: bytes [8,12)");
    CHECK_REFUSED("{" ENT("b", "F32", "[2]", "[4,12]") "}", 12, ST_EOFFSET, "gap");
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "}", 12, ST_EOFFSET, "4 trailing bytes");
    CHECK_REFUSED("{}", 3, ST_EOFFSET, "3 trailing bytes");
    /* truncated data: the ranges tile but the file ends early */
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("b", "F32", "[2]", "[8,16]") "}", 12, ST_ETRUNC,
                  "tensor 'b': data_offsets [8,16] run past the end of the file");
    CHECK_REFUSED("{" ENT("a", "F32", "[2]", "[0,8]") "}", 0, ST_ETRUNC, "past the end");
    /* order in the header does not matter, nor do empty tensors in place */
    char m[512];
    CHECK_EQ_INT(try_header("{" ENT("b", "F16", "[2]", "[8,12]") "," ENT("z", "BF16", "[0,3]", "[8,8]") "," ENT(
                                "a", "F32", "[2]", "[0,8]") "," ENT("e", "F32", "[0]", "[12,12]") "}",
                            12, m, sizeof m),
                 ST_OK);
}

TEST(refuses_wrong_byte_count) {
    CHECK_REFUSED("{" ENT("conv_in.weight", "F32", "[3,3]", "[0,100]") "}", 100, ST_ESIZE, "");
    char m[512];
    try_header("{" ENT("conv_in.weight", "F32", "[3,3]", "[0,100]") "}", 100, m, sizeof m);
    CHECK_EQ_STR(m, "tensor 'conv_in.weight': data_offsets [0,100] hold 100 bytes, "
                    "shape [3,3] of F32 needs 36");
    CHECK_REFUSED("{" ENT("s", "BF16", "[]", "[0,4]") "}", 4, ST_ESIZE, "hold 4 bytes, shape [] of BF16 needs 2");
    CHECK_REFUSED("{" ENT("h", "F16", "[2]", "[0,8]") "}", 8, ST_ESIZE, "needs 4");
}

TEST(refuses_bad_metadata) {
    CHECK_REFUSED("{\"__metadata__\":{\"a\":1}}", 0, ST_EHEADER, "value of 'a' is not a string");
    CHECK_REFUSED("{\"__metadata__\":{\"a\":\"x\",\"b\":null}}", 0, ST_EHEADER, "'b'");
    CHECK_REFUSED("{\"__metadata__\":{\"a\":{\"n\":\"x\"}}}", 0, ST_EHEADER, "'a'");
    CHECK_REFUSED("{\"__metadata__\":\"x\"}", 0, ST_EHEADER, "__metadata__ is not a JSON object");
    CHECK_REFUSED("{\"__metadata__\":[]}", 0, ST_EHEADER, "__metadata__ is not a JSON object");
    CHECK_REFUSED("{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", 0, ST_EHEADER, "duplicate key 'a' in __metadata__");
    CHECK_REFUSED("{\"__metadata__\":{},\"__metadata__\":{}}", 0, ST_EHEADER, "duplicate key");

    /* a valid one is kept, re-serialised without formatting */
    const char *hdr = "{ \"__metadata__\" : { \"k\" : \"v\",\n \"e\":\"\" }, " ENT("a", "F32", "[1]", "[0,4]") " }";
    size_t hl = strlen(hdr), n = 8 + hl + 4;
    uint8_t *b = calloc(1, n);
    b[0] = (uint8_t)hl;
    memcpy(b + 8, hdr, hl);
    st_file f;
    char m[256], v[8];
    CHECK_EQ_INT(parse_copy(b, n, &f, m, sizeof m), ST_OK);
    free(b);
    CHECK_EQ_STR(f.metadata_json, "{\"k\":\"v\",\"e\":\"\"}");
    CHECK_EQ_STR(st_metadata_get(&f, "k", v, sizeof v), "v");
    CHECK_EQ_STR(st_metadata_get(&f, "e", v, sizeof v), "");
    CHECK(st_metadata_get(&f, "K", v, sizeof v) == NULL);
    st_close(&f);
}

TEST(open_reports_missing_files) {
    st_file f;
    char m[512];
    CHECK_EQ_INT(st_open("/nonexistent/codid/x.safetensors", &f, m, sizeof m), ST_EIO);
    CHECK(strstr(m, "No such file"));
    CHECK(is_empty(&f));
    CHECK_EQ_INT(st_open(g_dir, &f, m, sizeof m), ST_EIO);
    CHECK(strstr(m, "not a regular file"));
    CHECK(is_empty(&f));
    CHECK_EQ_INT(st_parse(NULL, 5, &f, m, sizeof m), ST_EINVAL);
    CHECK_EQ_INT(st_parse(malloc(4), 4, NULL, m, sizeof m), ST_EINVAL); /* frees the buffer */
    CHECK_EQ_INT(st_parse(NULL, 0, &f, NULL, 0), ST_ETRUNC);            /* no message buffer */
}

/* ----------------------------------------------------------------- fuzz */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* What a successful parse promises, checked on whatever the fuzzer got through. */
static int file_is_consistent(const st_file *f) {
    uint64_t hl = 0, sum = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | f->buf[i];
    const uint8_t *data = f->buf + 8 + hl, *end = f->buf + f->size;
    for (size_t i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        uint64_t elems = 1;
        for (int d = 0; d < t->ndim; d++) elems *= (uint64_t)t->shape[d];
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || elems * st_dtype_size(t->dtype) != t->nbytes) return 0;
        if (t->data < data || t->data > end || (size_t)(end - t->data) < t->nbytes) return 0;
        if (i && strcmp(f->tensors[i - 1].name, t->name) >= 0) return 0;
        if (st_find(f, t->name) != t) return 0;
        sum += t->nbytes;
    }
    return sum == (uint64_t)(end - data);
}

TEST(fuzz_mutations_never_crash) {
    float a[12];
    uint16_t h[5], bf[3];
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f - 2.0f;
    for (int i = 0; i < 5; i++) h[i] = st_f32_to_f16((float)i);
    for (int i = 0; i < 3; i++) bf[i] = st_f32_to_bf16((float)-i);
    int64_t sa[3] = {2, 3, 2}, sh[1] = {5}, sb[2] = {3, 1}, sz[1] = {0};
    st_writer *w = st_writer_new();
    st_writer_add(w, "down_blocks.0.resnets.0.conv1.weight", ST_F32, 3, sa, a, sizeof a);
    st_writer_add(w, "h", ST_F16, 1, sh, h, sizeof h);
    st_writer_add(w, "b", ST_BF16, 2, sb, bf, sizeof bf);
    st_writer_add(w, "z", ST_F32, 1, sz, NULL, 0);
    st_writer_set_metadata(w, "task", "canny");
    st_writer_set_metadata(w, "base", "0123abcd");
    char path[128], m[512];
    path_in_dir(path, sizeof path, "fuzz.safetensors");
    CHECK_EQ_INT(st_writer_save(w, path, m, sizeof m), ST_OK);
    st_writer_free(w);
    size_t n;
    uint8_t *orig = read_all(path, &n);
    CHECK(orig);
    size_t hl = orig[0] | (size_t)orig[1] << 8;

    static const char json_chars[] = "{}[]\",:-.eE0123456789 \\u\x80\xff";
    uint8_t *mut = malloc(n + 64);
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(mut, orig, n);
        size_t len = n;
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t hdr_pos = 8 + rng() % hl;
            switch (rng() % 6) {
                case 0:
                    if (len) mut[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
                    break;
                case 1: mut[hdr_pos < len ? hdr_pos : 0] ^= (uint8_t)(1u << (rng() % 8)); break;
                case 2:
                    if (hdr_pos < len) mut[hdr_pos] = (uint8_t)json_chars[rng() % (sizeof json_chars - 1)];
                    break;
                case 3: len = rng() % (len + 1); break;
                case 4: mut[rng() % 8] = (uint8_t)rng(); break;
                case 5: {
                    size_t extra = rng() % (n + 64 - len + 1);
                    for (size_t i = 0; i < extra; i++) mut[len + i] = (uint8_t)rng();
                    len += extra;
                    break;
                }
            }
        }
        st_file f;
        int rc = parse_copy(mut, len, &f, m, sizeof m);
        if (rc == ST_OK) {
            ok++;
            CHECK_MSG(file_is_consistent(&f), "iteration %d parsed into an inconsistent file", iter);
            char v[32];
            st_metadata_get(&f, "task", v, sizeof v);
        } else {
            bad++;
            CHECK_MSG(is_empty(&f) && m[0] && rc >= ST_EINVAL && rc < 0, "iteration %d: code %d, message '%s'", iter,
                      rc, m);
        }
        st_close(&f);
    }
    free(mut);
    free(orig);
    CHECK_MSG(ok > 0 && bad > 0, "%d parsed, %d refused", ok, bad);
}

/* ----------------------------------------------------------- conversions */

/* Values of every half / bfloat16 bit pattern, decoded independently of the
 * code under test; the infinity pattern stands for 2^(emax+1) so that the
 * rounding midpoint of the largest finite value comes out right. */
static double half_value(uint32_t h) {
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e ? ldexp(1024.0 + m, (int)e - 25) : ldexp(m, -24);
}

static double bf16_value(uint32_t h) {
    uint32_t e = (h >> 7) & 0xff, m = h & 0x7f;
    return e ? ldexp(128.0 + m, (int)e - 134) : ldexp(m, -133);
}

/* Nearest pattern in [0, inf_bits] to |x|, ties to even, plus x's sign. */
static uint16_t reference_round(float x, double (*value)(uint32_t), uint32_t inf_bits) {
    double ax = fabs((double)x);
    uint32_t lo = 0, hi = inf_bits;
    if (ax >= value(inf_bits)) lo = inf_bits;
    while (hi - lo > 1) { /* value(lo) <= ax < value(hi) */
        uint32_t mid = lo + (hi - lo) / 2;
        if (value(mid) <= ax)
            lo = mid;
        else
            hi = mid;
    }
    uint32_t r = lo;
    if (lo != inf_bits && value(lo) != ax) {
        double mid = (value(lo) + value(hi)) / 2;
        r = ax < mid ? lo : ax > mid ? hi : (lo & 1 ? hi : lo);
    }
    return (uint16_t)(r | (signbit(x) ? 0x8000 : 0));
}

TEST(f16_special_values) {
    CHECK_EQ_INT(st_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(st_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(st_f32_to_f16(0.0f), 0x0000);
    CHECK_EQ_INT(st_f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(st_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(st_f32_to_f16(65519.996f), 0x7bff);
    CHECK_EQ_INT(st_f32_to_f16(65520.0f), 0x7c00); /* the tie goes to even: infinity */
    CHECK_EQ_INT(st_f32_to_f16(1e10f), 0x7c00);
    CHECK_EQ_INT(st_f32_to_f16(-1e10f), 0xfc00);
    CHECK_EQ_INT(st_f32_to_f16(INFINITY), 0x7c00);
    CHECK_EQ_INT(st_f32_to_f16(-INFINITY), 0xfc00);
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(1, -14)), 0x0400);    /* smallest normal */
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(1023, -24)), 0x03ff); /* largest subnormal */
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(1, -24)), 0x0001);    /* smallest subnormal */
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(1, -25)), 0x0000);    /* tie: to even zero */
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(3, -26)), 0x0001);    /* 0.75 ulp */
    CHECK_EQ_INT(st_f32_to_f16(ldexpf(3, -25)), 0x0002);    /* tie at 1.5 ulp: to 2 */
    CHECK_EQ_INT(st_f32_to_f16(-ldexpf(1, -30)), 0x8000);   /* underflow keeps the sign */
    CHECK_EQ_INT(st_f32_to_f16(FLT_TRUE_MIN), 0x0000);
    CHECK_EQ_INT(st_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);              /* tie: to even */
    CHECK_EQ_INT(st_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02);              /* tie: to even */
    CHECK_EQ_INT(st_f32_to_f16(2047.0f / 1024.0f + ldexpf(1, -11)), 0x4000); /* carry into exponent */

    uint16_t n = st_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff));
    uint32_t snan_bits = 0xff800001; /* payload only in bits a plain shift drops */
    float snan;
    memcpy(&snan, &snan_bits, 4);
    n = st_f32_to_f16(snan);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) && (n & 0x8000));

    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0xfc01)));
    CHECK(st_f16_to_f32(0x8000) == 0 && signbit(st_f16_to_f32(0x8000)));
    CHECK_EQ_INT(st_f16_to_f32(0x0001) == ldexpf(1, -24), 1);
    CHECK_NEAR(st_f16_to_f32(0x3555), 0.333251953125, 0);
}

TEST(f16_matches_reference_rounding) {
    /* every pattern decodes exactly and encodes back to itself */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        float f = st_f16_to_f32((uint16_t)h);
        double want = (h & 0x7fff) == 0x7c00 ? INFINITY : half_value(h & 0x7fff);
        CHECK_MSG(fabs((double)f) == want && !!signbit(f) == !!(h & 0x8000), "decode %04x", h);
        CHECK_MSG(st_f32_to_f16(f) == h, "round trip %04x", h);
    }
    /* each midpoint between neighbours and the floats either side of it */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float mid = (float)((half_value(h) + half_value(h + 1)) / 2);
        float probes[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++) {
            for (int s = 0; s < 2; s++) {
                float x = s ? -probes[k] : probes[k];
                uint16_t want = reference_round(x, half_value, 0x7c00);
                CHECK_MSG(st_f32_to_f16(x) == want, "f16(%a) = %04x, want %04x", (double)x, st_f32_to_f16(x), want);
            }
        }
    }
    /* random bit patterns over the whole float range */
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)rng();
        float x;
        memcpy(&x, &bits, 4);
        if (isnan(x)) continue;
        uint16_t want = reference_round(x, half_value, 0x7c00);
        CHECK_MSG(st_f32_to_f16(x) == want, "f16(%a) = %04x, want %04x", (double)x, st_f32_to_f16(x), want);
    }
}

TEST(bf16_matches_reference_rounding) {
    CHECK_EQ_INT(st_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(st_f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_INT(st_f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(st_f32_to_bf16(-INFINITY), 0xff80);
    CHECK_EQ_INT(st_f32_to_bf16(FLT_MAX), 0x7f80);              /* rounds up to infinity */
    CHECK_EQ_INT(st_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80); /* tie: to even */
    CHECK_EQ_INT(st_f32_to_bf16(1.0f + ldexpf(3, -8)), 0x3f82); /* tie: to even */
    CHECK_EQ_INT(st_f32_to_bf16(FLT_TRUE_MIN), 0x0000);
    CHECK(st_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(st_bf16_to_f32(0x7fc0)) && isinf(st_bf16_to_f32(0xff80)));

    uint32_t nan_bits[4] = {0x7fc00000, 0xffc00000, 0x7f800001, 0xff800100};
    for (int i = 0; i < 4; i++) {
        float x;
        memcpy(&x, &nan_bits[i], 4);
        uint16_t b = st_f32_to_bf16(x);
        CHECK_MSG((b & 0x7f80) == 0x7f80 && (b & 0x7f), "nan %08x became %04x", nan_bits[i], b);
        CHECK_EQ_INT(b >> 15, nan_bits[i] >> 31);
        CHECK(isnan(st_bf16_to_f32(b)));
    }
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        float f = st_bf16_to_f32((uint16_t)h);
        double want = (h & 0x7fff) == 0x7f80 ? INFINITY : bf16_value(h & 0x7fff);
        CHECK_MSG(fabs((double)f) == want && !!signbit(f) == !!(h & 0x8000), "decode %04x", h);
        CHECK_MSG(st_f32_to_bf16(f) == h, "round trip %04x", h);
    }
    for (uint32_t h = 0; h < 0x7f80; h++) {
        float mid = (float)((bf16_value(h) + bf16_value(h + 1)) / 2);
        float probes[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++) {
            uint16_t want = reference_round(probes[k], bf16_value, 0x7f80);
            CHECK_MSG(st_f32_to_bf16(probes[k]) == want, "bf16(%a) = %04x, want %04x", (double)probes[k],
                      st_f32_to_bf16(probes[k]), want);
        }
    }
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)rng();
        float x;
        memcpy(&x, &bits, 4);
        if (isnan(x)) continue;
        uint16_t want = reference_round(x, bf16_value, 0x7f80);
        CHECK_MSG(st_f32_to_bf16(x) == want, "bf16(%a) = %04x, want %04x", (double)x, st_f32_to_bf16(x), want);
    }
}

TEST(names_and_errors) {
    CHECK_EQ_STR(st_dtype_name(ST_F32), "F32");
    CHECK_EQ_STR(st_dtype_name(ST_F16), "F16");
    CHECK_EQ_STR(st_dtype_name(ST_BF16), "BF16");
    CHECK_EQ_INT(st_dtype_size(ST_F32), 4);
    CHECK_EQ_INT(st_dtype_size(ST_F16), 2);
    CHECK_EQ_INT(st_dtype_size(ST_BF16), 2);
    for (int c = ST_EINVAL; c <= ST_OK; c++) CHECK(strcmp(st_strerror(c), "unknown error") != 0);
    CHECK_EQ_STR(st_strerror(42), "unknown error");
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    strcpy(g_dir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(round_trip_every_dtype);
    RUN(empty_file_and_no_metadata);
    RUN(save_replaces_and_reports_io_errors);
    RUN(set_metadata_keeps_tensors_and_other_keys);
    RUN(writer_refuses_bad_tensors);
    RUN(refuses_short_and_bad_length_prefix);
    RUN(refuses_bad_json);
    RUN(refuses_unknown_dtypes);
    RUN(refuses_bad_shapes);
    RUN(refuses_bad_offsets);
    RUN(refuses_wrong_byte_count);
    RUN(refuses_bad_metadata);
    RUN(open_reports_missing_files);
    RUN(fuzz_mutations_never_crash);
    RUN(f16_special_values);
    RUN(f16_matches_reference_rounding);
    RUN(bf16_matches_reference_rounding);
    RUN(names_and_errors);
    remove_dir(g_dir);
    return TEST_SUMMARY();
}
