/*
 * cli.h - small helpers shared by the offline subcommands (cmd_*.c): flag
 * values checked against bounds, the --help convention, the engine objects
 * a command opens first, and file input and output.
 *
 * A helper that fails has already printed its "codid: ..." line on stderr,
 * so the caller only picks the exit status (commands.h: 2 for a bad flag,
 * 1 for the rest).
 */
#ifndef CODID_SERVER_CLI_H
#define CODID_SERVER_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* --threads N: intra-op threads, 0 (the default) leaves torch's choice. */
#define SRV_CLI_MAX_THREADS 1024
/* --seed S: at most 2^53, the largest integer JSON carries exactly, as in
 * the HTTP API, so that a seed printed by one tool is read back by another. */
#define SRV_CLI_MAX_SEED (1L << 53)

/* s as a whole number in lo..hi into *out, 0; else -1 after "codid: FLAG
 * must be an integer in LO..HI (got 'S')". */
int srv_cli_long(const char *s, const char *flag, long lo, long hi, long *out);
int srv_cli_int(const char *s, const char *flag, int lo, int hi, int *out);
/* s as a finite number; else -1 after "codid: FLAG must be a number". */
int srv_cli_float(const char *s, const char *flag, float *out);
/* The two flags most commands take, with the bounds above. */
int srv_cli_threads(const char *s, int *out);
int srv_cli_seed(const char *s, uint64_t *out);

/* When the arguments after argv[0] ask for help (--help or -h, before any
 * "--"), prints usage on stdout and returns 1: the command exits 0. */
int srv_cli_help(int argc, char **argv, const char *usage);
/* usage on stderr; returns 2, the exit status of bad usage. */
int srv_cli_usage_error(const char *usage);

/* An engine context with that many threads; NULL after a message. */
eng_ctx *srv_cli_ctx(int threads);
/* The model or classifier folder dir; NULL after a message. */
eng_model *srv_cli_model(eng_ctx *ctx, const char *dir);
eng_classifier *srv_cli_classifier(eng_ctx *ctx, const char *dir);

/* A whole file of at most cap bytes, NUL-terminated (free() it); NULL when
 * it cannot be read or is larger, without a message. */
char *srv_cli_read_text(const char *path, size_t cap);
/* Writes len bytes to path (replacing it); -1 after "codid: cannot write
 * PATH: REASON". */
int srv_cli_write_file(const char *path, const void *data, size_t len);
/* w x h x channels 8-bit pixels as a PNG file; -1 after a message. */
int srv_cli_write_png(const char *path, const uint8_t *pixels, int w, int h, int channels);

#endif
