"""`vigil tail` against a real vigild (issue 13, item 2).

tail reads the store (files and catalog) read-only while vigild writes, with no
connection to it. It must print every event committed after it started, in the order
vigild stored them (seq), none twice, across a segment seal and compaction inside vigild,
a `vigil compact` run with vigild stopped, and a restart; apply the filter; start from
the past with --since; and end cleanly on SIGINT (exit 0, the JSON array closed) and when
its stdout is closed (SIGPIPE ignored, exit 0).
"""
import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time

import harness
from harness import VIGIL, Vigild, VigildTest, run, wait_for

BASE = 1714521600  # 2024-05-01T00:00:00Z: partitions that ended long ago (sealed soon)
S = 10**9


def iso(sec):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))


def compacted(store):
    with sqlite3.connect(os.path.join(store, "catalog.db")) as c:
        return c.execute("SELECT count(*) FROM deletions WHERE reason = 'compacted'").fetchone()[0]


def sealed(store):
    with sqlite3.connect(os.path.join(store, "catalog.db")) as c:
        return c.execute("SELECT count(*) FROM segments WHERE state = 'sealed'").fetchone()[0]


class Tail:
    """A running `vigil tail`; its stdout lines collected by a thread."""

    def __init__(self, store, *args, fmt="ndjson"):
        self.p = subprocess.Popen([VIGIL, "tail", "--store", store, "--format", fmt] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.got = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, n, what, seconds=60, fail=True):
        """Waits until n lines in all came (fails on a timeout or tail's exit; with
        fail=False a timeout returns None instead)."""
        deadline = time.monotonic() + harness.timeout(seconds)
        while len(self.got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                if not fail:
                    return None
                raise AssertionError("tail: waiting for %s: %d of %d lines" % (
                    what, len(self.got), n))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("tail exited (%s) waiting for %s: %s" % (
                    self.p.wait(), what, self.p.stderr.read()))
            self.got.append(line)
        return self.got

    def stop(self):
        """SIGINT by PID; returns (exit code, the rest of stdout, stderr)."""
        self.p.send_signal(signal.SIGINT)
        rc = self.p.wait(timeout=harness.timeout(30))
        self.t.join(timeout=harness.timeout(10))
        self.p.stderr_text = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        rest = []
        while True:
            line = self.lines.get()
            if line is None:
                break
            rest.append(line)
        return rc, rest, self.p.stderr_text

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            if not f.closed:
                f.close()


def events(tag, n, t0, **extra):
    return [dict({"time": iso(t0 + i), "message": "%s %d" % (tag, i), "run": tag,
                  "pod": "web-%d" % (i % 3)}, **extra) for i in range(n)]


class TailTest(VigildTest):
    store = {"compaction": "zstd"}

    def ship(self, evs, name):
        path = os.path.join(self.vd.dir, name + ".ndjson")
        with open(path, "w") as f:
            for e in evs:
                f.write(json.dumps(e) + "\n")
        self.vd.send([path])

    def seqs(self, *flt):
        return [e["seq"] for e in sorted(self.vd.search(*flt), key=lambda e: e["seq"])]

    def test_follows_across_seal_compaction_and_restart(self):
        vd = self.vd
        self.ship(events("before", 20, BASE + 600), "before")
        before = max(self.seqs())
        t = Tail(vd.store)
        self.addCleanup(t.kill)
        # tail follows from the horizon it reads once started, which this test cannot
        # see: ship one marker at a time until tail prints one, so it is following (a
        # batch shipped before that could fall before its horizon, and never show).
        for i in range(60):
            self.ship(events("mark%d" % i, 1, BASE + 600), "mark%d" % i)
            if t.until(1, "a marker", seconds=2, fail=False):
                break
        else:
            raise AssertionError("tail printed none of 60 markers")
        first = json.loads(t.got[0])
        self.assertTrue(first["message"].startswith("mark"), first)
        self.assertGreater(first["seq"], before)
        start = first["seq"] - 1
        expect = len([s for s in self.seqs() if s > start])  # the markers from there on
        t.until(expect, "the markers shipped after the first shown")
        # Two old partitions, several commits each: the keeper seals and compacts them
        # while tail follows.
        for k in range(4):
            self.ship(events("a%d" % k, 50, BASE + (k % 2) * 3600 + k * 100), "a%d" % k)
            expect += 50
            t.until(expect, "batch a%d" % k)
        wait_for("two compactions", lambda: compacted(vd.store) >= 2, seconds=120)
        # Late events reopen a compacted partition; events of now go to the open one.
        self.ship(events("late", 30, BASE + 200), "late")
        self.ship(events("now", 30, int(time.time()) - 30), "now")
        expect += 60
        t.until(expect, "late and now")
        # A restart without background compaction; late events reopen a partition and
        # are sealed there; then, vigild stopped, `vigil compact` rewrites that segment.
        vd.stop()
        vd.store_opts["compaction"] = "off"
        vd.start()
        done = compacted(vd.store)
        n_sealed = sealed(vd.store)
        self.ship(events("late2", 25, BASE + 3600 + 900), "late2")
        expect += 25
        t.until(expect, "late2")
        wait_for("the late segment sealed", lambda: sealed(vd.store) > n_sealed, seconds=120)
        vd.stop()
        run([VIGIL, "compact", "--store", vd.store])
        self.assertGreater(compacted(vd.store), done)
        vd.start()
        self.ship(events("after", 40, BASE + 7200), "after")
        expect += 40
        t.until(expect, "after vigil compact and a restart")
        rc, rest, err = t.stop()
        self.assertEqual(rc, 0, err)
        self.assertEqual(rest, [])
        got = [json.loads(l)["seq"] for l in t.got]
        # In seq order, none twice, exactly what was committed after tail started.
        self.assertEqual(got, sorted(set(got)))
        self.assertEqual(got, [s for s in self.seqs() if s > start])
        self.assertEqual(vd.verify().returncode, 0)

    def test_filter_since_and_formats(self):
        vd = self.vd
        self.ship(events("old", 30, BASE + 60), "old")
        self.ship(events("older", 10, BASE), "older")
        # --since: the stored events from then on in event-time order, then new ones.
        t = Tail(vd.store, "pod=web-1", "--since", iso(BASE + 5))
        self.addCleanup(t.kill)
        hist = [e for e in vd.search("pod=web-1") if e["ts"] >= iso(BASE + 5)[:-1]]
        hist.sort(key=lambda e: (e["ts"], e["seq"]))
        t.until(len(hist), "history")
        self.ship(events("new", 30, BASE + 30), "new")
        new = [e for e in vd.search("pod=web-1", "raw.run=new")]
        t.until(len(hist) + len(new), "new events")
        rc, rest, err = t.stop()
        self.assertEqual(rc, 0, err)
        got = [json.loads(l) for l in t.got]
        self.assertEqual([e["seq"] for e in got],
                         [e["seq"] for e in hist] + sorted(e["seq"] for e in new))
        self.assertTrue(all(e["pod"] == "web-1" for e in got))
        self.assertEqual(len(new), 10)

        # json: SIGINT closes the array.
        t = Tail(vd.store, "--since", iso(BASE), fmt="json")
        self.addCleanup(t.kill)
        t.until(70, "json history: \"[\" and the first 69 events (the last line ends at the next write)")
        rc, rest, err = t.stop()
        self.assertEqual(rc, 0, err)
        doc = json.loads("".join(t.got + rest))
        self.assertEqual(len(doc), 70)

        # csv: a header, then rows (--since: each row comes from the history or from
        # following, whichever side of tail's start-up horizon its commit fell)
        t = Tail(vd.store, "raw.run=csv", "--since", iso(BASE), fmt="csv")
        self.addCleanup(t.kill)
        self.ship(events("csv", 5, BASE + 3), "csv")
        t.until(6, "csv rows")
        rc, _, err = t.stop()
        self.assertEqual(rc, 0, err)
        self.assertTrue(t.got[0].startswith("ts,source,"))

    def test_closed_stdout_ends_it(self):
        vd = self.vd
        self.ship(events("x", 5, BASE), "x")
        p = subprocess.Popen([VIGIL, "tail", "--store", vd.store, "--format", "ndjson",
                              "--since", iso(BASE)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        first = p.stdout.readline()
        self.assertIn(b'"message":"x 0"', first)
        p.stdout.close()
        # The next write fails with EPIPE: tail ends, exit 0, without a message.
        self.ship(events("y", 5, BASE), "y")
        rc = p.wait(timeout=harness.timeout(60))
        self.assertEqual(rc, 0)
        self.assertEqual(p.stderr.read(), b"")
        p.stderr.close()

    def test_usage_errors(self):
        for args, what in ((["--until", "1h"], "--until"),
                           (["(pod=x"], "filter"),
                           (["--since", "tomorrow"], "not a time")):
            with self.subTest(args=args):
                p = run([VIGIL, "tail", "--store", self.vd.store] + args, check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(what, p.stderr)
        p = run([VIGIL, "tail", "--store", os.path.join(self.vd.dir, "nothing")], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no store", p.stderr)


if __name__ == "__main__":
    harness.main()
