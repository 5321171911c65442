/* query/sql.c: `vigil sql 'SELECT ...'`: SQLite over the store, through a virtual table
 * `events` (one column per normalized field of schemas/record.h, in its order, and `raw`
 * as JSON text), run on an in-memory database that holds nothing else.
 *
 * Why <sqlite3.h> is here (STYLE.md fences it to store/catalog.c and the outbox): the
 * table is a reader of records, not of the catalog. It needs the query side's parallel
 * scan (scan.c), the record decoder and the JSON writer, which the store may not see;
 * the catalog's connection is another database. So the one SQLite use of vigil's query
 * side lives in this file and nowhere else (tests/arch/check_layers.py lists it).
 *
 * Push-down (xBestIndex): comparisons of ts with a text (>, >=, <, <=, =, and BETWEEN,
 * which SQLite hands over as >= and <=) narrow the scan's time window; equality of a
 * string column with a text becomes what every row must have (store_need): an exact
 * value for the block index's identity fields (host, namespace, pod, container_id,
 * image, user, src_ip, rule, cve) and a text for its trigram filter (any string
 * column). Every pushed constraint is checked again by SQLite (omit stays 0), so the
 * push-down only has to be sound: never skip a block that holds a row the constraint
 * accepts. ts is text, "YYYY-MM-DDTHH:MM:SS.fffffffffZ" (as JSON output writes it), and
 * SQLite compares it with the given text as strings; a bound is pushed only when that
 * text is a UTC time of the same shape, cut anywhere after the date ("2024-05-01",
 * "2024-05-01T13:00", "...:00Z", "...:00.5Z"), for which string order is time order up
 * to the text's precision: ts > V and ts >= V imply ts >= V's time; ts < V, ts <= V and
 * ts = V imply ts < V's time + its precision (a day for a date, a minute for hh:mm, a
 * second, or the unit of the last fraction digit: "...:00Z" sorts above "...:00.5Z",
 * '.' being below 'Z'). int64 ns never leave the years 1677..2262, so every ts has four
 * year digits.
 *
 * Rows stream: xFilter starts a thread that runs the parallel scan (scan_par_run, one
 * stripe per thread) into a queue of batches of at most 1 MiB, bounded at two batches
 * per stripe; xNext takes rows from it, so memory stays bounded whatever the store
 * holds, and a LIMIT or an error stops the scan (xClose stops the producer, joins it).
 * Rows come in no particular order (ORDER BY says one). Single-threaded otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/scan.h"
#include "schemas/record.h"

#define SQL_BATCH_BYTES   (1u << 20)
#define SQL_BATCH_RECORDS 4096
#define SQL_MAX_TEXT      (64u << 10) /* bytes of SQL text */

/* ---- the queue between the scan's stripes and the cursor ---- */

struct sql_row {
    size_t off, len;
};

struct sql_batch {
    struct sql_batch *next;
    struct buf data;
    struct sql_row *rows;
    size_t n, cap;
};

struct sql_queue {
    pthread_mutex_t mu;
    pthread_cond_t can_take; /* a batch arrived, or the scan ended */
    pthread_cond_t can_put;  /* a batch was taken, or the cursor stops */
    struct sql_batch *head, *tail;
    size_t n, max;
    bool done;         /* the producer ended: rc and err are final */
    _Atomic bool stop; /* the cursor closes: stripes return at their next record */
    int rc;            /* the scan's result */
    struct errbuf err;
};

static struct sql_batch *batch_new(void)
{
    struct sql_batch *b = xcalloc(1, sizeof(*b));
    buf_init(&b->data, (size_t)SQL_BATCH_BYTES + (64u << 20));
    return b;
}

static void batch_free(struct sql_batch *b)
{
    if (b) {
        buf_release(&b->data);
        free(b->rows);
        free(b);
    }
}

/* Hands b to the cursor (the queue owns it then). Waits while the queue is full.
 * Returns 1 when the cursor stopped (b freed), else 0. */
static int queue_put(struct sql_queue *q, struct sql_batch *b)
{
    pthread_mutex_lock(&q->mu);
    while (q->n >= q->max && !atomic_load(&q->stop)) {
        pthread_cond_wait(&q->can_put, &q->mu);
    }
    if (atomic_load(&q->stop)) {
        pthread_mutex_unlock(&q->mu);
        batch_free(b);
        return 1;
    }
    if (q->tail) {
        q->tail->next = b;
    } else {
        q->head = b;
    }
    q->tail = b;
    q->n++;
    pthread_cond_signal(&q->can_take);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* One stripe's batch being filled (the scan's fn argument). */
struct sql_stripe {
    struct sql_queue *q;
    struct scan_par *par; /* for the progress line's count */
    struct sql_batch *cur;
    int err;
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct sql_stripe *s = arg;

