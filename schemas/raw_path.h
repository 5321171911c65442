/* schemas/raw_path.h: dotted paths into a record's original event (`raw`, msgpack), the
 * one resolver behind the filter language's raw.<path> (query/filter.c) and the Sigma
 * field mapping (rules/). DESIGN.md "Event record": raw fields are addressed by dotted
 * path, e.g. objectRef.resource or output_fields.proc.cmdline.
 *
 * Pure; any thread; reads msgpack only through common/mp.h and treats malformed bytes as
 * "not reached". */
#ifndef VG_SCHEMAS_RAW_PATH_H
#define VG_SCHEMAS_RAW_PATH_H

#include <stdbool.h>

#include "common/span.h"

/* Called for each value a path reaches (one complete msgpack value; an array is handed
 * over whole: the visitor decides what its elements mean). depth is the nesting depth
 * of value; visitors that descend into it stop at MP_MAX_DEPTH. Return true to stop the
 * walk (a match, or enough values collected). */
typedef bool (*raw_path_visit_fn)(struct span value, int depth, void *arg);

/* Follows path from the msgpack value v (at nesting depth `depth`, 0 for a record's raw)
 * and calls visit on every value it reaches; returns true as soon as visit does.
 *
 * At a map, a key matches when it equals the rest of the path or is a prefix of it
 * followed by '.', so Falco's flat "proc.cmdline" keys resolve as well as nested maps;
 * every candidate is tried, keys equal to the whole rest first. At an array, a numeric
 * segment indexes it; otherwise the rest of the path applies to each element (so
 * "spec.volumes.hostPath.path" reaches every volume's path). An empty path reaches v
 * itself. Cost: a value is reached by one chain of keys, so it is visited at most once
 * per path, and each map is scanned twice: at most 2 * bytes * path segments. */
bool raw_path_walk(struct span v, struct span path, int depth, raw_path_visit_fn visit, void *arg);

#endif
