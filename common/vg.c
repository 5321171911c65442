/* common/vg.c: names for the project's error codes. */
#include "common/vg.h"

#include <string.h>
#include <uv.h>

const char *vg_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case VG_ECORRUPT:
        return "stored data is corrupt";
    case VG_ECONFIG:
        return "invalid configuration";
    case VG_ETLS:
        return "TLS failure";
    case VG_EDB:
        return "catalog database error";
    case VG_ELIMIT:
        return "configured limit reached";
    case VG_EPARSE:
        return "does not parse";
    case VG_EFORMAT:
        return "unexpected document format";
    case VG_ECERT:
        return "certificate refused";
    default:
        break;
    }
    if (rc < 0 && rc > -4096) {
        /* -errno and UV_E* share numbers on Linux; uv_strerror knows both. */
        return uv_strerror(rc);
    }
    return "unknown error";
}
