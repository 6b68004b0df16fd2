/* upload.c - see upload.h. */
#include "api/upload.h"
#include "util/msg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70
#define TAR_BLOCK    512

/* ---- multipart/form-data ---------------------------------------------- */

/* The value of parameter `key` in a header value such as
 * 'form-data; name="a"; filename="b.png"', quoted or not, into out. */
static int header_param(const char *v, size_t vlen, const char *key, char *out, size_t outsz) {
    size_t klen = strlen(key);
    const char *end = v + vlen;
    for (const char *p = v; p < end;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi) return 0;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if ((size_t)(end - p) > klen && strncasecmp(p, key, klen) == 0 && p[klen] == '=') {
            p += klen + 1;
            size_t n = 0;
            if (p < end && *p == '"') {
                p++;
                while (p < end && *p != '"' && n + 1 < outsz) {
                    if (*p == '\\' && p + 1 < end) p++;
                    out[n++] = *p++;
                }
                if (p >= end || *p != '"') return -1; /* unterminated, or too long */
            } else {
                while (p < end && *p != ';' && *p != ' ' && n + 1 < outsz) out[n++] = *p++;
                if (p < end && *p != ';' && *p != ' ') return -1;
            }
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

int api_multipart_boundary(const char *content_type, char *out, size_t outsz, char *msg, size_t msgsz) {
    static const char type[] = "multipart/form-data";
    if (!content_type || strncasecmp(content_type, type, sizeof type - 1) != 0)
        return util_msg(msg, msgsz, -1, "Content-Type: not multipart/form-data");
    char b[BOUNDARY_MAX + 2];
    int got = header_param(content_type, strlen(content_type), "boundary", b, sizeof b);
    if (got <= 0 || !*b || strlen(b) > BOUNDARY_MAX)
        return util_msg(msg, msgsz, -1, "Content-Type: multipart/form-data needs a boundary of 1-%d characters",
                        BOUNDARY_MAX);
    if (strlen(b) + 1 > outsz) return util_msg(msg, msgsz, -1, "boundary too long");
    memcpy(out, b, strlen(b) + 1);
    return 0;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle, size_t m) {
    return m <= n ? memmem(hay, n, needle, m) : NULL;
}

/* Reads one part's headers (lines up to an empty one) into p. */
static int part_headers(const uint8_t *h, size_t n, api_part *p, int index, char *msg, size_t msgsz) {
    int disposition = 0;
    const uint8_t *end = h + n;
    while (h < end) {
        const uint8_t *eol = find(h, (size_t)(end - h), "\r\n", 2);
        size_t len = eol ? (size_t)(eol - h) : (size_t)(end - h);
        const char *line = (const char *)h;
        const char *colon = memchr(line, ':', len);
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vlen = len - nlen - 1;
            while (vlen && (*v == ' ' || *v == '\t')) v++, vlen--;
            if (nlen == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
                disposition = 1;
                if (vlen < 9 || strncasecmp(v, "form-data", 9) != 0)
                    return util_msg(msg, msgsz, -1, "part %d: Content-Disposition is not form-data", index);
                if (header_param(v, vlen, "name", p->name, sizeof p->name) != 1)
                    return util_msg(msg, msgsz, -1, "part %d: no field name (or one over %d bytes)", index,
                                    API_PART_NAME_MAX - 1);
                if (header_param(v, vlen, "filename", p->filename, sizeof p->filename) < 0)
                    return util_msg(msg, msgsz, -1, "part %d: filename over %d bytes", index,
                                    API_PART_FILENAME_MAX - 1);
            } else if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
                snprintf(p->content_type, sizeof p->content_type, "%.*s", (int)vlen, v);
            }
        }
        h = eol ? eol + 2 : end;
    }
    if (!disposition) return util_msg(msg, msgsz, -1, "part %d: no Content-Disposition header", index);
    return 0;
}

