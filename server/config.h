/*
 * config.h - the daemon's settings: flags, environment, config file.
 *
 * Every setting has one key (say max_batch) and three spellings derived from
 * it: the flag --max-batch, the environment variable CODID_MAX_BATCH and the
 * config-file line "max_batch = 8". Precedence: flag > environment > file >
 * built-in default. The file is named by --config or CODID_CONFIG; its format
 * is "key = value" lines, blank lines, and lines whose first non-blank
 * character is '#'. An unknown key, a repeated key or a bad value is an error
 * that names its source (flag, variable, or file and line).
 *
 * Integers are decimal; the *_bytes and *_pixels settings also take a K, M or
 * G suffix (powers of 1024).
 */
#ifndef CODID_SERVER_CONFIG_H
#define CODID_SERVER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "util/log.h"

#define SRV_PATH_MAX        1024
#define SRV_CONFIG_MAX_KEYS 48 /* room in srv_config.origin; config.c asserts it fits */

/* Where a setting's value came from, shown by `codid config`. */
typedef enum srv_config_origin {
    SRV_ORIGIN_DEFAULT = 0,
    SRV_ORIGIN_FILE,
    SRV_ORIGIN_ENV,
    SRV_ORIGIN_FLAG
} srv_config_origin;

typedef struct srv_config {
    char listen[128]; /* "host:port"; IPv6 hosts in brackets */
    char data_dir[SRV_PATH_MAX];
    char model[SRV_PATH_MAX];        /* "": the default model; "random-tiny" */
    char share_dir[SRV_PATH_MAX];    /* where models/ lives when not in "." */
    char adapters_dir[SRV_PATH_MAX]; /* shipped adapters; "": adapters/ beside the model; "none" */
    char config[SRV_PATH_MAX];       /* the file these settings came from */
    int threads;                     /* intra-op threads for generation; 0: torch's */
    int workers;                     /* training worker threads; 0: train nothing */
    int train_threads;               /* intra-op threads per worker; 0: torch's */
    int max_batch;                   /* images per batched eng_generate call */
    int batch_wait_ms;               /* how long a batch waits to fill */
    int queue_max;                   /* generate requests waiting; then 429 */
    int64_t max_body_bytes;
    int64_t max_pixels;
    int max_n;
    int max_steps;
    int request_timeout_s;
    util_log_level log_level;
    /* the REST API (api/) */
    int64_t max_upload_bytes; /* dataset uploads (multipart, tar) */
    int adapter_cache;        /* adapters kept loaded for generation */
    int max_streams;          /* open event streams (GET /v1/jobs/{id}/events) */
    char cors_origins[1024];  /* comma-separated origins; "*" any (no credentials) */
    int insecure;             /* serve beyond loopback without API keys */
    /* hostile clients (api/guard.h) */
    int header_timeout_s;           /* a whole request header, from connect or the previous answer */
    int body_timeout_s;             /* a whole request body, from its headers */
    int max_connections;            /* open connections in all (then 503) */
    int max_connections_per_client; /* open connections of one address (then 503) */
    int rate_limit_per_min;         /* requests a minute per address and per key (then 429); 0 off */
    int rate_limit_burst;
    int rate_limit_loopback;        /* also limit clients on loopback */
    int64_t max_header_bytes;       /* request line and headers (then 431) */
    int max_headers;                /* header fields (then 431) */
    char cifar10_dir[SRV_PATH_MAX]; /* built-in dataset sources */
    char fashion_mnist_dir[SRV_PATH_MAX];
    unsigned char origin[SRV_CONFIG_MAX_KEYS]; /* srv_config_origin per setting, --help order */
} srv_config;

enum {
    SRV_CONFIG_OK = 0,
    SRV_CONFIG_ERR = -1,
    SRV_CONFIG_HELP = 1 /* --help or -h was given */
};

void srv_config_defaults(srv_config *c);

/*
 * Fills c from defaults, the config file, the environment and the flags in
 * argv[1..argc) (argv[0], the command name, is skipped). Flags read
 * "--key value" or "--key=value". Returns SRV_CONFIG_OK, SRV_CONFIG_HELP, or
 * SRV_CONFIG_ERR with the reason in msg.
 */
int srv_config_load(srv_config *c, int argc, char **argv, char *msg, size_t msgsz);

/* One setting by key, as the file would give it; `source` prefixes errors. */
int srv_config_set(srv_config *c, const char *key, const char *value, const char *source, char *msg, size_t msgsz);

/* Reads "key = value" lines from path into c. */
int srv_config_load_file(srv_config *c, const char *path, char *msg, size_t msgsz);

/* Splits a validated listen value: host (brackets removed) and port. */
int srv_config_listen_split(const char *listen, char *host, size_t hostsz, int *port);

/* The flag list for --help: flag, variable, default, meaning. */
void srv_config_print_help(FILE *f);

/* Every setting as "key = value", in --help order, each followed by a
 * "# origin" column (default, file PATH, env CODID_X, flag --x): a report of
 * the effective settings for `codid config`, not a file to load back. */
void srv_config_print(FILE *f, const srv_config *c);

#endif
