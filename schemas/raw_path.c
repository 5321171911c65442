/* schemas/raw_path.c: the dotted-path resolver over raw events (see raw_path.h). Shared by
 * query/filter.c and rules/; bounded by MP_MAX_DEPTH and by the bytes present. */
#include "schemas/raw_path.h"

#include <stdint.h>
#include <string.h>

#include "common/mp.h"

static bool all_digits(struct span s)
{
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return false;
        }
    }
    return s.n > 0;
}

bool raw_path_walk(struct span v, struct span path, int depth, raw_path_visit_fn visit, void *arg)
{
    struct span cur = v;
    struct mp_obj o;

    if (path.n == 0) {
        return visit(v, depth, arg);
    }
    if (depth > MP_MAX_DEPTH || mp_read(&cur, &o) != 1) {
        return false;
    }
    if (o.type == MP_MAP) {
        /* Two passes: keys equal to the whole rest first, then keys that are a prefix
         * of it (a dotted key, or a plain one to descend through). */
        bool any_prefix = false;
        for (int pass = 0; pass < 2; pass++) {
            struct span walk = v;
            if (pass == 1 && !any_prefix) {
                break;
            }
            if (mp_read(&walk, &o) != 1) {
                return false;
            }
            for (uint32_t i = 0; i < o.v.count; i++) {
                struct span kv;
                struct span k;
                struct span val;
                if (mp_take(&walk, &kv) < 0 || mp_take(&walk, &val) < 0) {
                    return false;
                }
                if (!mp_get_str(kv, &k)) {
                    continue;
                }
                if (pass == 0 && span_eq(k, path)) {
                    if (visit(val, depth + 1, arg)) {
                        return true;
                    }
                } else if (k.n < path.n && path.p[k.n] == '.' && span_starts_with(path, k)) {
                    any_prefix = true;
                    struct span rest = { path.p + k.n + 1, path.n - k.n - 1 };
                    if (pass == 1 && raw_path_walk(val, rest, depth + 1, visit, arg)) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
    if (o.type == MP_ARRAY) {
        const uint8_t *dot = memchr(path.p, '.', path.n);
        struct span seg = { path.p, dot ? (size_t)(dot - path.p) : path.n };
        uint64_t idx;
        if (all_digits(seg)) {
            if (parse_u64(seg, UINT32_MAX, &idx) < 0 || idx >= o.v.count) {
                return false;
            }
            struct span el;
            for (uint64_t i = 0; i <= idx; i++) {
                if (mp_take(&cur, &el) < 0) {
                    return false;
                }
            }
            struct span rest = dot ? (struct span){ dot + 1, path.n - seg.n - 1 }
                                   : (struct span){ path.p + path.n, 0 };
            return raw_path_walk(el, rest, depth + 1, visit, arg);
        }
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span el;
            if (mp_take(&cur, &el) < 0) {
                return false;
            }
            if (raw_path_walk(el, path, depth + 1, visit, arg)) {
                return true;
            }
        }
    }
    return false;
}
