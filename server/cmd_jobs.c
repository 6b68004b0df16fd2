/*
 * cmd_jobs.c - "codid jobs": the job queue and the registries from the
 * command line, straight on the data directory's database (a running
 * daemon's workers pick submitted jobs up within a moment):
 *
 *   codid jobs submit (--json JSON | --file FILE)   queue a job, print it
 *   codid jobs list [--status S] [--limit N] [--cursor ID]
 *   codid jobs get ID | cancel ID | events ID [--after EVENT_ID]
 *   codid jobs datasets | adapters                  list the registries
 *   codid jobs add-dataset --name NAME --file SET [--source S] [--split S]
 *   codid jobs add-adapter --name NAME --file ADAPTER.safetensors
 *
 * Every form takes --data-dir DIR (default $CODID_DATA_DIR, else ./var, as
 * `codid serve`). JSON goes to stdout, errors to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/render.h"
#include "jobs/jobs.h"
#include "server/cli.h"
#include "server/commands.h"

#define JSON_FILE_MAX (1 << 20)

typedef struct jobs_args {
    const char *data_dir, *json, *file, *status, *name, *source, *split;
    long limit, cursor, after;
    const char *id; /* the positional argument */
} jobs_args;

static void usage(void) {
    fprintf(stderr, "usage: codid jobs submit (--json JSON | --file FILE)\n"
                    "       codid jobs list [--status S] [--limit N] [--cursor ID]\n"
                    "       codid jobs get ID | cancel ID | events ID [--after EVENT_ID]\n"
                    "       codid jobs datasets | adapters\n"
                    "       codid jobs add-dataset --name NAME --file SET [--source S] [--split S]\n"
                    "       codid jobs add-adapter --name NAME --file ADAPTER.safetensors\n"
                    "every form: [--data-dir DIR] (default $CODID_DATA_DIR, else ./var)\n");
}

