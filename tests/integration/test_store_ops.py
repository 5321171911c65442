"""The store under operations (DESIGN.md "Store"): late and out-of-order events land in
their partition (a sealed one takes them in a new segment); legal holds placed with
`vigil hold` beside a running vigild keep partitions from retention until released;
below store.free_reserve the collector stops acknowledging, records it, and resumes by
itself when space returns."""
import json
import os
import sqlite3
import time
import unittest

import harness
from harness import VIGIL, VigildTest, run, wait_for
from forward_client import ForwardClient

HOUR = 3600


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def segments(store):
    with sqlite3.connect(os.path.join(store, "catalog.db")) as c:
        return c.execute("SELECT id, part_start / 1000000000, state, count FROM segments "
                         "ORDER BY id").fetchall()


def client(vd):
    cert, key = vd.cert("agent-node-1")
    return ForwardClient(vd.forward_port, vd.ca, cert, key, timeout=harness.timeout(15))


def ship(vd, events, chunk="c"):
    """Sends (time, record) pairs in one chunk; returns True when acknowledged."""
    c = client(vd)
    try:
        c.send_chunk("ops.test", events, chunk)
        return c.wait_ack() == chunk
    except (ConnectionError, OSError):
        return False
    finally:
        c.close()


class LateEvents(VigildTest):
    def test_late_events_go_to_their_partition(self):
        now = int(time.time())
        # A partition that ended two hours ago or more; the late events sit a minute into
        # it, so they never straddle its end and the later one (old_part + 7) is earliest
        # whatever the time of day the test runs at.
        old_part = (now - 3 * HOUR) - (now - 3 * HOUR) % HOUR
        old = old_part + 60
        ev = [(old + i, {"message": "late %d" % i, "run": "late"}) for i in range(5)]
        ev += [(now, {"message": "on time", "run": "late"})]
        self.assertTrue(ship(self.vd, ev, "late-1"))
        segs = segments(self.vd.store)
        self.assertIn(old_part, [s[1] for s in segs])
        # Acknowledged: in the commit journal (schemas/segment.md 5.6) until their block
        # is cut, and seen by readers already.
        hits = self.vd.search("raw.run=late")
        self.assertEqual(sorted(h["ts"] for h in hits)[:5],
                         [iso(old + i).replace("Z", ".000000000Z") for i in range(5)])
        self.assertEqual(len(hits), 6)
        # Restart: a clean stop cuts the blocks; the ended partition is sealed (and
        # signed) at start.
        self.vd.stop()
        self.vd.start()
        first = wait_for("the seal at start", lambda: [
            s for s in segments(self.vd.store) if s[1] == old_part and s[2] == "sealed"])
        self.assertEqual([(s[2], s[3]) for s in first], [("sealed", 5)])
        # More late events for it: a new segment of the same partition.
        ev = [(old_part + 7, {"message": "later still", "run": "late"})]
        self.assertTrue(ship(self.vd, ev, "late-2"))
        part = [s for s in segments(self.vd.store) if s[1] == old_part]
        # The new segment's event may still be only journaled (count 0).
        self.assertEqual([(s[2], s[3] if s[2] == "sealed" else None) for s in part],
                         [("sealed", 5), ("open", None)])
        self.assertGreater(part[1][0], part[0][0])
        # Readers see them all, in time order; verify is happy.
        hits = self.vd.search("raw.run=late")
        self.assertEqual(len(hits), 7)
        self.assertEqual(hits[0]["ts"], iso(old_part + 7).replace("Z", ".000000000Z"))
        v = self.vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("sealed, signature ok", v.stdout)


