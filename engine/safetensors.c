/*
 * safetensors.c - reader and writer of the safetensors format.
 *
 * Reading validates in the order a message is most useful to a person:
 *   1. the 8-byte length prefix: present, at most ST_MAX_HEADER, inside the file;
 *   2. the header bytes: start with '{', valid UTF-8 without control bytes,
 *      one JSON object followed only by whitespace (the writer's padding), no
 *      key twice in any object we read (cJSON keeps duplicates, so they are
 *      refused here explicitly);
 *   3. each tensor entry: exactly the keys dtype, shape and data_offsets, a
 *      supported dtype, integer dims and offsets, begin <= end, and
 *      end - begin == product(shape) x dtype size;
 *   4. all ranges together, sorted by offset, tile the data area from 0 to
 *      the end of the file: no gap, no overlap, no trailing bytes.
 * JSON numbers arrive as doubles, so dims and offsets must be integral and
 * at most 2^53 (the largest integer a double holds exactly); larger values
 * can describe no file we accept anyway (st_open caps files at 16 GiB).
 *
 * st_file.tensors ends up sorted by name (st_find is a binary search). Tensor
 * data points into the file buffer and is not necessarily aligned.
 *
 * Writing keeps insertion order, lays the tensors out back to back, pads the
 * header with spaces so the data area starts 8-byte aligned (as the
 * reference implementation does), and replaces the target atomically:
 * write path.tmp, fsync, rename, fsync the directory.
 */
#include "engine/safetensors.h"
#include "util/crash.h"
#include "util/msg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(SIZE_MAX >= UINT64_MAX, "byte counts are computed in 64 bits and stored in size_t");

#define ST_MAX_FILE            ((uint64_t)16 << 30)
#define ST_MAX_EXACT           ((uint64_t)1 << 53)
#define ST_WRITER_MAX_TENSORS  65536 /* duplicate names are found by a linear scan */
#define ST_WRITER_MAX_METADATA 4096
#define ST_READ_CHUNK          ((size_t)1 << 30)
#define ST_META_KEY            "__metadata__"

const char *st_dtype_name(st_dtype d) {
    switch (d) {
        case ST_F32: return "F32";
        case ST_F16: return "F16";
        case ST_BF16: return "BF16";
    }
    return "?";
}

size_t st_dtype_size(st_dtype d) {
    switch (d) {
        case ST_F32: return 4;
        case ST_F16: return 2;
        case ST_BF16: return 2;
    }
    return 0;
}

static bool dtype_from_name(const char *s, st_dtype *out) {
    static const st_dtype all[] = {ST_F32, ST_F16, ST_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, st_dtype_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

const char *st_strerror(int code) {
    switch (code) {
        case ST_OK: return "ok";
        case ST_EIO: return "i/o error";
        case ST_ETRUNC: return "file truncated";
        case ST_EHEADER: return "malformed header";
        case ST_EDTYPE: return "unsupported dtype";
        case ST_EOFFSET: return "bad data offsets";
        case ST_ESIZE: return "byte count does not match shape";
        case ST_ENOMEM: return "out of memory";
        case ST_EINVAL: return "invalid argument";
    }
    return "unknown error";
}

/* Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF included), or n when all n bytes are valid. */
static size_t utf8_invalid_at(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else
            return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static bool utf8_valid(const char *s) {
    size_t n = strlen(s);
    return utf8_invalid_at((const uint8_t *)s, n) == n;
}

/* Product of the dims times the element size; false on overflow. A zero dim
 * makes the product zero whatever the other dims are. */
static bool shape_bytes(const int64_t *shape, int ndim, st_dtype d, uint64_t *out) {
    uint64_t p = st_dtype_size(d);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            *out = 0;
            return true;
        }
    }
    for (int i = 0; i < ndim; i++) {
        uint64_t dim = (uint64_t)shape[i];
        if (p > UINT64_MAX / dim) return false;
        p *= dim;
    }
    *out = p;
    return true;
}

static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t sz) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && len < sz; i++) {
        int w = snprintf(buf + len, sz - len, "%s%" PRId64, i ? "," : "[", shape[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    if (len < sz) snprintf(buf + len, sz - len, "%s", ndim ? "]" : "[]");
    return buf;
}

/* ------------------------------------------------------------------ reader */

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool json_exact_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    if (!(d >= 0.0 && d <= (double)ST_MAX_EXACT)) return false; /* NaN fails too */
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return false;
    *out = v;
    return true;
}

static int cmp_cstr_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* cJSON accepts {"a":1,"a":2}; such a header is ambiguous, so it is refused. */
static int check_unique_keys(const cJSON *obj, const char *where, char *msg, size_t msgsz) {
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (!it->string) return util_msg(msg, msgsz, ST_EHEADER, "%s has a member without a key", where);
        n++;
    }
    if (n < 2) return ST_OK;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys) return util_msg(msg, msgsz, ST_ENOMEM, "out of memory checking %zu keys", n);
    n = 0;
    cJSON_ArrayForEach(it, obj) keys[n++] = it->string;
    qsort(keys, n, sizeof *keys, cmp_cstr_ptr);
    int rc = ST_OK;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            rc = util_msg(msg, msgsz, ST_EHEADER, "duplicate key '%.200s' in %s", keys[i], where);
            break;
        }
    }
    free(keys);
    return rc;
}

