/* common/cfg.h: YAML configuration walked against option tables.
 *
 * A configuration struct is described by a table of `struct cfg_opt`, one row per key:
 * the only place a key's type, bounds, default and help live. cfg_doc_parse() reads YAML
 * text into a document (libyaml's document API, with aliases, anchors, tags, deep nesting
 * and multiple documents refused up front), cfg_doc_apply() fills a struct from it, and
 * remembers where each value came from so that checks across keys (config.c) can still
 * report "file:line:col: 'key.path': ...". Errors name file, line, column and key path:
 *
 *     vigil.yaml:12:3: unknown key 'listen.max_fram'
 *     vigil.yaml:4:14: 'store.partition': expected a duration like 1h, got 'soon'
 *
 * Storage by type (at `off` in the struct the table describes):
 *   CFG_STR, CFG_PATH, CFG_ENUM  char * (owned; NULL when YAML null and no default)
 *   CFG_BOOL                     bool
 *   CFG_INT, CFG_DURATION        int64_t (durations in ns)
 *   CFG_UINT, CFG_SIZE           uint64_t (sizes in bytes)
 *   CFG_ADDR                     struct cfg_addr
 *   CFG_STRLIST, CFG_PATHLIST    char ** at off, size_t count at count_off
 *   CFG_SECTION                  a nested map: the rows of `sub`, relative to base + off
 *                                (off 0 flattens the section's keys into the parent)
 *   CFG_LIST                     a sequence of maps: elem_size-byte elements described by
 *                                `sub`, pointer at off, size_t count at count_off
 *   CFG_STRMAP                   a map of any keys, each to a string or a list of strings:
 *                                struct cfg_strmap (for keys named by data, not by us,
 *                                e.g. a forwarder's match on any event field); the
 *                                module that uses it checks the keys, and reports a bad
 *                                one with cfg_doc_error(d, &item->key, ...)
 * min and max bound numbers (in their stored unit) and list lengths; both 0 means
 * unbounded (lists: at most CFG_LIST_MAX items).
 *
 * Nothing here is global or thread-bound; a struct filled by cfg_doc_apply() is owned by
 * the caller and released with cfg_release() against the same table. */
#ifndef VG_COMMON_CFG_H
#define VG_COMMON_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

#define CFG_MAX_FILE_BYTES (1u << 20) /* larger config text is refused */
#define CFG_MAX_DEPTH      16         /* nesting of maps and sequences */
#define CFG_LIST_MAX       1024       /* items in a list with no explicit max */
#define CFG_MAX_NODES      20000      /* scalars, maps and lists in one document */

enum cfg_type {
    CFG_STR,      /* any scalar */
    CFG_PATH,     /* a file path, relative ones resolved against the config's directory */
    CFG_ENUM,     /* one of `choices` */
    CFG_BOOL,     /* true or false */
    CFG_INT,      /* int64, bounded */
    CFG_UINT,     /* uint64, bounded */
    CFG_SIZE,     /* "16MiB", "200GB", "512KiB", "4096": bytes, bounded */
    CFG_DURATION, /* "500ms", "1h", "30d" (vg_duration_parse) or 0: ns, bounded */
    CFG_ADDR,     /* "host:port", "[::1]:0"; null, "" or off disable it */
    CFG_STRLIST,  /* a sequence of strings */
    CFG_PATHLIST, /* a sequence of paths, resolved like CFG_PATH */
    CFG_SECTION,  /* a nested map */
    CFG_LIST,     /* a sequence of maps */
    CFG_STRMAP,   /* a map of any keys to a string or a list of strings */
};

enum {
    CFG_F_REQUIRED = 1 << 0, /* the key must be present (and not null) */
    CFG_F_EXISTS = 1 << 1,   /* CFG_PATH: the file must exist and be readable */
};

struct cfg_addr {
    char *host; /* without brackets: "0.0.0.0", "::1", "localhost"; NULL when disabled */
    int port;   /* 0..65535; 0 asks the kernel for one */
    bool enabled;
};

