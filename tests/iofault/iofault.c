/*
 * iofault.c - an LD_PRELOAD shim that makes writes, fsyncs and renames fail
 * (tests/io_faults.test.sh).
 *
 * Why a preloaded shim rather than an I/O layer of ours in util/: the writes
 * that matter are not all ours. SQLite writes the database and its WAL
 * through its own VFS (pwrite64, fdatasync/fsync), the engine's safetensors
 * writer and the dataset writer go through stdio, and a wrapper in util/
 * would reach none of SQLite's and need every call site rewritten to use
 * it. A shim interposes the libc functions themselves for the whole
 * process, daemon and libraries alike, and leaves the code under test as
 * it ships. (glibc's stdio calls its internal write, past any shim, so
 * fwrite and fflush are interposed themselves.)
 *
 * Control: IOFAULT_CONTROL names a file; while it holds a line
 *
 *     PATTERN OPS ERRNO [COUNT]
 *
 * e.g. "*checkpoints* write,fsync,rename ENOSPC", the calls of OPS (any of
 * write, fsync, rename) on a path matching PATTERN (fnmatch, without
 * FNM_PATHNAME; a rename matches by either name; a descriptor by its
 * /proc/self/fd link) fail with ERRNO (ENOSPC, EIO, EDQUOT or EROFS); COUNT
 * > 0 fails only the first COUNT of them. A missing or empty file: no
 * faults. The file is read again whenever it changes, so a test switches
 * faults on and off in a running daemon.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_FSYNC = 2, OP_RENAME = 4 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec seen_mtime;
static off_t seen_size = -1;
static char pattern[1024];
static int ops, fail_errno, remaining; /* remaining < 0: no limit */

/* Reads the control file when it changed; whether faults are on. */
static int refresh(void) {
    const char *path = getenv("IOFAULT_CONTROL");
    struct stat sb;
    if (!path || stat(path, &sb) != 0) {
        seen_size = -1;
        ops = 0;
        return 0;
    }
    if (sb.st_size == seen_size && sb.st_mtim.tv_sec == seen_mtime.tv_sec && sb.st_mtim.tv_nsec == seen_mtime.tv_nsec)
        return ops != 0;
    seen_size = sb.st_size;
    seen_mtime = sb.st_mtim;
    ops = 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1200], op_list[64], err[32];
    int count = 0;
    if (fgets(line, sizeof line, f) && sscanf(line, "%1023s %63s %31s %d", pattern, op_list, err, &count) >= 3) {
        ops = (strstr(op_list, "write") ? OP_WRITE : 0) | (strstr(op_list, "fsync") ? OP_FSYNC : 0) |
              (strstr(op_list, "rename") ? OP_RENAME : 0);
        fail_errno = strcmp(err, "EIO") == 0      ? EIO
                     : strcmp(err, "EDQUOT") == 0 ? EDQUOT
                     : strcmp(err, "EROFS") == 0  ? EROFS
                                                  : ENOSPC;
        remaining = count > 0 ? count : -1;
    }
    fclose(f);
    return ops != 0;
}

/* Whether this call fails (errno set when it does). */
static int should_fail(int op, const char *path, const char *path2) {
    int e = errno, fail = 0;
    pthread_mutex_lock(&lock);
    if (refresh() && (ops & op) && remaining != 0 &&
        ((path && fnmatch(pattern, path, 0) == 0) || (path2 && fnmatch(pattern, path2, 0) == 0))) {
        fail = 1;
        if (remaining > 0) remaining--;
        e = fail_errno;
    }
    pthread_mutex_unlock(&lock);
    errno = e;
    return fail;
}

static int fd_fails(int op, int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int e = errno;
    ssize_t n = readlink(link, path, sizeof path - 1);
    errno = e;
    if (n <= 0) return 0;
    path[n] = '\0';
    return should_fail(op, path, NULL);
}

#define REAL(name)                        \
    static __typeof__(&name) real_##name; \
    if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    return fd_fails(OP_WRITE, fd) ? -1 : real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    return fd_fails(OP_WRITE, fd) ? -1 : real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    REAL(pwrite64);
    return fd_fails(OP_WRITE, fd) ? -1 : real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    REAL(writev);
    return fd_fails(OP_WRITE, fd) ? -1 : real_writev(fd, iov, n);
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *fp) {
    REAL(fwrite);
    return fd_fails(OP_WRITE, fileno(fp)) ? 0 : real_fwrite(p, size, n, fp);
}

int fflush(FILE *fp) {
    REAL(fflush);
    return fp && fd_fails(OP_WRITE, fileno(fp)) ? EOF : real_fflush(fp);
}

int fsync(int fd) {
    REAL(fsync);
    return fd_fails(OP_FSYNC, fd) ? -1 : real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    return fd_fails(OP_FSYNC, fd) ? -1 : real_fdatasync(fd);
}

/* A name as the pattern sees it: absolute, so that relative renames match. */
static const char *absolute(const char *path, char *buf, size_t bufsz) {
    if (path[0] == '/') return path;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return path;
    snprintf(buf, bufsz, "%s/%s", cwd, path);
    return buf;
}

int rename(const char *from, const char *to) {
    REAL(rename);
    char a[8192], b[8192];
    return should_fail(OP_RENAME, absolute(from, a, sizeof a), absolute(to, b, sizeof b)) ? -1 : real_rename(from, to);
}