    (void)ts;
    (void)seq;
    if (atomic_load(&s->q->stop)) {
        return 1;
    }
    if (!s->cur) {
        s->cur = batch_new();
    }
    struct sql_batch *b = s->cur;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->rows = xrealloc(b->rows, b->cap * sizeof(*b->rows));
    }
    int rc = buf_append(&b->data, rec.p, rec.n);
    if (rc < 0) {
        s->err = rc; /* a record over 64 MiB: the store never writes one */
        return 1;
    }
    b->rows[b->n].off = b->data.len - rec.n;
    b->rows[b->n].len = rec.n;
    b->n++;
    if (b->n >= SQL_BATCH_RECORDS || b->data.len >= SQL_BATCH_BYTES) {
        s->cur = NULL;
        scan_par_matched(s->par, b->n); /* handed to SQLite */
        return queue_put(s->q, b);
    }
    return 0;
}

/* ---- the table ---- */

/* The module's client data. */
struct sql_env {
    const char *dir;   /* the store */
    bool store_failed; /* a scan failed: the store's fault, not the statement's */
    bool explain;      /* --explain: each scan's window and needs on stderr */
    unsigned scans;
    struct store_scan_stats stats; /* of every scan, added when its cursor ends */
};

struct sql_vtab {
    sqlite3_vtab base;
    struct sql_env *env;
};

struct sql_cursor {
    sqlite3_vtab_cursor base;
    struct sql_queue q;
    bool started; /* q's mutex, conditions and the producer exist */
    pthread_t th;
    struct scan_par *par;
    struct sql_stripe *stripes;
    void **args;
    unsigned nt;
    struct store_need_value vals[VG_F_COUNT];
    struct span texts[VG_F_COUNT];
    char *owned[2 * VG_F_COUNT]; /* the bytes vals and texts point to */
    size_t nowned;
    struct store_need need;
    struct store_scan_stats stats; /* the plan's, and the producer's once joined */
    struct sql_env *env;
    struct sql_batch *cur; /* the batch rows come from (owned) */
    size_t idx;
    bool eof;
    struct rec rec; /* the current row */
    int64_t rowid;
    struct buf json; /* raw as JSON, per xColumn */
};

static const char sql_schema[] =
    "CREATE TABLE x(ts TEXT, received TEXT, seq INTEGER, agent TEXT, source TEXT, kind TEXT,"
    " severity TEXT, host TEXT, namespace TEXT, pod TEXT, container_id TEXT,"
    " container_name TEXT, image TEXT, user TEXT, src_ip TEXT, dst_ip TEXT,"
    " dst_port INTEGER, process TEXT, cmdline TEXT, rule TEXT, action TEXT, object TEXT,"
    " outcome TEXT, cve TEXT, package TEXT, message TEXT, raw TEXT)";

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **err)
{
    (void)argc;
    (void)argv;
    (void)err;
    int rc = sqlite3_declare_vtab(db, sql_schema);
    if (rc != SQLITE_OK) {
        return rc;
    }
    struct sql_vtab *v = sqlite3_malloc(sizeof(*v));
    if (!v) {
        return SQLITE_NOMEM;
    }
    memset(v, 0, sizeof(*v));
    v->env = aux;
    *out = &v->base;
    return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

static bool field_indexed(int col)
{
    switch (col) {
    case VG_F_HOST:
    case VG_F_NAMESPACE:
    case VG_F_POD:
    case VG_F_CONTAINER_ID:
    case VG_F_IMAGE:
    case VG_F_USER:
    case VG_F_SRC_IP:
    case VG_F_RULE:
    case VG_F_CVE:
        return true;
    default:
        return false;
    }
}

/* A string column the index can use (raw is JSON text: its equality says nothing
 * about one stored string; ts and received are times). */
static bool field_string(int col)
{
    return col >= 0 && col < VG_F_COUNT && col != VG_F_TS && col != VG_F_RECEIVED &&
           col != VG_F_SEQ && col != VG_F_DST_PORT && col != VG_F_RAW;
}

static char op_code(unsigned char op)
{
    switch (op) {
    case SQLITE_INDEX_CONSTRAINT_EQ:
        return '=';
    case SQLITE_INDEX_CONSTRAINT_GT:
        return '>';
    case SQLITE_INDEX_CONSTRAINT_GE:
        return ']';
    case SQLITE_INDEX_CONSTRAINT_LT:
        return '<';
    case SQLITE_INDEX_CONSTRAINT_LE:
        return '[';
    default:
        return 0;
    }
}

/* idxStr: two characters per argument of xFilter, in order: the operator (op_code) and
 * 'A' + the column. */
static int vt_best_index(sqlite3_vtab *vt, sqlite3_index_info *ii)
{
    char code[2 * 64 + 1];
    int n = 0;
    double cost = 1e9;

    (void)vt;
    for (int i = 0; i < ii->nConstraint && n < 64; i++) {
        const struct sqlite3_index_constraint *c = &ii->aConstraint[i];
        char op = op_code(c->op);
        bool use = false;
        if (!c->usable || !op || c->iColumn < 0) {
            continue;
        }
        if (c->iColumn == VG_F_TS) {
            use = true;
            cost /= op == '=' ? 100 : 4;
        } else if (op == '=' && field_string(c->iColumn)) {
            /* equality under another collation (NOCASE) is not byte equality */
            const char *coll = sqlite3_vtab_collation(ii, i);
            use = !coll || sqlite3_stricmp(coll, "BINARY") == 0;
            cost /= field_indexed(c->iColumn) ? 50 : 4;
        }
        if (!use) {
            continue;
        }
        ii->aConstraintUsage[i].argvIndex = n + 1;
        ii->aConstraintUsage[i].omit = 0; /* SQLite checks again: the push-down is a superset */
        code[2 * n] = op;
        code[2 * n + 1] = (char)('A' + c->iColumn);
        n++;
    }
    code[2 * n] = 0;
    ii->idxNum = n;
    ii->idxStr = sqlite3_mprintf("%s", code);
    ii->needToFreeIdxStr = 1;
    ii->estimatedCost = cost;
    ii->estimatedRows = (sqlite3_int64)(cost < 1 ? 1 : cost);
    return ii->idxStr ? SQLITE_OK : SQLITE_NOMEM;
}

static int vt_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    struct sql_cursor *c = xcalloc(1, sizeof(*c));
    c->env = ((struct sql_vtab *)vt)->env;
    buf_init(&c->json, (size_t)256 << 20);
    *out = &c->base;
    return SQLITE_OK;
}

