"""`vigil sql` (issue 13, item 5): SQLite over the store through the `events` virtual table.
Ground truth is Python's own sqlite3: the same events (as `vigil search --format ndjson`
prints them) loaded into a plain table with the same columns, and every query of a table
run on both, over segments as vigild wrote them (several per partition, events arriving
out of order) and again after `vigil compact` rewrote them. The queries use every
operator the table pushes down (ts >, >=, <, <=, =, BETWEEN; equality on indexed and
other fields) with bounds exactly on partition edges, and forms it must not push down
(another collation, numbers, offsets)."""
import json
import os
import random
import re
import sqlite3
import unittest

import harness
from harness import VIGIL, VigildTest, run, wait_for

T0 = 1714564800  # 2024-05-01T12:00:00Z: partitions 12h, 13h, 14h (and 15h)
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
RESOURCES = ["pods", "secrets", "configmaps", "deployments"]
COLUMNS = ["ts", "received", "seq", "agent", "source", "kind", "severity", "host", "namespace",
           "pod", "container_id", "container_name", "image", "user", "src_ip", "dst_ip",
           "dst_port", "process", "cmdline", "rule", "action", "object", "outcome", "cve",
           "package", "message", "raw"]


def iso(ns):
    import time
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac


def event(rnd, i, ns):
    ev = {"time": iso(ns), "message": "event %d" % i, "host": "node-%d" % (i % 4),
          "user": rnd.choice(USERS), "outcome": rnd.choice(["success", "failure", "failure"]),
          "src_ip": "203.0.113.%d" % rnd.randrange(1, 30), "namespace": "prod",
          "pod": "web-%d" % rnd.randrange(8), "dst_port": rnd.choice([22, 443, 8080]),
          "objectRef": {"resource": rnd.choice(RESOURCES), "namespace": "prod"},
          "seqno": i}
    if i % 97 == 0:
        ev["cve"] = "CVE-2024-%04d" % (i % 7)
        ev["image"] = "registry.local/app:%d" % (i % 3)
    if i == 1234:
        ev["pod"] = "miner-0"
        ev["rule"] = "Crypto miner"
    return ev


# Times on partition edges (and one nanosecond either side).
EDGES = [T0 * 10**9 + 3600 * 10**9 * h + d for h in (1, 2) for d in (-1, 0, 1)]


def load_reference(events):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE events (%s)" % ", ".join(
        "%s %s" % (c, "INTEGER" if c in ("seq", "dst_port") else "TEXT") for c in COLUMNS))
    for e in events:
        row = [e.get(c) for c in COLUMNS]
        row[-1] = json.dumps(e["raw"]) if "raw" in e else None
        db.execute("INSERT INTO events VALUES (%s)" % ",".join("?" * len(COLUMNS)), row)
    return db


