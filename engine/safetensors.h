/*
 * safetensors.h - our own reader and writer of the safetensors format.
 *
 * Format: an 8-byte little-endian header length L, L bytes of JSON mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the end of the header) plus an optional "__metadata__" object
 * of string values, then the raw little-endian tensor bytes.
 *
 * The reader trusts nothing: the header length is capped, the JSON must parse,
 * every dtype must be known (F32, F16, BF16), every byte range must lie inside
 * the file, match shape x dtype size, and the ranges must tile the data area
 * without gap or overlap. Errors come back as a negative code with a message.
 * Plain C: used by the daemon, the tests and (through extern "C") the engine.
 */
#ifndef CODID_SAFETENSORS_H
#define CODID_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* as the reference implementation */
#define ST_MAX_DIMS   8

typedef enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2 } st_dtype;

typedef enum st_status {
    ST_OK = 0,
    ST_EIO = -1,     /* open/read/write failed */
    ST_ETRUNC = -2,  /* file shorter than its header says */
    ST_EHEADER = -3, /* header length out of range, or JSON malformed */
    ST_EDTYPE = -4,  /* unknown dtype */
    ST_EOFFSET = -5, /* offsets out of range, overlapping, or with gaps */
    ST_ESIZE = -6,   /* byte count does not match shape x dtype */
    ST_ENOMEM = -7,
    ST_EINVAL = -8 /* bad argument (writer) or duplicate name */
} st_status;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const uint8_t *data; /* points into the file's buffer */
} st_tensor;

typedef struct st_file {
    st_tensor *tensors;
    size_t count;
    char *metadata_json; /* "__metadata__" re-serialised as a JSON object, or NULL */
    uint8_t *buf;        /* the whole file */
    size_t size;
} st_file;

const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);
const char *st_strerror(int code);

/* Parse a buffer the st_file takes ownership of (freed by st_close, also on
 * failure: a failing st_parse or st_open frees everything itself and leaves
 * *out empty, so st_close on it is harmless). On success f->tensors is sorted
 * by name; tensor data points into f->buf and need not be aligned. */
int st_parse(uint8_t *buf, size_t size, st_file *out, char *msg, size_t msgsz);
/* Reads the whole file (at most 16 GiB, ST_EIO beyond) and parses it. Its
 * messages do not repeat the path: the caller knows it and adds it. */
int st_open(const char *path, st_file *out, char *msg, size_t msgsz);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
/* metadata value for key copied into buf, or NULL when absent or when it does
 * not fit in bufsz bytes (a cut value, a hash say, would be a wrong one) */
const char *st_metadata_get(const st_file *f, const char *key, char *buf, size_t bufsz);

/* Writer: collect tensors (data borrowed until st_writer_save), then save to
 * path via a temporary file, fsync and rename. Metadata values are strings;
 * setting a key again replaces its value. st_writer_add returns ST_EINVAL for
 * an empty, reserved ("__metadata__"), non-UTF-8 or duplicate name, a bad
 * shape, or nbytes other than shape x dtype size. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data,
                  size_t nbytes);
int st_writer_set_metadata(st_writer *w, const char *key, const char *value);
int st_writer_save(st_writer *w, const char *path, char *msg, size_t msgsz);
void st_writer_free(st_writer *w);

/* Sets one metadata key of the file at path (replacing its value), keeping
 * its tensors and other metadata; the file is rewritten through a temporary
 * file and a rename, so a crash leaves the old or the new one. */
int st_set_metadata_file(const char *path, const char *key, const char *value, char *msg, size_t msgsz);

/* Conversions used by the engine and tools. */
uint16_t st_f32_to_f16(float f);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif
