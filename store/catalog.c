/* store/catalog.c: catalog.db, the SQLite list of segments (schemas/segment.md 6). The
 * only file of the store that includes <sqlite3.h>.
 *
 * The writer opens it read-write (WAL, synchronous=NORMAL: a crash may lose the last
 * transactions, never consistency; recovery rebuilds open rows from the files). Readers
 * open it SQLITE_OPEN_READONLY while the writer holds it. A struct catalog belongs to one
 * thread at a time. uint64 seq values are stored as their int64 bit pattern. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/store_int.h"

#define CATALOG_FORMAT 1

enum {
    STMT_PUT,
    STMT_GET_OPEN,
    STMT_GET,
    STMT_SEAL,
    STMT_SEAL_BEFORE,
    STMT_LIST_ALL,
    STMT_LIST_OPEN,
    STMT_LIST_RANGE,
    STMT_MAX_ID,
    STMT_NEXT_SEQ,
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_COUNT
};

/* recv_max (segment.md 6): the collector's clock at the last commit that wrote to the
 * segment, so retention can age data from when it was received (an import of old
 * events is kept for max_age after it). A catalog written before the column existed
 * gets it at the writer's next open (catalog__open); a reader of such a catalog reads
 * NULL (stmt_prepare). */
#define SEG_COLS                                                                    \
 "id, file, part_start, part_end, state, ts_min, ts_max, seq_min, seq_max, count, " \
 "blocks, bytes, bytes_raw, chain_head, created, sealed, recv_max"

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_PUT] = "INSERT OR REPLACE INTO segments (" SEG_COLS ") "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                 "?17)",
    [STMT_GET_OPEN] = "SELECT " SEG_COLS " FROM segments WHERE state = 'open' AND "
                      "part_start = ?1 AND part_end = ?2 ORDER BY id DESC LIMIT 1",
    [STMT_GET] = "SELECT " SEG_COLS " FROM segments WHERE id = ?1",
    [STMT_SEAL] = "UPDATE segments SET state = 'sealed', sealed = ?2 WHERE id = ?1",
    [STMT_SEAL_BEFORE] = "UPDATE segments SET state = 'sealed', sealed = ?2 "
                         "WHERE state = 'open' AND part_end <= ?1",
    [STMT_LIST_ALL] = "SELECT " SEG_COLS " FROM segments ORDER BY part_start, id",
    [STMT_LIST_OPEN] = "SELECT " SEG_COLS " FROM segments WHERE state = 'open' "
                       "ORDER BY part_start, id",
    /* Open rows' ts range lags the file (blocks past the last commit), so they are
     * chosen by partition; sealed rows by their exact ts range. */
    [STMT_LIST_RANGE] = "SELECT " SEG_COLS " FROM segments WHERE "
                        "(state = 'open' AND part_end > ?1 AND part_start < ?2) OR "
                        "(state = 'sealed' AND count > 0 AND ts_max >= ?1 AND ts_min < ?2) "
                        "ORDER BY part_start, id",
    [STMT_MAX_ID] = "SELECT max(id) FROM segments",
    [STMT_NEXT_SEQ] = "SELECT max(seq_max) FROM segments WHERE count > 0",
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', '1');"
    "CREATE TABLE IF NOT EXISTS segments ("
    " id INTEGER PRIMARY KEY,"
    " file TEXT NOT NULL UNIQUE,"
    " part_start INTEGER NOT NULL,"
    " part_end INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('open', 'sealed')),"
    " ts_min INTEGER, ts_max INTEGER, seq_min INTEGER, seq_max INTEGER,"
    " count INTEGER NOT NULL, blocks INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, bytes_raw INTEGER NOT NULL,"
    " chain_head TEXT NOT NULL,"
    " created INTEGER NOT NULL, sealed INTEGER, recv_max INTEGER);"
    "CREATE INDEX IF NOT EXISTS segments_part ON segments (part_start);"
    /* segment.md 8-10: signing keys, seals, deletions by policy, legal holds. */
    "CREATE TABLE IF NOT EXISTS keys ("
    " key_id TEXT PRIMARY KEY, algorithm TEXT NOT NULL, public_pem TEXT NOT NULL,"
    " added INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS seals ("
    " segment_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, key_id TEXT, signature TEXT,"
    " signed INTEGER);"
    "CREATE TABLE IF NOT EXISTS deletions ("
    " segment_id INTEGER PRIMARY KEY, file TEXT NOT NULL,"
    " part_start INTEGER NOT NULL, part_end INTEGER NOT NULL,"
    " ts_min INTEGER, ts_max INTEGER, seq_min INTEGER, seq_max INTEGER,"
    " count INTEGER NOT NULL, blocks INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, bytes_raw INTEGER NOT NULL, chain_head TEXT NOT NULL,"
    " created INTEGER NOT NULL, sealed INTEGER NOT NULL, key_id TEXT, signature TEXT,"
    " reason TEXT NOT NULL, deleted INTEGER NOT NULL, file_removed INTEGER);"
    "CREATE TABLE IF NOT EXISTS holds ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, since INTEGER NOT NULL, until INTEGER NOT NULL,"
    " filter TEXT, reason TEXT NOT NULL, created_by TEXT NOT NULL, created INTEGER NOT NULL,"
    " released INTEGER, released_by TEXT, release_reason TEXT, CHECK (since < until));";