QUERIES = [
    "SELECT count(*) FROM events",
    "SELECT src_ip, count(*) FROM events WHERE outcome='failure' AND ts > '2024-05-01T13:00:00Z'"
    " GROUP BY 1",
    # every pushed-down operator on ts, bounds on the partition edges
    "SELECT seq FROM events WHERE ts >= '2024-05-01T13:00:00Z' AND ts < '2024-05-01T14:00:00Z'",
    "SELECT seq FROM events WHERE ts > '2024-05-01T13:00:00.000000000Z'",
    "SELECT seq FROM events WHERE ts <= '2024-05-01T13:59:59.999999999Z'",
    "SELECT seq FROM events WHERE ts < '2024-05-01T14:00:00.000000001Z'",
    "SELECT seq FROM events WHERE ts = '2024-05-01T14:00:00.000000000Z'",
    "SELECT seq FROM events WHERE ts = '2024-05-01T13:59:59.999999999Z'",
    "SELECT seq FROM events WHERE ts BETWEEN '2024-05-01T13:00' AND '2024-05-01T14:00'",
    "SELECT seq FROM events WHERE ts BETWEEN '2024-05-01T13:30:00.5Z' AND '2024-05-01T13:30:09Z'",
    "SELECT count(*) FROM events WHERE ts > '2024-05-01'",
    "SELECT count(*) FROM events WHERE ts < '2024-05-02'",
    "SELECT seq FROM events WHERE ts < '2024-05-01T12:00:01.5Z'",
    "SELECT seq FROM events WHERE ts >= '2024-05-01T14:59:59Z' AND ts <= '2024-05-01T15:00:00Z'",
    "SELECT count(*) FROM events WHERE ts > '2024-05-01T16:00:00Z'",
    # upper bounds at each precision: "...:00Z" sorts above "...:00.000000001Z"
    "SELECT seq FROM events WHERE ts <= '2024-05-01T13:00:00Z' AND ts > '2024-05-01T12:59:59Z'",
    "SELECT seq FROM events WHERE ts <= '2024-05-01T13:59' AND ts >= '2024-05-01T13:58'",
    "SELECT seq FROM events WHERE ts < '2024-05-01T14:00:00.5Z' AND ts > '2024-05-01T13:59:59.5Z'",
    "SELECT seq FROM events WHERE ts = '2024-05-01T14:00:00Z'",
    "SELECT count(*) FROM events WHERE ts < '2024-05-01T13:00Z' AND ts >= '2024-05-01T12:59Z'",
    "SELECT count(*) FROM events WHERE ts < '2024-05-01T13Z' OR ts > '2024-05-01T14:00:00.Z'",
    "SELECT count(*) FROM events WHERE ts > '2024-05-01T14:00:00Z' AND ts < '2024-05-01T13:00:00Z'",
    # forms that are not pushed down: SQLite alone decides
    "SELECT count(*) FROM events WHERE ts > '2024-05-01T13:00:00+02:00'",
    "SELECT count(*) FROM events WHERE ts > 1714568400",
    "SELECT count(*) FROM events WHERE ts > '2024-05-01 13:00:00'",
    "SELECT seq FROM events WHERE user = 'ALICE' COLLATE NOCASE AND ts < '2024-05-01T12:10:00Z'",
    # equality on indexed fields, and on others
    "SELECT seq FROM events WHERE user = 'alice' AND host = 'node-1'",
    "SELECT seq, ts FROM events WHERE pod = 'miner-0'",
    "SELECT seq FROM events WHERE src_ip = '203.0.113.7'",
    "SELECT seq FROM events WHERE cve = 'CVE-2024-0003'",
    "SELECT seq FROM events WHERE image = 'registry.local/app:1' AND namespace = 'prod'",
    "SELECT seq FROM events WHERE rule = 'Crypto miner'",
    "SELECT count(*) FROM events WHERE user = 'nobody'",
    "SELECT seq FROM events WHERE outcome = 'failure' AND user = 'bob' AND dst_port = 22",
    "SELECT count(*) FROM events WHERE outcome = 'Failure'",
    # OR: SQLite may scan once per branch and merge the rows by rowid
    "SELECT seq FROM events WHERE pod = 'miner-0' OR user = 'carol'",
    "SELECT seq FROM events WHERE (user = 'alice' AND ts < '2024-05-01T12:30Z') OR "
    "(pod = 'web-1' AND ts >= '2024-05-01T14:30:00Z')",
    "SELECT seq FROM events WHERE message = 'event 77'",
    # raw as JSON
    "SELECT json_extract(raw, '$.objectRef.resource') AS r, count(*) FROM events GROUP BY r",
    "SELECT seq FROM events WHERE json_extract(raw, '$.seqno') BETWEEN 100 AND 140",
    # the rest of SQL over it
    "SELECT user, count(DISTINCT src_ip), min(ts), max(ts) FROM events GROUP BY user",
    "SELECT seq, ts FROM events ORDER BY ts DESC, seq DESC LIMIT 7",
    "SELECT seq FROM events WHERE seq BETWEEN 10 AND 20 OR seq > 2990",
    "SELECT substr(ts, 1, 13) AS hour, count(*) FROM events GROUP BY hour",
    "SELECT count(*) FROM (SELECT DISTINCT host, user FROM events WHERE ts >= '2024-05-01T14:00')",
]


