/*
 * err.c: error codes and the user-facing error struct (jansson's
 * json_error_t idea: code, position and a bounded message).
 */
#include <stdio.h>

#include "core/core.h"

const char *ch_strerror(int rc)
{
    switch (rc) {
    case CH_OK: return "ok";
    case CH_AGAIN: return "not yet";
    case CH_ENOMEM: return "out of memory";
    case CH_EINVAL: return "invalid input";
    case CH_E_TOO_LARGE: return "too large";
    case CH_EIO: return "i/o error";
    case CH_ENOTFOUND: return "not found";
    case CH_EEXIST: return "already exists";
    case CH_EBUSY: return "busy";
    case CH_ETIMEDOUT: return "timed out";
    case CH_ECANCELED: return "canceled";
    case CH_EPERM: return "not permitted";
    case CH_ECLOSED: return "closed";
    case CH_EVERSION: return "version mismatch";
    case CH_EADDRINUSE: return "address already in use";
    case CH_ESTATE: return "wrong state";
    case CH_ENOSPC: return "storage full";
    default: return "unknown error";
    }
}

int ch_error_set(struct ch_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}