struct catalog {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[STMT_COUNT];
    bool full;         /* the last failed step found no room to write (catalog__full) */
    bool has_recv_max; /* segments has the recv_max column (older catalogs do not) */
};

/* Right after a step failed: was it a full disk? SQLite says SQLITE_FULL for ENOSPC;
 * a write refused otherwise (quota, the file size limit) is SQLITE_IOERR_WRITE, whose
 * errno it does not keep reliably: both count as no room to write. */
static void note_failure(struct catalog *c)
{
    int ec = sqlite3_extended_errcode(c->db);

    c->full = (ec & 0xff) == SQLITE_FULL || ec == SQLITE_IOERR_WRITE;
}

const char *catalog__errmsg(const struct catalog *c)
{
    return c && c->db ? sqlite3_errmsg(c->db) : "no catalog";
}

static int db_fail(struct catalog *c, const char *what)
{
    log_error("catalog '%s': %s: %s", c->path, what, sqlite3_errmsg(c->db));
    return VG_EDB;
}

static int check_format(struct catalog *c, struct errbuf *eb)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = 'format'", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        errbuf_set(eb, "'%s' is not a vigil catalog: %s", c->path, sqlite3_errmsg(c->db));
        sqlite3_finalize(s);
        return VG_EFORMAT;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        errbuf_set(eb, "'%s' is not a vigil catalog (no format)", c->path);
        sqlite3_finalize(s);
        return rc == SQLITE_DONE ? VG_EFORMAT : VG_EDB;
    }
    int format = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (format != CATALOG_FORMAT) {
        errbuf_set(eb, "catalog '%s' has format %d; this version reads format %d", c->path, format,
                   CATALOG_FORMAT);
        return VG_EFORMAT;
    }
    return 0;
}

/* 1 when table has column, 0 when not, VG_EDB. */
static int has_column(struct catalog *c, const char *table, const char *column)
{
    char sql[96];
    sqlite3_stmt *s = NULL;
    int found = 0;
    int rc;

    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
    if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) != SQLITE_OK) {
        return VG_EDB;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(s, 1);
        found |= name && strcmp((const char *)name, column) == 0;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? found : VG_EDB;
}

/* segment.md 6: a catalog from before recv_max gets the column. Rows already there did
 * not record when their records arrived: a sealed one's seal time is later than any of
 * its records' (their age then counts from it), an open one is taken as received now
 * (it still changes). Never earlier than the truth: retention keeps, never loses. */
static int migrate_recv_max(struct catalog *c)
{
    char sql[160];
    int rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(c->db, "ALTER TABLE segments ADD COLUMN recv_max INTEGER", NULL, NULL,
                          NULL);
    }
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql), "UPDATE segments SET recv_max = COALESCE(sealed, %lld)",
                 (long long)vg_now_ns());
        rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return VG_EDB;
    }
    log_info("catalog '%s': added recv_max (when each segment's records were received) for "
             "retention",
             c->path);
    return 0;
}

/* Prepares one of stmt_sql; a reader of a catalog without recv_max reads NULL for it
 * (its writes, STMT_PUT, are not prepared: catalog__open). */
static int stmt_prepare(struct catalog *c, const char *sql, sqlite3_stmt **out)
{
    if (c->has_recv_max || strncmp(sql, "SELECT", 6) != 0) {
        return sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    }
    struct buf b;
    const char *p = sql;
    const char *hit;
    int rc = 0;
    buf_init(&b, 4096);
    while (rc == 0 && (hit = strstr(p, "recv_max")) != NULL) {
        rc = buf_append(&b, p, (size_t)(hit - p));
        if (rc == 0) {
            rc = buf_append_str(&b, "NULL");
        }
        p = hit + strlen("recv_max");
    }
    if (rc == 0) {
        rc = buf_append_str(&b, p);
    }
    rc = rc == 0 ? sqlite3_prepare_v3(c->db, buf_cstr(&b), -1, SQLITE_PREPARE_PERSISTENT, out, NULL)
                 : SQLITE_NOMEM;
    buf_release(&b);
    return rc;
}

