/*  soffa_err: strings for the error enum, generated from the same list. */
#include "soffa_err.h"

#include <errno.h>

const char *
soffa_strerror(soffa_err_t rc)
{
    switch (rc) {
#define SOFFA_ERR_STR_(name, text) case SOFFA_ERR_##name: return text;
    SOFFA_ERRORS(SOFFA_ERR_STR_)
#undef SOFFA_ERR_STR_
    case SOFFA_ERR__COUNT: break;
    }
    return "unknown error code";
}

const char *
soffa_errname(soffa_err_t rc)
{
    switch (rc) {
#define SOFFA_ERR_NAME_(name, text) case SOFFA_ERR_##name: return #name;
    SOFFA_ERRORS(SOFFA_ERR_NAME_)
#undef SOFFA_ERR_NAME_
    case SOFFA_ERR__COUNT: break;
    }
    return "UNKNOWN";
}

soffa_err_t
soffa_err_from_errno(int err)
{
    switch (err) {
    case 0: return SOFFA_OK;
    case ENOMEM: return SOFFA_ERR_NOMEM;
    case EACCES:
    case EPERM: return SOFFA_ERR_PERMISSION;
    case ENOENT: return SOFFA_ERR_NOT_FOUND;
    case EEXIST: return SOFFA_ERR_EXISTS;
    case ENOSPC:
    case EDQUOT: return SOFFA_ERR_DISK_FULL;
    case EINVAL: return SOFFA_ERR_INVALID_ARG;
    case ETIMEDOUT:
    case EAGAIN: return SOFFA_ERR_TIMEOUT;
    default: return SOFFA_ERR_IO;
    }
}
