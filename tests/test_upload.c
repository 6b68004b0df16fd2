/*
 * test_upload.c - api/upload.c: multipart/form-data parsing (parts, quoted
 * boundaries, a preamble, refusals) and tar archives (members, skipped
 * directories and links, truncated and corrupt archives).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/upload.h"
#include "tests/test.h"

/* ---- multipart ---------------------------------------------------------------- */

#define CT "multipart/form-data; boundary=XyZ"

TEST(multipart_two_parts) {
    const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"adapter\"\r\n\r\nsr4\r\n"
                        "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a \\\"b\\\".png\"\r\n"
                        "Content-Type: image/png\r\n\r\n\x89PNG\r\n--X\r\n--XyZ--\r\n";
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    CHECK_MSG(api_multipart_parse(CT, (const uint8_t *)body, sizeof body - 1, 8, &p, &n, msg, sizeof msg) == 0, "%s",
              msg);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(p[0].name, "adapter");
    CHECK_EQ_STR(p[0].filename, "");
    CHECK(p[0].len == 3 && memcmp(p[0].data, "sr4", 3) == 0);
    CHECK_EQ_STR(p[1].name, "image");
    CHECK_EQ_STR(p[1].filename, "a \"b\".png");
    CHECK_EQ_STR(p[1].content_type, "image/png");
    CHECK(p[1].len == 9 && memcmp(p[1].data, "\x89PNG\r\n--X", 9) == 0); /* the CRLF before a delimiter is its own */
    free(p);
}

TEST(multipart_quoted_boundary_and_preamble) {
    const char body[] = "preamble\r\n--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--";
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    CHECK_MSG(api_multipart_parse("multipart/form-data; boundary=\"a b\"", (const uint8_t *)body, sizeof body - 1, 8,
                                  &p, &n, msg, sizeof msg) == 0,
              "%s", msg);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(p[0].name, "x");
    free(p);
}

TEST(multipart_refusals) {
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    const char ok1[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--";
    CHECK(api_multipart_parse("multipart/form-data", (const uint8_t *)ok1, sizeof ok1 - 1, 8, &p, &n, msg,
                              sizeof msg) != 0);
    CHECK(strstr(msg, "boundary"));
    CHECK(api_multipart_parse("text/plain", (const uint8_t *)ok1, sizeof ok1 - 1, 8, &p, &n, msg, sizeof msg) != 0);
    /* truncated: no closing delimiter */
    CHECK(api_multipart_parse(CT, (const uint8_t *)ok1, sizeof ok1 - 8, 8, &p, &n, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "truncated") || strstr(msg, "closing"));
    /* too many parts */
    const char two[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XyZ--";
    CHECK(api_multipart_parse(CT, (const uint8_t *)two, sizeof two - 1, 1, &p, &n, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "more than 1 parts"));
    /* no Content-Disposition */
    const char nodisp[] = "--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--";
    CHECK(api_multipart_parse(CT, (const uint8_t *)nodisp, sizeof nodisp - 1, 8, &p, &n, msg, sizeof msg) != 0);
    /* no boundary in the body at all */
    CHECK(api_multipart_parse(CT, (const uint8_t *)"hello", 5, 8, &p, &n, msg, sizeof msg) != 0);
    CHECK(p == NULL && n == 0);
}

/* ---- tar ------------------------------------------------------------------------ */

static void tar_header(uint8_t *h, const char *name, size_t size, char type) {
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", size);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

typedef struct seen {
    int n;
    char names[4][API_PART_FILENAME_MAX];
    size_t lens[4];
} seen;

static int collect(const api_tar_member *m, void *user) {
    seen *s = user;
    if (s->n < 4) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", m->name);
        s->lens[s->n] = m->len;
    }
    s->n++;
    return 0;
}

TEST(tar_members) {
    uint8_t buf[512 * 6];
    memset(buf, 0, sizeof buf);
    tar_header(buf, "dir/", 0, '5');
    tar_header(buf + 512, "dir/a.png", 3, '0');
    memcpy(buf + 1024, "abc", 3);
    tar_header(buf + 1536, "link.png", 0, '2');
    /* then two zero blocks end the archive */
    seen s = {0};
    char msg[256];
    CHECK_MSG(api_tar_each(buf, 512 * 6, collect, &s, msg, sizeof msg) == 0, "%s", msg);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "dir/a.png");
    CHECK_EQ_INT(s.lens[0], 3);
}

TEST(tar_refusals) {
    uint8_t buf[512 * 4];
    memset(buf, 0, sizeof buf);
    tar_header(buf, "a.png", 700, '0');
    seen s = {0};
    char msg[256];
    /* the member's data runs past the end */
    CHECK(api_tar_each(buf, 1024, collect, &s, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "truncated"));
    /* a corrupt checksum */
    tar_header(buf, "a.png", 3, '0');
    buf[0] = 'b';
    CHECK(api_tar_each(buf, sizeof buf, collect, &s, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "checksum"));
    /* not a tar at all */
    CHECK(api_tar_each((const uint8_t *)"hello", 5, collect, &s, msg, sizeof msg) != 0);
}

int main(void) {
    RUN(multipart_two_parts);
    RUN(multipart_quoted_boundary_and_preamble);
    RUN(multipart_refusals);
    RUN(tar_members);
    RUN(tar_refusals);
    return TEST_SUMMARY();
}