int catalog__open(const char *path, bool readonly, struct catalog **out, struct errbuf *eb)
{
    struct catalog *c = xcalloc(1, sizeof(*c));
    struct stat sb;
    char *msg = NULL;
    int rc;

    c->path = xstrdup(path);
    if (readonly && stat(path, &sb) != 0) {
        rc = -errno;
        errbuf_set(eb, "cannot open catalog '%s': %s", path, vg_strerror(rc));
        goto fail;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        errbuf_set(eb, "cannot open catalog '%s': %s", path,
                   c->db ? sqlite3_errmsg(c->db) : "out of memory");
        rc = VG_EDB;
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 10000);
    sqlite3_extended_result_codes(c->db, 1);
    if (!readonly) {
        /* segment.md 6: WAL, synchronous=NORMAL. */
        if (sqlite3_exec(c->db,
                         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                         "PRAGMA foreign_keys=OFF;",
                         NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(c->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
            errbuf_set(eb, "cannot set up catalog '%s': %s", path, msg ? msg : "?");
            sqlite3_free(msg);
            rc = VG_EDB;
            goto fail;
        }
    }
    rc = check_format(c, eb);
    if (rc < 0) {
        goto fail;
    }
    if ((rc = has_column(c, "segments", "recv_max")) < 0) {
        errbuf_set(eb, "catalog '%s': %s", path, sqlite3_errmsg(c->db));
        goto fail;
    }
    c->has_recv_max = rc == 1;
    if (!readonly && !c->has_recv_max) {
        if ((rc = migrate_recv_max(c)) < 0) {
            errbuf_set(eb, "cannot add recv_max to catalog '%s': %s", path, sqlite3_errmsg(c->db));
            goto fail;
        }
        c->has_recv_max = true;
    }
    for (int i = 0; i < STMT_COUNT; i++) {
        if (i == STMT_PUT && !c->has_recv_max) {
            continue; /* a reader of an older catalog: it never writes rows */
        }
        if (stmt_prepare(c, stmt_sql[i], &c->stmt[i]) != SQLITE_OK) {
            errbuf_set(eb, "catalog '%s': cannot prepare statements: %s", path,
                       sqlite3_errmsg(c->db));
            rc = VG_EDB;
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    catalog__close(c);
    return rc;
}

void catalog__close(struct catalog *c)
{
    if (!c) {
        return;
    }
    for (int i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(c->stmt[i]);
    }
    if (c->db && sqlite3_close(c->db) != SQLITE_OK) {
        log_error("catalog '%s': close: %s", c->path, sqlite3_errmsg(c->db));
    }
    free(c->path);
    free(c);
}

/* Runs a statement that returns no rows; resets it. */
static int step_done(struct catalog *c, int i, const char *what)
{
    sqlite3_stmt *s = c->stmt[i];
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        note_failure(c);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : db_fail(c, what);
}

int catalog__begin(struct catalog *c)
{
    return step_done(c, STMT_BEGIN, "begin");
}

int catalog__commit(struct catalog *c)
{
    return step_done(c, STMT_COMMIT, "commit");
}

void catalog__rollback(struct catalog *c)
{
    if (!sqlite3_get_autocommit(c->db)) {
        (void)step_done(c, STMT_ROLLBACK, "rollback");
    }
}

int catalog__put(struct catalog *c, const struct seg_meta *m)
{
    sqlite3_stmt *s = c->stmt[STMT_PUT];
    char hex[2 * VG_SHA256_LEN + 1];

    if (!s) {
        return db_fail(c, "update segment row (opened read-only)");
    }
    vg_hex(m->chain_head, VG_SHA256_LEN, hex);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)m->id);
    sqlite3_bind_text(s, 2, m->file, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, m->part_start);
    sqlite3_bind_int64(s, 4, m->part_end);
    sqlite3_bind_text(s, 5, m->state == SEG_OPEN ? "open" : "sealed", -1, SQLITE_STATIC);
    if (m->tot.count > 0) {
        sqlite3_bind_int64(s, 6, m->tot.ts_min);
        sqlite3_bind_int64(s, 7, m->tot.ts_max);
        sqlite3_bind_int64(s, 8, (sqlite3_int64)m->tot.seq_min);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)m->tot.seq_max);
    } else {
        for (int i = 6; i <= 9; i++) {
            sqlite3_bind_null(s, i);
        }
    }
    sqlite3_bind_int64(s, 10, (sqlite3_int64)m->tot.count);
    sqlite3_bind_int64(s, 11, (sqlite3_int64)m->tot.blocks);
    sqlite3_bind_int64(s, 12, (sqlite3_int64)m->bytes);
    sqlite3_bind_int64(s, 13, (sqlite3_int64)m->tot.bytes_raw);
    sqlite3_bind_text(s, 14, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 15, m->created);
    if (m->state == SEG_SEALED) {
        sqlite3_bind_int64(s, 16, m->sealed);
    } else {
        sqlite3_bind_null(s, 16);
    }
    if (m->recv_max != 0) {
        sqlite3_bind_int64(s, 17, m->recv_max);
    } else {
        sqlite3_bind_null(s, 17);
    }
    return step_done(c, STMT_PUT, "update segment row");
}

