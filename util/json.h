/*
 * json.h - reading values out of parsed JSON (cJSON) the one way every
 * layer validates them: a request body (api/), a job spec (jobs/).
 *
 * util_json_int returns UTIL_JSON_OK with *out set, or a negative code
 * that says what is wrong, and writes a message that names the field:
 *
 *   UTIL_JSON_ENOTINT  not a number, or not a whole one  "NAME: must be an integer"
 *   UTIL_JSON_EBELOW   an integer below lo               "NAME: must be in LO..HI"
 *   UTIL_JSON_EABOVE   an integer above hi               "NAME: must be in LO..HI"
 *
 * A caller whose contract words an error otherwise (the setting a maximum
 * comes from, say) passes msg NULL and words it from the code.
 */
#ifndef CODID_UTIL_JSON_H
#define CODID_UTIL_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

enum {
    UTIL_JSON_OK = 0,
    UTIL_JSON_ENOTINT = -1,
    UTIL_JSON_EBELOW = -2,
    UTIL_JSON_EABOVE = -3,
    UTIL_JSON_ESYNTAX = -4, /* not JSON: *at says where */
    UTIL_JSON_ENOMEM = -5   /* well-formed JSON, but memory ran out parsing it */
};

/* An integer in lo..hi (both within +-2^53, where doubles are exact). */
int util_json_int(const cJSON *v, const char *name, long long lo, long long hi, long long *out, char *msg,
                  size_t msgsz);

/*
 * Parses the JSON value at the start of text[0..len) (bytes after it are
 * ignored, as cJSON_ParseWithLengthOpts ignores them) into
 * *out (cJSON_Delete it). cJSON_Parse returns NULL alike for bad JSON and
 * for an allocation that failed; this tells them apart, by checking the
 * text's syntax without allocating, so that memory running out is never
 * blamed on the client. *at (when not NULL) receives the byte where the
 * syntax failed.
 */
int util_json_parse(const char *text, size_t len, cJSON **out, size_t *at);

#endif
