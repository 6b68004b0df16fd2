/*
 * cmd_keys.c - "codid keys": the API keys of a data directory.
 *
 *   codid keys create --scope generate|admin   prints the new key, once
 *   codid keys list                            id, prefix, scope, state
 *   codid keys revoke ID
 *
 * Every form takes --data-dir DIR (default $CODID_DATA_DIR, else ./var). A
 * running daemon sees a new or revoked key at its next request.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "api/auth.h"
#include "jobs/store.h"
#include "server/commands.h"

static void usage(void) {
    fprintf(stderr, "usage: codid keys create --scope generate|admin [--data-dir DIR]\n"
                    "       codid keys list [--data-dir DIR]\n"
                    "       codid keys revoke ID [--data-dir DIR]\n"
                    "--data-dir defaults to $CODID_DATA_DIR, else ./var\n");
}

int srv_cmd_keys(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *scope = NULL, *data_dir = getenv("CODID_DATA_DIR");
    if (!data_dir || !*data_dir) data_dir = "./var";
    static const struct option longopts[] = {
        {"scope", required_argument, NULL, 's'}, {"data-dir", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 's')
            scope = optarg;
        else if (c == 'd')
            data_dir = optarg;
        else {
            usage();
            return 2;
        }
    }
    const char *id_arg = optind < argc ? argv[optind] : NULL;
    int create = strcmp(verb, "create") == 0, list = strcmp(verb, "list") == 0, revoke = strcmp(verb, "revoke") == 0;
    if ((!create && !list && !revoke) || (create && (!scope || id_arg)) || (list && id_arg) || (revoke && !id_arg)) {
        usage();
        return 2;
    }
    if (create && strcmp(scope, "generate") != 0 && strcmp(scope, "admin") != 0) {
        fprintf(stderr, "codid keys: --scope must be generate or admin\n");
        return 2;
    }
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "codid keys: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }
    jobs_store *st = NULL;
    char msg[512];
    if (jobs_store_open(data_dir, 0, &st, msg, sizeof msg) != JOBS_OK) {
        fprintf(stderr, "codid keys: %s\n", msg);
        return 1;
    }
    int rc = JOBS_OK;
    if (create) {
        char key[API_KEY_MAX];
        int64_t id = 0;
        rc = api_key_create(st, scope, key, sizeof key, &id, msg, sizeof msg);
        if (rc == JOBS_OK) {
            printf("%s\n", key);
            fprintf(stderr, "key %lld (scope %s) created; it is shown only now: keep it safe\n", (long long)id, scope);
        }
    } else if (list) {
        jobs_api_key *keys = NULL;
        int n = 0;
        rc = jobs_store_key_list(st, &keys, &n, msg, sizeof msg);
        for (int i = 0; rc == JOBS_OK && i < n; i++) {
            time_t t = (time_t)(keys[i].created_ms / 1000);
            struct tm tm;
            char when[32];
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%lld\tcodid_%s_...\t%s\t%s\t%s\n", (long long)keys[i].id, keys[i].prefix, keys[i].scope, when,
                   keys[i].revoked_ms ? "revoked" : "active");
        }
        free(keys);
    } else {
        char *end;
        long long id = strtoll(id_arg, &end, 10);
        if (*end || id < 1) {
            fprintf(stderr, "codid keys: ID must be a key id (see codid keys list)\n");
            jobs_store_close(st);
            return 2;
        }
        rc = jobs_store_key_revoke(st, id, msg, sizeof msg);
        if (rc == JOBS_OK) fprintf(stderr, "key %lld revoked\n", id);
    }
    if (rc != JOBS_OK) fprintf(stderr, "codid keys: %s\n", msg);
    jobs_store_close(st);
    return rc == JOBS_OK ? 0 : 1;
}
