/* api/guard.c: connection caps per client and in all, token buckets per
 * address and per key, the loopback exemption, and the deadline thread
 * cutting a connection (a socketpair stands in for the client). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/guard.h"
#include "tests/test.h"

static struct sockaddr_in v4(const char *ip) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

TEST(per_client_and_total_caps) {
    api_guard_params p = {.max_connections = 3, .max_connections_per_client = 2};
    api_guard *g;
    char msg[128];
    CHECK(api_guard_start(&p, &g, msg, sizeof msg) == 0);
    struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2");
    api_guard_conn *a1 = api_guard_open(g, -1, (struct sockaddr *)&a);
    api_guard_conn *a2 = api_guard_open(g, -1, (struct sockaddr *)&a);
    int retry;
    CHECK_EQ_INT(api_guard_admit(g, a2, &retry), API_GUARD_PASS);
    api_guard_conn *a3 = api_guard_open(g, -1, (struct sockaddr *)&a);
    CHECK_EQ_INT(api_guard_admit(g, a3, &retry), API_GUARD_CLIENT_CONNECTIONS);
    CHECK_EQ_STR(api_guard_addr(a3), "10.0.0.1");
    api_guard_close(g, a3);
    api_guard_conn *b1 = api_guard_open(g, -1, (struct sockaddr *)&b);
    CHECK_EQ_INT(api_guard_admit(g, b1, &retry), API_GUARD_PASS); /* 3 open: at the cap */
    api_guard_conn *b2 = api_guard_open(g, -1, (struct sockaddr *)&b);
    CHECK_EQ_INT(api_guard_admit(g, b2, &retry), API_GUARD_TOO_MANY_CONNECTIONS);
    api_guard_close(g, a1);
    CHECK_EQ_INT(api_guard_admit(g, b2, &retry), API_GUARD_PASS);
    api_guard_close(g, a2);
    api_guard_close(g, b1);
    api_guard_close(g, b2);
    api_guard_stop(g);
}

TEST(buckets_per_address_and_key) {
    api_guard_params p = {.rate_per_min = 1, .rate_burst = 2};
    api_guard *g;
    char msg[128];
    CHECK(api_guard_start(&p, &g, msg, sizeof msg) == 0);
    struct sockaddr_in a = v4("192.0.2.7"), b = v4("192.0.2.8"), lo = v4("127.0.0.1");
    api_guard_conn *ca = api_guard_open(g, -1, (struct sockaddr *)&a);
    api_guard_conn *cb = api_guard_open(g, -1, (struct sockaddr *)&b);
    api_guard_conn *cl = api_guard_open(g, -1, (struct sockaddr *)&lo);
    int retry = 0;
    CHECK_EQ_INT(api_guard_admit(g, ca, &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit(g, ca, &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit(g, ca, &retry), API_GUARD_RATE);
    CHECK(retry >= 59 && retry <= 61);                            /* one token a minute */
    CHECK_EQ_INT(api_guard_admit(g, cb, &retry), API_GUARD_PASS); /* another address: its own bucket */
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(api_guard_admit(g, cl, &retry), API_GUARD_PASS); /* loopback */
    CHECK_EQ_INT(api_guard_admit_key(g, cb, "k1", &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit_key(g, cb, "k1", &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit_key(g, cb, "k1", &retry), API_GUARD_RATE);
    CHECK_EQ_INT(api_guard_admit_key(g, cb, "k2", &retry), API_GUARD_PASS); /* another key */
    CHECK_EQ_INT(api_guard_admit_key(g, cl, "k1", &retry), API_GUARD_PASS); /* loopback exempt */
    api_guard_close(g, ca);
    api_guard_close(g, cb);
    api_guard_close(g, cl);
    api_guard_stop(g);

    p.rate_loopback = 1;
    CHECK(api_guard_start(&p, &g, msg, sizeof msg) == 0);
    cl = api_guard_open(g, -1, (struct sockaddr *)&lo);
    CHECK_EQ_INT(api_guard_admit(g, cl, &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit(g, cl, &retry), API_GUARD_PASS);
    CHECK_EQ_INT(api_guard_admit(g, cl, &retry), API_GUARD_RATE);
    api_guard_close(g, cl);
    api_guard_stop(g);
}

/* The deadline thread shuts the socket down once the header phase has
 * lasted header_timeout_s; a connection that is being handled is left. */
TEST(deadline_cuts_only_the_slow_phase) {
    api_guard_params p = {.header_timeout_s = 1};
    api_guard *g;
    char msg[128];
    CHECK(api_guard_start(&p, &g, msg, sizeof msg) == 0);
    int slow[2], busy[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, slow) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, busy) == 0);
    api_guard_conn *cs = api_guard_open(g, slow[0], NULL);
    api_guard_conn *cbusy = api_guard_open(g, busy[0], NULL);
    api_guard_headers_done(g, cbusy);
    api_guard_body_done(g, cbusy);
    /* the peer sees EOF once the guard shut the socket down (bound: 30 s) */
    struct pollfd pf = {.fd = slow[1], .events = POLLIN};
    CHECK(poll(&pf, 1, 30000) == 1);
    char c;
    CHECK(read(slow[1], &c, 1) == 0);
    pf.fd = busy[1];
    CHECK(poll(&pf, 1, 0) == 0); /* handled: never cut */
    api_guard_close(g, cs);
    api_guard_close(g, cbusy);
    api_guard_stop(g);
    close(slow[0]), close(slow[1]), close(busy[0]), close(busy[1]);
}

int main(void) {
    RUN(per_client_and_total_caps);
    RUN(buckets_per_address_and_key);
    RUN(deadline_cuts_only_the_slow_phase);
    return TEST_SUMMARY();
}