static int parse_metadata(st_file *f, const cJSON *meta, char *msg, size_t msgsz) {
    if (!cJSON_IsObject(meta)) return util_msg(msg, msgsz, ST_EHEADER, ST_META_KEY " is not a JSON object");
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it) || !it->valuestring)
            return util_msg(msg, msgsz, ST_EHEADER, ST_META_KEY " value of '%.200s' is not a string",
                            it->string ? it->string : "");
    }
    int rc = check_unique_keys(meta, ST_META_KEY, msg, msgsz);
    if (rc != ST_OK) return rc;
    char *printed = cJSON_PrintUnformatted(meta);
    if (printed) f->metadata_json = strdup(printed);
    cJSON_free(printed);
    if (!f->metadata_json) return util_msg(msg, msgsz, ST_ENOMEM, "out of memory copying " ST_META_KEY);
    return ST_OK;
}

typedef struct span {
    uint64_t begin, end;
    size_t idx;
} span;

static int parse_tensor(const cJSON *entry, st_tensor *t, span *sp, char *msg, size_t msgsz) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': entry is not a JSON object", name);

    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *found[3] = {NULL, NULL, NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, entry) {
        int k = 0;
        while (k < 3 && (!it->string || strcmp(it->string, keys[k]) != 0)) k++;
        if (k == 3)
            return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': unknown key '%.64s'", name,
                            it->string ? it->string : "");
        if (found[k]) return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': duplicate key '%s'", name, keys[k]);
        found[k] = it;
    }
    for (int k = 0; k < 3; k++) {
        if (!found[k]) return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': missing key '%s'", name, keys[k]);
    }
    const cJSON *dtype = found[0], *shape = found[1], *offs = found[2];

    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': dtype is not a string", name);
    if (!dtype_from_name(dtype->valuestring, &t->dtype))
        return util_msg(msg, msgsz, ST_EDTYPE, "tensor '%.200s': dtype '%.32s' is not supported (F32, F16, BF16 only)",
                        name, dtype->valuestring);

    if (!cJSON_IsArray(shape)) return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': shape is not an array", name);
    int ndim = 0;
    cJSON_ArrayForEach(it, shape) {
        uint64_t dim;
        if (ndim == ST_MAX_DIMS)
            return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': shape has more than %d dims", name, ST_MAX_DIMS);
        if (!json_exact_uint(it, &dim))
            return util_msg(msg, msgsz, ST_EHEADER, "tensor '%.200s': shape[%d] is not an integer in [0, 2^53]", name,
                            ndim);
        t->shape[ndim++] = (int64_t)dim;
    }
    t->ndim = ndim;

    uint64_t be[2];
    int nofs = 0;
    bool ok = cJSON_IsArray(offs);
    if (ok) {
        cJSON_ArrayForEach(it, offs) {
            if (nofs == 2 || !json_exact_uint(it, &be[nofs])) {
                ok = false;
                break;
            }
            nofs++;
        }
    }
    if (!ok || nofs != 2)
        return util_msg(msg, msgsz, ST_EHEADER,
                        "tensor '%.200s': data_offsets is not [begin, end] of integers in [0, 2^53]", name);
    if (be[0] > be[1])
        return util_msg(msg, msgsz, ST_EOFFSET,
                        "tensor '%.200s': data_offsets [%" PRIu64 ",%" PRIu64 "] end before they begin", name, be[0],
                        be[1]);

    char sh[ST_MAX_DIMS * 21 + 3];
    uint64_t need;
    if (!shape_bytes(t->shape, ndim, t->dtype, &need))
        return util_msg(msg, msgsz, ST_ESIZE, "tensor '%.200s': shape %s of %s overflows 64 bits", name,
                        shape_str(t->shape, ndim, sh, sizeof sh), st_dtype_name(t->dtype));
    if (be[1] - be[0] != need)
        return util_msg(msg, msgsz, ST_ESIZE,
                        "tensor '%.200s': data_offsets [%" PRIu64 ",%" PRIu64 "] hold %" PRIu64
                        " bytes, shape %s of %s needs %" PRIu64,
                        name, be[0], be[1], be[1] - be[0], shape_str(t->shape, ndim, sh, sizeof sh),
                        st_dtype_name(t->dtype), need);
    t->nbytes = (size_t)need;
    sp->begin = be[0];
    sp->end = be[1];
    return ST_OK;
}

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorted by offset, each range must start where the previous one ended. A
 * range that starts in place but runs past the file means a truncated file;
 * one that starts elsewhere past the end is simply out of range. */
