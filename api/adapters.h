/*
 * adapters.h - the adapters loaded for generation: a small cache keyed by
 * the registry id, filled lazily by the first generate request that names
 * an adapter, least recently used first out.
 *
 * Threads (what the engine allows at once on one model: engine.h,
 * 'Threads'): loading (eng_adapter_load) and freeing run torch, so they happen
 * on the prepare threads (api/tasks.h) and the batcher thread, never on the
 * event loop; the event loop only marks an entry dead (DELETE) and reads the
 * totals for /metrics. A request holds a reference from acquire until its
 * images are made, so an adapter deleted or evicted meanwhile stays loaded
 * until the last request using it is done.
 */
#ifndef CODID_API_ADAPTERS_H
#define CODID_API_ADAPTERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct api_adapters api_adapters;

int api_adapters_start(eng_model *model, int capacity, api_adapters **out, char *msg, size_t msgsz);
/* Frees every adapter; no reference may be held. NULL is fine. */
void api_adapters_stop(api_adapters *c);

/* The adapter of registry row id (file path), loaded when missing. Returns
 * an eng_status with a message; *out holds a reference until release. */
int api_adapters_acquire(api_adapters *c, int64_t id, const char *path, eng_adapter **out, char *msg, size_t msgsz);
void api_adapters_release(api_adapters *c, eng_adapter *a);
/* The row is gone: the adapter is freed once unused, by the next sweep or
 * acquire (event-loop safe). */
void api_adapters_forget(api_adapters *c, int64_t id);
/* Frees forgotten adapters nobody uses (torch: not on the event loop). */
void api_adapters_sweep(api_adapters *c);
/* Whether id is loaded now (event-loop safe). */
int api_adapters_loaded(api_adapters *c, int64_t id);
/* Bytes of the loaded adapters and their count (event-loop safe). */
int64_t api_adapters_memory(api_adapters *c, int *count);

#endif
