/* forwarders/outbox.c: the durable outbox, <store>/outbox.db (SQLite, WAL). The one
 * user of <sqlite3.h> in forwarders/.
 *
 *   meta(key, value)          'version' (1) and 'cursor': every alert record of the
 *                             store with seq <= cursor has been enqueued
 *   alerts(seq, ...)          the alert records entries refer to (their bytes, so a
 *                             payload can be built again after a restart)
 *   incidents(incident, ...)  one row per incident: its latest state, counts, times
 *   entries(id, seq, receiver, state, ...)
 *                             one per (alert record, receiver): queued, delivered,
 *                             dead (a dead letter: kept, listed, replayable) or
 *                             superseded (an update that a newer state of the same
 *                             incident made pointless before it was sent)
 *
 * An enqueue is one transaction: the alerts, their entries and the raised cursor
 * become durable together, so a crash leaves either all of a batch or none of it, and
 * a scan of the store from the cursor finds exactly what is missing. Entries are
 * unique on (seq, receiver): enqueuing twice adds nothing. synchronous=NORMAL in WAL
 * mode survives a killed process; after a power loss the last transactions may be
 * gone, cursor included, and the catch-up scan enqueues them again.
 *
 * Blocking. vigild calls it only from its outbox worker (forwarders.c: one job at a
 * time on the libuv thread pool); `vigil alerts` from its own process, concurrently
 * (busy timeout). An outbox belongs to one thread at a time. */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

#define OUTBOX_VERSION 1

enum {
    ST_ALERT_INS,
    ST_INCIDENT_UPSERT,
    ST_ENTRY_INS,
    ST_SUPERSEDE,
    ST_CURSOR_SET,
    ST_NEXT,
    ST_RESULT_OK,
    ST_RESULT_RETRY,
    ST_RESULT_DEAD,
    ST_COUNT
};