class Holds(VigildTest):
    BASE = 1714521600  # 2024-05-01T00:00:00Z

    def test_hold_keeps_partitions_from_retention(self):
        vd = self.vd
        ev = [(self.BASE + p * HOUR + i, {"message": "held? %d/%d" % (p, i), "run": "hold"})
              for p in range(3) for i in range(4)]
        self.assertTrue(ship(vd, ev, "h-1"))
        # Placed while vigild runs: a second writer of the catalog.
        p = run([VIGIL, "hold", "add", "--store", vd.store,
                 "--since", "2024-05-01T01:10:00Z", "--until", "2024-05-01T01:20:00Z",
                 "host=node-1", "--reason", "case 7: suspected exfiltration"])
        self.assertIn("hold 1 placed on 2024-05-01T01:10:00Z .. 2024-05-01T01:20:00Z by ",
                      p.stdout)
        bad = run([VIGIL, "hold", "add", "--store", vd.store, "--since", "1h", "--until", "2h",
                   "--reason", "x"], check=False)
        self.assertEqual(bad.returncode, 2)
        bad = run([VIGIL, "hold", "add", "--store", vd.store, "--since", "2h", "--until", "1h"],
                  check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--reason", bad.stderr)
        vd.stop()

        # Retention of a second (a partition ages from the later of its end and when its
        # records were received: these came moments ago): both unheld 2024 partitions go
        # within a pass or two, not the held one.
        vd.store_opts["retention"] = "{ max_age: 1s, interval: 1s }"
        vd.start()
        wait_for("retention", lambda: len(vd.search("source=vigil",
                                                    "action=retention_delete")) == 2)
        self.assertEqual(vd.metrics()["vigil_retention_held_partitions"], 1)
        self.assertEqual(vd.metrics()["vigil_retention_segments_deleted_total"], 2)
        left = sorted(e["raw"]["message"] for e in vd.search("raw.run=hold"))
        self.assertEqual(left, ["held? 1/%d" % i for i in range(4)])
        lst = run([VIGIL, "hold", "list", "--store", vd.store, "--format", "ndjson"]).stdout
        holds = [json.loads(l) for l in lst.splitlines()]
        self.assertEqual(len(holds), 1)
        self.assertEqual((holds[0]["id"], holds[0]["active"], holds[0]["filter"],
                          holds[0]["reason"]),
                         (1, True, "host=node-1", "case 7: suspected exfiltration"))
        self.assertIn("uid", holds[0]["placed_by"])

        # Released (recorded, not deleted) while vigild runs; the next run deletes it.
        run([VIGIL, "hold", "release", "1", "--store", vd.store, "--reason", "case closed"])
        again = run([VIGIL, "hold", "release", "1", "--store", vd.store, "--reason", "x"],
                    check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("released before", again.stderr)
        self.assertEqual(run([VIGIL, "hold", "list", "--store", vd.store]).stdout.count("\n"), 1)
        out = run([VIGIL, "hold", "list", "--all", "--store", vd.store]).stdout
        self.assertIn("released", out)
        self.assertIn("case closed", out)
        vd.stop()
        vd.start()
        wait_for("the released partition's deletion",
                 lambda: len(vd.search("source=vigil", "action=retention_delete")) == 3)
        self.assertEqual(vd.search("raw.run=hold"), [])
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("3 deleted by policy", v.stdout)


class DiskFull(unittest.TestCase):
    """Free space is made to drop below store.free_reserve by a real file (fallocate) on
    the store's file system, then to come back by removing it."""

    MARGIN = 1 << 30  # the reserve sits this far below the free space at start

    def setUp(self):
        probe = harness.Vigild("diskfull")
        self.addCleanup(probe.cleanup)
        st = os.statvfs(probe.dir)
        free = st.f_bavail * st.f_frsize
        if free < 4 * self.MARGIN:
            self.skipTest("needs 4 GiB free on the test file system")
        probe.store_opts["free_reserve"] = str(free - self.MARGIN)
        self.vd = probe
        self.vd.start()

    def test_refuses_below_reserve_and_resumes(self):
        vd = self.vd
        self.assertTrue(ship(vd, [(int(time.time()), {"message": "before", "run": "df"})], "a"))
        self.assertEqual(vd.metrics()["vigil_store_disk_full"], 0)
        wait_for("the free space gauge", lambda: vd.metrics()["vigil_store_free_bytes"] > 0)
        filler = os.path.join(vd.dir, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, 2 * self.MARGIN)
        except OSError as e:
            os.close(fd)
            os.unlink(filler)
            self.skipTest("fallocate: %s" % e)
        os.close(fd)
        try:
            wait_for("vigild to notice", lambda: vd.metrics()["vigil_store_disk_full"] == 1)
            # Refused: the connection closes without an ack; the agent keeps its data.
            self.assertFalse(ship(vd, [(int(time.time()), {"message": "refused",
                                                           "run": "df"})], "b"))
            m = vd.metrics()
            self.assertGreaterEqual(m["vigil_events_refused_disk_full_total"], 1)
            self.assertEqual(m["vigil_store_disk_full_episodes_total"], 1)
            # The evidence was stored from the reserve.
            ev = wait_for("the disk_full event", lambda: vd.search(
                "source=vigil", "action=disk_full", "outcome=failure"))
            self.assertEqual(ev[0]["severity"], "critical")
            self.assertIn("store.free_reserve", ev[0]["message"])
        finally:
            os.unlink(filler)
        wait_for("vigild to resume", lambda: vd.metrics()["vigil_store_disk_full"] == 0)
        self.assertTrue(ship(vd, [(int(time.time()), {"message": "after", "run": "df"})], "c"))
        got = sorted(e["raw"]["message"] for e in vd.search("raw.run=df"))
        self.assertEqual(got, ["after", "before"])
        ok = wait_for("the resumed event", lambda: vd.search("source=vigil", "action=disk_full",
                                                              "outcome=success"))
        self.assertIn("events were refused", ok[0]["message"])
        log = vd.read_log()
        self.assertIn("below store.free_reserve", log)
        self.assertIn("free again", log)
        vd.stop()
        v = vd.verify()
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    harness.main()