static int hex_nibble(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/* Fills m from the current row of a SEG_COLS statement. Returns 0 or VG_EDB for a row
 * the writer could not have written. */
static int row_read(struct catalog *c, sqlite3_stmt *s, struct seg_meta *m)
{
    const unsigned char *file = sqlite3_column_text(s, 1);
    const unsigned char *state = sqlite3_column_text(s, 4);
    const unsigned char *hex = sqlite3_column_text(s, 13);

    memset(m, 0, sizeof(*m));
    m->id = (uint64_t)sqlite3_column_int64(s, 0);
    if (!file || strlen((const char *)file) >= SEG_NAME_MAX || strchr((const char *)file, '/') ||
        !state || !hex || strlen((const char *)hex) != 2 * VG_SHA256_LEN) {
        log_error("catalog '%s': malformed row for segment %llu", c->path,
                  (unsigned long long)m->id);
        return VG_EDB;
    }
    snprintf(m->file, sizeof(m->file), "%s", (const char *)file);
    m->part_start = sqlite3_column_int64(s, 2);
    m->part_end = sqlite3_column_int64(s, 3);
    m->state = strcmp((const char *)state, "open") == 0 ? SEG_OPEN : SEG_SEALED;
    m->tot.ts_min = sqlite3_column_int64(s, 5);
    m->tot.ts_max = sqlite3_column_int64(s, 6);
    m->tot.seq_min = (uint64_t)sqlite3_column_int64(s, 7);
    m->tot.seq_max = (uint64_t)sqlite3_column_int64(s, 8);
    m->tot.count = (uint64_t)sqlite3_column_int64(s, 9);
    m->tot.blocks = (uint64_t)sqlite3_column_int64(s, 10);
    m->bytes = (uint64_t)sqlite3_column_int64(s, 11);
    m->tot.bytes_raw = (uint64_t)sqlite3_column_int64(s, 12);
    for (int i = 0; i < VG_SHA256_LEN; i++) {
        int hi = hex_nibble(hex[2 * i]);
        int lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            log_error("catalog '%s': bad chain_head for segment %llu", c->path,
                      (unsigned long long)m->id);
            return VG_EDB;
        }
        m->chain_head[i] = (uint8_t)(hi << 4 | lo);
    }
    m->created = sqlite3_column_int64(s, 14);
    m->sealed = sqlite3_column_int64(s, 15);
    m->recv_max = sqlite3_column_int64(s, 16); /* NULL: 0, unknown */
    return 0;
}

/* Steps a bound SEG_COLS statement for at most one row: 1 and *out, 0, or VG_EDB. */
static int get_one(struct catalog *c, sqlite3_stmt *s, struct seg_meta *out, const char *what)
{
    int found = 0;
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW) {
        found = row_read(c, s, out) < 0 ? VG_EDB : 1;
    } else if (rc != SQLITE_DONE) {
        found = db_fail(c, what);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return found;
}

int catalog__get(struct catalog *c, uint64_t id, struct seg_meta *out)
{
    sqlite3_bind_int64(c->stmt[STMT_GET], 1, (sqlite3_int64)id);
    return get_one(c, c->stmt[STMT_GET], out, "look up segment");
}

int catalog__get_open(struct catalog *c, int64_t part_start, int64_t part_end, struct seg_meta *out)
{
    sqlite3_stmt *s = c->stmt[STMT_GET_OPEN];

    sqlite3_bind_int64(s, 1, part_start);
    sqlite3_bind_int64(s, 2, part_end);
    return get_one(c, s, out, "look up open segment");
}

int catalog__seal(struct catalog *c, uint64_t id, int64_t sealed_ns)
{
    sqlite3_stmt *s = c->stmt[STMT_SEAL];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    sqlite3_bind_int64(s, 2, sealed_ns);
    return step_done(c, STMT_SEAL, "seal segment");
}

