/*
 * test_auth.c - api/auth.c's parts below HTTP: the key format and check
 * against a real store (good keys of both scopes, a forged secret, an
 * unknown prefix, malformed and upper-case keys, a revoked key), CORS
 * origin, method and header matching, and which hosts count as loopback.
 * The refusals over HTTP (401, 403, preflights) are tests/api_auth.test.sh's
 * and tests/api_jobs.test.sh's.
 *
 * auth.c is included to reach its static functions (the Makefile then
 * links the test without auth.o).
 */
#include "api/auth.c"

#include <stdlib.h>
#include <unistd.h>

#include "tests/test.h"

static char dir[64];

TEST(key_check_against_the_store) {
    jobs_store *st = NULL;
    char msg[256], admin[API_KEY_MAX], gen[API_KEY_MAX];
    CHECK_MSG(jobs_store_open(dir, 1000, &st, msg, sizeof msg) == JOBS_OK, "%s", msg);
    int64_t admin_id, gen_id;
    CHECK_MSG(api_key_create(st, "admin", admin, sizeof admin, &admin_id, msg, sizeof msg) == JOBS_OK, "%s", msg);
    CHECK_MSG(api_key_create(st, "generate", gen, sizeof gen, &gen_id, msg, sizeof msg) == JOBS_OK, "%s", msg);
    CHECK_EQ_INT(strlen(admin), KEY_LEN);
    CHECK(strncmp(admin, "codid_", 6) == 0 && admin[18] == '_');

    CHECK_EQ_INT(check_key(st, NULL), KEY_NONE);
    CHECK_EQ_INT(check_key(st, admin), KEY_ADMIN);
    CHECK_EQ_INT(check_key(st, gen), KEY_GENERATE);

    char k[API_KEY_MAX + 2];
    /* the right prefix with another secret: the hash comparison refuses it */
    snprintf(k, sizeof k, "%s", gen);
    k[KEY_LEN - 1] = k[KEY_LEN - 1] == '0' ? '1' : '0';
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    /* an unknown prefix */
    snprintf(k, sizeof k, "%s", gen);
    k[6] = k[6] == '0' ? '1' : '0';
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    /* malformed: longer, shorter, upper-case hex, no separator, other tag */
    snprintf(k, sizeof k, "%sx", gen);
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    snprintf(k, sizeof k, "%.*s", (int)KEY_LEN - 1, gen);
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    snprintf(k, sizeof k, "%s", gen);
    k[19] = 'A'; /* hex, but keys are written in lower case */
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    snprintf(k, sizeof k, "%s", gen);
    k[18] = 'x';
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    snprintf(k, sizeof k, "%s", gen);
    memcpy(k, "codiX_", 6);
    CHECK_EQ_INT(check_key(st, k), KEY_BAD);
    CHECK_EQ_INT(check_key(st, ""), KEY_BAD);

    /* revoked: refused at the next check */
    CHECK_MSG(jobs_store_key_revoke(st, gen_id, msg, sizeof msg) == JOBS_OK, "%s", msg);
    CHECK_EQ_INT(check_key(st, gen), KEY_BAD);
    CHECK_EQ_INT(check_key(st, admin), KEY_ADMIN);
    jobs_store_close(st);
}

TEST(cors_origin_matching) {
    int any;
    CHECK(origin_allowed("https://app.example", "https://app.example", &any) && !any);
    CHECK(origin_allowed("https://a.example, https://app.example", "https://app.example", &any) && !any);
    CHECK(origin_allowed(" https://app.example ,", "https://app.example", &any));
    /* exact: no prefix, suffix, scheme or port slack */
    CHECK(!origin_allowed("https://app.example", "https://app.example.evil", &any));
    CHECK(!origin_allowed("https://app.example", "https://app.exampl", &any));
    CHECK(!origin_allowed("https://app.example", "http://app.example", &any));
    CHECK(!origin_allowed("https://app.example", "https://app.example:8443", &any));
    CHECK(!origin_allowed("", "https://app.example", &any) && !any);
    CHECK(!origin_allowed("https://app.example", "", &any));
    /* "*" lets any origin in, and says so */
    CHECK(origin_allowed("*", "https://anything.example", &any) && any);
    CHECK(origin_allowed("https://app.example, *", "https://other.example", &any) && any);
    CHECK(origin_allowed("https://app.example, *", "https://app.example", &any) && !any);
    CHECK(!origin_allowed("**", "https://app.example", &any) && !any);
}

TEST(cors_methods_and_headers) {
    CHECK(method_listed("POST", "POST"));
    CHECK(method_listed("POST, GET", "GET"));
    CHECK(!method_listed("POST, GET", "DELETE"));
    CHECK(!method_listed("POST", "POS"));
    CHECK(!method_listed("POST", "POSTX"));
    CHECK(!method_listed("", "GET"));
    char bad[80];
    CHECK(!header_refused("content-type, Authorization,X-API-Key", bad, sizeof bad));
    CHECK(!header_refused("", bad, sizeof bad));
    CHECK(!header_refused("accept , last-event-id", bad, sizeof bad));
    CHECK(header_refused("content-type, x-secret", bad, sizeof bad));
    CHECK_EQ_STR(bad, "x-secret");
    CHECK(header_refused("content-typo", bad, sizeof bad));
    CHECK_EQ_STR(bad, "content-typo");
    CHECK(header_refused("authorizatio", bad, sizeof bad));
}

TEST(loopback_hosts) {
    CHECK(api_host_is_loopback("127.0.0.1"));
    CHECK(api_host_is_loopback("127.1.2.3"));
    CHECK(api_host_is_loopback("::1"));
    CHECK(api_host_is_loopback("localhost"));
    CHECK(!api_host_is_loopback("0.0.0.0"));
    CHECK(!api_host_is_loopback("::"));
    CHECK(!api_host_is_loopback("128.0.0.1"));
    CHECK(!api_host_is_loopback("10.0.0.1"));
    CHECK(!api_host_is_loopback("localhost.example"));
    CHECK(!api_host_is_loopback(""));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/codid-test-auth-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(key_check_against_the_store);
    RUN(cors_origin_matching);
    RUN(cors_methods_and_headers);
    RUN(loopback_hosts);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", dir);
    return TEST_SUMMARY();
}
