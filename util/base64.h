/*
 * base64.h - base64 (RFC 4648, standard alphabet) and data: URLs, for images
 * carried inside JSON.
 *
 * Functions return 0 on success and -1 on failure with a message in `msg`
 * (when msg is not NULL). Outputs are allocated with malloc (free() them),
 * NUL-terminated for convenience, and bounded by the caller's max_out.
 */
#ifndef CODID_UTIL_BASE64_H
#define CODID_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters in the padded encoding of n bytes, without the NUL. */
size_t util_base64_encoded_len(size_t n);

/* Encodes src[0..n) with padding; refuses output longer than max_out. */
int util_base64_encode(const uint8_t *src, size_t n, size_t max_out, char **out, size_t *outlen, char *msg,
                       size_t msgsz);

/*
 * Decodes src[0..n). Padding may be present (then it must be right) or
 * missing; ASCII whitespace is skipped, since `base64` wraps its lines; any
 * other character outside the standard alphabet (including base64url's '-'
 * and '_') is refused with its offset. Refuses output longer than max_out.
 */
int util_base64_decode(const char *src, size_t n, size_t max_out, uint8_t **out, size_t *outlen, char *msg,
                       size_t msgsz);

/*
 * Finds the base64 payload of s[0..n): a plain base64 string is its own
 * payload; a data URL must read "data:[image/png][;base64]," with ";base64"
 * present and a media type, if any, of image/png (case-insensitive).
 * Sets *payload / *payload_len to point inside s.
 */
int util_data_url_strip(const char *s, size_t n, const char **payload, size_t *payload_len, char *msg, size_t msgsz);

#endif