class Sql(VigildTest):
    store = {"block_bytes": "4KiB"}

    def send(self, events, name):
        path = os.path.join(self.vd.dir, name)
        with open(path, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events))
        self.vd.send([path])

    def sql(self, text, fmt="ndjson", check=True, explain=False):
        args = [VIGIL, "sql", "--store", self.vd.store, "--format", fmt, text]
        if explain:
            args.append("--explain")
        return run(args, check=check)

    def rows(self, text):
        p = self.sql(text)
        out = []
        for line in p.stdout.splitlines():
            obj = json.loads(line)
            out.append(tuple(obj.values()))
        return out

    def sealed(self):
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        try:
            return c.execute("SELECT count(*) FROM segments WHERE state = 'sealed'").fetchone()[0]
        finally:
            c.close()

    def check_all(self, ref, what):
        for q in QUERIES:
            got = self.rows(q)
            want = [tuple(r) for r in ref.execute(q).fetchall()]
            if "ORDER BY" not in q:
                got.sort(key=repr)
                want.sort(key=repr)
            self.assertEqual(got, want, "%s: %s" % (what, q))

    def test_sql_equals_sqlite(self):
        rnd = random.Random(13)
        times = [T0 * 10**9 + rnd.randrange(3 * 3600 * 10**9) for _ in range(2994)] + EDGES
        events = [event(rnd, i, t) for i, t in enumerate(times)]
        order = list(range(len(events)))
        rnd.shuffle(order)  # out-of-order arrival, across partitions
        self.send([events[i] for i in order[:2000]], "first.ndjson")
        # the partitions of 2024 are over: vigild seals them, and the rest arrives late,
        # into new segments of the same partitions
        wait_for("sealed segments", lambda: self.sealed() >= 3, seconds=60)
        self.send([events[i] for i in order[2000:]], "late.ndjson")
        self.vd.stop()

        stored = self.vd.search()
        self.assertEqual(len(stored), len(events))
        ref = load_reference(stored)
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        parts = c.execute("SELECT part_start, count(*) FROM segments GROUP BY 1").fetchall()
        c.close()
        self.assertTrue(any(n > 1 for _, n in parts), parts)
        self.check_all(ref, "as written")

        # pushed down: fewer blocks read than the whole store
        p = self.sql("SELECT count(*) FROM events", explain=True)
        total = int(re.search(r"blocks read (\d+)", p.stderr).group(1))
        p = self.sql("SELECT count(*) FROM events WHERE ts >= '2024-05-01T14:00:00Z'",
                     explain=True)
        self.assertIn("window [2024-05-01T14:00:00.000000000Z, +inf)", p.stderr)
        m = re.search(r"blocks read (\d+)", p.stderr)
        self.assertLess(int(m.group(1)), total * 2 // 3)
        # the window is V's time up to V's precision, not wider
        p = self.sql("SELECT count(*) FROM events WHERE ts BETWEEN '2024-05-01T13:00:00Z' AND "
                     "'2024-05-01T13:30:00.25Z'", explain=True)
        self.assertIn("window [2024-05-01T13:00:00.000000000Z, 2024-05-01T13:30:00.260000000Z)",
                      p.stderr)
        p = self.sql("SELECT count(*) FROM events WHERE ts < '2024-05-01T13:30'", explain=True)
        self.assertIn("window [-inf, 2024-05-01T13:31:00.000000000Z)", p.stderr)
        p = self.sql("SELECT count(*) FROM events WHERE ts < '2024-05-01T13:30Z' AND "
                     "ts >= '2024-05-01'", explain=True)
        self.assertIn("window [2024-05-01T00:00:00.000000000Z, 2024-05-01T13:31:00.000000000Z)",
                      p.stderr)
        p = self.sql("SELECT seq FROM events WHERE pod = 'miner-0'", explain=True)
        self.assertIn("index: 1 field value(s), 1 text(s)", p.stderr)
        m = re.search(r"blocks read (\d+), skipped by time \d+, skipped by index (\d+)", p.stderr)
        self.assertLessEqual(int(m.group(1)), 2)
        self.assertGreater(int(m.group(2)), total // 2)
        # NOCASE is not byte equality: nothing pushed
        p = self.sql("SELECT seq FROM events WHERE pod = 'MINER-0' COLLATE NOCASE", explain=True)
        self.assertIn("index: 0 field value(s), 0 text(s)", p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 1)

        # several stripes at once, and a LIMIT that stops the scan with batches in flight
        env = dict(os.environ, VIGIL_SCAN_THREADS="3")
        for q in QUERIES[:3] + ["SELECT user, count(*) FROM events GROUP BY 1"]:
            p = run([VIGIL, "sql", "--store", self.vd.store, "--format", "ndjson", q], env=env)
            got = sorted((tuple(json.loads(l).values()) for l in p.stdout.splitlines()), key=repr)
            self.assertEqual(got, sorted((tuple(r) for r in ref.execute(q)), key=repr), q)
        p = run([VIGIL, "sql", "--store", self.vd.store, "--format", "ndjson",
                 "SELECT seq FROM events LIMIT 3"], env=env)
        self.assertEqual(len(p.stdout.splitlines()), 3)

        run([VIGIL, "compact", "--store", self.vd.store])
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        self.assertGreater(c.execute(
            "SELECT count(*) FROM deletions WHERE reason = 'compacted'").fetchone()[0], 0)
        c.close()
        self.check_all(ref, "compacted")

    def test_formats_and_errors(self):
        self.send([{"time": iso(T0 * 10**9 + i * 10**9), "message": 'say "hi", %d' % i,
                    "user": "u%d" % (i % 2)} for i in range(5)], "few.ndjson")
        q = "SELECT user, count(*) AS n FROM events GROUP BY user ORDER BY user"
        self.assertEqual(json.loads(self.sql(q, fmt="json").stdout),
                         [{"user": "u0", "n": 3}, {"user": "u1", "n": 2}])
        # (run() reads text: CRLF arrives as \n)
        self.assertEqual(self.sql(q, fmt="csv").stdout, "user,n\nu0,3\nu1,2\n")
        p = self.sql("SELECT message FROM events WHERE message LIKE '%4'", fmt="csv")
        self.assertEqual(p.stdout, 'message\n"say ""hi"", 4"\n')
        t = self.sql(q, fmt="table").stdout.splitlines()
        self.assertEqual([l.split() for l in t], [["user", "n"], ["u0", "3"], ["u1", "2"]])
        self.assertEqual(self.sql("SELECT 1 WHERE 0", fmt="json").stdout, "[]\n")

        for bad, msg in [
                ("SELEC count(*) FROM events", 'near "SELEC": syntax error'),
                ("SELECT nope FROM events", "no such column: nope"),
                ("SELECT * FROM event", "no such table: event"),
                ("DELETE FROM events", "table events may not be modified"),
                ("SELECT 1; SELECT 2", "one statement only"),
                ("CREATE TABLE t(x)", "only queries"),
                ("", "empty")]:
            p = self.sql(bad, check=False)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn(msg, p.stderr, bad)
            self.assertEqual(p.stdout, "", bad)
        p = self.sql("SELEC count(*) FROM events", check=False)
        self.assertIn("^", p.stderr)
        p = run([VIGIL, "sql", "--store", os.path.join(self.vd.dir, "none"), "SELECT 1"],
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no store at", p.stderr)


if __name__ == "__main__":
    harness.main()
