/* test_json.c - util/json.c: a bounded integer out of a cJSON value, its
 * codes and its messages. */
#include "tests/test.h"
#include "util/json.h"

static int check(const char *text, long long lo, long long hi, long long *out, char *msg, size_t msgsz) {
    cJSON *v = cJSON_Parse(text);
    int rc = util_json_int(v, "n", lo, hi, out, msg, msgsz);
    cJSON_Delete(v);
    return rc;
}

TEST(integers_in_range_and_out) {
    long long x = -1;
    char msg[128];
    CHECK_EQ_INT(check("7", 1, 8, &x, msg, sizeof msg), UTIL_JSON_OK);
    CHECK(x == 7);
    CHECK_EQ_INT(check("1", 1, 8, &x, msg, sizeof msg), UTIL_JSON_OK);
    CHECK_EQ_INT(check("8", 1, 8, &x, msg, sizeof msg), UTIL_JSON_OK);
    CHECK_EQ_INT(check("9007199254740992", 0, 9007199254740992LL, &x, msg, sizeof msg), UTIL_JSON_OK);
    CHECK(x == 9007199254740992LL);
    x = 5;
    CHECK_EQ_INT(check("0", 1, 8, &x, msg, sizeof msg), UTIL_JSON_EBELOW);
    CHECK_MSG(strcmp(msg, "n: must be in 1..8") == 0, "%s", msg);
    CHECK_EQ_INT(check("9", 1, 8, &x, msg, sizeof msg), UTIL_JSON_EABOVE);
    CHECK(x == 5); /* untouched on failure */
}

TEST(non_integers_refused) {
    long long x;
    char msg[128];
    static const char *const bad[] = {"2.5", "\"2\"", "true", "null", "[1]", "1e400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(check(bad[i], 0, 100, &x, msg, sizeof msg) == UTIL_JSON_ENOTINT, "%s", bad[i]);
        CHECK_MSG(strcmp(msg, "n: must be an integer") == 0, "%s: %s", bad[i], msg);
    }
    CHECK_EQ_INT(util_json_int(NULL, "n", 0, 1, &x, NULL, 0), UTIL_JSON_ENOTINT);
}

int main(void) {
    RUN(integers_in_range_and_out);
    RUN(non_integers_refused);
    return TEST_SUMMARY();
}