/* Stops and joins the producer, frees what the last xFilter made. */
static void cursor_reset(struct sql_cursor *c)
{
    if (c->started) {
        pthread_mutex_lock(&c->q.mu);
        atomic_store(&c->q.stop, true);
        pthread_cond_broadcast(&c->q.can_put);
        pthread_mutex_unlock(&c->q.mu);
        pthread_join(c->th, NULL);
        while (c->q.head) {
            struct sql_batch *b = c->q.head;
            c->q.head = b->next;
            batch_free(b);
        }
        pthread_mutex_destroy(&c->q.mu);
        pthread_cond_destroy(&c->q.can_take);
        pthread_cond_destroy(&c->q.can_put);
        c->started = false;
    }
    if (c->par) {
        store_scan_stats_add(&c->env->stats, &c->stats);
    }
    memset(&c->stats, 0, sizeof(c->stats));
    scan_par_close(c->par);
    c->par = NULL;
    for (unsigned i = 0; i < c->nt; i++) {
        batch_free(c->stripes[i].cur);
    }
    free(c->stripes);
    free(c->args);
    c->stripes = NULL;
    c->args = NULL;
    c->nt = 0;
    batch_free(c->cur);
    c->cur = NULL;
    for (size_t i = 0; i < c->nowned; i++) {
        free(c->owned[i]);
    }
    c->nowned = 0;
    memset(&c->q, 0, sizeof(c->q));
    c->eof = true;
}

static int vt_close(sqlite3_vtab_cursor *cur)
{
    struct sql_cursor *c = (struct sql_cursor *)cur;
    cursor_reset(c);
    buf_release(&c->json);
    free(c);
    return SQLITE_OK;
}

static void *producer(void *arg)
{
    struct sql_cursor *c = arg;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = scan_par_run(c->par, on_rec, c->args, &c->stats, &eb);
    for (unsigned i = 0; i < c->nt; i++) {
        if (c->stripes[i].err < 0 && rc >= 0) {
            rc = c->stripes[i].err;
            errbuf_set(&eb, "a record over the batch limit");
        }
        if (c->stripes[i].cur && rc >= 0) {
            struct sql_batch *b = c->stripes[i].cur;
            c->stripes[i].cur = NULL;
            if (queue_put(&c->q, b)) {
                break;
            }
        }
    }
    pthread_mutex_lock(&c->q.mu);
    c->q.done = true;
    c->q.rc = rc < 0 ? rc : 0;
    c->q.err = eb;
    pthread_cond_broadcast(&c->q.can_take);
    pthread_mutex_unlock(&c->q.mu);
    return NULL;
}

/* The time a ts bound V denotes, when V is a UTC time in ts's own shape cut after the
 * date or later (see the top of the file), and *unit, the precision V is written to (a
 * day, a minute, a second, or 10^(9 - k) ns for k fraction digits): every ts whose text
 * compares below or equal to V is below V's time + unit. False otherwise (then nothing
 * is pushed). */
