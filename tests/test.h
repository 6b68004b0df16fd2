/*
 * test.h - the smallest test harness that does the job.
 *
 * A test program defines TEST(name) functions and lists them in main() with
 * RUN(name). CHECK* record a failure (with file and line) and return from the
 * test. Each program prints "ok NAME" / "FAIL NAME: why" per test and ends
 * with "N passed, N failed"; tests/run.sh sums the programs' counts.
 */
#ifndef CODID_TEST_H
#define CODID_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_passed_, test_failed_, test_cur_failed_;
static const char *test_cur_name_;

#define TEST(name) static void name(void)

#define TEST_FAIL_(...)                          \
    do {                                         \
        if (!test_cur_failed_)                   \
            printf("FAIL %s: ", test_cur_name_); \
        else                                     \
            printf("  also: ");                  \
        printf("%s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__);                     \
        printf("\n");                            \
        test_cur_failed_ = 1;                    \
    } while (0)

#define CHECK(cond)                         \
    do {                                    \
        if (!(cond)) {                      \
            TEST_FAIL_("CHECK(%s)", #cond); \
            return;                         \
        }                                   \
    } while (0)

#define CHECK_MSG(cond, ...)         \
    do {                             \
        if (!(cond)) {               \
            TEST_FAIL_(__VA_ARGS__); \
            return;                  \
        }                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                 \
    do {                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                \
        if (a_ != b_) {                                                    \
            TEST_FAIL_("%s == %lld, expected %s == %lld", #a, a_, #b, b_); \
            return;                                                        \
        }                                                                  \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                           \
    do {                                                                                             \
        const char *a_ = (a), *b_ = (b);                                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                     \
            TEST_FAIL_("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
            return;                                                                                  \
        }                                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double a_ = (double)(a), b_ = (double)(b);                                       \
        if (!(fabs(a_ - b_) <= (tol))) {                                                 \
            TEST_FAIL_("%s == %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define RUN(name)                     \
    do {                              \
        test_cur_name_ = #name;       \
        test_cur_failed_ = 0;         \
        name();                       \
        if (test_cur_failed_)         \
            test_failed_++;           \
        else {                        \
            test_passed_++;           \
            printf("ok %s\n", #name); \
        }                             \
        fflush(stdout);               \
    } while (0)

#define TEST_SUMMARY() (printf("%d passed, %d failed\n", test_passed_, test_failed_), test_failed_ ? 1 : 0)

#endif
