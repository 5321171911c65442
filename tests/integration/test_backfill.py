"""A backfill is kept for store.retention.max_age after it was received (issue 9).

An investigation imports an old host's auth.log: lines of months ago, shipped now with
`vigil send --format syslog`. Retention (max_age 30d, running every second here through
store.retention.interval) must not delete them: a partition's age counts from the later
of its event time and the time vigild received its newest record. `vigil verify` tells
a segment compaction replaced apart from one retention deleted."""
import os
import sqlite3
import time
import unittest

import harness
from harness import Vigild

S = 10**9


def auth_log(path, t0_ns, n):
    """n sshd lines in RFC 3164 (no year: the receiver infers it), a minute apart."""
    with open(path, "w") as f:
        for i in range(n):
            ts = time.gmtime(t0_ns // S + 60 * i)
            stamp = time.strftime("%b %d %H:%M:%S", ts)
            if stamp[4] == "0":
                stamp = stamp[:4] + " " + stamp[5:]
            f.write("%s oldhost sshd[%d]: Failed password for root from 203.0.113.%d port %d "
                    "ssh2\n" % (stamp, 1000 + i, i % 250 + 1, 40000 + i))


class Backfill(unittest.TestCase):
    def test_months_old_auth_log_survives_retention(self):
        vd = Vigild("backfill", store={"retention": "{ max_age: 30d, interval: 1s }"})
        self.addCleanup(vd.cleanup)
        vd.start()
        path = os.path.join(vd.dir, "auth.log")
        n = 600  # ten hours of lines, 100 days ago: ten partitions
        auth_log(path, time.time_ns() - 100 * 86400 * S, n)
        p = vd.send([path], fmt="syslog")
        self.assertIn("%d events acknowledged" % n, p.stdout)
        runs = vd.metrics()["vigil_retention_runs_total"]
        # the partitions end 100 days ago, so they are sealed at once; three retention
        # passes after that must leave them
        harness.wait_for("sealed", lambda: self.sealed(vd) >= 10, 60)
        harness.wait_for("three retention passes",
                         lambda: vd.metrics()["vigil_retention_runs_total"] >= runs + 3, 60)
        self.assertEqual(len(vd.search("host=oldhost")), n)
        self.assertEqual(vd.metrics()["vigil_retention_segments_deleted_total"], 0)
        stored = vd.search("host=oldhost")
        oldest = min(e["ts"] for e in stored)
        self.assertLess(oldest, time.strftime("%Y-%m-%d", time.gmtime(time.time() - 90 * 86400)))
        with sqlite3.connect(os.path.join(vd.store, "catalog.db")) as c:
            rows = c.execute("SELECT part_end, recv_max FROM segments").fetchall()
        now = time.time_ns()
        self.assertTrue(all(r[1] is not None and now - 600 * S < r[1] <= now for r in rows), rows)
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("0 deleted by policy", v.stdout)
        self.assertNotIn(": deleted by policy", v.stdout)
        vd.stop()

    def test_catalog_without_recv_max_is_migrated(self):
        """A store made before recv_max existed: readers read it, the next vigild adds the
        column (sealed rows: their seal time; open rows: the time of the migration)."""
        vd = Vigild("backfill-migrate")
        self.addCleanup(vd.cleanup)
        vd.start()
        path = os.path.join(vd.dir, "auth.log")
        auth_log(path, time.time_ns() - 100 * 86400 * S, 120)
        vd.send([path], fmt="syslog")
        harness.wait_for("sealed", lambda: self.sealed(vd) >= 2, 60)
        vd.stop()
        db = os.path.join(vd.store, "catalog.db")
        with sqlite3.connect(db) as c:
            c.execute("ALTER TABLE segments DROP COLUMN recv_max")
        self.assertEqual(len(vd.search("host=oldhost")), 120)  # a reader of the old layout
        before = time.time_ns()
        vd.start()
        vd.stop()
        with sqlite3.connect(db) as c:
            rows = c.execute("SELECT state, sealed, recv_max FROM segments").fetchall()
        self.assertTrue(rows)
        for state, sealed, recv in rows:
            if state == "sealed":
                self.assertEqual(recv, sealed)
            else:
                self.assertGreaterEqual(recv, before)
        self.assertIn("added recv_max", vd.read_log())
        self.assertEqual(len(vd.search("host=oldhost")), 120)

    def sealed(self, vd):
        with sqlite3.connect(os.path.join(vd.store, "catalog.db")) as c:
            return c.execute("SELECT count(*) FROM segments WHERE state = 'sealed'").fetchone()[0]


if __name__ == "__main__":
    harness.main()
