/*
 * status.h - the jobs layer's status codes: what every jobs_ function that
 * can fail returns. jobs.h says what each means to a caller; an HTTP layer
 * maps them in one place (api_jobs_problem).
 */
#ifndef CODID_JOBS_STATUS_H
#define CODID_JOBS_STATUS_H

typedef enum jobs_status {
    JOBS_OK = 0,
    JOBS_ERR = -1,       /* SQLite, file system or memory failure */
    JOBS_ENOTFOUND = -2, /* no such job, dataset or adapter; no queued job */
    JOBS_ESTATE = -3,    /* the job's state does not allow this */
    JOBS_EINVAL = -4,    /* a bad argument, job spec or input file */
    JOBS_EEXIST = -5,    /* the name (or the job's adapter) exists already */
    JOBS_EBUSY = -6,     /* the database stayed locked past the busy timeout */
    JOBS_ECORRUPT = -7,  /* the file is not a database or fails quick_check */
    JOBS_ETOONEW = -8,   /* the file's schema is newer than this codid */
    JOBS_EINUSE = -9,    /* a queued or running job still needs it */
    JOBS_ELIMIT = -10    /* an input exceeds a limit the caller set */
} jobs_status;

/* A few words for a code ("not found"). */
const char *jobs_strerror(int code);

#endif