static int check_tiling(const st_file *f, span *sp, uint64_t data_size, char *msg, size_t msgsz) {
    qsort(sp, f->count, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        const char *name = f->tensors[sp[i].idx].name;
        if (sp[i].begin < pos)
            return util_msg(msg, msgsz, ST_EOFFSET,
                            "tensor '%.200s': data_offsets [%" PRIu64 ",%" PRIu64
                            "] overlap tensor '%.200s', which ends at %" PRIu64,
                            name, sp[i].begin, sp[i].end, prev, pos);
        if (sp[i].begin > pos && sp[i].end > data_size)
            return util_msg(msg, msgsz, ST_EOFFSET,
                            "tensor '%.200s': data_offsets [%" PRIu64 ",%" PRIu64
                            "] lie outside the data area of %" PRIu64 " bytes",
                            name, sp[i].begin, sp[i].end, data_size);
        if (sp[i].begin > pos)
            return util_msg(msg, msgsz, ST_EOFFSET,
                            "gap in the data area: bytes [%" PRIu64 ",%" PRIu64
                            ") before tensor '%.200s' belong to no tensor",
                            pos, sp[i].begin, name);
        if (sp[i].end > data_size)
            return util_msg(msg, msgsz, ST_ETRUNC,
                            "tensor '%.200s': data_offsets [%" PRIu64 ",%" PRIu64
                            "] run past the end of the file, whose data area holds %" PRIu64 " bytes",
                            name, sp[i].begin, sp[i].end, data_size);
        pos = sp[i].end;
        prev = name;
    }
    if (pos != data_size)
        return util_msg(msg, msgsz, ST_EOFFSET,
                        "%" PRIu64 " trailing bytes: the tensors end at %" PRIu64 ", the data area holds %" PRIu64,
                        data_size - pos, pos, data_size);
    return ST_OK;
}

