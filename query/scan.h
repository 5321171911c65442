/* query/scan.h: the shared read path of search, timeline and the demo: scan the store
 * over a time window, decode each record, apply a filter, and keep the matches in time
 * order (bounded by a limit: the earliest `limit` matches by (ts, seq), or with
 * SCAN_REVERSE the latest, newest first).
 *
 * Every scan can show progress and be interrupted (issue 13 item 6): with SCAN_PROGRESS
 * a thread of its own draws one line on stderr, from the scan's first second on, every
 * quarter second (blocks read and skipped, events matched, rate, share of the bytes done
 * and ETA), and clears it at the end; with SCAN_INTERRUPTIBLE the first SIGINT stops
 * the scan (every stripe stops at its next record) and the result says so
 * (interrupted): the command prints what was found so far and exits SCAN_EXIT_INTERRUPTED;
 * a second SIGINT kills as usual. Commands with their own scan loop use
 * scan_par_watch, or scan_interrupt_begin/scan_interrupted/scan_interrupt_end. */
#ifndef VG_QUERY_SCAN_H
#define VG_QUERY_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/errbuf.h"
#include "query/filter.h"
#include "schemas/record.h"
#include "store/store.h"

/* A segment a scan left out (--skip-damaged): its id and why it could not be read (the
 * reader's message, naming the file and offset). */
struct scan_skip {
    uint64_t id;
    char why[512];
};

/* The segments left out so far: scan_par_skip applies them to a new plan, and
 * scan_skips_take adds the one a failed scan could not read. */
struct scan_skips {
    struct scan_skip *v; /* owned */
    size_t n;
};
void scan_skips_release(struct scan_skips *s);
/* On stderr, for --skip-damaged: "<prog>: skipped a damaged segment: <why>" per segment
 * (print), or the explain lines (explain). */
void scan_skips_print(const char *prog, const struct scan_skips *s);
void scan_skips_explain(const struct scan_skips *s);
/* On stderr: "<prog>: <what failed>", and when it was one segment (failed_segment), how
 * to read the others. */
void scan_fail_print(const char *prog, const struct errbuf *eb, uint64_t failed_segment);

struct scan_hit {
    int64_t ts;
    uint64_t seq;
    uint8_t *bytes; /* the encoded record, owned */
    size_t len;
};

struct scan_result {
    struct scan_hit *hits; /* sorted by (ts, seq) after scan_run */
    size_t n, cap;
    uint64_t matched; /* all matches, including those past the limit */
    struct store_scan_stats stats;
    double seconds;
    size_t need_values; /* what the filter told the block index (filter_needs) */
    size_t need_texts;
    uint64_t ns_sort;          /* sorting the hits */
    unsigned threads;          /* stripes scanned at once (scan_par_threads) */
    struct scan_skips skipped; /* SCAN_SKIP_DAMAGED: the damaged segments left out */
    uint64_t failed_segment;   /* scan_run failed on this segment (0: not one segment) */
    bool interrupted;          /* SCAN_INTERRUPTIBLE: SIGINT stopped the scan; hits and
                                  matched are what was found until then */
    uint64_t blocks_total;     /* blocks of the plan (read, skipped or not reached) */
};

#define SCAN_PROGRESS      1u /* a progress line on stderr (for a terminal) */
#define SCAN_SKIP_DAMAGED  2u /* leave out segments that cannot be read, and say which */
#define SCAN_INTERRUPTIBLE 4u /* SIGINT stops the scan; the result says interrupted */
#define SCAN_REVERSE       8u /* the latest matches, newest first (--reverse) */

/* The exit code of a command a SIGINT stopped after printing what it had found (as a
 * shell reports a process SIGINT killed: 128 + 2). */
#define SCAN_EXIT_INTERRUPTED 130
/* What a store_rec_fn returns to stop its stripe when scan_interrupted(). */
#define SCAN_STOP 1

/* Installs a SIGINT handler that only records the signal, and resets that record
 * (nested calls count: the outermost end restores the previous handler). The handler
 * is one-shot: a second SIGINT has the default effect. Main thread only. */
void scan_interrupt_begin(void);
void scan_interrupt_end(void);
/* True once SIGINT arrived since the outermost scan_interrupt_begin. Any thread. */
bool scan_interrupted(void);

