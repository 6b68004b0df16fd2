/* test_config.c - settings: defaults, precedence, and refusals that name their source. */
#include <stdlib.h>
#include <unistd.h>

#include "server/config.h"
#include "tests/test.h"

static const char *const env_vars[] = {
    "CODID_LISTEN",     "CODID_DATA_DIR",  "CODID_MODEL",         "CODID_SHARE_DIR",         "CODID_CONFIG",
    "CODID_THREADS",    "CODID_MAX_BATCH", "CODID_BATCH_WAIT_MS", "CODID_QUEUE_MAX",         "CODID_MAX_BODY_BYTES",
    "CODID_MAX_PIXELS", "CODID_MAX_N",     "CODID_MAX_STEPS",     "CODID_REQUEST_TIMEOUT_S", "CODID_LOG_LEVEL",
};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++) unsetenv(env_vars[i]);
}

static char tmp_path[64];

/* Writes text to a fresh temporary file whose name is left in tmp_path. */
static int write_tmp(const char *text) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/codid-test-config-XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

static int load(srv_config *c, char *msg, size_t msgsz, int argc, char **argv) {
    return srv_config_load(c, argc, argv, msg, msgsz);
}

#define LOAD(c, msg, ...)                                                                           \
    load((c), (msg), sizeof(msg), (int)(sizeof((char *[]){"serve", __VA_ARGS__}) / sizeof(char *)), \
         (char *[]){"serve", __VA_ARGS__})

TEST(defaults) {
    clear_env();
    srv_config c;
    char msg[512] = "";
    char *argv[] = {"serve"};
    CHECK_EQ_INT(srv_config_load(&c, 1, argv, msg, sizeof msg), SRV_CONFIG_OK);
    CHECK_EQ_STR(c.listen, "127.0.0.1:8080");
    CHECK_EQ_STR(c.data_dir, "./var");
    CHECK_EQ_STR(c.model, "");
    CHECK_EQ_INT(c.threads, 0);
    CHECK_EQ_INT(c.max_batch, 8);
    CHECK_EQ_INT(c.batch_wait_ms, 5);
    CHECK_EQ_INT(c.queue_max, 64);
    CHECK_EQ_INT(c.max_body_bytes, 8 << 20);
    CHECK_EQ_INT(c.max_pixels, 1048576);
    CHECK_EQ_INT(c.max_n, 16);
    CHECK_EQ_INT(c.max_steps, 1000);
    CHECK_EQ_INT(c.request_timeout_s, 60);
    CHECK_EQ_INT(c.log_level, UTIL_LOG_INFO);
}

TEST(flag_beats_env_beats_file) {
    clear_env();
    CHECK(write_tmp("# a comment\n\n  threads = 3\nmax_batch=4\nqueue_max = 5\r\n") == 0);
    setenv("CODID_CONFIG", tmp_path, 1);
    setenv("CODID_MAX_BATCH", "6", 1);
    setenv("CODID_QUEUE_MAX", "7", 1);
    srv_config c;
    char msg[512] = "";
    int rc = LOAD(&c, msg, "--queue-max", "9");
    unlink(tmp_path);
    clear_env();
    CHECK_MSG(rc == SRV_CONFIG_OK, "load failed: %s", msg);
    CHECK_EQ_INT(c.threads, 3);   /* file only */
    CHECK_EQ_INT(c.max_batch, 6); /* env over file */
    CHECK_EQ_INT(c.queue_max, 9); /* flag over env and file */
    CHECK_EQ_INT(c.max_steps, 1000);
}

TEST(config_flag_beats_config_env) {
    clear_env();
    setenv("CODID_CONFIG", "/nonexistent/codid.conf", 1);
    CHECK(write_tmp("max_n = 2\n") == 0);
    srv_config c;
    char msg[512] = "";
    char flag[96];
    snprintf(flag, sizeof flag, "--config=%s", tmp_path);
    int rc = LOAD(&c, msg, flag);
    unlink(tmp_path);
    clear_env();
    CHECK_MSG(rc == SRV_CONFIG_OK, "load failed: %s", msg);
    CHECK_EQ_INT(c.max_n, 2);
}