static int parse_root(st_file *f, const cJSON *root, uint64_t hlen, char *msg, size_t msgsz) {
    if (!cJSON_IsObject(root)) return util_msg(msg, msgsz, ST_EHEADER, "header is not a JSON object");
    int rc = check_unique_keys(root, "the header", msg, msgsz);
    if (rc != ST_OK) return rc;

    size_t n = 0;
    const cJSON *it, *meta = NULL;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, ST_META_KEY) == 0)
            meta = it;
        else
            n++;
    }
    if (meta && (rc = parse_metadata(f, meta, msg, msgsz)) != ST_OK) return rc;

    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    span *sp = calloc(n ? n : 1, sizeof *sp);
    if (!f->tensors || !sp) {
        free(sp);
        return util_msg(msg, msgsz, ST_ENOMEM, "out of memory for %zu tensors", n);
    }
    const uint8_t *data = f->buf + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen;
    cJSON_ArrayForEach(it, root) {
        if (it == meta) continue;
        st_tensor *t = &f->tensors[f->count];
        t->name = strdup(it->string);
        if (!t->name) {
            rc = util_msg(msg, msgsz, ST_ENOMEM, "out of memory for tensor names");
            break;
        }
        f->count++; /* from here st_close frees the name */
        sp[f->count - 1].idx = f->count - 1;
        if ((rc = parse_tensor(it, t, &sp[f->count - 1], msg, msgsz)) != ST_OK) break;
    }
    if (rc == ST_OK) rc = check_tiling(f, sp, data_size, msg, msgsz);
    if (rc == ST_OK) {
        for (size_t i = 0; i < f->count; i++) f->tensors[sp[i].idx].data = data + sp[i].begin;
        qsort(f->tensors, f->count, sizeof *f->tensors, cmp_tensor_name);
    }
    free(sp);
    return rc;
}