static int print_json(cJSON *v) {
    char *text = cJSON_Print(v);
    cJSON_Delete(v);
    if (!text) return 1;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

/* The exit status of a failed operation: its message on stderr. */
static int fail(int rc, const char *msg) {
    fprintf(stderr, "codid jobs: %s (%s)\n", msg, jobs_strerror(rc));
    return 1;
}

static int need_id(const jobs_args *a, long *id) {
    if (!a->id) {
        usage();
        return -1;
    }
    return srv_cli_long(a->id, "ID", 1, 0x7fffffffffffffffL, id);
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_job_row(const jobs_job *j) {
    char loss[32] = "-";
    if (isfinite(j->progress.loss_smooth)) snprintf(loss, sizeof loss, "%.4f", j->progress.loss_smooth);
    cJSON *params = j->params ? cJSON_Parse(j->params) : NULL;
    printf("%-6lld %-9s %-10s %8d/%-8d %-9s %s\n", (long long)j->id, j->kind, jobs_state_name(j->state),
           j->progress.step, j->progress.total, loss, j->error ? j->error : str(params, "name"));
    cJSON_Delete(params);
}

static int cmd_list(jobs_store *st, const jobs_args *a) {
    jobs_job *jobs = NULL;
    int n = 0;
    int64_t next = 0;
    char msg[512];
    int rc = jobs_list(st, a->status, a->cursor, (int)a->limit, &jobs, &n, &next, msg, sizeof msg);
    if (rc != JOBS_OK) return fail(rc, msg);
    printf("%-6s %-9s %-10s %17s %-9s %s\n", "ID", "KIND", "STATUS", "STEP/TOTAL", "LOSS", "NAME / ERROR");
    for (int i = 0; i < n; i++) {
        print_job_row(&jobs[i]);
        jobs_job_clear(&jobs[i]);
    }
    free(jobs);
    if (next > 0) printf("(more: --cursor %lld)\n", (long long)next);
    return 0;
}

/* A job read back as JSON. */
static int job_out(jobs_store *st, int64_t id, cJSON **out, char *msg, size_t msgsz) {
    jobs_job j;
    int rc = jobs_store_job_get(st, id, &j, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    *out = api_job_json(&j);
    jobs_job_clear(&j);
    return JOBS_OK;
}

static int events_out(jobs_store *st, int64_t id, const jobs_args *a, cJSON **out, char *msg, size_t msgsz) {
    jobs_event *ev = NULL;
    int n = 0;
    int rc = jobs_events_since(st, id, a->after, (int)a->limit, &ev, &n, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    *out = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(*out, api_event_json(&ev[i]));
    jobs_events_free(ev, n);
    return JOBS_OK;
}

static int datasets_out(jobs_store *st, cJSON **out, char *msg, size_t msgsz) {
    jobs_dataset_info *items = NULL;
    int n = 0;
    int rc = jobs_store_dataset_list(st, &items, &n, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    *out = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(*out, api_dataset_json(&items[i]));
        jobs_dataset_info_clear(&items[i]);
    }
    free(items);
    return JOBS_OK;
}

static int adapters_out(jobs_store *st, cJSON **out, char *msg, size_t msgsz) {
    jobs_adapter_info *items = NULL;
    int n = 0;
    int rc = jobs_store_adapter_list(st, &items, &n, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    *out = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(*out, api_adapter_json(&items[i]));
        jobs_adapter_info_clear(&items[i]);
    }
    free(items);
    return JOBS_OK;
}

static int add_out(jobs_store *st, const char *verb, const jobs_args *a, cJSON **out, char *msg, size_t msgsz) {
    int rc;
    if (strcmp(verb, "add-dataset") == 0) {
        jobs_dataset_info d;
        rc = jobs_dataset_register(st, a->name, a->file, a->source, a->split, 0, &d, msg, msgsz);
        if (rc == JOBS_OK) *out = api_dataset_json(&d), jobs_dataset_info_clear(&d);
    } else {
        jobs_adapter_info ad;
        rc = jobs_adapter_register(st, a->name, a->file, &ad, msg, msgsz);
        if (rc == JOBS_OK) *out = api_adapter_json(&ad), jobs_adapter_info_clear(&ad);
    }
    return rc;
}

static int run(jobs_store *st, const char *verb, const jobs_args *a) {
    cJSON *out = NULL;
    char msg[512];
    int rc;
    long id;
    if (strcmp(verb, "submit") == 0) {
        if (!a->json == !a->file) {
            usage();
            return 2;
        }
        char *text = a->file ? srv_cli_read_text(a->file, JSON_FILE_MAX) : NULL;
        if (a->file && !text) {
            fprintf(stderr, "codid jobs: cannot read %s (or larger than %d bytes)\n", a->file, JSON_FILE_MAX);
            return 1;
        }
        int64_t job = 0;
        rc = jobs_submit(st, text ? text : a->json, &job, msg, sizeof msg);
        free(text);
        if (rc == JOBS_OK) rc = job_out(st, job, &out, msg, sizeof msg);
    } else if (strcmp(verb, "list") == 0) {
        return cmd_list(st, a);
    } else if (strcmp(verb, "get") == 0 || strcmp(verb, "cancel") == 0 || strcmp(verb, "events") == 0) {
        if (need_id(a, &id) != 0) return 2;
        if (strcmp(verb, "events") == 0)
            rc = events_out(st, id, a, &out, msg, sizeof msg);
        else if (strcmp(verb, "get") == 0 || (rc = jobs_cancel(st, id, NULL, msg, sizeof msg)) == JOBS_OK)
            rc = job_out(st, id, &out, msg, sizeof msg);
    } else if (strcmp(verb, "datasets") == 0) {
        rc = datasets_out(st, &out, msg, sizeof msg);
    } else if (strcmp(verb, "adapters") == 0) {
        rc = adapters_out(st, &out, msg, sizeof msg);
    } else if (strcmp(verb, "add-dataset") == 0 || strcmp(verb, "add-adapter") == 0) {
        if (!a->name || !a->file) {
            usage();
            return 2;
        }
        rc = add_out(st, verb, a, &out, msg, sizeof msg);
    } else {
        fprintf(stderr, "codid jobs: unknown action '%s'\n", verb);
        usage();
        return 2;
    }
    if (rc != JOBS_OK) return fail(rc, msg);
    return print_json(out);
}

int srv_cmd_jobs(int argc, char **argv) {
    jobs_args a = {.limit = 50};
    a.data_dir = getenv("CODID_DATA_DIR");
    if (!a.data_dir || !*a.data_dir) a.data_dir = "./var";
    static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'}, {"json", required_argument, 0, 'j'},
                                         {"file", required_argument, 0, 'f'},     {"status", required_argument, 0, 's'},
                                         {"limit", required_argument, 0, 'l'},    {"cursor", required_argument, 0, 'c'},
                                         {"after", required_argument, 0, 'a'},    {"name", required_argument, 0, 'n'},
                                         {"source", required_argument, 0, 'S'},   {"split", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd': a.data_dir = optarg; break;
            case 'j': a.json = optarg; break;
            case 'f': a.file = optarg; break;
            case 's': a.status = optarg; break;
            case 'n': a.name = optarg; break;
            case 'S': a.source = optarg; break;
            case 'p': a.split = optarg; break;
            case 'l':
                if (srv_cli_long(optarg, "--limit", 1, JOBS_LIST_LIMIT_MAX, &a.limit)) return 2;
                break;
            case 'c':
                if (srv_cli_long(optarg, "--cursor", 0, 0x7fffffffffffffffL, &a.cursor)) return 2;
                break;
            case 'a':
                if (srv_cli_long(optarg, "--after", 0, 0x7fffffffffffffffL, &a.after)) return 2;
                break;
            case 'h': usage(); return 0;
            default: usage(); return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage();
        return 2;
    }
    const char *verb = argv[optind];
    a.id = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (mkdir(a.data_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "codid jobs: cannot create %s: %s\n", a.data_dir, strerror(errno));
        return 1;
    }
    jobs_store *st = NULL;
    char msg[1024];
    int rc = jobs_store_open(a.data_dir, 0, &st, msg, sizeof msg);
    if (rc != JOBS_OK) return fail(rc, msg);
    int status = run(st, verb, &a);
    jobs_store_close(st);
    return status;
}