static bool ts_bound(const unsigned char *v, int n, int64_t *ns, int64_t *unit)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    int i = 0;

    for (; i < n && shape[i]; i++) {
        if (shape[i] == 'd' ? !(v[i] >= '0' && v[i] <= '9') : v[i] != (unsigned char)shape[i]) {
            break; /* where the shape stops: it must be one of the cuts below */
        }
    }
    /* a date, a date and hour:minute, or a full second */
    if (!(i == 10 || i == 16 || i == 19)) {
        return false;
    }
    *unit = i == 10 ? 86400 * VG_NS_PER_SEC : i == 16 ? 60 * VG_NS_PER_SEC : VG_NS_PER_SEC;
    int end = i;
    if (i == 19 && i < n && v[i] == '.') {
        int j = i + 1;
        while (j < n && j - i - 1 < 9 && v[j] >= '0' && v[j] <= '9') {
            *unit /= 10;
            j++;
        }
        if (j == i + 1) {
            return false;
        }
        end = j;
    }
    if (end < n && v[end] == 'Z' && i >= 16) {
        end++;
    }
    if (end != n) {
        return false;
    }
    char t[40];
    memcpy(t, v, (size_t)end);
    t[end] = 0;
    if (i == 16) {
        memcpy(t + 16, ":00", 4);
    }
    return vg_time_parse_rfc3339(span_str(t), ns) == 0;
}

static void need_keep(struct sql_cursor *c, sqlite3_value *v, int col)
{
    const unsigned char *p = sqlite3_value_text(v);
    int n = sqlite3_value_bytes(v);
    if (!p || c->need.ntexts >= VG_F_COUNT || c->need.nvalues >= VG_F_COUNT) {
        return;
    }
    char *copy = xstrndup((const char *)p, (size_t)n);
    c->owned[c->nowned++] = copy;
    struct span s = { (const uint8_t *)copy, (size_t)n };
    if (field_indexed(col)) {
        c->vals[c->need.nvalues].field = vg_field_name((enum vg_field)col);
        c->vals[c->need.nvalues].value = s;
        c->need.nvalues++;
    }
    c->texts[c->need.ntexts++] = s;
}

static int vt_next(sqlite3_vtab_cursor *cur);

static int vt_filter(sqlite3_vtab_cursor *cur, int idxnum, const char *idxstr, int argc,
                     sqlite3_value **argv)
{
    struct sql_cursor *c = (struct sql_cursor *)cur;
    struct sql_vtab *vt = (struct sql_vtab *)cur->pVtab;
    int64_t since = INT64_MIN;
    int64_t until = INT64_MAX;
    struct errbuf eb;

    cursor_reset(c);
    memset(&c->need, 0, sizeof(c->need));
    c->need.values = c->vals;
    c->need.texts = c->texts;
    c->rowid = 0;
    for (int i = 0; i < idxnum && i < argc; i++) {
        char op = idxstr[2 * i];
        int col = idxstr[2 * i + 1] - 'A';
        if (sqlite3_value_type(argv[i]) != SQLITE_TEXT) {
            continue; /* a number or NULL: SQLite's comparison decides alone */
        }
        if (col == VG_F_TS) {
            int64_t t;
            int64_t unit;
            if (!ts_bound(sqlite3_value_text(argv[i]), sqlite3_value_bytes(argv[i]), &t, &unit)) {
                continue;
            }
            if (op == '>' || op == ']' || op == '=') {
                since = t > since ? t : since;
            }
            if (op == '<' || op == '[' || op == '=') {
                int64_t u = t <= INT64_MAX - unit ? t + unit : INT64_MAX;
                until = u < until ? u : until;
            }
        } else if (op == '=') {
            need_keep(c, argv[i], col);
        }
    }
    if (vt->env->explain) {
        char t0[40] = "-inf";
        char t1[40] = "+inf";
        if (since != INT64_MIN) {
            vg_time_format(since, 9, t0, sizeof(t0));
        }
        if (until != INT64_MAX) {
            vg_time_format(until, 9, t1, sizeof(t1));
        }
        fprintf(stderr,
                "explain: scan %u: window [%s, %s), index: %zu field value(s), %zu text(s)\n",
                ++vt->env->scans, t0, t1, c->need.nvalues, c->need.ntexts);
    }
    if (since >= until) {
        return SQLITE_OK; /* no row can match: eof */
    }
    errbuf_clear(&eb);
    int rc = scan_par_open(vt->env->dir, since, until, &c->need, &c->par, &c->stats, &eb);
    if (rc < 0) {
        vt->env->store_failed = true;
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = sqlite3_mprintf("%s", errbuf_msg(&eb));
        return SQLITE_ERROR;
    }
    /* a progress line on a terminal while the scan runs (scan.c draws it); SIGINT keeps
     * its default: a statement stopped halfway has no answer worth printing */
    scan_par_watch(c->par, cli_progress_enabled() ? SCAN_PROGRESS : 0, "sql");
    c->nt = scan_par_threads(c->par);
    c->stripes = xcalloc(c->nt, sizeof(*c->stripes));
    c->args = xcalloc(c->nt, sizeof(*c->args));
    for (unsigned i = 0; i < c->nt; i++) {
        c->stripes[i].q = &c->q;
        c->stripes[i].par = c->par;
        c->args[i] = &c->stripes[i];
    }
    pthread_mutex_init(&c->q.mu, NULL);
    pthread_cond_init(&c->q.can_take, NULL);
    pthread_cond_init(&c->q.can_put, NULL);
    c->q.max = 2 * (size_t)c->nt;
    errbuf_clear(&c->q.err);
    if (pthread_create(&c->th, NULL, producer, c) != 0) {
        pthread_mutex_destroy(&c->q.mu);
        pthread_cond_destroy(&c->q.can_take);
        pthread_cond_destroy(&c->q.can_put);
        sqlite3_free(vt->base.zErrMsg);
        vt->env->store_failed = true;
        vt->base.zErrMsg = sqlite3_mprintf("cannot start the scan thread");
        return SQLITE_ERROR;
    }
    c->started = true;
    c->eof = false;
    c->idx = 0;
    return vt_next(cur);
}

