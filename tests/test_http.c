/*
 * test_http.c - api/http.c's parts below the socket: route patterns and
 * their parameters, Accept negotiation (q values, the most specific range
 * first), the problem+json writer (fields, escaping, a detail cut at its
 * cap and still JSON), the status table and the response header caps.
 * What needs a connection (routing answers, body caps, streams) is tested
 * against a real daemon by tests/api_*.test.sh.
 *
 * http.c is included to reach its static functions (the Makefile then
 * links the test without http.o).
 */
#include "api/http.c"

#include <cjson/cJSON.h>

#include "tests/test.h"

TEST(route_patterns) {
    route_match m;
    CHECK(match_pattern("/v1/jobs", "/v1/jobs", &m) && m.n == 0);
    CHECK(!match_pattern("/v1/jobs", "/v1/jobs/", &m));
    CHECK(!match_pattern("/v1/jobs", "/v1/job", &m));
    CHECK(!match_pattern("/v1/jobs", "/v1/jobsx", &m));
    CHECK(!match_pattern("/v1/jobs", "v1/jobs", &m));
    CHECK(match_pattern("/v1/jobs/{id}", "/v1/jobs/42", &m));
    CHECK_EQ_INT(m.n, 1);
    CHECK(m.name_lens[0] == 2 && memcmp(m.names[0], "id", 2) == 0);
    CHECK(m.value_lens[0] == 2 && memcmp(m.values[0], "42", 2) == 0);
    CHECK(!match_pattern("/v1/jobs/{id}", "/v1/jobs/", &m)); /* an empty segment is no id */
    CHECK(!match_pattern("/v1/jobs/{id}", "/v1/jobs", &m));
    CHECK(!match_pattern("/v1/jobs/{id}", "/v1/jobs/42/cancel", &m));
    CHECK(match_pattern("/v1/jobs/{id}/cancel", "/v1/jobs/7/cancel", &m) && m.n == 1);
    CHECK(!match_pattern("/v1/jobs/{id}/cancel", "/v1/jobs/7/cancel/", &m));
    CHECK(match_pattern("/a/{x}/b/{y}", "/a/1/b/22", &m) && m.n == 2);
    CHECK(m.value_lens[1] == 2 && memcmp(m.values[1], "22", 2) == 0);
    CHECK(match_pattern("/", "/", &m) && m.n == 0);
}

TEST(accept_negotiation) {
    CHECK_NEAR(api_accept_q("image/png", "image/png"), 1, 0);
    CHECK_NEAR(api_accept_q("IMAGE/PNG", "image/png"), 1, 0);
    CHECK_NEAR(api_accept_q("text/html", "image/png"), 0, 0);
    CHECK_NEAR(api_accept_q("image/*;q=0.5", "image/png"), 0.5, 1e-9);
    CHECK_NEAR(api_accept_q("*/*; q=0.1", "application/json"), 0.1, 1e-9);
    /* the most specific range decides, wherever it stands */
    CHECK_NEAR(api_accept_q("image/png;q=0.9, image/*;q=0.2", "image/png"), 0.9, 1e-9);
    CHECK_NEAR(api_accept_q("image/*;q=0.2, image/png;q=0.9", "image/png"), 0.9, 1e-9);
    CHECK_NEAR(api_accept_q("*/*, application/json;q=0", "application/json"), 0, 0);
    CHECK_NEAR(api_accept_q("text/html, application/json;charset=utf-8", "application/json"), 1, 0);
    CHECK_NEAR(api_accept_q("imag/*", "image/png"), 0, 0);
    CHECK_NEAR(api_accept_q("", "image/png"), 0, 0);
    /* qvalues out of RFC 9110's grammar count as 0 (fuzzing found 1.5) */
    CHECK_NEAR(api_accept_q("image/*;q=1.5", "image/png"), 0, 0);
    CHECK_NEAR(api_accept_q("image/png;q=-1", "image/png"), 0, 0);
    CHECK_NEAR(api_accept_q("image/png;q=nan", "image/png"), 0, 0);
    CHECK_NEAR(api_accept_q("image/png;q=0.125", "image/png"), 0.125, 1e-12);
    CHECK_NEAR(api_accept_q("image/png;q=1.000", "image/png"), 1, 0);
}