int api_multipart_parse(const char *content_type, const uint8_t *body, size_t len, int max_parts, api_part **parts,
                        int *n, char *msg, size_t msgsz) {
    char boundary[BOUNDARY_MAX + 1], delim[BOUNDARY_MAX + 5];
    *parts = NULL;
    *n = 0;
    if (api_multipart_boundary(content_type, boundary, sizeof boundary, msg, msgsz) != 0) return -1;
    /* "\r\n--boundary"; the first delimiter may start the body */
    int dlen = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const uint8_t *end = body + len, *p;
    if (len >= (size_t)dlen - 2 && memcmp(body, delim + 2, (size_t)dlen - 2) == 0)
        p = body + dlen - 2;
    else {
        p = find(body, len, delim, (size_t)dlen);
        if (!p) return util_msg(msg, msgsz, -1, "body: no multipart boundary '%s'", boundary);
        p += dlen;
    }
    api_part *out = NULL;
    int count = 0, cap = 0;
    for (;;) {
        /* just after a delimiter: "--" ends the body, CRLF starts a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            free(out);
            return util_msg(msg, msgsz, -1, "body: part %d: the multipart body is truncated or malformed", count);
        }
        p += 2;
        size_t limit = (size_t)(end - p) < API_PART_HEADERS_MAX ? (size_t)(end - p) : API_PART_HEADERS_MAX;
        const uint8_t *hend = find(p, limit, "\r\n\r\n", 4);
        if (!hend) {
            free(out);
            return util_msg(msg, msgsz, -1, "body: part %d: headers missing, unterminated or over %d bytes", count,
                            API_PART_HEADERS_MAX);
        }
        if (count == max_parts) {
            free(out);
            return util_msg(msg, msgsz, -1, "body: more than %d parts", max_parts);
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            if (cap > max_parts) cap = max_parts;
            api_part *grown = realloc(out, sizeof *out * (size_t)cap);
            if (!grown) {
                free(out);
                return util_msg(msg, msgsz, -1, "out of memory");
            }
            out = grown;
        }
        api_part *part = &out[count];
        memset(part, 0, sizeof *part);
        if (part_headers(p, (size_t)(hend - p), part, count, msg, msgsz) != 0) {
            free(out);
            return -1;
        }
        const uint8_t *data = hend + 4;
        const uint8_t *next = find(data, (size_t)(end - data), delim, (size_t)dlen);
        if (!next) {
            char name[API_PART_NAME_MAX];
            memcpy(name, part->name, sizeof name);
            free(out);
            return util_msg(msg, msgsz, -1, "body: part %d ('%s'): no closing boundary (truncated body?)", count, name);
        }
        part->data = data;
        part->len = (size_t)(next - data);
        count++;
        p = next + dlen;
    }
    *parts = out;
    *n = count;
    return 0;
}

/* ---- tar ---------------------------------------------------------------- */

static int octal(const uint8_t *f, size_t n, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && f[i] == ' ') i++;
    int digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0') return -1;
    if (!digits) return -1;
    *out = v;
    return 0;
}

static int zero_block(const uint8_t *b) {
    for (int i = 0; i < TAR_BLOCK; i++)
        if (b[i]) return 0;
    return 1;
}

static void field_str(const uint8_t *f, size_t n, char *out, size_t outsz) {
    size_t k = 0;
    while (k < n && f[k]) k++;
    snprintf(out, outsz, "%.*s", (int)k, (const char *)f);
}

int api_tar_each(const uint8_t *buf, size_t len, int (*each)(const api_tar_member *m, void *user), void *user,
                 char *msg, size_t msgsz) {
    size_t off = 0;
    char long_name[API_PART_FILENAME_MAX] = "";
    int members = 0;
    while (off + TAR_BLOCK <= len) {
        const uint8_t *h = buf + off;
        if (zero_block(h)) return 0; /* the end-of-archive marker */
        uint64_t sum, size;
        unsigned computed = 0;
        for (int i = 0; i < TAR_BLOCK; i++) computed += i >= 148 && i < 156 ? ' ' : h[i];
        if (octal(h + 148, 8, &sum) != 0 || sum != computed)
            return util_msg(msg, msgsz, -1, "tar: header at byte %zu: bad checksum (not a tar archive?)", off);
        if (octal(h + 124, 12, &size) != 0)
            return util_msg(msg, msgsz, -1, "tar: header at byte %zu: bad size field", off);
        size_t data_off = off + TAR_BLOCK;
        if (size > len - data_off)
            return util_msg(msg, msgsz, -1,
                            "tar: member at byte %zu: %llu bytes of data, past the end (truncated archive)", off,
                            (unsigned long long)size);
        char type = (char)h[156];
        api_tar_member m;
        if (*long_name) {
            snprintf(m.name, sizeof m.name, "%s", long_name);
        } else {
            char name[101], prefix[156];
            field_str(h, 100, name, sizeof name);
            field_str(h + 345, 155, prefix, sizeof prefix);
            if (memcmp(h + 257, "ustar", 5) == 0 && *prefix)
                snprintf(m.name, sizeof m.name, "%.150s/%.100s", prefix, name);
            else
                snprintf(m.name, sizeof m.name, "%s", name);
        }
        if (type == 'L') {
            field_str(buf + data_off, (size_t)size, long_name, sizeof long_name);
        } else {
            long_name[0] = '\0';
            if (type == '0' || type == '\0' || type == '7') {
                m.data = buf + data_off;
                m.len = (size_t)size;
                members++;
                int rc = each(&m, user);
                if (rc) return rc;
            }
        }
        size_t padded = ((size_t)size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        if (padded > len - data_off) padded = len - data_off;
        off = data_off + padded;
    }
    if (off != len)
        return util_msg(msg, msgsz, -1,
                        members ? "tar: %zu bytes of a partial header at the end (truncated archive)"
                                : "tar: %zu bytes are not a tar archive",
                        members ? len - off : len);
    return 0;
}