/* The next batch, waiting for the producer. Returns SQLITE_OK (c->cur set, or c->eof)
 * or SQLITE_ERROR with the scan's message. */
static int next_batch(struct sql_cursor *c)
{
    batch_free(c->cur);
    c->cur = NULL;
    c->idx = 0;
    pthread_mutex_lock(&c->q.mu);
    while (!c->q.head && !c->q.done) {
        pthread_cond_wait(&c->q.can_take, &c->q.mu);
    }
    if (c->q.head) {
        c->cur = c->q.head;
        c->q.head = c->cur->next;
        if (!c->q.head) {
            c->q.tail = NULL;
        }
        c->q.n--;
        pthread_cond_signal(&c->q.can_put);
    }
    int rc = c->q.rc;
    pthread_mutex_unlock(&c->q.mu);
    if (c->cur) {
        return SQLITE_OK;
    }
    c->eof = true;
    if (rc < 0) {
        struct sql_vtab *vt = (struct sql_vtab *)c->base.pVtab;
        vt->env->store_failed = true;
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = sqlite3_mprintf("%s", errbuf_msg(&c->q.err));
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

static int vt_next(sqlite3_vtab_cursor *cur)
{
    struct sql_cursor *c = (struct sql_cursor *)cur;

    if (c->eof) {
        return SQLITE_OK;
    }
    for (;;) {
        if (c->cur && c->idx < c->cur->n) {
            const struct sql_row *row = &c->cur->rows[c->idx++];
            struct span in = { c->cur->data.data + row->off, row->len };
            if (rec_decode(&in, &c->rec) < 0) {
                struct sql_vtab *vt = (struct sql_vtab *)c->base.pVtab;
                vt->env->store_failed = true;
                sqlite3_free(vt->base.zErrMsg);
                vt->base.zErrMsg = sqlite3_mprintf("a stored record is not an event record "
                                                   "(run vigil verify)");
                return SQLITE_ERROR;
            }
            /* the rowid is the seq, unique in the store: SQLite dedupes the scans of an
             * OR by rowid */
            c->rowid = c->rec.has_seq ? (int64_t)c->rec.seq : c->rowid + 1;
            return SQLITE_OK;
        }
        int rc = next_batch(c);
        if (rc != SQLITE_OK || c->eof) {
            return rc;
        }
    }
}

static int vt_eof(sqlite3_vtab_cursor *cur)
{
    return ((struct sql_cursor *)cur)->eof;
}

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    struct sql_cursor *c = (struct sql_cursor *)cur;
    const struct rec *r = &c->rec;
    char t[40];

    switch (col) {
    case VG_F_TS:
    case VG_F_RECEIVED: {
        bool has = col == VG_F_TS ? r->has_ts : r->has_received;
        if (has) {
            size_t n = vg_time_format(col == VG_F_TS ? r->ts : r->received, 9, t, sizeof(t));
            sqlite3_result_text(ctx, t, (int)n, SQLITE_TRANSIENT);
        }
        return SQLITE_OK;
    }
    case VG_F_SEQ:
        if (r->has_seq) {
            sqlite3_result_int64(ctx, (sqlite3_int64)r->seq);
        }
        return SQLITE_OK;
    case VG_F_DST_PORT:
        if (r->has_dst_port) {
            sqlite3_result_int64(ctx, r->dst_port);
        }
        return SQLITE_OK;
    case VG_F_RAW:
        if (r->raw.n > 0) {
            buf_reset(&c->json);
            if (mp_to_json(r->raw, &c->json) < 0) {
                sqlite3_result_error(ctx, "an event's raw value is malformed (run vigil verify)",
                                     -1);
                return SQLITE_ERROR;
            }
            sqlite3_result_text(ctx, (const char *)c->json.data, (int)c->json.len,
                                SQLITE_TRANSIENT);
        }
        return SQLITE_OK;
    default:
        if (col >= 0 && col < VG_F_COUNT && r->str[col].p) {
            sqlite3_result_text(ctx, (const char *)r->str[col].p, (int)r->str[col].n,
                                SQLITE_TRANSIENT);
        }
        return SQLITE_OK;
    }
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    *rowid = ((struct sql_cursor *)cur)->rowid;
    return SQLITE_OK;
}

static const sqlite3_module sql_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous-only: `events` exists in every schema, cannot be created */
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_disconnect,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
};

