#include "util/base64.h"
#include "util/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t util_base64_encoded_len(size_t n) {
    return (n / 3 + (n % 3 != 0)) * 4;
}

int util_base64_encode(const uint8_t *src, size_t n, size_t max_out, char **out, size_t *outlen, char *msg,
                       size_t msgsz) {
    *out = NULL;
    *outlen = 0;
    if (n > (SIZE_MAX - 4) / 4 * 3 || util_base64_encoded_len(n) > max_out) {
        util_msg(msg, msgsz, 0, "%s", "base64 output would exceed its size limit");
        return -1;
    }
    size_t len = util_base64_encoded_len(n);
    char *dst = malloc(len + 1);
    if (!dst) {
        util_msg(msg, msgsz, 0, "%s", "out of memory");
        return -1;
    }
    char *p = dst;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = alphabet[v >> 6 & 63];
        *p++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    *out = dst;
    *outlen = len;
    return 0;
}

/* 0..63 for alphabet characters, -1 otherwise. */
static int sextet(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static int is_space(unsigned char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

int util_base64_decode(const char *src, size_t n, size_t max_out, uint8_t **out, size_t *outlen, char *msg,
                       size_t msgsz) {
    *out = NULL;
    *outlen = 0;
    /* The encoded length bounds the output, so the cap is checked before
     * allocating and again (exactly) while decoding. */
    size_t bound = n / 4 * 3 + 3;
    if (bound > max_out) bound = max_out;
    uint8_t *dst = malloc(bound + 1);
    if (!dst) {
        util_msg(msg, msgsz, 0, "%s", "out of memory");
        return -1;
    }
    size_t len = 0, digits = 0, pads = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (is_space(ch)) continue;
        if (ch == '=') {
            pads++;
            continue;
        }
        int v = sextet(ch);
        if (v < 0 || pads > 0) {
            if (msg && msgsz) {
                if (v < 0)
                    snprintf(msg, msgsz, "invalid base64 character 0x%02x at offset %zu", ch, i);
                else
                    snprintf(msg, msgsz, "base64 data after '=' padding at offset %zu", i);
            }
            free(dst);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++digits % 4 == 0) {
            if (len + 3 > max_out) goto too_long;
            dst[len++] = (uint8_t)(acc >> 16);
            dst[len++] = (uint8_t)(acc >> 8);
            dst[len++] = (uint8_t)acc;
            acc = 0;
        }
    }
    size_t tail = digits % 4;
    if (tail == 1 || (pads > 0 && (tail == 0 || tail + pads != 4))) {
        util_msg(msg, msgsz, 0, "%s", "invalid base64 length or padding");
        free(dst);
        return -1;
    }
    if (tail > 1) {
        if (len + tail - 1 > max_out) goto too_long;
        acc <<= 6 * (4 - tail);
        dst[len++] = (uint8_t)(acc >> 16);
        if (tail == 3) dst[len++] = (uint8_t)(acc >> 8);
    }
    dst[len] = 0;
    *out = dst;
    *outlen = len;
    return 0;

too_long:
    if (msg && msgsz) snprintf(msg, msgsz, "decoded data exceeds the limit of %zu bytes", max_out);
    free(dst);
    return -1;
}

int util_data_url_strip(const char *s, size_t n, const char **payload, size_t *payload_len, char *msg, size_t msgsz) {
    static const char scheme[] = "data:", b64[] = ";base64", png[] = "image/png";
    const size_t scheme_len = sizeof scheme - 1, b64_len = sizeof b64 - 1;
    if (n < scheme_len || strncasecmp(s, scheme, scheme_len) != 0) {
        *payload = s;
        *payload_len = n;
        return 0;
    }
    const char *comma = memchr(s, ',', n);
    if (!comma) {
        util_msg(msg, msgsz, 0, "%s", "data URL without ','");
        return -1;
    }
    const char *meta = s + scheme_len;
    size_t meta_len = (size_t)(comma - meta);
    if (meta_len < b64_len || strncasecmp(comma - b64_len, b64, b64_len) != 0) {
        util_msg(msg, msgsz, 0, "%s", "data URL must be base64 (data:image/png;base64,...)");
        return -1;
    }
    size_t type_len = meta_len - b64_len;
    if (type_len != 0 && (type_len != sizeof png - 1 || strncasecmp(meta, png, type_len) != 0)) {
        if (msg && msgsz)
            snprintf(msg, msgsz, "data URL media type '%.*s' is not image/png", (int)(type_len > 64 ? 64 : type_len),
                     meta);
        return -1;
    }
    *payload = comma + 1;
    *payload_len = n - (size_t)(comma + 1 - s);
    return 0;
}