/* CFG_STRMAP: items in file order; a scalar value is a list of one. */
struct cfg_strmap_item {
    char *key;
    char **vals;
    size_t nvals;
};
struct cfg_strmap {
    struct cfg_strmap_item *items;
    size_t n;
};

struct cfg_opt {
    const char *name; /* NULL ends the table */
    enum cfg_type type;
    const char *def; /* default, in the syntax of the file; NULL = none */
    int64_t min, max;
    size_t off;
    const char *help;
    unsigned flags;             /* CFG_F_* */
    const struct cfg_opt *sub;  /* CFG_SECTION, CFG_LIST */
    size_t elem_size;           /* CFG_LIST */
    size_t count_off;           /* CFG_STRLIST, CFG_PATHLIST, CFG_LIST */
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
};

#define CFG_OFF(type, field) offsetof(type, field)

/* A parsed document plus, once applied, where each value came from. */
struct cfg_doc;

/* Parses YAML text. `name` is what errors call the file (as the user gave it). Refuses
 * text over CFG_MAX_FILE_BYTES, syntax errors, aliases, anchors, explicit tags, nesting
 * deeper than CFG_MAX_DEPTH, more than CFG_MAX_NODES nodes and more than one document. Returns 0
 * with *out owned by the caller (cfg_doc_free), or VG_ECONFIG with the message in eb. Does not
 * block. */
int cfg_doc_parse(const char *name, struct span text, struct cfg_doc **out, struct errbuf *eb);

/* Fills obj (zeroed by the caller) from the document's root map against `opts`: defaults
 * for absent keys, relative paths resolved against base_dir (NULL: left relative),
 * CFG_F_EXISTS files checked (blocks on stat/open). Unknown and duplicate keys, wrong
 * types, bad values and out-of-range values are errors. Returns 0 or VG_ECONFIG; on
 * error obj may hold partial values: cfg_release() it. */
int cfg_doc_apply(struct cfg_doc *d, const struct cfg_opt *opts, void *obj, const char *base_dir,
                  struct errbuf *eb);

/* For checks across keys after cfg_doc_apply(): sets eb to
 * "file:line:col: 'key.path': <message>" for the value stored at `field` (an address
 * inside obj). A key that took its default is reported at its enclosing map, or at the
 * file alone. Returns VG_ECONFIG. */
int cfg_doc_error(const struct cfg_doc *d, const void *field, struct errbuf *eb, const char *fmt,
                  ...) VG_PRINTF(4, 5);
/* True when the value stored at `field` was given in the file (not a default). */
bool cfg_doc_has(const struct cfg_doc *d, const void *field);
/* Frees the YAML tree, keeping what cfg_doc_error and cfg_doc_has need, so a loaded
 * config can keep its places for checks made later by the modules that use its values. */
void cfg_doc_drop_tree(struct cfg_doc *d);
void cfg_doc_free(struct cfg_doc *d);

/* Fills obj (zeroed by the caller) with every default of `opts`. Cannot fail: defaults
 * are ours, and a bad one aborts. */
void cfg_defaults(const struct cfg_opt *opts, void *obj);
/* Frees what obj owns (strings, lists, hosts) according to `opts`; obj itself stays. */
void cfg_release(const struct cfg_opt *opts, void *obj);
/* Prints every option: key path, type, default, bounds, help. */
void cfg_print_reference(FILE *f, const struct cfg_opt *opts);

/* "16MiB", "200GB", "512KiB", "4096", "4096B" (an optional space before the unit;
 * KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024). Returns 0 or VG_EPARSE. */
int cfg_size_parse(struct span s, uint64_t *out);
/* "host:port", "[v6]:port"; the host is an IPv4 or bracketed IPv6 address or a DNS name.
 * Fills *out with an owned host. Returns 0 or VG_EPARSE. */
int cfg_addr_parse(struct span s, struct cfg_addr *out);
/* True for 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost". */
bool cfg_host_is_loopback(const char *host);

#endif
