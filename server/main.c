/*
 * main.c - codid's entry point: picks the subcommand from a table.
 *
 * Each command gets argc/argv from its own name on and returns the exit
 * status (0 success, 1 failure, 2 bad usage).
 */
#include <stdio.h>
#include <string.h>

#include "server/commands.h"
#include "server/config.h"
#include "server/serve.h"

typedef struct srv_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} srv_command;

static int cmd_help(int argc, char **argv);

static const srv_command commands[] = {
    {"serve", srv_cmd_serve, "serve the HTTP API (generation, models, probes)"},
    {"dataset", srv_cmd_dataset, "build dataset files (import) and preview them (grid)"},
    {"forward", srv_cmd_forward, "one UNet evaluation of a safetensors tensor (checkpoint checks)"},
    {"pretrain", srv_cmd_pretrain, "pretrain an unconditional base model on a dataset file"},
    {"adapter", srv_cmd_adapter, "train an adapter from a job spec; score adapters (quality table)"},
    {"plot", srv_cmd_plot, "a PNG plot of a training loss log"},
    {"sample", srv_cmd_sample, "a PNG grid of unconditional samples from a model"},
    {"keys", srv_cmd_keys, "create, list and revoke API keys (scopes generate, admin)"},
    {"jobs", srv_cmd_jobs, "queue, list and cancel training jobs; register datasets and adapters"},
    {"config", srv_cmd_config, "the effective serve settings and where each came from"},
    {"eval", srv_cmd_eval, "quality metrics: classifier, FID-proxy, PSNR, SSIM"},
    {"help", cmd_help, "this text; `codid COMMAND --help` for a command's own"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int cmd_help(int argc, char **argv) {
    (void)argc, (void)argv;
    printf("usage: codid COMMAND [flags]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\nserve flags (flag > environment variable > config file > default):\n");
    srv_config_print_help(stdout);
    printf("\nConfig file: \"key = value\" lines (keys as the flags, with '_' for '-'),\n"
           "'#' starts a comment line. --model %s serves a small untrained model.\n",
           SRV_MODEL_RANDOM_TINY);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cmd_help(0, NULL);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cmd_help(0, NULL);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "codid: unknown command '%s' (try codid --help)\n", argv[1]);
    return 2;
}
