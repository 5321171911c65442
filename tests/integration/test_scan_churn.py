"""Queries never fail, nor change their answer, because compaction or retention replaced
or deleted segments under them (schemas/segment.md 4.5): `vigil search` and `vigil stats`
run in a loop over a held time window while vigild compacts every segment of that window
and retention deletes partitions outside it, and every run must exit 0 with the same
answer as the first.

The window is held (vigil hold), so retention (max_size 1 MiB, every second) keeps it
and deletes the partitions an ingest thread keeps writing before it; compaction rewrites
the window's segments one after the other (each install removes a file a running query
may have listed).
"""
import os
import sqlite3
import struct
import threading
import time

import harness
from harness import VIGIL, VigildTest, run, wait_for
from forward_client import ForwardClient

HOUR = 3600
BASE = 1714521600        # 2024-05-01T00:00:00Z: the held window's first partition
PARTS = 12               # partitions in the window
VICTIM = BASE + 10 * 86400  # partitions retention deletes (after the window: compaction,
#                             oldest partition first, does the window first)


def catalog(store):
    return sqlite3.connect("file:%s?mode=ro" % os.path.join(store, "catalog.db"), uri=True)


def window_segments(store):
    """Ids and files of the window's segments that are not compacted yet (segment.md 2:
    flags bit 0 of the file header)."""
    with catalog(store) as c:
        rows = c.execute("SELECT id, file FROM segments WHERE part_start >= ? AND "
                         "part_start < ?", (BASE * 10**9, (BASE + PARTS * HOUR) * 10**9)).fetchall()
    out = []
    for sid, f in rows:
        try:
            with open(os.path.join(store, "segments", f), "rb") as fh:
                flags = struct.unpack_from("<I", fh.read(16), 12)[0]
        except FileNotFoundError:
            continue  # replaced meanwhile
        if not flags & 1:
            out.append(sid)
    return out


def deleted(store, reason):
    with catalog(store) as c:
        return {r[0] for r in c.execute("SELECT segment_id FROM deletions WHERE reason = ?",
                                        (reason,))}


class ScanChurn(VigildTest):
    store = {"compaction": "zstd", "retention": "{ max_size: 1MiB, interval: 1s }"}

    def client(self):
        cert, key = self.vd.cert("agent-node-1")
        return ForwardClient(self.vd.forward_port, self.vd.ca, cert, key,
                             timeout=harness.timeout(30))

    def ship(self, c, events, chunk):
        c.send_chunk("churn.test", events, chunk)
        self.assertEqual(c.wait_ack(), chunk)

    def test_queries_during_compaction_and_retention(self):
        vd = self.vd
        run([VIGIL, "hold", "add", "--store", vd.store, "--since", "2024-05-01T00:00:00Z",
             "--until", "2024-05-01T%02d:00:00Z" % PARTS, "--reason", "scan churn test"])
        # The window: many small chunks, so each segment has many small blocks (a
        # compaction takes a while) and late chunks open more segments per partition.
        c = self.client()
        n = 0
        try:
            for k in range(30):
                ev = [(BASE + ((k + i) % PARTS) * HOUR + k * 60 + i % 60,
                       {"message": "churn %d/%d" % (k, i), "run": "churn",
                        "pod": "web-%d" % (i % 11), "user": "u%d" % (i % 5)})
                      for i in range(300)]
                self.ship(c, ev, "w-%d" % k)
                n += len(ev)
        finally:
            c.close()
        # Every event is acknowledged: the answer is fixed from here on. The window's
        # segments are sealed at the next seal pass, then compacted one by one, while
        # the queries run.
        t0 = time.monotonic()
        todo = set(window_segments(vd.store))
        self.assertGreaterEqual(len(todo), PARTS)

        search = [VIGIL, "search", "--store", vd.store, "--format", "ndjson", "raw.run=churn",
                  "--since", "2024-05-01T00:00:00Z", "--until", "2024-05-02T00:00:00Z"]
        stats = [VIGIL, "stats", "--store", vd.store, "--format", "ndjson", "raw.run=churn",
                 "--by", "pod,user", "--top", "0"]
        first = {}
        runs = {"search": [], "stats": []}
        stop = threading.Event()

        def loop(name, args):
            while not stop.is_set():
                p = run(args, check=False, t=120)
                runs[name].append((p.returncode, p.stdout, p.stderr[-500:]))
                # leave the compaction thread (at low CPU priority) some of the CPU
                stop.wait(0.1)

        def victims():
            # Partitions before the window, written all along: retention deletes them.
            c = self.client()
            k = 0
            try:
                while not stop.is_set():
                    # random text: compaction cannot shrink it below max_size
                    ev = [(VICTIM + (k % 24) * HOUR + i,
                           {"message": "victim %d %s" % (i, os.urandom(150).hex()),
                            "run": "victim"})
                          for i in range(300)]
                    self.ship(c, ev, "v-%d" % k)
                    k += 1
            finally:
                c.close()

        threads = [threading.Thread(target=loop, args=("search", search)),
                   threading.Thread(target=loop, args=("stats", stats)),
                   threading.Thread(target=victims)]
        for t in threads:
            t.start()
        try:
            wait_for("every segment of the window compacted and partitions deleted by retention",
                     lambda: todo <= deleted(vd.store, "compacted") and
                     len(deleted(vd.store, "max_size")) >= 3, seconds=240, every=0.2)
            print("compacted and deleted in %.1f s" % (time.monotonic() - t0))
            # And a few more runs after the last install.
            base = {k: len(v) for k, v in runs.items()}
            wait_for("queries after the last compaction",
                     lambda: all(len(runs[k]) >= base[k] + 2 for k in runs), seconds=120)
        finally:
            stop.set()
            for t in threads:
                t.join()

        print("%d segments compacted; %d searches, %d stats runs" %
              (len(todo), len(runs["search"]), len(runs["stats"])))
        for name, rs in runs.items():
            self.assertGreaterEqual(len(rs), 3, name)
            failed = [r for r in rs if r[0] != 0]
            self.assertEqual(failed, [], "%s: %d of %d runs failed" % (name, len(failed), len(rs)))
            first[name] = rs[0][1]
            differ = [i for i, r in enumerate(rs) if r[1] != first[name]]
            self.assertEqual(differ, [], "%s: runs %s answered otherwise than the first" %
                             (name, differ))
        self.assertEqual(first["search"].count("\n"), n)
        # 11 pods x 5 users, each pair the same share of the window's events
        self.assertEqual(first["stats"].count("\n"), 55)
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    harness.main()