/* Scans dir over [since, until) for records matching f (NULL: all). limit 0 = no limit.
 * Blocks whose index rules out what f needs (filter_needs) are skipped unread. What
 * compaction or retention removes while the scan runs is read all the same (the plan
 * pins its files: segment.md 4.5). flags: SCAN_PROGRESS, SCAN_SKIP_DAMAGED (a segment
 * that cannot be read is left out, listed in res->skipped, and the scan starts over
 * without it, so none of its records is in the result).
 * Returns 0, or negative with eb set (without SCAN_SKIP_DAMAGED a damaged segment is an
 * error naming it, never skipped). */
int scan_run(const char *dir, int64_t since, int64_t until, const struct filter *f, uint64_t limit,
             unsigned flags, struct scan_result *res, struct errbuf *eb);
void scan_result_release(struct scan_result *res);

/* What every record f (NULL: none) matches has, for the block index and the record
 * prefilter (filter_needs): sn->need points into sn, which must outlive the scan. */
struct scan_need {
    struct filter_needs fn;
    struct store_need_value vals[FILTER_MAX_TERMS];
    struct store_need need;
    uint64_t seq_lo; /* filter_seq_bounds: 0 / UINT64_MAX when unbounded */
    uint64_t seq_hi;
};
void scan_need_init(struct scan_need *sn, const struct filter *f);
/* Applies what sn says of seq (seq=N, seq=N..M, seq>=N) to a plan (scan_par_open with
 * &sn->need): the segments and blocks outside are passed over unread. */
struct scan_par;
void scan_par_narrow(struct scan_par *p, const struct scan_need *sn);
/* Projection: the stripes of p give their store_rec_fn records with at least the fields
 * of fields (bits 1 << enum vg_field, as filter_fields; FILTER_FIELDS_ALL or 0: whole
 * records), read from those columns alone where blocks have them (segment.md 3.8).
 * Call before scan_par_run. */
void scan_par_fields(struct scan_par *p, uint64_t fields);

/* Decodes one stored record as schema v1 (rec_decode). Returns 0, or VG_ECORRUPT with
 * eb naming the record's seq. */
int scan_rec_decode(struct span bytes, uint64_t seq, struct rec *r, struct errbuf *eb);

/* Parallel scans (store_scan_plan_*): the plan of [since, until) and need is made once;
 * scan_par_run then runs fn over scan_par_threads() stripes of its blocks at once, one
 * thread each, stripe i calling fn with args[i] (so each stripe keeps its own state,
 * merged by the caller). Small scans (under 8 MiB stored) run as one stripe on the
 * calling thread; otherwise one stripe per online CPU (at most 8), or
 * VIGIL_SCAN_THREADS. Every record of the plan reaches exactly one stripe. */
struct scan_par;
int scan_par_open(const char *dir, int64_t since, int64_t until, const struct store_need *need,
                  struct scan_par **out, struct store_scan_stats *stats, struct errbuf *eb);
unsigned scan_par_threads(const struct scan_par *p);
/* For the next scan_par_run (call before it): SCAN_PROGRESS draws the progress line
 * (what: its first word, e.g. "search"), SCAN_INTERRUPTIBLE stops every stripe at its
 * next record once SIGINT arrives (scan_par_interrupted then says so). */
void scan_par_watch(struct scan_par *p, unsigned flags, const char *what);
/* Adds n to the events matched the progress line shows (any stripe, any time). */
void scan_par_matched(struct scan_par *p, uint64_t n);
/* True when SIGINT stopped the last scan_par_run before the end. */
bool scan_par_interrupted(const struct scan_par *p);
/* Blocks of the plan, and blocks the runs so far read or skipped. */
uint64_t scan_par_blocks(const struct scan_par *p);
/* Leaves the segments of s out of p's plan (call before scan_par_run). */
void scan_par_skip(struct scan_par *p, const struct scan_skips *s);
/* The segment the last scan_par_run failed on (0: it did not fail on one segment). */
uint64_t scan_par_failed_segment(const struct scan_par *p);
/* Returns 0 or the first failing stripe's error (eb says what; fn's positive values
 * stop its stripe only). */
int scan_par_run(struct scan_par *p, store_rec_fn fn, void *const *args,
                 struct store_scan_stats *stats, struct errbuf *eb);
/* After scan_par_run failed with rc (eb its message): when one segment could not be read
 * and s does not hold it yet, adds it to s and returns true (the caller scans again
 * without it); else false. */
bool scan_skips_take(struct scan_skips *s, const struct scan_par *p, int rc,
                     const struct errbuf *eb);
void scan_par_close(struct scan_par *p);

#endif
