/* collector/forward_in.h: the Forward listener's protocol handler. */
#ifndef VG_COLLECTOR_FORWARD_IN_H
#define VG_COLLECTOR_FORWARD_IN_H

#include "collector/conn.h"

extern const struct conn_proto forward_in_proto;

#endif
