/*
 * main.c - codid's entry point: picks the subcommand from a table.
 *
 * Each command gets argc/argv from its own name on and returns the exit
 * status (0 success, 1 failure, 2 bad usage).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

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
    for (size_t i = 0; i < N_COMMANDS; i++) printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\nserve flags (flag > environment variable > config file > default):\n");
    srv_config_print_help(stdout);
    printf("\nConfig file: \"key = value\" lines (keys as the flags, with '_' for '-'),\n"
           "'#' starts a comment line. --model %s serves a small untrained model.\n",
           SRV_MODEL_RANDOM_TINY);
    return 0;
}

/*
 * codid restarts itself once (execv of /proc/self/exe), for two reasons that
 * only hold from the start of a process:
 *
 * Huge pages: glibc backs its large malloc blocks with transparent huge
 * pages only when GLIBC_TUNABLES says so, and reads it once at start-up, so
 * glibc.malloc.hugetlb=1 is added. torch allocates a fresh activation tensor
 * per layer; with 2 MiB pages that costs one page fault per 2 MiB instead of
 * per 4 KiB, and a UNet forward at batch 32 takes about half the time
 * (bench/RESULTS.md, 'Transparent huge pages'). CODID_HUGEPAGES=0 turns it
 * off; a tunable already set is left alone.
 *
 * Stop signals: `serve` takes SIGTERM and SIGINT with sigwait(), so they
 * must be blocked in every thread, and OpenBLAS starts its threads while the
 * libraries load, before main() runs: a signal that reached one of those
 * would end the process (exit 143) instead of stopping it cleanly. A signal
 * mask survives execve and is inherited by every thread, so serve blocks
 * them before restarting.
 */
static void restart_once(int argc, char **argv) {
    if (getenv("CODID_REEXEC")) {    /* this is the restarted process */
        prctl(PR_SET_NAME, "codid"); /* not "exe", for ps, top and pkill */
        return;
    }
    const char *off = getenv("CODID_HUGEPAGES");
    const char *cur = getenv("GLIBC_TUNABLES");
    int want_tunable = !(off && strcmp(off, "0") == 0) && !(cur && strstr(cur, "glibc.malloc.hugetlb"));
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_SETMASK, NULL, &old);
    int want_mask = argc > 1 && strcmp(argv[1], "serve") == 0 &&
                    !(sigismember(&old, SIGTERM) == 1 && sigismember(&old, SIGINT) == 1);
    if (!want_tunable && !want_mask) return;
    if (want_tunable) {
        char buf[2048];
        int n = snprintf(buf, sizeof buf, "%s%sglibc.malloc.hugetlb=1", cur ? cur : "", cur && *cur ? ":" : "");
        if (n < 0 || (size_t)n >= sizeof buf || setenv("GLIBC_TUNABLES", buf, 1) != 0) want_tunable = 0;
    }
    /* CODID_REEXEC stops a loop where glibc ignores the variable (AT_SECURE) */
    if (setenv("CODID_REEXEC", "1", 1) != 0) return;
    if (want_mask) sigprocmask(SIG_BLOCK, &stop, NULL);
    execv("/proc/self/exe", argv);
    /* no /proc: run as we are, with the mask we had */
    if (want_mask) sigprocmask(SIG_SETMASK, &old, NULL);
}

int main(int argc, char **argv) {
    restart_once(argc, argv);
    unsetenv("CODID_REEXEC"); /* not for the commands codid runs */
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
