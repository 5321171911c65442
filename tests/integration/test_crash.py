"""kill -9 under load loses no acknowledged event (DESIGN.md "Ingest", STYLE.md "Tests").

A Forward client (forward_client.py: stdlib ssl and a tiny msgpack encoder, so the test
knows exactly which event ids were acknowledged) ships chunks of unique-id events while
the test kills vigild with SIGKILL at random moments and restarts it on the same store,
again and again. Like a real agent, the client resends a chunk that was not
acknowledged, so some events may be stored twice (at least once is the contract).
Finally every acknowledged id must be stored, the duplicates are counted and printed,
and `vigil verify` must pass on the store.

The commit journal (schemas/segment.md 5.6) is covered: most runs have store.block_max_age
at its 1m default, so an acknowledged event is durable in the journal and waits in an open
block (killed: replayed at the next start), and the test checks that some kills did come
while the journal held records; every third run has it at 0s (commits cut the blocks), so
a journal left by a kill is also replayed by a start without one. Before the clean stop,
`vigil search` on the live store must see every acknowledged event, though the last ones
are only in the journal; after it, the journal is empty.

VG_CRASH_ITERATIONS (default 20) and VG_CRASH_SECONDS (default 120, times
VG_TIMEOUT_MULT) bound the run. The run prints its seed first; VG_CRASH_SEED=N replays
the same kill moments and event times (the machine's timing still varies).
"""
import collections
import json
import os
import random
import ssl
import sys
import threading
import time
import unittest

import harness
from harness import VIGIL, run
from forward_client import ForwardClient

CHUNK = 25  # events per Forward chunk


class Sender(threading.Thread):
    """Ships chunks until stopped or until the connection breaks (vigild killed)."""

    def __init__(self, vd, state, it, rng, flush_only=False):
        super().__init__(daemon=True)
        self.vd = vd
        self.state = state
        self.it = it
        self.rng = rng
        self.flush_only = flush_only  # send what is pending, then end
        self.stop = threading.Event()
        self.chunks = 0

    def run(self):
        st = self.state
        cert, key = self.vd.cert("agent-node-1")
        try:
            c = ForwardClient(self.vd.forward_port, self.vd.ca, cert, key,
                              timeout=harness.timeout(20))
        except (OSError, ssl.SSLError):
            return
        try:
            while not self.stop.is_set():
                if not st["pending"] and self.flush_only:
                    break
                if not st["pending"]:
                    now = int(time.time())
                    for _ in range(CHUNK):
                        eid = "e%07d" % st["next"]
                        st["next"] += 1
                        # Event times spread over the last five hours: several
                        # partitions, sealed ones among them (late events).
                        t = now - self.rng.randrange(0, 5 * 3600)
                        st["pending"].append((t, {"message": "crash test %s" % eid,
                                                  "eid": eid, "run": st["run"]}))
                chunk_id = "it%d-c%d" % (self.it, self.chunks)
                c.send_chunk("crash.test", st["pending"], chunk_id)
                st["sent"] += len(st["pending"])
                if c.wait_ack() != chunk_id:
                    raise AssertionError("ack for another chunk")
                for _, r in st["pending"]:
                    st["acked"].add(r["eid"])
                st["pending"] = []  # acknowledged: never sent again
                self.chunks += 1
        except (OSError, ssl.SSLError, ConnectionError):
            pass  # killed: the chunk in flight stays pending and is resent
        finally:
            c.close()


