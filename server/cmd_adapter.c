/*
 * cmd_adapter.c - `codid adapter train|eval`: adapter work without the
 * daemon, for reproducing the default adapters and their quality tables.
 *
 *   codid adapter train --model DIR --data SET.cds --out FILE.safetensors
 *         --spec '{"kind":"distill","task":{"name":"sr","factor":4},...}'
 *         [--teacher FILE] [--threads N] [--checkpoint FILE] [--log LOSS.csv]
 *
 * The spec is the JSON a client posts to /v1/jobs (jobs/jobspec.h); here
 * the dataset and the cm2 teacher are files given by flags, so the spec's
 * "dataset" and "teacher" may be left out.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "jobs/dataset.h"
#include "jobs/jobspec.h"
#include "server/cli.h"
#include "server/commands.h"
#include "server/trainloop.h"

/* The spec with placeholders for the references the flags replace. */
static char *spec_for_cli(const char *json, int cm2_teacher) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    if (!cJSON_HasObjectItem(o, "dataset")) cJSON_AddStringToObject(o, "dataset", "cli");
    if (cm2_teacher && !cJSON_HasObjectItem(o, "teacher")) cJSON_AddStringToObject(o, "teacher", "cli");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static const char train_usage[] =
    "usage: codid adapter train --model DIR --data SET.cds --out FILE --spec JSON\n"
    "         [--teacher FILE] [--threads N] [--checkpoint FILE] [--log LOSS.csv] [--log-every 50]\n";

static int adapter_train(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *spec_json = NULL, *teacher = NULL;
    const char *ckpt = NULL, *log_path = NULL;
    int threads = 0, log_every = 50;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"data", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},        {"spec", required_argument, 0, 's'},
        {"teacher", required_argument, 0, 'T'},    {"threads", required_argument, 0, 'j'},
        {"checkpoint", required_argument, 0, 'k'}, {"log", required_argument, 0, 'L'},
        {"log-every", required_argument, 0, 'E'},  {0, 0, 0, 0}};
    if (srv_cli_help(argc, argv, train_usage)) return 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm': model = optarg; break;
            case 'd': data = optarg; break;
            case 'o': out = optarg; break;
            case 's': spec_json = optarg; break;
            case 'T': teacher = optarg; break;
            case 'j':
                if (srv_cli_threads(optarg, &threads)) return 2;
                break;
            case 'k': ckpt = optarg; break;
            case 'L': log_path = optarg; break;
            case 'E':
                if (srv_cli_int(optarg, "--log-every", 1, 100000000, &log_every)) return 2;
                break;
            default: return 2;
        }
    }
    if (!model || !data || !out || !spec_json) return srv_cli_usage_error(train_usage);
    char msg[256];
    char *full = spec_for_cli(spec_json, teacher != NULL);
    jobs_spec spec;
    if (!full || jobs_spec_parse(full, &spec, msg, sizeof msg)) {
        fprintf(stderr, "codid: --spec: %s\n", full ? msg : "not a JSON object");
        free(full);
        return 2;
    }
    free(full);
    if (spec.kind == JOBS_KIND_PRETRAIN || spec.kind == JOBS_KIND_EVALUATE) {
        fprintf(stderr, "codid: adapter train takes distill, teacher or cm2 specs\n");
        jobs_spec_free(&spec);
        return 2;
    }
    if (spec.kind == JOBS_KIND_CM2 && !teacher) {
        fprintf(stderr, "codid: cm2 needs --teacher FILE\n");
        jobs_spec_free(&spec);
        return 2;
    }
    spec.train.teacher_path = teacher;
    jobs_dataset ds;
    if (jobs_dataset_map(data, &ds, msg, sizeof msg)) {
        fprintf(stderr, "codid: %s: %s\n", data, msg);
        jobs_spec_free(&spec);
        return 1;
    }
    eng_ctx *ctx = srv_cli_ctx(threads);
    eng_model *m = ctx ? srv_cli_model(ctx, model) : NULL;
    eng_trainer *t = NULL;
    eng_error err;
    int status = 1;
    eng_images imgs = {ds.count, ds.height, ds.width, ds.channels, ds.pixels};
    if (m && eng_trainer_create_adapter(m, &spec.train, &imgs, &t, &err)) {
        fprintf(stderr, "codid: %s\n", err.msg);
    } else if (m) {
        srv_train_opts o = {spec.train.total_steps, ckpt, spec.checkpoint_every, log_path, log_every, out, 0, NULL};
        status = srv_train_loop(t, &o);
    }
    eng_trainer_free(t);
    eng_model_free(m);
    eng_ctx_free(ctx);
    jobs_dataset_unmap(&ds);
    jobs_spec_free(&spec);
    return status;
}

int srv_cmd_adapter(int argc, char **argv) {
    static const char usage[] = "usage: codid adapter train|eval ... (--help on each)\n";
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return adapter_train(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) return srv_cmd_adapter_eval(argc - 1, argv + 1);
    return srv_cli_help(argc, argv, usage) ? 0 : srv_cli_usage_error(usage);
}
