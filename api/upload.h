/*
 * upload.h - the containers files arrive in: multipart/form-data bodies
 * (RFC 7578) and tar archives (POSIX ustar, with GNU long names and pax
 * headers skipped). Both parse a body already in memory (its size capped by
 * the HTTP layer) without copying: parts and members point into it.
 *
 * Functions return 0, or -1 with a message saying what is malformed and
 * where.
 */
#ifndef CODID_API_UPLOAD_H
#define CODID_API_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#define API_PART_NAME_MAX     64
#define API_PART_FILENAME_MAX 256
#define API_PART_HEADERS_MAX  8192 /* bytes of headers in one part */

typedef struct api_part {
    char name[API_PART_NAME_MAX];         /* the form field */
    char filename[API_PART_FILENAME_MAX]; /* "" for a plain field */
    char content_type[64];                /* "" when not given */
    const uint8_t *data;
    size_t len;
} api_part;

/* The boundary of a "multipart/form-data; boundary=..." Content-Type into
 * out (1-70 characters). */
int api_multipart_boundary(const char *content_type, char *out, size_t outsz, char *msg, size_t msgsz);

/* Splits body into at most max_parts parts: *parts (free() it) and *n. */
int api_multipart_parse(const char *content_type, const uint8_t *body, size_t len, int max_parts, api_part **parts,
                        int *n, char *msg, size_t msgsz);

typedef struct api_tar_member {
    char name[API_PART_FILENAME_MAX]; /* as archived (prefix/name) */
    const uint8_t *data;
    size_t len;
} api_tar_member;

/* Calls each() for every regular file of the archive in order (a non-zero
 * return stops the walk and is returned); directories, links and metadata
 * entries are skipped. */
int api_tar_each(const uint8_t *buf, size_t len, int (*each)(const api_tar_member *m, void *user), void *user,
                 char *msg, size_t msgsz);

#endif
