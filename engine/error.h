/*
 * error.h - TaskFlow's error codes.
 *
 * Every fallible function in TaskFlow returns 0 on success or one of the
 * negative TF_E* codes below.  Adapters translate errno, libpq, jansson and
 * libcurl errors into these at the boundary; nothing inward sees them raw.
 * Pure data, usable from any thread.
 */
#ifndef TF_ENGINE_ERROR_H
#define TF_ENGINE_ERROR_H

enum {
    TF_OK = 0,
    TF_EINVAL = -1,     /* invalid argument or input (API: 422 / 400) */
    TF_ENOMEM = -2,     /* allocation failed */
    TF_ESTATE = -3,     /* transition not allowed from the current state (API: 409) */
    TF_ENOTFOUND = -4,  /* no such object (API: 404) */
    TF_ECONFLICT = -5,  /* conflicts with existing data (API: 409) */
    TF_EIO = -6,        /* I/O or database error */
    TF_ETIMEDOUT = -7,  /* a deadline passed */
    TF_EUNAVAIL = -8,   /* a dependency (Postgres) is unavailable (API: 503) */
    TF_ERANGE = -9,     /* a number is out of its allowed range */
    TF_ETOOBIG = -10,   /* input over a size limit (API: 413) */
    TF_EPARSE = -11,    /* malformed input that could not be parsed (API: 400) */
    TF_EAGAIN = -12,    /* try again later */
    TF_ESTALE = -13,    /* stale lease token (API: 409) */
    TF_EAUTH = -14,     /* missing or bad credentials (API: 401) */
    TF_ECANCELED = -15, /* the operation was cancelled */
    TF_ESHUTDOWN = -16, /* the component is shutting down */
};

/* Returns a static, human-readable description of `code`. */
const char *tf_strerror(int code);

#endif
