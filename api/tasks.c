/* tasks.c - see tasks.h: a mutex, a condition variable and a FIFO list. */
#include "api/tasks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

typedef struct task {
    void (*run)(void *arg);
    void *arg;
    struct task *next;
} task;

struct api_tasks {
    pthread_mutex_t lock;
    pthread_cond_t more;
    task *head, *tail;
    int queued, running, queue_max, stopping, threads, n_workers;
    pthread_t *workers;
};

static void *worker_main(void *arg) {
    api_tasks *t = arg;
    if (t->threads > 0) eng_set_threads(t->threads);
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->head && !t->stopping) pthread_cond_wait(&t->more, &t->lock);
        task *k = t->head;
        if (!k) break; /* stopping, and nothing left */
        t->head = k->next;
        if (!t->head) t->tail = NULL;
        t->queued--;
        t->running++;
        pthread_mutex_unlock(&t->lock);
        k->run(k->arg);
        free(k);
        pthread_mutex_lock(&t->lock);
        t->running--;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int api_tasks_start(const char *name, int workers, int queue_max, int threads, api_tasks **out, char *msg,
                    size_t msgsz) {
    api_tasks *t = calloc(1, sizeof *t);
    if (t) t->workers = calloc((size_t)(workers > 0 ? workers : 1), sizeof *t->workers);
    if (!t || !t->workers) {
        if (t) free(t);
        snprintf(msg, msgsz, "%s: out of memory", name);
        return -1;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->more, NULL);
    t->queue_max = queue_max;
    t->threads = threads;
    for (int i = 0; i < workers; i++) {
        int rc = pthread_create(&t->workers[i], NULL, worker_main, t);
        if (rc != 0) {
            snprintf(msg, msgsz, "%s: cannot start a thread: %s", name, strerror(rc));
            api_tasks_stop(t);
            return -1;
        }
        t->n_workers++;
    }
    *out = t;
    return 0;
}

int api_tasks_submit(api_tasks *t, void (*run)(void *arg), void *arg) {
    task *k = malloc(sizeof *k);
    if (!k) return -1;
    k->run = run;
    k->arg = arg;
    k->next = NULL;
    pthread_mutex_lock(&t->lock);
    int ok = !t->stopping && t->queued < t->queue_max;
    if (ok) {
        if (t->tail)
            t->tail->next = k;
        else
            t->head = k;
        t->tail = k;
        t->queued++;
        pthread_cond_signal(&t->more);
    }
    pthread_mutex_unlock(&t->lock);
    if (!ok) free(k);
    return ok ? 0 : -1;
}

int api_tasks_pending(api_tasks *t) {
    pthread_mutex_lock(&t->lock);
    int n = t->queued + t->running;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void api_tasks_stop(api_tasks *t) {
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_broadcast(&t->more);
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < t->n_workers; i++) pthread_join(t->workers[i], NULL);
    pthread_cond_destroy(&t->more);
    pthread_mutex_destroy(&t->lock);
    free(t->workers);
    free(t);
}
