/* collector/admin.h: the admin listener (plain HTTP on loopback): GET /metrics,
 * GET /healthz. */
#ifndef VG_COLLECTOR_ADMIN_H
#define VG_COLLECTOR_ADMIN_H

#include "collector/conn.h"

extern const struct conn_proto admin_proto;

#endif
