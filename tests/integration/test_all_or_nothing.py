"""A Forward message (every mode) and an HTTPS request are stored whole or not at all.
Before: [tag, P1+P2+P3+truncated P4, {"chunk"}] got no ack but P1-P3 were stored, and
every retry stored them again; a 1M-entry chunk stored 824,487 events without an ack
and its own rejection record was dropped; an over-large HTTPS array got 413 with most of
it stored. Now what is not acknowledged is not stored, the rejection is always recorded,
and an ack says how many entries were kept as rejected_input records."""
import gzip
import json
import os
import ssl
import struct
import unittest

import harness
from forward_client import ForwardClient, pack
from harness import VigildTest

T0 = 1714521600  # 2024-05-01T00:00:00Z


def eventtime(sec, nsec=0):
    """msgpack ext 0: Forward's EventTime."""
    return b"\xd7\x00" + struct.pack(">II", sec, nsec)


def entry(sec, record):
    """One packed entry [EventTime, record]."""
    return b"\x92" + eventtime(sec) + pack(record)


def bin32(b):
    return b"\xc6" + struct.pack(">I", len(b)) + b


def packed_msg(tag, entries, chunk, gzipped=False):
    """[tag, bin(entries), {"chunk": chunk[, "compressed": "gzip"]}]"""
    opt = {"chunk": chunk}
    if gzipped:
        opt["compressed"] = "gzip"
        entries = gzip.compress(entries)
    return b"\x93" + pack(tag) + bin32(entries) + pack(opt)


class Forward(VigildTest):
    listen = {"max_frame_bytes": "1MiB"}

    def client(self, agent="agent-node-1"):
        cert, key = self.vd.cert(agent)
        return ForwardClient(self.vd.forward_port, self.vd.ca, cert, key,
                             timeout=harness.timeout(60))

    def refused_without_ack(self, msg):
        """Sends msg on a new connection: vigild must close it without an ack."""
        c = self.client()
        c.send_raw(msg)
        with self.assertRaises((ConnectionError, ssl.SSLError, OSError)):
            c.wait_ack()
        c.close()

    def test_truncated_entry_stores_nothing_even_when_retried(self):
        good = b"".join(entry(T0 + i, {"message": "p%d" % i, "run": "trunc"}) for i in range(3))
        p4 = entry(T0 + 3, {"message": "p3", "run": "trunc"})
        body = good + p4[:len(p4) // 2]  # the fourth entry cut in the middle
        for mode in ("packed", "compressed"):
            msg = packed_msg("app", body, "c-" + mode, gzipped=mode == "compressed")
            for _ in range(3):  # as an agent retries a chunk that got no ack
                self.refused_without_ack(msg)
        # Forward mode: the third entry is not an entry at all.
        fwd = pack(["app", [[T0, {"message": "f1", "run": "trunc"}],
                            [T0, {"message": "f2", "run": "trunc"}], "garbage",
                            [T0, {"message": "f3", "run": "trunc"}]], {"chunk": "c-fwd"}])
        self.refused_without_ack(fwd)
        self.assertEqual(self.vd.search("raw.run=trunc"), [])
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 7)
        self.assertTrue(all("nothing of it stored" in e["message"] for e in ev), ev[0])
        # The connection after them works, and what it sends is stored once.
        c = self.client()
        c.send_raw(packed_msg("app", good, "c-ok"))
        self.assertEqual(c.wait_ack(), "c-ok")
        c.close()
        self.assertEqual(len(self.vd.search("raw.run=trunc")), 3)

    def test_chunk_too_large_for_a_batch_stores_nothing_and_is_recorded(self):
        # 300,000 tiny entries: 3.6 MB once gunzipped (within 4 x listen.max_frame_bytes)
        # but far more than one store batch takes once normalized.
        one = entry(T0, {"run": "huge"})
        self.refused_without_ack(packed_msg("app", one * 300000, "c-huge", gzipped=True))
        self.assertEqual(self.vd.search("raw.run=huge", extra=("--limit", "5")), [])
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)
        self.assertIn("exceed what one store batch takes", ev[0]["message"])
        m = self.vd.metrics()
        self.assertEqual(m["vigil_self_events_dropped_total"], 0)
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="forward"}'], 1)

    def test_ack_says_how_many_entries_were_kept_as_rejections(self):
        # A falco alert without a rule does not map: it is kept as a rejected_input record
        # with its bytes, the chunk is acked, and the ack says so.
        entries = [(T0, {"rule": "Terminal shell", "output": "sh", "priority": "Warning",
                         "run": "rej"}),
                   (T0 + 1, {"output": "no rule here", "run": "rej"}),
                   (T0 + 2, {"rule": "Terminal shell", "output": "sh", "priority": "Notice",
                             "run": "rej"})]
        c = self.client()
        c.send_chunk("falco", entries, "c-rej")
        self.assertEqual(c.wait_ack(with_rejected=True), ("c-rej", 1))
        c.send_chunk("falco", entries[:1], "c-fine")
        self.assertEqual(c.wait_ack(with_rejected=True), ("c-fine", 0))
        c.close()
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["raw"]["output"], "no rule here")
        self.assertEqual(len(self.vd.search("source=falco", "raw.run=rej")), 3)


class Https(VigildTest):
    listen = {"https": "127.0.0.1:0", "max_frame_bytes": "1MiB"}

    def test_over_large_array_is_413_with_nothing_stored(self):
        harness.need(self, harness.shutil.which("curl"), "curl")
        # 340,000 empty objects in one array: within the body limit, but far more than
        # one store batch once normalized.
        body = b"[" + b",".join([b"{}"] * 340000) + b"]"
        path = os.path.join(self.vd.dir, "big.json")
        with open(path, "wb") as f:
            f.write(body)
        cert, key = self.vd.cert("agent-node-1")
        p = harness.run(["curl", "-sS", "--cacert", self.vd.ca, "--cert", cert, "--key", key,
                         "-H", "Content-Type: application/json", "--data-binary", "@" + path,
                         "-w", "\n%{http_code}",
                         "https://localhost:%d/v1/events" % self.vd.ports["https"]])
        reply, code = p.stdout.rsplit("\n", 1)
        self.assertEqual(code, "413", reply)
        self.assertEqual(json.loads(reply)["accepted"], 0)
        self.assertEqual(self.vd.search("source=http", extra=("--limit", "5")), [])
        self.assertEqual(len(self.vd.search("source=vigil", "action=rejected_input")), 1)


if __name__ == "__main__":
    harness.main()