TEST(flag_forms_and_suffixes) {
    clear_env();
    srv_config c;
    char msg[512] = "";
    int rc = LOAD(&c, msg, "--listen=[::1]:0", "--max-body-bytes", "2k", "--max-pixels=4M", "--log-level", "DEBUG",
                  "--model", "random-tiny");
    CHECK_MSG(rc == SRV_CONFIG_OK, "load failed: %s", msg);
    CHECK_EQ_STR(c.listen, "[::1]:0");
    CHECK_EQ_INT(c.max_body_bytes, 2048);
    CHECK_EQ_INT(c.max_pixels, 4 << 20);
    CHECK_EQ_INT(c.log_level, UTIL_LOG_DEBUG);
    CHECK_EQ_STR(c.model, "random-tiny");
    char host[64];
    int port = -1;
    CHECK_EQ_INT(srv_config_listen_split(c.listen, host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 0);
}

TEST(help_requested) {
    clear_env();
    srv_config c;
    char msg[512] = "";
    CHECK_EQ_INT(LOAD(&c, msg, "--threads", "2", "--help"), SRV_CONFIG_HELP);
}

/* Each refusal must say where the bad value came from. */
static int refused_naming(const char *needle, const char *msg) {
    return strstr(msg, needle) != NULL;
}

TEST(bad_flags) {
    clear_env();
    srv_config c;
    char msg[512];
    CHECK_EQ_INT(LOAD(&c, msg, "--threads", "two"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--threads", msg) && refused_naming("two", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "--max-batch=0"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--max-batch", msg) && refused_naming("range", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "--max-n", "12x"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--max-n", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "--queue-max", "99999999999999999999"), SRV_CONFIG_ERR);
    CHECK_EQ_INT(LOAD(&c, msg, "--max-body-bytes", "3T"), SRV_CONFIG_ERR);
    CHECK_EQ_INT(LOAD(&c, msg, "--no-such-flag", "1"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--no-such-flag", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "--threads"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("needs a value", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "stray"), SRV_CONFIG_ERR);
    CHECK_EQ_INT(LOAD(&c, msg, "--listen", "127.0.0.1"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--listen", msg), "msg: %s", msg);
    CHECK_EQ_INT(LOAD(&c, msg, "--listen", "example.com:80"), SRV_CONFIG_ERR);
    CHECK_EQ_INT(LOAD(&c, msg, "--listen", "127.0.0.1:65536"), SRV_CONFIG_ERR);
    CHECK_EQ_INT(LOAD(&c, msg, "--log-level", "loud"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("--log-level", msg), "msg: %s", msg);
    /* the file key that is not a flag-only setting */
    CHECK_EQ_INT(LOAD(&c, msg, "--config", "/nonexistent/codid.conf"), SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("/nonexistent/codid.conf", msg), "msg: %s", msg);
}

TEST(bad_env) {
    clear_env();
    setenv("CODID_REQUEST_TIMEOUT_S", "-1", 1);
    srv_config c;
    char msg[512];
    int rc = LOAD(&c, msg, "--threads", "1");
    clear_env();
    CHECK_EQ_INT(rc, SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("CODID_REQUEST_TIMEOUT_S", msg), "msg: %s", msg);
}

TEST(env_overridden_by_flag_is_still_checked_first) {
    /* A bad variable is an error even when a flag would override it: the
     * environment is applied before flags and refuses early. */
    clear_env();
    setenv("CODID_MAX_STEPS", "lots", 1);
    srv_config c;
    char msg[512];
    int rc = LOAD(&c, msg, "--max-steps", "5");
    clear_env();
    CHECK_EQ_INT(rc, SRV_CONFIG_ERR);
    CHECK_MSG(refused_naming("CODID_MAX_STEPS", msg), "msg: %s", msg);
}

static void check_file_refused(const char *text, const char *needle1, const char *needle2) {
    clear_env();
    if (write_tmp(text) != 0) {
        TEST_FAIL_("cannot write temp file");
        return;
    }
    srv_config c;
    char msg[512] = "";
    char flag[96];
    snprintf(flag, sizeof flag, "--config=%s", tmp_path);
    int rc = LOAD(&c, msg, flag);
    unlink(tmp_path);
    CHECK_MSG(rc == SRV_CONFIG_ERR, "'%s' accepted", text);
    CHECK_MSG(strstr(msg, tmp_path), "msg lacks the file name: %s", msg);
    CHECK_MSG(strstr(msg, needle1), "msg lacks '%s': %s", needle1, msg);
    CHECK_MSG(!needle2 || strstr(msg, needle2), "msg lacks '%s': %s", needle2, msg);
}

TEST(bad_files) {
    check_file_refused("threads = 1\nbogus = 2\n", ":2:", "bogus");
    if (test_cur_failed_) return;
    check_file_refused("# c\nmax_steps = zero\n", ":2:", "max_steps");
    if (test_cur_failed_) return;
    check_file_refused("max_n 4\n", ":1:", "key = value");
    if (test_cur_failed_) return;
    check_file_refused("max_n = 4\n\nmax_n = 5\n", ":3:", "line 1");
    if (test_cur_failed_) return;
    check_file_refused("config = /etc/other\n", ":1:", "config");
    if (test_cur_failed_) return;
    check_file_refused("listen = nowhere\n", ":1:", "listen");
}

TEST(set_by_key) {
    srv_config c;
    char msg[256];
    srv_config_defaults(&c);
    CHECK_EQ_INT(srv_config_set(&c, "batch_wait_ms", "0", "test", msg, sizeof msg), SRV_CONFIG_OK);
    CHECK_EQ_INT(c.batch_wait_ms, 0);
    CHECK_EQ_INT(srv_config_set(&c, "batch_wait_ms", "10001", "test", msg, sizeof msg), SRV_CONFIG_ERR);
    CHECK_EQ_INT(c.batch_wait_ms, 0);
    CHECK_EQ_INT(srv_config_set(&c, "nope", "1", "test", msg, sizeof msg), SRV_CONFIG_ERR);
}

int main(void) {
    RUN(defaults);
    RUN(flag_beats_env_beats_file);
    RUN(config_flag_beats_config_env);
    RUN(flag_forms_and_suffixes);
    RUN(help_requested);
    RUN(bad_flags);
    RUN(bad_env);
    RUN(env_overridden_by_flag_is_still_checked_first);
    RUN(bad_files);
    RUN(set_by_key);
    return TEST_SUMMARY();
}
