/*
 * render.h - the JSON of the jobs layer's structs: the bodies openapi.yaml
 * describes for jobs, events, datasets and adapters.
 *
 * jobs/ returns structs (jobs/store.h); this is the one place they become
 * JSON, for the HTTP handlers and for the command line (server/cmd_jobs.c),
 * so both print the same document. Times are ISO 8601 UTC strings with
 * milliseconds, null when not yet; a non-finite number is null. Each
 * function returns a new cJSON value the caller owns, or NULL when out of
 * memory.
 */
#ifndef CODID_API_RENDER_H
#define CODID_API_RENDER_H

#include <cjson/cJSON.h>

#include "jobs/store.h"

/* {id, kind, status, params, created_at, started_at, finished_at, progress
 * {step, total, loss, loss_smooth, lr, it_per_s, eta_s}, error, result,
 * cancel_requested, attempts, checkpoint} */
cJSON *api_job_json(const jobs_job *j);
/* {id, ts, kind, data} */
cJSON *api_event_json(const jobs_event *e);
/* {id, name, source, path, count, size, channels, split, labelled,
 * skipped, created_at} */
cJSON *api_dataset_json(const jobs_dataset_info *d);
/* {id, name, job_id, path, task, kind, base_hash, metadata, created_at} */
cJSON *api_adapter_json(const jobs_adapter_info *a);

/*
 * What a client without an admin key must not see: the server's paths. A
 * scrubber holds the folders the daemon writes and reads (its data
 * directory, its model folder); api_request_scrub() (api/auth.h) hands one
 * out for requests that are not admin's, NULL for admin's.
 *
 * api_scrub_tree drops the members named path, adapter_path and model_path
 * anywhere in doc and rewrites each prefix inside a string value as
 * "<data_dir>" or "<models>" (error texts name files); api_scrub_text does
 * the second to a text (a stored event payload) and returns a malloc'd
 * copy, or NULL when out of memory. A NULL scrubber changes nothing.
 */
#define API_SCRUB_MAX 4
typedef struct api_scrub {
    const char *prefix[API_SCRUB_MAX];
    const char *label[API_SCRUB_MAX];
    int n;
} api_scrub;
void api_scrub_tree(const api_scrub *s, cJSON *doc);
char *api_scrub_text(const api_scrub *s, const char *text);
/* A JSON text through api_scrub_tree (malloc'd; api_scrub_text's result when
 * it is not JSON). */
char *api_scrub_json_text(const api_scrub *s, const char *json);

#endif