static int parse_all(st_file *f, char *msg, size_t msgsz) {
    if (f->size < 8)
        return util_msg(msg, msgsz, ST_ETRUNC, "file of %zu bytes is shorter than the 8-byte header length", f->size);
    uint64_t hlen = load_le64(f->buf);
    if (hlen > ST_MAX_HEADER)
        return util_msg(msg, msgsz, ST_EHEADER, "header length %" PRIu64 " exceeds the cap of %u bytes", hlen,
                        ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return util_msg(msg, msgsz, ST_ETRUNC, "header length %" PRIu64 " exceeds the %zu bytes that follow it", hlen,
                        f->size - 8);
    const uint8_t *hdr = f->buf + 8;
    if (hlen == 0 || hdr[0] != '{') return util_msg(msg, msgsz, ST_EHEADER, "header does not start with '{'");
    size_t bad = utf8_invalid_at(hdr, hlen);
    if (bad < hlen) return util_msg(msg, msgsz, ST_EHEADER, "header is not valid UTF-8 (byte %zu)", bad);
    /* JSON allows raw control bytes nowhere but as whitespace; cJSON would let
     * some through inside strings, and a NUL would silently cut a name. */
    for (size_t i = 0; i < hlen; i++) {
        if (hdr[i] < 0x20 && hdr[i] != ' ' && hdr[i] != '\t' && hdr[i] != '\n' && hdr[i] != '\r')
            return util_msg(msg, msgsz, ST_EHEADER, "header has control byte 0x%02x at byte %zu", hdr[i], i);
    }

    /* cJSON gets its own NUL-terminated copy, so no parser path can read past
     * the header even if a length check in it were missing. */
    char *text = malloc(hlen + 1);
    if (!text) return util_msg(msg, msgsz, ST_ENOMEM, "out of memory for a %" PRIu64 "-byte header", hlen);
    memcpy(text, hdr, hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, hlen, &end, 0);
    int rc = ST_OK;
    if (!root) {
        rc = util_msg(msg, msgsz, ST_EHEADER, "header is not valid JSON (error near byte %td)",
                      end ? end - text : (ptrdiff_t)0);
    } else {
        for (const char *p = end; p < text + hlen; p++) {
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                rc = util_msg(msg, msgsz, ST_EHEADER, "header has bytes after its JSON object (byte %td)", p - text);
                break;
            }
        }
        if (rc == ST_OK) rc = parse_root(f, root, hlen, msg, msgsz);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

int st_parse(uint8_t *buf, size_t size, st_file *out, char *msg, size_t msgsz) {
    if (!out) {
        free(buf);
        return util_msg(msg, msgsz, ST_EINVAL, "no st_file to parse into");
    }
    memset(out, 0, sizeof *out);
    if (!buf && size) return util_msg(msg, msgsz, ST_EINVAL, "no buffer for %zu bytes", size);
    out->buf = buf;
    out->size = size;
    int rc = parse_all(out, msg, msgsz);
    if (rc != ST_OK) st_close(out);
    return rc;
}

int st_open(const char *path, st_file *out, char *msg, size_t msgsz) {
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return util_msg(msg, msgsz, ST_EINVAL, "st_open needs a path and an st_file");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_msg(msg, msgsz, ST_EIO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return util_msg(msg, msgsz, ST_EIO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return util_msg(msg, msgsz, ST_EIO, "not a regular file");
    }
    if ((uint64_t)st.st_size > ST_MAX_FILE) {
        close(fd);
        return util_msg(msg, msgsz, ST_EIO, "%jd bytes exceed the 16 GiB cap", (intmax_t)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return util_msg(msg, msgsz, ST_ENOMEM, "out of memory for %zu bytes", size);
    }
    size_t got = 0;
    while (got < size) {
        size_t want = size - got < ST_READ_CHUNK ? size - got : ST_READ_CHUNK;
        ssize_t r = read(fd, buf + got, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return util_msg(msg, msgsz, ST_EIO, "%s", e ? strerror(e) : "file shrank while being read");
        }
        got += (size_t)r;
    }
    close(fd);
    return st_parse(buf, size, out, msg, msgsz);
}

void st_close(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->count; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->metadata_json);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp(key, ((const st_tensor *)elem)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name || !f->count) return NULL;
    return bsearch(name, f->tensors, f->count, sizeof *f->tensors, cmp_name_key);
}

const char *st_metadata_get(const st_file *f, const char *key, char *buf, size_t bufsz) {
    if (!f || !f->metadata_json || !key || !buf || !bufsz) return NULL;
    cJSON *meta = cJSON_Parse(f->metadata_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    const char *res = NULL;
    if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < bufsz) {
        strcpy(buf, v->valuestring);
        res = buf;
    }
    cJSON_Delete(meta);
    return res;
}

/* ------------------------------------------------------------------ writer */

typedef struct st_entry {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_entry;

typedef struct st_meta_kv {
    char *key, *value;
} st_meta_kv;

struct st_writer {
    st_entry *t;
    size_t n, cap;
    st_meta_kv *m;
    size_t mn, mcap;
};

st_writer *st_writer_new(void) {
    return calloc(1, sizeof(st_writer));
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->mn; i++) {
        free(w->m[i].key);
        free(w->m[i].value);
    }
    free(w->t);
    free(w->m);
    free(w);
}

/* Room for element n of an array capped at max elements: the array, perhaps
 * moved, or NULL with *rc set (the old array is then left as it was). */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem, size_t max, int *rc) {
    if (n < *cap) return arr;
    if (n >= max) {
        *rc = ST_EINVAL;
        return NULL;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > max) ncap = max;
    void *p = realloc(arr, ncap * elem);
    if (!p) {
        *rc = ST_ENOMEM;
        return NULL;
    }
    *cap = ncap;
    return p;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data,
                  size_t nbytes) {
    if (!w || !name || !*name || strcmp(name, ST_META_KEY) == 0 || !utf8_valid(name)) return ST_EINVAL;
    if (st_dtype_size(dtype) == 0 || ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) return ST_EINVAL;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > ST_MAX_EXACT) return ST_EINVAL;
    }
    uint64_t need;
    if (!shape_bytes(shape, ndim, dtype, &need) || need != nbytes || (nbytes && !data)) return ST_EINVAL;
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->t[i].name, name) == 0) return ST_EINVAL;
    }
    int rc = ST_OK;
    st_entry *t = grow(w->t, &w->cap, w->n, sizeof *w->t, ST_WRITER_MAX_TENSORS, &rc);
    if (!t) return rc;
    w->t = t;
    st_entry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return ST_ENOMEM;
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim > 0) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->data = data;
    e->nbytes = nbytes;
    w->n++;
    return ST_OK;
}

