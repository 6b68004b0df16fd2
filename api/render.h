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

#endif
