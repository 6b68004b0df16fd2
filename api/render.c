/* render.c - see render.h: jobs/' structs as the API's JSON. */
#include "api/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cJSON *add_time(cJSON *o, const char *key, int64_t ms) {
    if (ms <= 0) return cJSON_AddNullToObject(o, key);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40], out[48];
    gmtime_r(&secs, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03dZ", buf, (int)(ms % 1000));
    return cJSON_AddStringToObject(o, key, out);
}

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_str(cJSON *o, const char *key, const char *v) {
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* Stored JSON text as a value; null when absent. */
static void add_json(cJSON *o, const char *key, const char *text) {
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateNull());
}

cJSON *api_job_json(const jobs_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)j->id);
    cJSON_AddStringToObject(o, "kind", j->kind);
    cJSON_AddStringToObject(o, "status", jobs_state_name(j->state));
    add_json(o, "params", j->params);
    add_time(o, "created_at", j->created_ms);
    add_time(o, "started_at", j->started_ms);
    add_time(o, "finished_at", j->finished_ms);
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddNumberToObject(p, "step", j->progress.step);
    cJSON_AddNumberToObject(p, "total", j->progress.total);
    add_num(p, "loss", j->progress.loss);
    add_num(p, "loss_smooth", j->progress.loss_smooth);
    add_num(p, "lr", j->progress.lr);
    add_num(p, "it_per_s", j->progress.it_per_s);
    add_num(p, "eta_s", j->progress.eta_s);
    add_str(o, "error", j->error);
    add_json(o, "result", j->result);
    cJSON_AddBoolToObject(o, "cancel_requested", j->cancel_requested);
    cJSON_AddNumberToObject(o, "attempts", j->attempts);
    add_str(o, "checkpoint", j->checkpoint);
    return o;
}

cJSON *api_event_json(const jobs_event *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)e->id);
    add_time(o, "ts", e->ts_ms);
    cJSON_AddStringToObject(o, "kind", e->kind);
    add_json(o, "data", e->payload);
    return o;
}

cJSON *api_dataset_json(const jobs_dataset_info *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)d->id);
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "source", d->source);
    add_str(o, "path", d->path);
    cJSON_AddNumberToObject(o, "count", d->count);
    cJSON_AddNumberToObject(o, "size", d->size);
    cJSON_AddNumberToObject(o, "channels", d->channels);
    add_str(o, "split", *d->split ? d->split : NULL);
    cJSON_AddBoolToObject(o, "labelled", d->labelled);
    cJSON_AddNumberToObject(o, "skipped", d->skipped);
    add_time(o, "created_at", d->created_ms);
    return o;
}

cJSON *api_adapter_json(const jobs_adapter_info *a) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    cJSON_AddStringToObject(o, "name", a->name);
    if (a->job_id > 0)
        cJSON_AddNumberToObject(o, "job_id", (double)a->job_id);
    else
        cJSON_AddNullToObject(o, "job_id");
    add_str(o, "path", a->path);
    cJSON_AddStringToObject(o, "task", a->task);
    cJSON_AddStringToObject(o, "kind", a->kind);
    cJSON_AddStringToObject(o, "base_hash", a->base_hash);
    add_json(o, "metadata", a->metadata ? a->metadata : "{}");
    add_time(o, "created_at", a->created_ms);
    return o;
}

/* Each prefix of s in text replaced by its label (a prefix matches only
 * where a path can start and only as whole path components). */
char *api_scrub_text(const api_scrub *s, const char *text) {
    if (!text) return NULL;
    size_t len = strlen(text), cap = len + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int hit = -1;
        for (int k = 0; s && k < s->n && hit < 0; k++) {
            size_t pl = strlen(s->prefix[k]);
            if (pl < 2 || pl > len - i || strncmp(text + i, s->prefix[k], pl) != 0) continue;
            char after = text[i + pl]; /* in bounds: at most the terminating NUL */
            if (after == '/' || after == '\0' || after == '"' || after == ' ' || after == '\'' || after == ':') hit = k;
        }
        const char *piece = hit >= 0 ? s->label[hit] : text + i;
        size_t n = hit >= 0 ? strlen(piece) : 1;
        if (o + n + 1 > cap) {
            cap = (o + n + 1) * 2;
            char *bigger = realloc(out, cap);
            if (!bigger) {
                free(out);
                return NULL;
            }
            out = bigger;
        }
        memcpy(out + o, piece, n);
        o += n;
        i += hit >= 0 ? strlen(s->prefix[hit]) : 1;
    }
    out[o] = 0;
    return out;
}

char *api_scrub_json_text(const api_scrub *s, const char *json) {
    cJSON *doc = cJSON_Parse(json);
    if (!doc) return api_scrub_text(s, json);
    api_scrub_tree(s, doc);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text) return NULL;
    char *out = strdup(text); /* free()-able, as api_scrub_text's */
    cJSON_free(text);
    return out;
}

static int is_path_member(const char *name) {
    return name && (strcmp(name, "path") == 0 || strcmp(name, "adapter_path") == 0 || strcmp(name, "model_path") == 0);
}

void api_scrub_tree(const api_scrub *s, cJSON *doc) {
    if (!s || !doc) return;
    for (cJSON *c = doc->child, *next; c; c = next) {
        next = c->next;
        if (cJSON_IsObject(doc) && is_path_member(c->string)) {
            cJSON_Delete(cJSON_DetachItemViaPointer(doc, c));
        } else if (cJSON_IsString(c) && c->valuestring) {
            char *clean = api_scrub_text(s, c->valuestring);
            if (clean && strcmp(clean, c->valuestring) != 0) cJSON_SetValuestring(c, clean);
            free(clean);
        } else {
            api_scrub_tree(s, c);
        }
    }
}