struct outbox {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char err[1024];
};

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS alerts(seq INTEGER PRIMARY KEY, incident TEXT NOT NULL,"
    "  state TEXT NOT NULL, received INTEGER NOT NULL, rec BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS incidents(incident TEXT PRIMARY KEY,"
    "  fingerprint TEXT NOT NULL, rule_id TEXT NOT NULL, title TEXT NOT NULL,"
    "  severity TEXT NOT NULL, grp TEXT NOT NULL, first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL, count INTEGER NOT NULL, state TEXT NOT NULL,"
    "  lifecycle INTEGER NOT NULL, last_seq INTEGER NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"
    "  receiver TEXT NOT NULL, incident TEXT NOT NULL, astate TEXT NOT NULL,"
    "  state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL, done INTEGER, status INTEGER, error TEXT,"
    "  UNIQUE(seq, receiver));"
    "CREATE INDEX IF NOT EXISTS entries_rs ON entries(receiver, state, seq);"
    "CREATE INDEX IF NOT EXISTS entries_inc ON entries(incident, receiver, state);"
    "CREATE INDEX IF NOT EXISTS incidents_upd ON incidents(state, updated);";

static const char *const sqls[ST_COUNT] = {
    [ST_ALERT_INS] = "INSERT OR IGNORE INTO alerts(seq, incident, state, received, rec) "
                     "VALUES(?1, ?2, ?3, ?4, ?5)",
    /* The latest record (highest seq) says the state; counts and times only grow. */
    [ST_INCIDENT_UPSERT] =
        "INSERT INTO incidents(incident, fingerprint, rule_id, title, severity, grp,"
        " first_seen, last_seen, count, state, lifecycle, last_seq, updated)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        " ON CONFLICT(incident) DO UPDATE SET"
        "  last_seen = max(last_seen, excluded.last_seen),"
        "  count = max(count, excluded.count),"
        "  state = CASE WHEN excluded.last_seq > last_seq THEN excluded.state ELSE state END,"
        "  severity = CASE WHEN excluded.last_seq > last_seq THEN excluded.severity"
        "             ELSE severity END,"
        "  last_seq = max(last_seq, excluded.last_seq),"
        "  updated = excluded.updated",
    [ST_ENTRY_INS] = "INSERT OR IGNORE INTO entries(seq, receiver, incident, astate, state, "
                     "created) VALUES(?1, ?2, ?3, ?4, 0, ?5)",
    [ST_SUPERSEDE] = "UPDATE entries SET state = 3, done = ?1 WHERE receiver = ?2 AND "
                     "incident = ?3 AND state = 0 AND seq < ?4 AND astate = 'update'",
    [ST_CURSOR_SET] = "UPDATE meta SET value = max(value, ?1) WHERE key = 'cursor'",
    [ST_NEXT] = "SELECT e.id, e.seq, e.receiver, e.attempts, e.created, a.rec FROM entries e "
                "JOIN alerts a ON a.seq = e.seq WHERE e.receiver = ?1 AND e.state = 0 "
                "ORDER BY e.seq LIMIT ?2",
    [ST_RESULT_OK] = "UPDATE entries SET state = 1, attempts = attempts + 1, done = ?2, "
                     "status = ?3, error = NULL WHERE id = ?1",
    [ST_RESULT_RETRY] = "UPDATE entries SET attempts = attempts + 1, status = ?3, error = ?4 "
                        "WHERE id = ?1 AND state = 0",
    [ST_RESULT_DEAD] = "UPDATE entries SET state = 2, attempts = attempts + 1, done = ?2, "
                       "status = ?3, error = ?4 WHERE id = ?1",
};

const char *outbox_state_name(enum outbox_entry_state s)
{
    static const char *const names[] = { "queued", "delivered", "dead", "superseded" };
    return (unsigned)s < VG_ARRAY_LEN(names) ? names[s] : "?";
}

const char *outbox_errmsg(const struct outbox *ob)
{
    return ob->err;
}

static int db_fail(struct outbox *ob, const char *what)
{
    snprintf(ob->err, sizeof(ob->err), "outbox: %s: %s", what, sqlite3_errmsg(ob->db));
    return VG_EDB;
}

static int exec(struct outbox *ob, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(ob->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(ob->err, sizeof(ob->err), "outbox: %s", msg ? msg : sqlite3_errmsg(ob->db));
        sqlite3_free(msg);
        return VG_EDB;
    }
    return 0;
}

static sqlite3_stmt *stmt(struct outbox *ob, int which)
{
    if (!ob->st[which] &&
        sqlite3_prepare_v2(ob->db, sqls[which], -1, &ob->st[which], NULL) != SQLITE_OK) {
        db_fail(ob, "prepare");
        return NULL;
    }
    sqlite3_reset(ob->st[which]);
    sqlite3_clear_bindings(ob->st[which]);
    return ob->st[which];
}

void outbox_close(struct outbox *ob)
{
    if (!ob) {
        return;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(ob->st[i]);
    }
    sqlite3_close(ob->db);
    free(ob);
}

static int get_meta(struct outbox *ob, const char *key, int64_t *v, bool *found)
{
    sqlite3_stmt *s = NULL;
    int rc;

    *found = false;
    if (sqlite3_prepare_v2(ob->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL) !=
        SQLITE_OK) {
        return db_fail(ob, "prepare");
    }
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(s, 0);
        *found = true;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(ob, "read meta");
}

int outbox_open(const char *store_dir, bool read_only, uint64_t new_cursor, struct outbox **out,
                bool *created, struct errbuf *eb)
{
    char path[PATH_MAX];
    struct outbox *ob;
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc;

    *out = NULL;
    if (created) {
        *created = false;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/outbox.db", store_dir) >= sizeof(path)) {
        errbuf_set(eb, "outbox: path too long");
        return -ENAMETOOLONG;
    }
    bool existed = access(path, F_OK) == 0;
    if (read_only && !existed) {
        errbuf_set(eb, "no outbox at '%s' (no forwarder has run on this store)", path);
        return -ENOENT;
    }
    ob = xcalloc(1, sizeof(*ob));
    if (sqlite3_open_v2(path, &ob->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        errbuf_set(eb, "outbox: cannot open '%s': %s", path,
                   ob->db ? sqlite3_errmsg(ob->db) : "out of memory");
        outbox_close(ob);
        return VG_EDB;
    }
    /* vigild and `vigil alerts` share the file: wait for each other's transactions. */
    sqlite3_busy_timeout(ob->db, 10000);
    if (!read_only) {
        rc = exec(ob, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
        if (rc == 0) {
            rc = exec(ob, "BEGIN IMMEDIATE");
        }
        if (rc == 0) {
            rc = exec(ob, schema);
        }
        int64_t v = 0;
        bool found = false;
        if (rc == 0) {
            rc = get_meta(ob, "version", &v, &found);
        }
        if (rc == 0 && found && v > OUTBOX_VERSION) {
            snprintf(ob->err, sizeof(ob->err),
                     "outbox: '%.400s' is version %lld, newer than this vigild (%d)", path,
                     (long long)v, OUTBOX_VERSION);
            rc = VG_EFORMAT;
        }
        if (rc == 0 && !found) {
            char sql[160];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO meta VALUES('version', %d); INSERT INTO meta VALUES('cursor', "
                     "%lld);",
                     OUTBOX_VERSION, (long long)new_cursor);
            rc = exec(ob, sql);
            if (created) {
                *created = true;
            }
        }
        if (rc == 0) {
            rc = exec(ob, "COMMIT");
        } else {
            sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc < 0) {
            errbuf_set(eb, "%s", ob->err);
            outbox_close(ob);
            return rc;
        }
    }
    *out = ob;
    return 0;
}

int outbox_cursor(struct outbox *ob, uint64_t *cursor)
{
    int64_t v = 0;
    bool found;
    int rc = get_meta(ob, "cursor", &v, &found);

    if (rc == 0 && !found) {
        snprintf(ob->err, sizeof(ob->err), "outbox: no cursor row");
        return VG_ECORRUPT;
    }
    *cursor = (uint64_t)v;
    return rc;
}

static void bind_span(sqlite3_stmt *s, int i, struct span v)
{
    sqlite3_bind_text(s, i, v.p ? (const char *)v.p : "", (int)v.n, SQLITE_TRANSIENT);
}

static int step_done(struct outbox *ob, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : db_fail(ob, what);
}

int outbox_enqueue(struct outbox *ob, const struct outbox_add *adds, size_t n, uint64_t cursor,
                   int64_t now_ns)
{
    int added = 0;
    int rc = exec(ob, "BEGIN IMMEDIATE");
    struct buf g;

    buf_init(&g, 64 << 10);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct fwd_alert *a = adds[i].a;
        const char *astate = fwd_state_name(a->state);
        sqlite3_stmt *s = stmt(ob, ST_ALERT_INS);
        if (!s) {
            rc = VG_EDB;
            break;
        }
        sqlite3_bind_int64(s, 1, (sqlite3_int64)a->seq);
        bind_span(s, 2, a->incident);
        sqlite3_bind_text(s, 3, astate, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, a->received);
        sqlite3_bind_blob(s, 5, adds[i].rec.p, (int)adds[i].rec.n, SQLITE_TRANSIENT);
        if ((rc = step_done(ob, s, "insert alert")) < 0) {
            break;
        }
        /* the group as {"field":"value",...}, for `vigil alerts` */
        buf_reset(&g);
        bool first = true;
        int grc = buf_append_byte(&g, '{');
        for (size_t k = 0; k < a->ngroup && grc == 0; k++) {
            if (!first) {
                grc = buf_append_byte(&g, ',');
            }
            first = false;
            if (grc == 0) {
                grc = fwd_json_str_cut(&g, a->group[k].k, 256);
            }
            if (grc == 0) {
                grc = buf_append_byte(&g, ':');
            }
            if (grc == 0) {
                grc = fwd_json_str_cut(&g, a->group[k].v, 1024);
            }
        }
        if (grc == 0) {
            grc = buf_append_byte(&g, '}');
        }
        if (grc < 0) {
            buf_reset(&g);
            fwd_ignore(buf_append_str(&g, "{}"));
        }
        s = stmt(ob, ST_INCIDENT_UPSERT);
        if (!s) {
            rc = VG_EDB;
            break;
        }
        bind_span(s, 1, a->incident);
        bind_span(s, 2, a->fingerprint);
        bind_span(s, 3, a->rule_id);
        bind_span(s, 4, a->title);
        sqlite3_bind_text(s, 5, vg_severity_name(a->severity), -1, SQLITE_STATIC);
        bind_span(s, 6, buf_span(&g));
        sqlite3_bind_int64(s, 7, a->first_seen);
        sqlite3_bind_int64(s, 8, a->last_seen);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)a->count);
        sqlite3_bind_text(s, 10, a->state == FWD_RESOLVED ? "resolved" : "firing", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(s, 11, a->lifecycle);
        sqlite3_bind_int64(s, 12, (sqlite3_int64)a->seq);
        sqlite3_bind_int64(s, 13, now_ns);
        if ((rc = step_done(ob, s, "update incident")) < 0) {
            break;
        }
        for (size_t k = 0; rc == 0 && k < adds[i].nreceivers; k++) {
            s = stmt(ob, ST_ENTRY_INS);
            if (!s) {
                rc = VG_EDB;
                break;
            }
            sqlite3_bind_int64(s, 1, (sqlite3_int64)a->seq);
            sqlite3_bind_text(s, 2, adds[i].receivers[k], -1, SQLITE_STATIC);
            bind_span(s, 3, a->incident);
            sqlite3_bind_text(s, 4, astate, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 5, now_ns);
            if ((rc = step_done(ob, s, "insert entry")) < 0) {
                break;
            }
            if (sqlite3_changes(ob->db) == 0) {
                continue; /* already queued: a catch-up overlapping the live hook */
            }
            added++;
            if (a->state == FWD_FIRING) {
                continue; /* an incident's first record: nothing before it to supersede */
            }
            /* An update still queued says less than this newer state: drop it. */
            s = stmt(ob, ST_SUPERSEDE);
            if (!s) {
                rc = VG_EDB;
                break;
            }
            sqlite3_bind_int64(s, 1, now_ns);
            sqlite3_bind_text(s, 2, adds[i].receivers[k], -1, SQLITE_STATIC);
            bind_span(s, 3, a->incident);
            sqlite3_bind_int64(s, 4, (sqlite3_int64)a->seq);
            rc = step_done(ob, s, "supersede");
        }
    }
    buf_release(&g);
    if (rc == 0) {
        sqlite3_stmt *s = stmt(ob, ST_CURSOR_SET);
        if (!s) {
            rc = VG_EDB;
        } else {
            sqlite3_bind_int64(s, 1, (sqlite3_int64)cursor);
            rc = step_done(ob, s, "set cursor");
        }
    }
    if (rc == 0) {
        rc = exec(ob, "COMMIT");
    }
    if (rc < 0) {
        sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return added;
}

void outbox_items_free(struct outbox_item *it, size_t n)
{
    for (size_t i = 0; it && i < n; i++) {
        free(it[i].rec);
    }
    free(it);
}

static void item_from_row(sqlite3_stmt *s, int col_id, int col_seq, int col_rcv, int col_att,
                          int col_created, int col_rec, struct outbox_item *it)
{
    memset(it, 0, sizeof(*it));
    it->id = col_id >= 0 ? sqlite3_column_int64(s, col_id) : 0;
    it->seq = (uint64_t)sqlite3_column_int64(s, col_seq);
    if (col_rcv >= 0) {
        const unsigned char *r = sqlite3_column_text(s, col_rcv);
        snprintf(it->receiver, sizeof(it->receiver), "%s", r ? (const char *)r : "");
    }
    it->attempts = col_att >= 0 ? sqlite3_column_int(s, col_att) : 0;
    it->created_ns = col_created >= 0 ? sqlite3_column_int64(s, col_created) : 0;
    const void *b = sqlite3_column_blob(s, col_rec);
    int bn = sqlite3_column_bytes(s, col_rec);
    it->rec_len = bn > 0 ? (size_t)bn : 0;
    it->rec = xmalloc(it->rec_len ? it->rec_len : 1);
    if (bn > 0) {
        memcpy(it->rec, b, (size_t)bn);
    }
}

int outbox_next(struct outbox *ob, const char *receiver, size_t limit, struct outbox_item **out,
                size_t *n)
{
    sqlite3_stmt *s = stmt(ob, ST_NEXT);
    struct outbox_item *items = xcalloc(limit ? limit : 1, sizeof(*items));
    size_t k = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (!s) {
        free(items);
        return VG_EDB;
    }
    sqlite3_bind_text(s, 1, receiver, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < limit) {
        item_from_row(s, 0, 1, 2, 3, 4, 5, &items[k++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        outbox_items_free(items, k);
        return db_fail(ob, "select queued");
    }
    *out = items;
    *n = k;
    return 0;
}

int outbox_record(struct outbox *ob, const struct outbox_result *r, size_t n)
{
    int rc = exec(ob, "BEGIN IMMEDIATE");

    for (size_t i = 0; rc == 0 && i < n; i++) {
        int which = r[i].outcome == FWD_DELIVERED ? ST_RESULT_OK
                    : r[i].outcome == FWD_RETRY   ? ST_RESULT_RETRY
                                                  : ST_RESULT_DEAD;
        sqlite3_stmt *s = stmt(ob, which);
        if (!s) {
            rc = VG_EDB;
            break;
        }
        sqlite3_bind_int64(s, 1, r[i].id);
        sqlite3_bind_int64(s, 2, r[i].at_ns);
        sqlite3_bind_int64(s, 3, r[i].status);
        if (which != ST_RESULT_OK) {
            sqlite3_bind_text(s, 4, r[i].error, -1, SQLITE_TRANSIENT);
        }
        rc = step_done(ob, s, "record a delivery");
    }
    if (rc == 0) {
        rc = exec(ob, "COMMIT");
    }
    if (rc < 0) {
        sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int outbox_open_delivered(struct outbox *ob, const char *receiver, uint64_t after_seq, size_t limit,
                          struct outbox_item **out, size_t *n)
{
    static const char sql[] =
        "SELECT i.last_seq, a.rec FROM incidents i JOIN alerts a ON a.seq = i.last_seq "
        "WHERE i.state = 'firing' AND i.lifecycle = 1 AND i.last_seq > ?3 "
        "AND EXISTS (SELECT 1 FROM entries e WHERE e.incident = i.incident AND "
        "            e.receiver = ?1 AND e.state = 1) "
        "AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.incident = i.incident AND "
        "                e.receiver = ?1 AND e.state = 0) "
        "ORDER BY i.last_seq LIMIT ?2";
    sqlite3_stmt *s = NULL;
    struct outbox_item *items = xcalloc(limit ? limit : 1, sizeof(*items));
    size_t k = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(ob->db, sql, -1, &s, NULL) != SQLITE_OK) {
        free(items);
        return db_fail(ob, "prepare");
    }
    sqlite3_bind_text(s, 1, receiver, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)after_seq);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < limit) {
        item_from_row(s, -1, 0, -1, -1, -1, 1, &items[k++]);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        outbox_items_free(items, k);
        return db_fail(ob, "select open incidents");
    }
    *out = items;
    *n = k;
    return 0;
}

int outbox_receiver_stats(struct outbox *ob, const char *receiver, struct outbox_rstats *st)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM entries WHERE receiver = ?1 AND state = 0),"
        "       (SELECT min(created) FROM entries WHERE receiver = ?1 AND state = 0),"
        "       (SELECT count(*) FROM entries WHERE receiver = ?1 AND state = 2)";
    sqlite3_stmt *s = NULL;
    int rc;

    memset(st, 0, sizeof(*st));
    if (sqlite3_prepare_v2(ob->db, sql, -1, &s, NULL) != SQLITE_OK) {
        return db_fail(ob, "prepare");
    }
    sqlite3_bind_text(s, 1, receiver, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        st->queued = (uint64_t)sqlite3_column_int64(s, 0);
        st->oldest_ns = sqlite3_column_int64(s, 1);
        st->dead = (uint64_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : db_fail(ob, "receiver stats");
}

static int exec_bound(struct outbox *ob, const char *sql, const char *what, const char *t1,
                      int64_t i2, const char *t3)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(ob->db, sql, -1, &s, NULL) != SQLITE_OK) {
        return db_fail(ob, "prepare");
    }
    if (t1) {
        sqlite3_bind_text(s, 1, t1, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(s, 2, i2);
    if (t3) {
        sqlite3_bind_text(s, 3, t3, -1, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? sqlite3_changes(ob->db) : db_fail(ob, what);
}

int outbox_expire(struct outbox *ob, const char *receiver, int64_t give_up_before_ns,
                  const char *why)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "UPDATE entries SET state = 2, done = %lld, error = ?3 WHERE receiver = ?1 AND "
             "state = 0 AND created < ?2",
             (long long)vg_now_ns());
    return exec_bound(ob, sql, "expire entries", receiver, give_up_before_ns, why);
}

int outbox_prune(struct outbox *ob, int64_t before_ns)
{
    int rc = exec(ob, "BEGIN IMMEDIATE");
    if (rc == 0) {
        rc = exec_bound(ob, "DELETE FROM entries WHERE state IN (1, 3) AND done < ?2",
                        "prune entries", NULL, before_ns, NULL);
    }
    if (rc >= 0) {
        rc = exec_bound(ob,
                        "DELETE FROM incidents WHERE state = 'resolved' AND updated < ?2 AND "
                        "NOT EXISTS (SELECT 1 FROM entries e WHERE e.incident = "
                        "incidents.incident)",
                        "prune incidents", NULL, before_ns, NULL);
    }
    if (rc >= 0) {
        rc = exec(ob, "DELETE FROM alerts WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE "
                      "e.seq = alerts.seq) AND NOT EXISTS (SELECT 1 FROM incidents i WHERE "
                      "i.last_seq = alerts.seq)");
    }
    if (rc >= 0) {
        rc = exec(ob, "COMMIT");
    }
    if (rc < 0) {
        sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc < 0 ? rc : 0;
}

/* ---- `vigil alerts` ---- */

static int open_for_cli(const char *store_dir, struct outbox **ob, struct errbuf *eb)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/outbox.db", store_dir);
    if (access(path, F_OK) != 0) {
        errbuf_set(eb, "no outbox at '%s': no forwarder has run on this store", path);
        return -ENOENT;
    }
    /* Read-write even to read: a WAL database's readers need its -shm file. */
    return outbox_open(store_dir, false, 0, ob, NULL, eb);
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/* One query of `vigil alerts`: binds ?1 (text, or NULL), ?2 (integer), then calls row for
 * each row until it returns nonzero (returned). Returns 0, row's value or VG_EDB. */
typedef int (*cli_row_fn)(struct outbox *ob, sqlite3_stmt *s, void *arg);

static int cli_query(struct outbox *ob, const char *sql, const char *t1, int64_t i2, cli_row_fn row,
                     void *arg)
{
    sqlite3_stmt *s = NULL;
    int rc = 0;
    int step;

    if (sqlite3_prepare_v2(ob->db, sql, -1, &s, NULL) != SQLITE_OK) {
        return db_fail(ob, "prepare");
    }
    if (t1) {
        sqlite3_bind_text(s, 1, t1, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(s, 2, i2);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = row(ob, s, arg)) != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_fail(ob, "read the outbox");
    }
    sqlite3_finalize(s);
    return rc;
}

/* Opens the store's outbox, runs one query, closes; VG_EDB's message goes to eb. */
static int cli_run(const char *store_dir, const char *sql, const char *t1, int64_t i2,
                   cli_row_fn row, void *arg, struct errbuf *eb)
{
    struct outbox *ob = NULL;
    int rc = open_for_cli(store_dir, &ob, eb);

    if (rc < 0) {
        return rc;
    }
    rc = cli_query(ob, sql, t1, i2, row, arg);
    if (rc == VG_EDB) {
        errbuf_set(eb, "%s", ob->err);
    }
    outbox_close(ob);
    return rc;
}

struct incidents_ctx {
    fwd_incident_fn fn;
    void *arg;
    struct buf dl; /* the deliveries of the incident at hand */
};

/* Each receiver's latest (not superseded) entry of the incident. */
static int delivery_row(struct outbox *ob, sqlite3_stmt *d, void *arg)
{
    struct buf *dl = arg;
    int est = sqlite3_column_int(d, 1);
    int att = sqlite3_column_int(d, 2);

    (void)ob;
    fwd_ignore(buf_appendf(dl, "%s%s=%s %s", dl->len ? ", " : "", col_text(d, 0), col_text(d, 3),
                           outbox_state_name((enum outbox_entry_state)est)));
    if (est != OB_DELIVERED && att > 0) {
        fwd_ignore(buf_appendf(dl, " (%d attempt%s, last HTTP %d)", att, att == 1 ? "" : "s",
                               sqlite3_column_int(d, 4)));
    }
    return 0;
}

static int incident_row(struct outbox *ob, sqlite3_stmt *s, void *arg)
{
    struct incidents_ctx *c = arg;

    buf_reset(&c->dl);
    int rc = cli_query(ob,
                       "SELECT receiver, state, attempts, astate, status FROM entries e"
                       " WHERE incident = ?1 AND seq = (SELECT max(seq) FROM entries f"
                       " WHERE f.incident = e.incident AND f.receiver = e.receiver"
                       " AND f.state <> 3) ORDER BY receiver",
                       col_text(s, 0), 0, delivery_row, &c->dl);
    if (rc != 0) {
        return rc;
    }
    struct fwd_incident_row r = {
        .incident = col_text(s, 0),
        .fingerprint = col_text(s, 1),
        .rule_id = col_text(s, 2),
        .title = col_text(s, 3),
        .severity = col_text(s, 4),
        .state = col_text(s, 5),
        .group_json = col_text(s, 6),
        .first_seen = sqlite3_column_int64(s, 7),
        .last_seen = sqlite3_column_int64(s, 8),
        .count = (uint64_t)sqlite3_column_int64(s, 9),
        .deliveries = c->dl.len ? buf_cstr(&c->dl) : "",
    };
    return c->fn(c->arg, &r);
}

int fwd_outbox_incidents(const char *store_dir, const char *state, size_t limit, fwd_incident_fn fn,
                         void *arg, struct errbuf *eb)
{
    struct incidents_ctx c = { .fn = fn, .arg = arg };

    buf_init(&c.dl, 64 << 10);
    int rc = cli_run(store_dir,
                     "SELECT incident, fingerprint, rule_id, title, severity, state, grp,"
                     " first_seen, last_seen, count FROM incidents"
                     " WHERE ?1 IS NULL OR state = ?1 ORDER BY updated DESC, last_seq DESC"
                     " LIMIT ?2",
                     state, (int64_t)limit, incident_row, &c, eb);
    buf_release(&c.dl);
    return rc;
}

struct entries_ctx {
    fwd_entry_fn fn;
    void *arg;
};

static int entry_row(struct outbox *ob, sqlite3_stmt *s, void *arg)
{
    struct entries_ctx *c = arg;
    struct fwd_entry_row r = {
        .id = sqlite3_column_int64(s, 0),
        .seq = (uint64_t)sqlite3_column_int64(s, 1),
        .receiver = col_text(s, 2),
        .state = outbox_state_name((enum outbox_entry_state)sqlite3_column_int(s, 3)),
        .alert_state = col_text(s, 4),
        .incident = col_text(s, 5),
        .title = col_text(s, 6),
        .error = col_text(s, 7),
        .attempts = sqlite3_column_int(s, 8),
        .status = sqlite3_column_int(s, 9),
        .created_ns = sqlite3_column_int64(s, 10),
        .done_ns = sqlite3_column_int64(s, 11),
    };
    (void)ob;
    return c->fn(c->arg, &r);
}

int fwd_outbox_entries(const char *store_dir, const char *state, size_t limit, fwd_entry_fn fn,
                       void *arg, struct errbuf *eb)
{
    struct entries_ctx c = { fn, arg };
    const char *want = NULL; /* the state's number as text; NULL: queued and dead */
    static const char *const nums[] = { "0", "1", "2", "3" };

    for (int k = OB_QUEUED; state && k <= OB_SUPERSEDED; k++) {
        if (strcmp(state, outbox_state_name((enum outbox_entry_state)k)) == 0) {
            want = nums[k];
        }
    }
    if (state && !want) {
        errbuf_set(eb, "no entry state '%s'", state);
        return -EINVAL;
    }
    return cli_run(store_dir,
                   "SELECT e.id, e.seq, e.receiver, e.state, e.astate, e.incident,"
                   " coalesce(i.title, ''), coalesce(e.error, ''), e.attempts,"
                   " coalesce(e.status, 0), e.created, coalesce(e.done, 0)"
                   " FROM entries e LEFT JOIN incidents i ON i.incident = e.incident"
                   " WHERE (?1 IS NULL AND e.state IN (0, 2)) OR e.state = CAST(?1 AS INTEGER)"
                   " ORDER BY e.seq, e.receiver LIMIT ?2",
                   want, (int64_t)limit, entry_row, &c, eb);
}

int fwd_outbox_entries_from(const char *store_dir, uint64_t first_seq, fwd_entry_fn fn, void *arg,
                            struct errbuf *eb)
{
    struct entries_ctx c = { fn, arg };

    return cli_run(store_dir,
                   "SELECT e.id, e.seq, e.receiver, e.state, e.astate, e.incident,"
                   " coalesce(i.title, ''), coalesce(e.error, ''), e.attempts,"
                   " coalesce(e.status, 0), e.created, coalesce(e.done, 0)"
                   " FROM entries e LEFT JOIN incidents i ON i.incident = e.incident"
                   " WHERE ?1 IS NULL AND e.seq >= ?2 ORDER BY e.seq, e.receiver",
                   NULL, (int64_t)first_seq, entry_row, &c, eb);
}

struct summary_ctx {
    fwd_summary_fn fn;
    void *arg;
};

static int summary_row(struct outbox *ob, sqlite3_stmt *s, void *arg)
{
    struct summary_ctx *c = arg;
    struct fwd_summary_row r = {
        .receiver = col_text(s, 0),
        .queued = (uint64_t)sqlite3_column_int64(s, 1),
        .dead = (uint64_t)sqlite3_column_int64(s, 2),
        .delivered = (uint64_t)sqlite3_column_int64(s, 3),
        .oldest_queued_ns = sqlite3_column_int64(s, 4),
    };
    (void)ob;
    return c->fn(c->arg, &r);
}

int fwd_outbox_summary(const char *store_dir, fwd_summary_fn fn, void *arg, struct errbuf *eb)
{
    struct summary_ctx c = { fn, arg };

    return cli_run(store_dir,
                   "SELECT receiver, sum(state = 0), sum(state = 2), sum(state = 1),"
                   " coalesce(min(CASE WHEN state = 0 THEN created END), 0)"
                   " FROM entries WHERE ?2 = ?2 GROUP BY receiver ORDER BY receiver",
                   NULL, 0, summary_row, &c, eb);
}

int fwd_outbox_replay(const char *store_dir, int64_t id, struct errbuf *eb)
{
    struct outbox *ob = NULL;
    int rc = open_for_cli(store_dir, &ob, eb);
    char sql[256];

    if (rc < 0) {
        return rc;
    }
    /* created restarts, so retry.give_up_after counts from the replay. */
    snprintf(sql, sizeof(sql),
             "UPDATE entries SET state = 0, attempts = 0, done = NULL, created = %lld,"
             " error = 'replayed' WHERE state = 2 AND (?2 = 0 OR id = ?2)",
             (long long)vg_now_ns());
    rc = exec_bound(ob, sql, "replay", NULL, id, NULL);
    if (rc == VG_EDB) {
        errbuf_set(eb, "%s", ob->err);
    } else if (rc == 0 && id > 0) {
        errbuf_set(eb, "no dead letter with id %lld", (long long)id);
        rc = -ENOENT;
    }
    outbox_close(ob);
    return rc;
}