int catalog__seal_before(struct catalog *c, int64_t ts, int64_t sealed_ns)
{
    sqlite3_stmt *s = c->stmt[STMT_SEAL_BEFORE];
    sqlite3_bind_int64(s, 1, ts);
    sqlite3_bind_int64(s, 2, sealed_ns);
    int rc = step_done(c, STMT_SEAL_BEFORE, "seal segments");
    return rc < 0 ? rc : sqlite3_changes(c->db);
}

int catalog__list(struct catalog *c, enum catalog_sel sel, int64_t since, int64_t until,
                  struct seg_meta **rows, size_t *n)
{
    int i = sel == CATALOG_ALL    ? STMT_LIST_ALL
            : sel == CATALOG_OPEN ? STMT_LIST_OPEN
                                  : STMT_LIST_RANGE;
    sqlite3_stmt *s = c->stmt[i];
    struct seg_meta *v = NULL;
    size_t len = 0;
    size_t cap = 0;
    int rc;

    if (sel == CATALOG_RANGE) {
        sqlite3_bind_int64(s, 1, since);
        sqlite3_bind_int64(s, 2, until);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        if (row_read(c, s, &v[len]) < 0) {
            rc = SQLITE_CORRUPT;
            break;
        }
        len++;
    }
    int ret = rc == SQLITE_DONE ? 0 : rc == SQLITE_CORRUPT ? VG_EDB : db_fail(c, "list segments");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (ret < 0) {
        free(v);
        return ret;
    }
    *rows = v;
    *n = len;
    return 0;
}

static int one_int(struct catalog *c, int i, bool *null, int64_t *out)
{
    sqlite3_stmt *s = c->stmt[i];
    int ret = 0;

    if (sqlite3_step(s) == SQLITE_ROW) {
        *null = sqlite3_column_type(s, 0) == SQLITE_NULL;
        *out = sqlite3_column_int64(s, 0);
    } else {
        ret = db_fail(c, "query");
    }
    sqlite3_reset(s);
    return ret;
}

static int prep(struct catalog *c, const char *sql, sqlite3_stmt **s);

int catalog__max_id(struct catalog *c, uint64_t *out)
{
    bool null;
    int64_t v;
    int rc = one_int(c, STMT_MAX_ID, &null, &v);
    if (rc < 0) {
        return rc;
    }
    *out = null ? 0 : (uint64_t)v;
    /* Ids are never reused: a deleted segment's (retention, compaction) counts too. */
    if ((rc = catalog__has_table(c, "deletions")) <= 0) {
        return rc;
    }
    sqlite3_stmt *s = NULL;
    if ((rc = prep(c, "SELECT max(segment_id) FROM deletions", &s)) < 0) {
        return rc;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL &&
        (uint64_t)sqlite3_column_int64(s, 0) > *out) {
        *out = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(c, "look up deleted ids");
}

int catalog__next_seq(struct catalog *c, uint64_t *out)
{
    bool null;
    int64_t v;
    int rc = one_int(c, STMT_NEXT_SEQ, &null, &v);
    if (rc == 0) {
        *out = null ? 1 : (uint64_t)v + 1;
    }
    return rc;
}

/* ---- integrity, retention and holds (segment.md 8-10) ----
 * Rare statements (once per seal, retention run, verify or `vigil hold`): prepared per
 * call rather than kept. */

bool catalog__full(const struct catalog *c)
{
    return c && c->full;
}

static int prep(struct catalog *c, const char *sql, sqlite3_stmt **s)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, s, NULL) != SQLITE_OK) {
        sqlite3_finalize(*s);
        *s = NULL;
        return db_fail(c, "prepare");
    }
    return 0;
}

/* Steps a statement that returns no rows, then finalizes it. */
static int run_done(struct catalog *c, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        note_failure(c);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_fail(c, what);
}

int catalog__has_table(struct catalog *c, const char *name)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_fail(c, "look up table");
}

static void text_copy(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static char *text_dup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? xstrdup((const char *)t) : NULL;
}

/* A signature column pair (key_id, signature hex): both NULL, or both well formed. */
static void sig_read(sqlite3_stmt *s, int col, bool *is_signed, char *key_id, uint8_t *sig)
{
    const unsigned char *k = sqlite3_column_text(s, col);
    const unsigned char *h = sqlite3_column_text(s, col + 1);

    *is_signed = false;
    key_id[0] = 0;
    memset(sig, 0, SIGN_SIG_LEN);
    if (!k || !h) {
        return;
    }
    snprintf(key_id, SIGN_KEY_ID_LEN + 1, "%s", (const char *)k);
    /* A malformed signature reads as all zeros: it fails the check, never crashes. */
    if (sign_unhex((const char *)h, sig, SIGN_SIG_LEN) < 0) {
        memset(sig, 0, SIGN_SIG_LEN);
    }
    *is_signed = true;
}

