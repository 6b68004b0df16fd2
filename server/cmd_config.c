/*
 * cmd_config.c - "codid config": the settings `codid serve` would run with,
 * given the same flags, environment and config file, each with where it came
 * from. Nothing is started, so it checks a config file before a restart
 * (exit 2 and the reason when a setting is refused, as serve would).
 */
#include <stdio.h>

#include "server/commands.h"
#include "server/config.h"

int srv_cmd_config(int argc, char **argv) {
    srv_config cfg;
    char msg[SRV_PATH_MAX + 256];
    int rc = srv_config_load(&cfg, argc, argv, msg, sizeof msg);
    if (rc == SRV_CONFIG_HELP) {
        printf("usage: codid config [serve flags]\n\n"
               "Prints the effective settings as \"key = value  # origin\" (default, file,\n"
               "env or flag; flag > environment > file > default) and exits 0, or exits 2\n"
               "naming the refused setting. Takes every flag `codid serve` takes.\n");
        return 0;
    }
    if (rc != SRV_CONFIG_OK) {
        fprintf(stderr, "codid config: %s\n", msg);
        return 2;
    }
    srv_config_print(stdout, &cfg);
    return 0;
}