/* ---- output ---- */

struct sql_out {
    enum out_format fmt;
    int ncol;
    char **names;
    size_t rows;
    /* table: every cell kept to size the columns (NULL: a SQL NULL) */
    char **cells;
    size_t ncells, cap;
    struct buf line;
};

static int cell_json(struct buf *b, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return buf_append_str(b, "null");
    case SQLITE_INTEGER:
        return buf_appendf(b, "%lld", (long long)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: {
        char d[40];
        snprintf(d, sizeof(d), "%.17g", sqlite3_column_double(st, i));
        if (!strpbrk(d, "0123456789") || strstr(d, "inf") || strstr(d, "nan")) {
            return buf_append_str(b, "null"); /* JSON has no infinities */
        }
        return buf_append_str(b, d);
    }
    default: {
        const unsigned char *p = sqlite3_column_text(st, i);
        struct span s = { p, (size_t)sqlite3_column_bytes(st, i) };
        return json_append_str(b, s);
    }
    }
}

static int cell_csv(struct buf *b, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        return 0;
    }
    const char *p = (const char *)sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (!p ||
        (!memchr(p, ',', n) && !memchr(p, '"', n) && !memchr(p, '\n', n) && !memchr(p, '\r', n))) {
        return p ? buf_append(b, p, n) : 0;
    }
    int rc = buf_append_byte(b, '"');
    for (size_t k = 0; k < n && rc == 0; k++) {
        rc = p[k] == '"' ? buf_append(b, "\"\"", 2) : buf_append_byte(b, (uint8_t)p[k]);
    }
    return rc < 0 ? rc : buf_append_byte(b, '"');
}

/* A table cell: control characters escaped (event text must not drive the terminal). */
static char *cell_text(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        return NULL;
    }
    const unsigned char *p = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    char *d = xmalloc(4 * n + 1);
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (p[j] < 0x20 || p[j] == 0x7f) {
            k += (size_t)snprintf(d + k, 5, "\\x%02x", p[j]);
        } else {
            d[k++] = (char)p[j];
        }
    }
    d[k] = 0;
    return d;
}

