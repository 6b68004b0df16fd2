/*
 * sse.h - job event streams (GET /v1/jobs/{id}/events) as Server-Sent
 * Events.
 *
 * One thread serves every stream: each poll_ms it reads the new events of
 * each stream's job from the store and writes them to the stream (see
 * api_stream in http.h: the connection sleeps while nothing is pending, so
 * an idle stream costs no CPU and never holds the event loop). Each event
 * goes out as
 *
 *     id: <event id>
 *     event: progress | state | result
 *     data: <JSON payload on one line>
 *
 * after an initial `event: job` carrying the whole job. The stream ends
 * after the job's final state. A comment line every heartbeat_ms keeps
 * proxies from closing the connection and finds clients that left. A client
 * that reconnects with Last-Event-ID (or ?after=) resumes after that event.
 */
#ifndef CODID_API_SSE_H
#define CODID_API_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "api/render.h"
#include "jobs/store.h"

#define API_SSE_PENDING_MAX (256 * 1024) /* bytes waiting for a slow client */

typedef struct api_sse api_sse;

int api_sse_start(jobs_store *st, int max_streams, int poll_ms, int heartbeat_ms, api_sse **out, char *msg,
                  size_t msgsz);
/* Takes over the writer's reference to s: 0, or -1 when max_streams are
 * open or stopping began (s is then ended and released). */
/* scrub: what the client may see (api/render.h), kept for the stream's life. */
int api_sse_add(api_sse *sse, api_stream *s, int64_t job_id, int64_t after_event_id, const api_scrub *scrub);
/* Open streams. */
int api_sse_count(api_sse *sse);
/* Ends every stream (each gets `event: shutdown`) and joins the thread;
 * NULL is fine. */
void api_sse_stop(api_sse *sse);

#endif
