/* json.c - see json.h. */
#include "util/json.h"

#include <math.h>
#include <string.h>

#include "util/msg.h"

int util_json_int(const cJSON *v, const char *name, long long lo, long long hi, long long *out, char *msg,
                  size_t msgsz) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return util_msg(msg, msgsz, UTIL_JSON_ENOTINT, "%s: must be an integer", name);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return util_msg(msg, msgsz, v->valuedouble < (double)lo ? UTIL_JSON_EBELOW : UTIL_JSON_EABOVE,
                        "%s: must be in %lld..%lld", name, lo, hi);
    *out = (long long)v->valuedouble;
    return UTIL_JSON_OK;
}

/* ---- syntax (RFC 8259), without allocating ------------------------------------- */

typedef struct scan {
    const char *p, *end;
    int depth;
} scan;

#define SCAN_DEPTH_MAX 1000 /* cJSON's CJSON_NESTING_LIMIT */

static void skip_ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int is_digit(const scan *s) {
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int scan_value(scan *s);

static int scan_string(scan *s) {
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') return 0;
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (s->p >= s->end) return -1;
            char e = *s->p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, s->p++)
                    if (s->p >= s->end || !strchr("0123456789abcdefABCDEF", *s->p) || !*s->p) return -1;
            } else if (!strchr("\"\\/bfnrt", e) || !e) {
                return -1;
            }
        }
    }
    return -1;
}

static int scan_number(scan *s) {
    if (s->p < s->end && *s->p == '-') s->p++;
    if (!is_digit(s)) return -1;
    if (*s->p == '0')
        s->p++;
    else
        while (is_digit(s)) s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s)) return -1;
        while (is_digit(s)) s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
        if (!is_digit(s)) return -1;
        while (is_digit(s)) s->p++;
    }
    return 0;
}

static int scan_word(scan *s, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return -1;
    s->p += n;
    return 0;
}

/* An object or an array: open, members separated by commas, close. */
static int scan_container(scan *s, char close) {
    if (++s->depth > SCAN_DEPTH_MAX) return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"' || scan_string(s) != 0) return -1;
            skip_ws(s);
            if (s->p >= s->end || *s->p++ != ':') return -1;
        }
        if (scan_value(s) != 0) return -1;
        skip_ws(s);
        if (s->p >= s->end) return -1;
        char c = *s->p++;
        if (c == close) break;
        if (c != ',') return -1;
    }
    s->depth--;
    return 0;
}

static int scan_value(scan *s) {
    skip_ws(s);
    if (s->p >= s->end) return -1;
    switch (*s->p) {
        case '{': return scan_container(s, '}');
        case '[': return scan_container(s, ']');
        case '"': return scan_string(s);
        case 't': return scan_word(s, "true");
        case 'f': return scan_word(s, "false");
        case 'n': return scan_word(s, "null");
        default: return scan_number(s);
    }
}

int util_json_parse(const char *text, size_t len, cJSON **out, size_t *at) {
    const char *end = NULL;
    *out = text ? cJSON_ParseWithLengthOpts(text, len, &end, 0) : NULL;
    if (*out) return UTIL_JSON_OK;
    scan s = {text, text ? text + len : NULL, 0};
    if (text && scan_value(&s) == 0) return UTIL_JSON_ENOMEM;
    if (at) *at = end && end >= text ? (size_t)(end - text) : 0;
    return UTIL_JSON_ESYNTAX;
}