/* Display width in columns, counting UTF-8 lead bytes. */
static size_t text_cols(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

static int out_write(struct sql_out *o)
{
    size_t n = o->line.len;
    errno = 0;
    if (n > 0 && fwrite(o->line.data, 1, n, stdout) != n) {
        buf_reset(&o->line);
        return errno ? -errno : -EIO;
    }
    buf_reset(&o->line);
    return 0;
}

static int out_row(struct sql_out *o, sqlite3_stmt *st)
{
    int rc = 0;

    if (o->fmt == OUT_TABLE) {
        if (o->ncells + (size_t)o->ncol > o->cap) {
            o->cap = o->cap ? 2 * o->cap + (size_t)o->ncol : 64 * (size_t)o->ncol;
            o->cells = xrealloc(o->cells, o->cap * sizeof(*o->cells));
        }
        for (int i = 0; i < o->ncol; i++) {
            o->cells[o->ncells++] = cell_text(st, i);
        }
        o->rows++;
        return 0;
    }
    if (o->fmt == OUT_CSV && o->rows == 0) {
        for (int i = 0; i < o->ncol && rc == 0; i++) {
            if (i > 0) {
                rc = buf_append_byte(&o->line, ',');
            }
            struct span s = span_str(o->names[i]);
            if (rc == 0) {
                rc = buf_append(&o->line, s.p, s.n);
            }
        }
        rc = rc < 0 ? rc : buf_append(&o->line, "\r\n", 2);
    }
    if (o->fmt == OUT_JSON) {
        rc = buf_append_str(&o->line, o->rows == 0 ? "[\n" : ",\n");
    }
    if (o->fmt == OUT_JSON || o->fmt == OUT_NDJSON) {
        rc = rc < 0 ? rc : buf_append_byte(&o->line, '{');
        for (int i = 0; i < o->ncol && rc == 0; i++) {
            if (i > 0) {
                rc = buf_append_byte(&o->line, ',');
            }
            if (rc == 0) {
                rc = json_append_str(&o->line, span_str(o->names[i]));
            }
            if (rc == 0) {
                rc = buf_append_byte(&o->line, ':');
            }
            if (rc == 0) {
                rc = cell_json(&o->line, st, i);
            }
        }
        rc = rc < 0 ? rc : buf_append_str(&o->line, o->fmt == OUT_NDJSON ? "}\n" : "}");
    } else if (o->fmt == OUT_CSV) {
        for (int i = 0; i < o->ncol && rc == 0; i++) {
            if (i > 0) {
                rc = buf_append_byte(&o->line, ',');
            }
            if (rc == 0) {
                rc = cell_csv(&o->line, st, i);
            }
        }
        rc = rc < 0 ? rc : buf_append(&o->line, "\r\n", 2);
    }
    o->rows++;
    return rc < 0 ? rc : out_write(o);
}

static int out_end(struct sql_out *o)
{
    int rc = 0;

    if (o->fmt == OUT_JSON) {
        rc = buf_append_str(&o->line, o->rows == 0 ? "[]\n" : "\n]\n");
    } else if (o->fmt == OUT_CSV && o->rows == 0) {
        for (int i = 0; i < o->ncol && rc == 0; i++) {
            rc = buf_appendf(&o->line, "%s%s", i ? "," : "", o->names[i]);
        }
        rc = rc < 0 ? rc : buf_append(&o->line, "\r\n", 2);
    } else if (o->fmt == OUT_TABLE) {
        /* column widths from every cell, the last column never padded */
        size_t *w = xcalloc((size_t)o->ncol, sizeof(*w));
        int width = cli_terminal_width();
        for (int i = 0; i < o->ncol; i++) {
            w[i] = text_cols(o->names[i]);
        }
        for (size_t k = 0; k < o->ncells; k++) {
            size_t cw = o->cells[k] ? text_cols(o->cells[k]) : 0;
            size_t *wi = &w[k % (size_t)o->ncol];
            *wi = cw > *wi ? cw : *wi;
        }
        for (int i = 0; i < o->ncol; i++) {
            /* on a terminal a column takes at most 60 columns: longer cells are cut */
            if (width > 0 && w[i] > 60) {
                w[i] = 60;
            }
        }
        for (size_t r = 0; r <= o->rows && rc == 0; r++) {
            for (int i = 0; i < o->ncol && rc == 0; i++) {
                const char *s =
                    r == 0 ? o->names[i] : o->cells[(r - 1) * (size_t)o->ncol + (size_t)i];
                s = s ? s : "";
                size_t cols = text_cols(s);
                size_t bytes = strlen(s);
                if (cols > w[i]) { /* cut at a character boundary, with '…' */
                    size_t keep = 0;
                    size_t k = 0;
                    for (; k < bytes && keep < w[i] - 1; k++) {
                        keep += ((unsigned char)s[k] & 0xc0) != 0x80;
                    }
                    while (k < bytes && ((unsigned char)s[k] & 0xc0) == 0x80) {
                        k++;
                    }
                    rc = buf_append(&o->line, s, k);
                    rc = rc < 0 ? rc : buf_append_str(&o->line, "\xe2\x80\xa6");
                    cols = w[i];
                } else {
                    rc = buf_append(&o->line, s, bytes);
                }
                if (rc == 0 && i + 1 < o->ncol) {
                    for (size_t p = cols; p < w[i] + 2 && rc == 0; p++) {
                        rc = buf_append_byte(&o->line, ' ');
                    }
                }
            }
            rc = rc < 0 ? rc : buf_append_byte(&o->line, '\n');
            if (rc == 0) {
                rc = out_write(o);
            }
        }
        free(w);
    }
    if (rc == 0) {
        rc = out_write(o);
    }
    if (fflush(stdout) != 0 && rc == 0) {
        rc = -EIO;
    }
    return rc;
}

static void out_release(struct sql_out *o)
{
    for (size_t k = 0; k < o->ncells; k++) {
        free(o->cells[k]);
    }
    for (int i = 0; i < o->ncol; i++) {
        free(o->names[i]);
    }
    free(o->cells);
    free(o->names);
    buf_release(&o->line);
}

/* ---- the command ---- */

static void sql_usage(FILE *f)
{
    fprintf(f, "usage: vigil sql 'SELECT ... FROM events ...' [--format table|json|ndjson|csv]\n"
               "                 [--explain] [-c FILE | --store DIR]\n"
               "\n"
               "One SQLite statement over the virtual table events: one column per normalized\n"
               "field (ts and received as RFC 3339 text with 9 fraction digits, seq and dst_port\n"
               "integers, the others text) and raw, the original event as JSON text\n"
               "(json_extract(raw, '$.objectRef.resource')). Comparisons of ts with a UTC time\n"
               "(ts > '2024-05-01T13:00:00Z', BETWEEN) and equality on fields (host, pod, user,\n"
               "src_ip, rule, outcome, ...) skip blocks that cannot hold a row; --explain says\n"
               "what each scan of the store read and skipped (stderr).\n"
               "Exit 0, 1 when the store cannot be read, 2 for a bad statement.\n");
}

/* Points at the statement's error offset (SQLite 3.38+), like a bad filter. */
static void sql_error(const char *text, sqlite3 *db)
{
    fprintf(stderr, "vigil sql: %s\n", sqlite3_errmsg(db));
    int off = sqlite3_error_offset(db);
    if (off >= 0 && (size_t)off <= strlen(text)) {
        int col = 1;
        for (int i = 0; i < off; i++) {
            col += ((unsigned char)text[i] & 0xc0) != 0x80;
        }
        fputs("  ", stderr);
        filter_error_caret(text, col, stderr);
    }
}

struct sql_opts {
    bool explain;
};

static const struct cli_opt sql_opts[] = {
    { "--explain", NULL, CLI_FLAG, CLI_OFF(struct sql_opts, explain), 0, 0 },
    { NULL },
};

static void print_explain(const struct sql_env *env)
{
    const struct store_scan_stats *s = &env->stats;
    fprintf(stderr,
            "explain: segments %" PRIu64 "; blocks read %" PRIu64 ", skipped by time %" PRIu64
            ", skipped by index %" PRIu64 "\n",
            s->segments, s->blocks_read, s->blocks_skipped, s->blocks_skipped_index);
    fprintf(stderr,
            "explain: records unpacked %" PRIu64 ", passed over %" PRIu64
            ", given to SQLite %" PRIu64 "\n",
            s->records_decoded, s->records_skipped, s->records);
}

static int sql_run(struct cli_args *a)
{
    const struct sql_opts *so = a->own;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    struct sql_out o;
    int rc;

    if (a->nwords != 1) {
        fprintf(stderr, "vigil sql: %s (quote the statement as one argument)\n",
                a->nwords == 0 ? "no SQL statement given" : "more than one argument given");
        sql_usage(stderr);
        return CLI_USAGE;
    }
    const char *text = a->words[0];
    if (strlen(text) > SQL_MAX_TEXT) {
        fprintf(stderr, "vigil sql: the statement is over %u bytes\n", SQL_MAX_TEXT);
        return CLI_USAGE;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        return rc;
    }
    struct sql_env env = { .dir = cli_store_dir(a), .explain = so->explain };
    const char *dir = env.dir;
    if (access(dir, F_OK) != 0) {
        fprintf(stderr, "vigil sql: no store at '%s': %s\n", dir, strerror(errno));
        return CLI_FAIL;
    }
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) !=
            SQLITE_OK ||
        sqlite3_create_module(db, "events", &sql_module, &env) != SQLITE_OK) {
        fprintf(stderr, "vigil sql: cannot set up SQLite: %s\n", db ? sqlite3_errmsg(db) : "");
        sqlite3_close(db);
        return CLI_FAIL;
    }
    if (sqlite3_prepare_v2(db, text, -1, &st, &tail) != SQLITE_OK) {
        sql_error(text, db);
        sqlite3_close(db);
        return CLI_USAGE;
    }
    if (!st) {
        fprintf(stderr, "vigil sql: the statement is empty\n");
        sqlite3_close(db);
        return CLI_USAGE;
    }
    while (tail &&
           (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r' || *tail == ';')) {
        tail++;
    }
    if (tail && *tail) {
        fprintf(stderr, "vigil sql: one statement only: '%.40s' follows the first\n", tail);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return CLI_USAGE;
    }
    if (!sqlite3_stmt_readonly(st)) {
        fprintf(stderr, "vigil sql: only queries (SELECT, WITH ... SELECT) read the store\n");
        sqlite3_finalize(st);
        sqlite3_close(db);
        return CLI_USAGE;
    }
    memset(&o, 0, sizeof(o));
    o.fmt = a->format;
    o.ncol = sqlite3_column_count(st);
    o.names = xcalloc((size_t)o.ncol + 1, sizeof(*o.names));
    for (int i = 0; i < o.ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        o.names[i] = xstrdup(name ? name : "?"); /* valid only until a re-prepare */
    }
    buf_init(&o.line, (size_t)1 << 30);
    int ret = CLI_OK;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (out_row(&o, st) < 0) {
            break; /* stdout closed (a pager quit) */
        }
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        /* an error in the statement (a bad argument to a function) is the query's, one
         * in reading the store is the store's */
        const char *msg = sqlite3_errmsg(db);
        fprintf(stderr, "vigil sql: %s\n", msg);
        ret = env.store_failed ? CLI_FAIL : CLI_USAGE;
    }
    if (ret == CLI_OK) {
        (void)out_end(&o); /* a closed pipe (a pager quit) is the reader's choice */
    }
    out_release(&o);
    sqlite3_finalize(st); /* ends the cursors: their figures are in env */
    if (so->explain) {
        print_explain(&env);
    }
    sqlite3_close(db);
    return ret;
}

const struct cli_cmd cmd_sql = {
    .name = "sql",
    .synopsis = "'SELECT ... FROM events ...' [--format table|json|ndjson|csv]",
    .takes = CLI_STORE | CLI_FORMAT,
    .opts = sql_opts,
    .own_size = sizeof(struct sql_opts),
    .usage = sql_usage,
    .run = sql_run,
};