static void sig_bind(sqlite3_stmt *s, int col, bool is_signed, const char *key_id,
                     const uint8_t *sig)
{
    char hex[2 * SIGN_SIG_LEN + 1];

    if (!is_signed) {
        sqlite3_bind_null(s, col);
        sqlite3_bind_null(s, col + 1);
        return;
    }
    vg_hex(sig, SIGN_SIG_LEN, hex);
    sqlite3_bind_text(s, col, key_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, col + 1, hex, -1, SQLITE_TRANSIENT);
}

int catalog__key_put(struct catalog *c, const char *key_id, const char *pem, int64_t added)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c,
                  "INSERT OR IGNORE INTO keys (key_id, algorithm, public_pem, added) "
                  "VALUES (?1, 'ed25519', ?2, ?3)",
                  &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_text(s, 1, key_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, pem, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, added);
    return run_done(c, s, "record signing key");
}

int catalog__keys_list(struct catalog *c, struct catalog_key **out, size_t *n)
{
    sqlite3_stmt *s = NULL;
    struct catalog_key *v = NULL;
    size_t len = 0;
    int rc = catalog__has_table(c, "keys");

    *out = NULL;
    *n = 0;
    if (rc <= 0) {
        return rc;
    }
    rc = prep(c, "SELECT key_id, public_pem, added FROM keys ORDER BY added, key_id", &s);
    if (rc < 0) {
        return rc;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        v = xrealloc(v, (len + 1) * sizeof(*v));
        text_copy(s, 0, v[len].key_id, sizeof(v[len].key_id));
        v[len].pem = text_dup(s, 1);
        v[len].added = sqlite3_column_int64(s, 2);
        len++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        catalog__keys_free(v, len);
        return db_fail(c, "list keys");
    }
    *out = v;
    *n = len;
    return 0;
}

void catalog__keys_free(struct catalog_key *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(k[i].pem);
    }
    free(k);
}

int catalog__seal_put(struct catalog *c, const struct catalog_seal *seal)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c,
                  "INSERT OR REPLACE INTO seals (segment_id, reason, key_id, signature, signed) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)seal->id);
    sqlite3_bind_text(s, 2, seal->reason, -1, SQLITE_TRANSIENT);
    sig_bind(s, 3, seal->is_signed, seal->key_id, seal->sig);
    if (seal->is_signed) {
        sqlite3_bind_int64(s, 5, seal->signed_at);
    } else {
        sqlite3_bind_null(s, 5);
    }
    return run_done(c, s, "record seal");
}

int catalog__seals_list(struct catalog *c, struct catalog_seal **out, size_t *n)
{
    sqlite3_stmt *s = NULL;
    struct catalog_seal *v = NULL;
    size_t len = 0;
    int rc = catalog__has_table(c, "seals");

    *out = NULL;
    *n = 0;
    if (rc <= 0) {
        return rc;
    }
    rc = prep(c,
              "SELECT segment_id, reason, key_id, signature, signed FROM seals "
              "ORDER BY segment_id",
              &s);
    if (rc < 0) {
        return rc;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        v = xrealloc(v, (len + 1) * sizeof(*v));
        memset(&v[len], 0, sizeof(v[len]));
        v[len].id = (uint64_t)sqlite3_column_int64(s, 0);
        text_copy(s, 1, v[len].reason, sizeof(v[len].reason));
        sig_read(s, 2, &v[len].is_signed, v[len].key_id, v[len].sig);
        v[len].signed_at = sqlite3_column_int64(s, 4);
        len++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_fail(c, "list seals");
    }
    *out = v;
    *n = len;
    return 0;
}

#define DEL_COLS                                                                      \
 "segment_id, file, part_start, part_end, ts_min, ts_max, seq_min, seq_max, count, "  \
 "blocks, bytes, bytes_raw, chain_head, created, sealed, key_id, signature, reason, " \
 "deleted, file_removed"