int st_writer_set_metadata(st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value || !utf8_valid(key) || !utf8_valid(value)) return ST_EINVAL;
    char *v = strdup(value);
    if (!v) return ST_ENOMEM;
    for (size_t i = 0; i < w->mn; i++) {
        if (strcmp(w->m[i].key, key) == 0) {
            free(w->m[i].value);
            w->m[i].value = v;
            return ST_OK;
        }
    }
    int rc = ST_ENOMEM;
    char *k = strdup(key);
    st_meta_kv *m = k ? grow(w->m, &w->mcap, w->mn, sizeof *w->m, ST_WRITER_MAX_METADATA, &rc) : NULL;
    if (!m) {
        free(k);
        free(v);
        return rc;
    }
    w->m = m;
    w->m[w->mn].key = k;
    w->m[w->mn].value = v;
    w->mn++;
    return ST_OK;
}

/* The header under construction, capped at ST_MAX_HEADER like the reader. */
typedef struct hbuf {
    char *p;
    size_t len, cap;
    int err; /* ST_EINVAL once past the cap, ST_ENOMEM; later puts do nothing */
} hbuf;

static void hb_put(hbuf *b, const char *s, size_t n) {
    if (b->err) return;
    if (n > ST_MAX_HEADER - b->len) {
        b->err = ST_EINVAL;
        return;
    }
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n) ncap *= 2;
        if (ncap > ST_MAX_HEADER) ncap = ST_MAX_HEADER;
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->err = ST_ENOMEM;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void hb_str(hbuf *b, const char *s) {
    hb_put(b, s, strlen(s));
}

static void hb_u64(hbuf *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    hb_put(b, tmp, (size_t)n);
}

static void hb_json_string(hbuf *b, const char *s) {
    hb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            hb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            hb_put(b, esc, 6);
        } else {
            hb_put(b, p, 1);
        }
    }
    hb_put(b, "\"", 1);
}

static void build_header(const st_writer *w, hbuf *b) {
    hb_str(b, "{");
    if (w->mn) {
        hb_str(b, "\"" ST_META_KEY "\":{");
        for (size_t i = 0; i < w->mn; i++) {
            if (i) hb_str(b, ",");
            hb_json_string(b, w->m[i].key);
            hb_str(b, ":");
            hb_json_string(b, w->m[i].value);
        }
        hb_str(b, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_entry *e = &w->t[i];
        if (i || w->mn) hb_str(b, ",");
        hb_json_string(b, e->name);
        hb_str(b, ":{\"dtype\":\"");
        hb_str(b, st_dtype_name(e->dtype));
        hb_str(b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) hb_str(b, ",");
            hb_u64(b, (uint64_t)e->shape[d]);
        }
        hb_str(b, "],\"data_offsets\":[");
        hb_u64(b, off);
        hb_str(b, ",");
        off += e->nbytes;
        hb_u64(b, off);
        hb_str(b, "]}");
    }
    hb_str(b, "}");
    while ((8 + b->len) % 8 != 0 && !b->err) hb_str(b, " ");
}

static int fsync_parent_dir(const char *path, char *msg, size_t msgsz) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return util_msg(msg, msgsz, ST_ENOMEM, "out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = ST_OK;
    if (fd < 0 || fsync(fd) != 0)
        rc = util_msg(msg, msgsz, ST_EIO, "fsync of directory %s failed: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

static int write_file(const st_writer *w, const hbuf *hb, const char *tmp, char *msg, size_t msgsz) {
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return util_msg(msg, msgsz, ST_EIO, "cannot create %s: %s", tmp, strerror(errno));
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hb->len >> (8 * i));
    bool ok = fwrite(len, 1, 8, fp) == 8 && fwrite(hb->p, 1, hb->len, fp) == hb->len;
    for (size_t i = 0; ok && i < w->n; i++) {
        if (w->t[i].nbytes) ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) == w->t[i].nbytes;
    }
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) return util_msg(msg, msgsz, ST_EIO, "writing %s failed: %s", tmp, strerror(e));
    return ST_OK;
}