class CrashTest(unittest.TestCase):
    def test_kill9_loses_no_acknowledged_event(self):
        iterations = int(os.environ.get("VG_CRASH_ITERATIONS", "20"))
        budget = harness.timeout(float(os.environ.get("VG_CRASH_SECONDS", "120")))
        vd = harness.Vigild("crash", store={"block_bytes": "16KiB"})
        self.addCleanup(vd.cleanup)
        state = {"run": "crash-%d" % os.getpid(), "next": 0, "pending": [], "acked": set(),
                 "sent": 0}
        seed = int(os.environ.get("VG_CRASH_SEED", str(random.SystemRandom().randrange(2**31))))
        print("crash test: seed %d (VG_CRASH_SEED=%d replays it)" % (seed, seed))
        sys.stdout.flush()
        rng = random.Random(seed)
        t0 = time.monotonic()
        done = 0
        journal_kills = 0  # kills that left frames in the journal
        jdir = os.path.join(vd.store, "journal")
        for it in range(iterations):
            if time.monotonic() - t0 > budget:
                break
            vd.store_opts["block_max_age"] = "0s" if it % 3 == 2 else "1m"
            vd.start()
            s = Sender(vd, state, it, random.Random(rng.random()))
            s.start()
            # Kill at a random moment: during the handshake, mid-chunk, mid-commit.
            time.sleep(rng.uniform(0.02, 0.8) * harness.MULT)
            vd.kill9()
            if os.path.isdir(jdir) and any(
                    n.endswith(".vjnl") and os.path.getsize(os.path.join(jdir, n)) > 64
                    for n in os.listdir(jdir)):
                journal_kills += 1
            s.stop.set()
            s.join(harness.timeout(30))
            self.assertFalse(s.is_alive(), "sender stuck after vigild died")
            vd.check_log()  # no sanitizer report, no error line, even when killed
            done += 1

        # A last run: the pending chunk is acknowledged, then a clean stop.
        vd.store_opts["block_max_age"] = "1m"
        vd.start()
        s = Sender(vd, state, iterations, random.Random(rng.random()), flush_only=True)
        s.start()
        s.join(harness.timeout(60))
        self.assertFalse(s.is_alive(), "the last chunk was not acknowledged in time")
        self.assertEqual(state["pending"], [], "the last chunk was not acknowledged")
        # Readers see acknowledged events still only in the journal (segment.md 5.6.4).
        p = run([VIGIL, "search", "--store", vd.store, "--format", "ndjson",
                 "raw.run=" + state["run"]], t=300)
        live = set(json.loads(l)["raw"]["eid"] for l in p.stdout.splitlines() if l.strip())
        self.assertEqual(sorted(state["acked"] - live), [],
                         "acknowledged events a reader of the live store does not see")
        vd.stop()
        self.assertEqual([n for n in os.listdir(jdir) if n.endswith(".vjnl")], [],
                         "a clean stop leaves the journal empty")

        p = run([VIGIL, "search", "--store", vd.store, "--format", "ndjson",
                 "raw.run=" + state["run"]], t=300)
        counts = collections.Counter(json.loads(l)["raw"]["eid"]
                                     for l in p.stdout.splitlines() if l.strip())
        acked = state["acked"]
        lost = sorted(acked - set(counts))
        dups = sum(n - 1 for n in counts.values() if n > 1)
        unacked_stored = len(set(counts) - acked)
        print("crash test (seed %d): %d kill -9 iterations, %d events sent (with resends), %d "
              "acknowledged, %d stored distinct, %d duplicates, %d lost" % (
                  seed, done, state["sent"], len(acked), len(counts), dups, len(lost)))
        sys.stdout.flush()
        print("crash test: %d kills came while the journal held records" % journal_kills)
        sys.stdout.flush()
        self.assertGreaterEqual(done, min(iterations, 5))
        self.assertGreater(journal_kills, 0, "no kill found records in the journal")
        self.assertGreater(len(acked), 0)
        self.assertEqual(lost, [], "acknowledged events lost: %d (seed %d)" % (len(lost), seed))
        self.assertEqual(unacked_stored, 0)  # everything was acknowledged in the end

        v = vd.verify()
        self.assertEqual(v.returncode, 0, "vigil verify failed:\n" + v.stdout + v.stderr)
        self.assertIn("store OK", v.stdout)


if __name__ == "__main__":
    harness.main()