int catalog__deletion_add(struct catalog *c, const struct catalog_deletion *d)
{
    const struct seg_meta *m = &d->m;
    char hex[2 * VG_SHA256_LEN + 1];
    sqlite3_stmt *s = NULL;
    int rc = prep(c,
                  "INSERT OR REPLACE INTO deletions (" DEL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                  "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, NULL)",
                  &s);
    if (rc < 0) {
        return rc;
    }
    vg_hex(m->chain_head, VG_SHA256_LEN, hex);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)m->id);
    sqlite3_bind_text(s, 2, m->file, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, m->part_start);
    sqlite3_bind_int64(s, 4, m->part_end);
    if (m->tot.count > 0) {
        sqlite3_bind_int64(s, 5, m->tot.ts_min);
        sqlite3_bind_int64(s, 6, m->tot.ts_max);
        sqlite3_bind_int64(s, 7, (sqlite3_int64)m->tot.seq_min);
        sqlite3_bind_int64(s, 8, (sqlite3_int64)m->tot.seq_max);
    }
    sqlite3_bind_int64(s, 9, (sqlite3_int64)m->tot.count);
    sqlite3_bind_int64(s, 10, (sqlite3_int64)m->tot.blocks);
    sqlite3_bind_int64(s, 11, (sqlite3_int64)m->bytes);
    sqlite3_bind_int64(s, 12, (sqlite3_int64)m->tot.bytes_raw);
    sqlite3_bind_text(s, 13, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 14, m->created);
    sqlite3_bind_int64(s, 15, m->sealed);
    sig_bind(s, 16, d->is_signed, d->key_id, d->sig);
    sqlite3_bind_text(s, 18, d->reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 19, d->deleted);
    rc = run_done(c, s, "record deletion");
    if (rc == 0 && (rc = prep(c, "DELETE FROM segments WHERE id = ?1", &s)) == 0) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)m->id);
        rc = run_done(c, s, "delete segment row");
    }
    if (rc == 0 && (rc = prep(c, "DELETE FROM seals WHERE segment_id = ?1", &s)) == 0) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)m->id);
        rc = run_done(c, s, "delete seal row");
    }
    return rc;
}

static int deletion_read(struct catalog *c, sqlite3_stmt *s, struct catalog_deletion *d)
{
    struct seg_meta *m = &d->m;
    const unsigned char *file = sqlite3_column_text(s, 1);
    const unsigned char *hex = sqlite3_column_text(s, 12);

    memset(d, 0, sizeof(*d));
    m->id = (uint64_t)sqlite3_column_int64(s, 0);
    if (!file || strlen((const char *)file) >= SEG_NAME_MAX || strchr((const char *)file, '/') ||
        !hex || sign_unhex((const char *)hex, m->chain_head, VG_SHA256_LEN) < 0) {
        log_error("catalog '%s': malformed deletion row for segment %llu", c->path,
                  (unsigned long long)m->id);
        return VG_EDB;
    }
    snprintf(m->file, sizeof(m->file), "%s", (const char *)file);
    m->part_start = sqlite3_column_int64(s, 2);
    m->part_end = sqlite3_column_int64(s, 3);
    m->state = SEG_SEALED;
    m->tot.ts_min = sqlite3_column_int64(s, 4);
    m->tot.ts_max = sqlite3_column_int64(s, 5);
    m->tot.seq_min = (uint64_t)sqlite3_column_int64(s, 6);
    m->tot.seq_max = (uint64_t)sqlite3_column_int64(s, 7);
    m->tot.count = (uint64_t)sqlite3_column_int64(s, 8);
    m->tot.blocks = (uint64_t)sqlite3_column_int64(s, 9);
    m->bytes = (uint64_t)sqlite3_column_int64(s, 10);
    m->tot.bytes_raw = (uint64_t)sqlite3_column_int64(s, 11);
    m->created = sqlite3_column_int64(s, 13);
    m->sealed = sqlite3_column_int64(s, 14);
    sig_read(s, 15, &d->is_signed, d->key_id, d->sig);
    text_copy(s, 17, d->reason, sizeof(d->reason));
    d->deleted = sqlite3_column_int64(s, 18);
    d->file_removed = sqlite3_column_int64(s, 19);
    return 0;
}

int catalog__deletion_get(struct catalog *c, uint64_t id, struct catalog_deletion *out)
{
    sqlite3_stmt *s = NULL;
    int rc = catalog__has_table(c, "deletions");

    if (rc <= 0) {
        return rc;
    }
    rc = prep(c, "SELECT " DEL_COLS " FROM deletions WHERE segment_id = ?1", &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        rc = deletion_read(c, s, out) < 0 ? VG_EDB : 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : db_fail(c, "look up deletion");
    }
    sqlite3_finalize(s);
    return rc;
}

