/*
 * tasks.h - a few threads that run handlers' slow work off the event loop:
 * preparing a generate request (loading its adapter, resizing and
 * preprocessing its image) and importing a dataset. A handler suspends its
 * request, submits a task, and the task resumes the request when done.
 *
 * The queue is bounded: a submit beyond queue_max fails, and the handler
 * answers 429. Stopping runs every task already queued (each holds a
 * suspended request that must be answered) and joins the threads.
 */
#ifndef CODID_API_TASKS_H
#define CODID_API_TASKS_H

#include <stddef.h>

typedef struct api_tasks api_tasks;

/* threads: engine intra-op threads each worker sets (0: leave). */
int api_tasks_start(const char *name, int workers, int queue_max, int threads, api_tasks **out, char *msg,
                    size_t msgsz);
/* 0, or -1 when the queue is full or stopping began. */
int api_tasks_submit(api_tasks *t, void (*run)(void *arg), void *arg);
/* Tasks queued or running now. */
int api_tasks_pending(api_tasks *t);
/* Runs what is queued, then joins and frees; NULL is fine. */
void api_tasks_stop(api_tasks *t);

#endif