int st_writer_save(st_writer *w, const char *path, char *msg, size_t msgsz) {
    if (!w || !path || !*path) return util_msg(msg, msgsz, ST_EINVAL, "st_writer_save needs a writer and a path");
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++) total += w->t[i].nbytes;
    if (total > ST_MAX_EXACT)
        return util_msg(msg, msgsz, ST_EINVAL, "%" PRIu64 " bytes of tensors are too many", total);

    hbuf hb = {0};
    build_header(w, &hb);
    if (hb.err) {
        free(hb.p);
        return hb.err == ST_EINVAL ? util_msg(msg, msgsz, ST_EINVAL, "header exceeds %u bytes", ST_MAX_HEADER)
                                   : util_msg(msg, msgsz, ST_ENOMEM, "out of memory building the header");
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(hb.p);
        return util_msg(msg, msgsz, ST_ENOMEM, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int rc = write_file(w, &hb, tmp, msg, msgsz);
    if (rc == ST_OK) {
        const char *slash = strrchr(path, '/');
        util_crash_point("rename", slash ? slash + 1 : path);
    }
    if (rc == ST_OK && rename(tmp, path) != 0)
        rc = util_msg(msg, msgsz, ST_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (rc != ST_OK)
        unlink(tmp);
    else
        rc = fsync_parent_dir(path, msg, msgsz);
    free(tmp);
    free(hb.p);
    return rc;
}

/* ------------------------------------------------------------- conversions */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Rounding is
 * to nearest, ties to even, in integer arithmetic so the result does not
 * depend on the FPU's rounding mode. */
uint16_t st_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) /* NaN: stays a quiet NaN, keeping the payload's top bits */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000) /* 65520 and above round to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x38800000) { /* normal in binary16: 2^-14 and above */
        uint32_t odd = (ax >> 13) & 1;
        return (uint16_t)(sign | ((ax + 0xfff + odd - 0x38000000) >> 13));
    }
    /* Subnormal or zero: the result is value / 2^-24 rounded, i.e. the 24-bit
     * significand shifted right by 126 - exponent (at least 14). */
    uint32_t exp = ax >> 23;
    uint32_t shift = 126 - exp;
    if (shift > 24) return sign; /* below 2^-25: rounds to zero */
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant x 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000 | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* bfloat16 is the top half of a float32; rounding adds just under half an
 * ulp plus the kept lowest bit, so ties go to even. */
uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) /* NaN: force a quiet bit so it cannot become inf */
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float st_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

/* ------------------------------------------------------------ rewriting */

int st_set_metadata_file(const char *path, const char *key, const char *value, char *msg, size_t msgsz) {
    st_file f;
    int rc = st_open(path, &f, msg, msgsz);
    if (rc != ST_OK) return rc;
    st_writer *w = st_writer_new();
    if (!w) {
        st_close(&f);
        return util_msg(msg, msgsz, ST_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == ST_OK && i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        rc = st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
    }
    cJSON *meta = f.metadata_json ? cJSON_Parse(f.metadata_json) : NULL, *item;
    cJSON_ArrayForEach(item, meta) {
        if (rc == ST_OK && cJSON_IsString(item)) rc = st_writer_set_metadata(w, item->string, item->valuestring);
    }
    cJSON_Delete(meta);
    if (rc == ST_OK) rc = st_writer_set_metadata(w, key, value);
    if (rc != ST_OK)
        util_msg(msg, msgsz, rc, "cannot copy the file's tensors or metadata");
    else
        rc = st_writer_save(w, path, msg, msgsz); /* temporary file, fsync, rename */
    st_writer_free(w);
    st_close(&f);
    return rc;
}