int catalog__deletions_list(struct catalog *c, bool pending_only, struct catalog_deletion **out,
                            size_t *n)
{
    sqlite3_stmt *s = NULL;
    struct catalog_deletion *v = NULL;
    size_t len = 0;
    int rc = catalog__has_table(c, "deletions");

    *out = NULL;
    *n = 0;
    if (rc <= 0) {
        return rc;
    }
    rc = prep(c,
              pending_only ? "SELECT " DEL_COLS " FROM deletions WHERE file_removed IS NULL "
                             "ORDER BY segment_id"
                           : "SELECT " DEL_COLS " FROM deletions ORDER BY segment_id",
              &s);
    if (rc < 0) {
        return rc;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        v = xrealloc(v, (len + 1) * sizeof(*v));
        if (deletion_read(c, s, &v[len]) < 0) {
            rc = SQLITE_CORRUPT;
            break;
        }
        len++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        free(v);
        return rc == SQLITE_CORRUPT ? VG_EDB : db_fail(c, "list deletions");
    }
    *out = v;
    *n = len;
    return 0;
}

int catalog__deletion_removed(struct catalog *c, uint64_t id, int64_t when)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c, "UPDATE deletions SET file_removed = ?2 WHERE segment_id = ?1", &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    sqlite3_bind_int64(s, 2, when);
    return run_done(c, s, "record file removal");
}

int catalog__hold_add(struct catalog *c, const struct store_hold *h, int64_t *id)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c,
                  "INSERT INTO holds (since, until, filter, reason, created_by, created) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                  &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, h->since);
    sqlite3_bind_int64(s, 2, h->until);
    if (h->filter && *h->filter) {
        sqlite3_bind_text(s, 3, h->filter, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(s, 3);
    }
    sqlite3_bind_text(s, 4, h->reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, h->created_by, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, h->created);
    rc = run_done(c, s, "add hold");
    if (rc == 0) {
        *id = sqlite3_last_insert_rowid(c->db);
    }
    return rc;
}

int catalog__hold_release(struct catalog *c, int64_t id, int64_t when, const char *who,
                          const char *reason)
{
    sqlite3_stmt *s = NULL;
    int rc = prep(c,
                  "UPDATE holds SET released = ?2, released_by = ?3, release_reason = ?4 "
                  "WHERE id = ?1 AND released IS NULL",
                  &s);
    if (rc < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, when);
    sqlite3_bind_text(s, 3, who, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, reason, -1, SQLITE_TRANSIENT);
    rc = run_done(c, s, "release hold");
    if (rc < 0 || sqlite3_changes(c->db) == 1) {
        return rc;
    }
    /* Nothing changed: no such hold, or released already. */
    if ((rc = prep(c, "SELECT released FROM holds WHERE id = ?1", &s)) < 0) {
        return rc;
    }
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? -EALREADY : rc == SQLITE_DONE ? -ENOENT : db_fail(c, "look up hold");
}

int catalog__holds_list(struct catalog *c, bool active_only, struct store_hold **out, size_t *n)
{
    sqlite3_stmt *s = NULL;
    struct store_hold *v = NULL;
    size_t len = 0;
    int rc = catalog__has_table(c, "holds");

    *out = NULL;
    *n = 0;
    if (rc <= 0) {
        return rc;
    }
    rc = prep(c,
              active_only ? "SELECT id, since, until, filter, reason, created_by, created, "
                            "released, released_by, release_reason FROM holds "
                            "WHERE released IS NULL ORDER BY id"
                          : "SELECT id, since, until, filter, reason, created_by, created, "
                            "released, released_by, release_reason FROM holds ORDER BY id",
              &s);
    if (rc < 0) {
        return rc;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        v = xrealloc(v, (len + 1) * sizeof(*v));
        struct store_hold *h = &v[len++];
        h->id = sqlite3_column_int64(s, 0);
        h->since = sqlite3_column_int64(s, 1);
        h->until = sqlite3_column_int64(s, 2);
        h->filter = text_dup(s, 3);
        h->reason = text_dup(s, 4);
        h->created_by = text_dup(s, 5);
        h->created = sqlite3_column_int64(s, 6);
        h->released = sqlite3_column_int64(s, 7);
        h->released_by = text_dup(s, 8);
        h->release_reason = text_dup(s, 9);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        store_holds_free(v, len);
        return db_fail(c, "list holds");
    }
    *out = v;
    *n = len;
    return 0;
}

void store_holds_free(struct store_hold *h, size_t n)
{
    if (!h) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(h[i].filter);
        free(h[i].reason);
        free(h[i].created_by);
        free(h[i].released_by);
        free(h[i].release_reason);
    }
    free(h);
}
