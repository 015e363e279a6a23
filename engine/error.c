/*
 * error.c - text for TaskFlow's error codes.  Pure; any thread.
 */
#include "engine/error.h"

const char *tf_strerror(int code) {
    switch (code) {
    case TF_OK:
        return "success";
    case TF_EINVAL:
        return "invalid argument";
    case TF_ENOMEM:
        return "out of memory";
    case TF_ESTATE:
        return "transition not allowed in the current state";
    case TF_ENOTFOUND:
        return "not found";
    case TF_ECONFLICT:
        return "conflict";
    case TF_EIO:
        return "input/output error";
    case TF_ETIMEDOUT:
        return "timed out";
    case TF_EUNAVAIL:
        return "unavailable";
    case TF_ERANGE:
        return "value out of range";
    case TF_ETOOBIG:
        return "too large";
    case TF_EPARSE:
        return "parse error";
    case TF_EAGAIN:
        return "try again";
    case TF_ESTALE:
        return "stale lease";
    case TF_EAUTH:
        return "unauthorized";
    case TF_ECANCELED:
        return "cancelled";
    case TF_ESHUTDOWN:
        return "shutting down";
    default:
        return "unknown error";
    }
}