TEST(problem_json) {
    api_request r;
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(api_problem(&r, API_BAD_REQUEST, "n: %d is over max_n (%d)", 9, 4), API_BAD_REQUEST);
    CHECK(r.has_response && r.status == API_BAD_REQUEST);
    CHECK_EQ_STR(r.content_type, "application/problem+json");
    cJSON *d = cJSON_ParseWithLength(r.resp_body, r.resp_len);
    CHECK(d);
    int fields = cJSON_GetArraySize(d);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "type"));
    const char *title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "title"));
    const char *detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "detail"));
    double status = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "status"));
    int ok = fields == 4 && type && strcmp(type, "about:blank") == 0 && title && strcmp(title, "Bad Request") == 0 &&
             detail && strcmp(detail, "n: 9 is over max_n (4)") == 0 && status == 400;
    cJSON_Delete(d);
    CHECK(ok);

    /* quotes, backslashes and control characters come back as they went in */
    const char *nasty = "a \"quoted\" \\ path\nand a tab\t";
    api_problem(&r, API_NOT_FOUND, "%s", nasty);
    CHECK(r.status == API_NOT_FOUND);
    d = cJSON_ParseWithLength(r.resp_body, r.resp_len);
    CHECK(d);
    detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "detail"));
    ok = detail && strcmp(detail, nasty) == 0;
    cJSON_Delete(d);
    CHECK(ok);

    /* a detail past the cap is cut, and the answer is still JSON */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    api_problem(&r, API_CONTENT_TOO_LARGE, "%s", big);
    d = cJSON_ParseWithLength(r.resp_body, r.resp_len);
    CHECK(d);
    detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "detail"));
    size_t len = detail ? strlen(detail) : 0;
    cJSON_Delete(d);
    CHECK_EQ_INT(len, PROBLEM_DETAIL_MAX - 1);
    clear_response(&r);
    CHECK(!r.has_response && !r.resp_body);
}

TEST(status_table) {
#define CHECK_TITLE_(name, code, title) CHECK_EQ_STR(api_status_title(API_##name), title);
    API_STATUS_TABLE(CHECK_TITLE_)
#undef CHECK_TITLE_
    CHECK_EQ_INT(API_TOO_MANY_REQUESTS, 429);
    CHECK_EQ_INT(API_CONTENT_TOO_LARGE, 413);
}

TEST(response_header_caps) {
    api_request r;
    memset(&r, 0, sizeof r);
    char name[API_HEADER_NAME_MAX + 1], value[API_HEADER_VALUE_MAX + 1];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    CHECK(api_response_header(&r, name, "1") != 0);
    CHECK(api_response_header(&r, "X-Long", value) != 0);
    CHECK_EQ_INT(r.n_headers, 0);
    for (int i = 0; i < API_MAX_HEADERS; i++) CHECK(api_response_header(&r, "X-Seed", "42") == 0);
    CHECK(api_response_header(&r, "X-One-Too-Many", "1") != 0);
    CHECK_EQ_INT(r.n_headers, API_MAX_HEADERS);
    CHECK_EQ_STR(r.headers[0].name, "X-Seed");
    CHECK_EQ_STR(r.headers[0].value, "42");
    char allow[64];
    const char *methods[] = {"POST", "GET"};
    join_methods(methods, 2, allow, sizeof allow);
    CHECK_EQ_STR(allow, "POST, GET");
    join_methods(methods, 0, allow, sizeof allow);
    CHECK_EQ_STR(allow, "");
}

int main(void) {
    RUN(route_patterns);
    RUN(accept_negotiation);
    RUN(problem_json);
    RUN(status_table);
    RUN(response_header_caps);
    return TEST_SUMMARY();
}
