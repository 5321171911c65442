"""`vigil export` and `vigil verify BUNDLE.tar` (issue 13, item 4; schemas/bundle.md).

A bundle exported from a store vigild wrote (several segments per partition, events
arriving out of order) holds exactly the events the query matches, computed here from the
generated events themselves, and verifies offline; so does one exported after `vigil
compact`. Each way of lying about the evidence is made the way a careful forger would (the
manifest's SHA-256 and sizes updated to match), and each fails, naming the line or
member: an edited, removed, added or reordered event, a swapped signature, a swapped key,
a changed block, an added member; --key pins the collector's key."""
import hashlib
import io
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import tarfile
import unittest
import zlib

import harness
from harness import VIGIL, VigildTest, run, wait_for

T0 = 1714564800  # 2024-05-01T12:00:00Z
SINCE = "2024-05-01T12:30:00Z"
UNTIL = "2024-05-01T14:30:00Z"
SINCE_NS = (T0 + 1800) * 10**9
UNTIL_NS = (T0 + 9000) * 10**9


def iso(ns):
    import time
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac


def read_tar(path):
    with tarfile.open(path) as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def write_tar(path, members, fix_manifest=True):
    """members: [(name, bytes)]; the manifest's members list is brought in line with the
    bytes (as a forger would), unless fix_manifest is False."""
    members = list(members)
    if fix_manifest:
        man = json.loads(dict(members)["manifest.json"])
        man["members"] = [{"name": n, "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                          for n, b in members if n != "manifest.json"]
        lines = dict(members)["events.ndjson"].count(b"\n")
        man["counts"]["events"] = lines
        members = [(n, json.dumps(man).encode() if n == "manifest.json" else b)
                   for n, b in members]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for n, b in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(b)
            t.addfile(ti, io.BytesIO(b))


class Export(VigildTest):
    store = {"block_bytes": "4KiB"}

    def sealed(self):
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        try:
            return c.execute("SELECT count(*) FROM segments WHERE state = 'sealed'").fetchone()[0]
        finally:
            c.close()

    def open_rows(self):
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        try:
            return c.execute("SELECT count(*) FROM segments WHERE state = 'open'").fetchone()[0]
        finally:
            c.close()

    def send(self, events, name):
        path = os.path.join(self.vd.dir, name)
        with open(path, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events))
        self.vd.send([path])

    def export(self, name, *words, check=True):
        out = os.path.join(self.vd.dir, name)
        p = run([VIGIL, "export", "--store", self.vd.store, "--since", SINCE, "--until", UNTIL,
                 "-o", out] + list(words), check=check)
        return out, p

    def verify(self, path, *extra):
        return run([VIGIL, "verify", path] + list(extra), check=False)

    def assert_fails(self, path, *patterns):
        p = self.verify(path)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        for pat in patterns:
            self.assertRegex(p.stdout, pat)
        self.assertIn("summary: FAILED", p.stdout)
        return p

    def test_export_verify(self):
        rnd = random.Random(4)
        users = ["alice", "bob", "carol"]
        times = [T0 * 10**9 + rnd.randrange(3 * 3600 * 10**9) for _ in range(1500)]
        # on the window's edges, and a partition's
        times += [SINCE_NS - 1, SINCE_NS, UNTIL_NS - 1, UNTIL_NS, (T0 + 3600) * 10**9]
        events = [{"time": iso(t), "user": users[i % 3] if i < 1500 else "alice",
                   "message": "login %d" % i, "seqno": i,
                   "src_ip": "198.51.100.%d" % (i % 50), "host": "bastion-%d" % (i % 2)}
                  for i, t in enumerate(times)]
        order = list(range(len(events)))
        rnd.shuffle(order)
        self.send([events[i] for i in order[:1000]], "a.ndjson")
        wait_for("sealed segments", lambda: self.sealed() >= 3, seconds=60)
        # export warns about what no signed head vouches for yet (an open segment past its
        # last checkpoint): here the late segments until vigild seals them
        self.send([events[i] for i in order[1000:]], "b.ndjson")
        wait_for("late segments sealed", lambda: self.open_rows() == 0, seconds=60)
        self.vd.stop()

        want = sorted(e["seqno"] for e, t in zip(events, times)
                      if e["user"] == "alice" and SINCE_NS <= t < UNTIL_NS)
        bundle, p = self.export("alice.tar", "user=alice")
        self.assertIn("%d events from" % len(want), p.stderr)
        members = read_tar(bundle)
        names = [n for n, _ in members]
        self.assertEqual(names[-1], "manifest.json")
        self.assertIn("events.ndjson", names)
        self.assertTrue(any(n.startswith("keys/") for n in names))
        evs = [json.loads(l) for l in dict(members)["events.ndjson"].splitlines()]
        self.assertEqual(sorted(e["raw"]["seqno"] for e in evs), want)
        self.assertEqual([(e["ts"], e["seq"]) for e in evs],
                         sorted((e["ts"], e["seq"]) for e in evs))
        # exactly what search prints for the same query
        s = run([VIGIL, "search", "--store", self.vd.store, "--since", SINCE, "--until", UNTIL,
                 "--format", "ndjson", "user=alice"]).stdout
        self.assertEqual(dict(members)["events.ndjson"].decode(), s)
        man = json.loads(dict(members)["manifest.json"])
        self.assertEqual(man["format"], "vigil-bundle")
        self.assertEqual(man["query"]["filter"], "user=alice")
        self.assertEqual(man["query"]["since_ns"], SINCE_NS)
        self.assertEqual(man["query"]["until_ns"], UNTIL_NS)
        self.assertEqual(man["counts"]["events"], len(want))
        self.assertGreaterEqual(man["counts"]["segments"], 3)
        self.assertTrue(man["created_by"]["user"])
        for m in man["members"]:
            self.assertEqual(hashlib.sha256(dict(members)[m["name"]]).hexdigest(), m["sha256"])

        p = self.verify(bundle)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("summary: ok: %d events in" % len(want), p.stdout)
        pub = os.path.join(self.vd.store, "keys", "collector-ed25519.pub.pem")
        p = self.verify(bundle, "--key", pub)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        d = self.vd.dir
        ev = dict(members)["events.ndjson"].splitlines(keepends=True)
        seq = [json.loads(l)["seq"] for l in ev]

        def with_events(lines):
            return [(n, b"".join(lines) if n == "events.ndjson" else b) for n, b in members]

        # an edited event
        edited = list(ev)
        edited[2] = edited[2].replace(b'"login ', b'"logout ')
        write_tar(os.path.join(d, "edited.tar"), with_events(edited))
        self.assert_fails(os.path.join(d, "edited.tar"),
                          r"events\.ndjson line 3: FAILED: event seq %d differs from its record "
                          r"in segments/\S+\.vseg \(edited\)" % seq[2])
        # the same edit, the manifest left as it was
        write_tar(os.path.join(d, "edited2.tar"), with_events(edited), fix_manifest=False)
        self.assert_fails(os.path.join(d, "edited2.tar"),
                          r"events\.ndjson: FAILED: SHA-256 \w+ \(\d+ bytes\) is not the "
                          r"manifest's", r"line 3: FAILED")
        # a removed event
        write_tar(os.path.join(d, "removed.tar"), with_events(ev[:1] + ev[2:]))
        self.assert_fails(os.path.join(d, "removed.tar"),
                          r"events\.ndjson: FAILED: event seq %d \(\S+, in segments/\S+\) matches "
                          r"the query but is not in the file \(removed\)" % seq[1])
        # an added event: a copy of one with another seq, and a made-up one
        fake = json.loads(ev[0])
        fake["seq"] = 10**9
        made = json.dumps(fake, separators=(",", ":")).encode() + b"\n"
        write_tar(os.path.join(d, "added.tar"), with_events(ev + [made]))
        self.assert_fails(os.path.join(d, "added.tar"),
                          r"events\.ndjson line %d: FAILED: event seq 1000000000 is not a record "
                          r"of the bundle's segments that matches the query" % (len(ev) + 1))
        write_tar(os.path.join(d, "dup.tar"), with_events(ev + ev[-1:]))
        self.assert_fails(os.path.join(d, "dup.tar"),
                          r"line %d: FAILED: event seq %d appears twice" % (len(ev) + 1, seq[-1]))
        # reordered events
        swapped = [ev[1], ev[0]] + ev[2:]
        write_tar(os.path.join(d, "reordered.tar"), with_events(swapped))
        self.assert_fails(os.path.join(d, "reordered.tar"),
                          r"events\.ndjson line 2: FAILED: event seq %d is out of order" % seq[0])

        # a swapped signature: entry A carries entry B's (CRC made right)
        ents = [n for n, _ in members if n.startswith("entries/")]
        self.assertGreaterEqual(len(ents), 2)
        a = bytearray(dict(members)[ents[0]])
        b = dict(members)[ents[1]]
        a[264:328] = b[264:328]
        a[332:336] = (zlib.crc32(bytes(a[:332])) & 0xffffffff).to_bytes(4, "little")
        write_tar(os.path.join(d, "sig.tar"),
                  [(n, bytes(a) if n == ents[0] else x) for n, x in members])
        self.assert_fails(os.path.join(d, "sig.tar"),
                          r"%s: FAILED: the signature does not match the entry" % re.escape(ents[0]))
        # an entry whose numbers were changed (its signature then fails too)
        a = bytearray(dict(members)[ents[0]])
        a[96:104] = (int.from_bytes(a[96:104], "little") + 1).to_bytes(8, "little")
        a[332:336] = (zlib.crc32(bytes(a[:332])) & 0xffffffff).to_bytes(4, "little")
        write_tar(os.path.join(d, "count.tar"),
                  [(n, bytes(a) if n == ents[0] else x) for n, x in members])
        self.assert_fails(os.path.join(d, "count.tar"), r"%s: FAILED: the signature does not "
                          r"match" % re.escape(ents[0]))

        # a swapped key: another Ed25519 key under the collector key's name
        other = os.path.join(d, "other.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other], check=True)
        other_pub = subprocess.run(["openssl", "pkey", "-in", other, "-pubout"], check=True,
                                   capture_output=True).stdout
        kname = [n for n, _ in members if n.startswith("keys/")][0]
        write_tar(os.path.join(d, "key.tar"),
                  [(n, other_pub if n == kname else x) for n, x in members])
        self.assert_fails(os.path.join(d, "key.tar"),
                          r"%s: FAILED: holds key \w+, not the key its name says" % re.escape(kname))
        # --key: only that key is trusted
        p = self.verify(bundle, "--key", other)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout, r"FAILED: signed by key \w+, not by the key given with --key")

        # a changed byte in a segment image
        img = [n for n, _ in members if n.startswith("segments/")][0]
        data = bytearray(dict(members)[img])
        data[200] ^= 1
        write_tar(os.path.join(d, "block.tar"),
                  [(n, bytes(data) if n == img else x) for n, x in members])
        self.assert_fails(os.path.join(d, "block.tar"),
                          r"%s: FAILED at offset 128: block 0: " % re.escape(img))
        # a member that the manifest does not list
        write_tar(os.path.join(d, "extra.tar"), members + [("notes.txt", b"hello")],
                  fix_manifest=False)
        self.assert_fails(os.path.join(d, "extra.tar"),
                          r"notes\.txt: FAILED: not in the manifest \(added after export\)")
        # the manifest's query narrowed to hide an event: the lines no longer match it
        man2 = dict(man)
        man2["query"] = dict(man["query"], until_ns=UNTIL_NS - 3600 * 10**9)
        write_tar(os.path.join(d, "query.tar"),
                  [(n, json.dumps(man2).encode() if n == "manifest.json" else x)
                   for n, x in members])
        self.assert_fails(os.path.join(d, "query.tar"), r"is not a record of the bundle's "
                          r"segments that matches the query")

        # not a bundle, or no such file: exit 1 with why
        p = self.verify(os.path.join(d, "a.ndjson"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("vigil verify: ", p.stderr)
        # usage
        p = run([VIGIL, "export", "--store", self.vd.store, "user=alice"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("-o BUNDLE.tar", p.stderr)
        p = run([VIGIL, "export", "--store", self.vd.store, "-o", bundle], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("never overwritten", p.stderr)
        p = run([VIGIL, "export", "--store", self.vd.store, "-o", os.path.join(d, "x.tar"),
                 "user=alice AND ("], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertFalse(os.path.exists(os.path.join(d, "x.tar")))

        # after compaction: other segments, other blocks, the same events, and they verify
        run([VIGIL, "compact", "--store", self.vd.store])
        c = sqlite3.connect("file:%s/catalog.db?mode=ro" % self.vd.store, uri=True)
        self.assertGreater(c.execute(
            "SELECT count(*) FROM deletions WHERE reason = 'compacted'").fetchone()[0], 0)
        c.close()
        bundle2, _ = self.export("alice-compacted.tar", "user=alice")
        p = self.verify(bundle2, "--key", pub)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m2 = dict(read_tar(bundle2))
        self.assertEqual(m2["events.ndjson"], dict(members)["events.ndjson"])
        man2 = json.loads(m2["manifest.json"])
        self.assertNotEqual([s["id"] for s in man2["segments"]], [s["id"] for s in man["segments"]])

        # everything in the window (no filter), with --out
        out = os.path.join(d, "all.tar")
        run([VIGIL, "export", "--store", self.vd.store, "--since", SINCE, "--until", UNTIL,
             "--out", out])
        p = self.verify(out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        n = sum(1 for t in times if SINCE_NS <= t < UNTIL_NS)
        self.assertIn("summary: ok: %d events" % n, p.stdout)

    def seq_entries(self):
        """(type, segment_id, count) of every whole entry of seals.seq (segment.md 13.2)."""
        with open(os.path.join(self.vd.store, "seals.seq"), "rb") as f:
            data = f.read()
        out = []
        for i in range(len(data) // 336):
            e = data[i * 336:(i + 1) * 336]
            out.append((e[5], int.from_bytes(e[56:64], "little"),
                        int.from_bytes(e[96:104], "little")))
        return out

    def test_open_segment(self):
        """An open segment is vouched for up to its last CHECKPOINT: export leaves out (and
        counts) what came after, and takes all of it once a checkpoint covers it."""
        import time
        now = int(time.time())
        events = [{"time": iso((now - 5) * 10**9 + i), "user": "dora", "message": "open %d" % i}
                  for i in range(40)]
        self.send(events, "now.ndjson")
        out1, p = self.export_all("open1.tar", "user=dora")
        b1 = json.loads(dict(read_tar(out1))["manifest.json"])["counts"]["events"]
        if b1 < 40:  # no checkpoint since the send (vigild checkpoints every minute)
            self.assertIn("%d matching event" % (40 - b1), p.stderr)
            self.assertIn("not in the bundle", p.stderr)
        else:
            self.assertNotIn("not in the bundle", p.stderr)
        self.assertEqual(self.verify(out1).returncode, 0)
        # once a checkpoint covers the 40 events, all of them, vouched for by it
        CHECKPOINT = 4
        wait_for("a checkpoint of the open segment",
                 lambda: any(t == CHECKPOINT and n >= 40 for t, _, n in self.seq_entries()),
                 seconds=180)
        out2, p = self.export_all("open2.tar", "user=dora")
        self.assertNotIn("not in the bundle", p.stderr)
        m = dict(read_tar(out2))
        man = json.loads(m["manifest.json"])
        self.assertEqual(man["counts"]["events"], 40)
        self.assertEqual([s["state"] for s in man["segments"]], ["open"])
        self.assertEqual([s["entry_type"] for s in man["segments"]], ["CHECKPOINT"])
        p = self.verify(out2)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("CHECKPOINT entry", p.stdout)
        self.assertEqual(sorted(json.loads(l)["message"] for l in m["events.ndjson"].splitlines()),
                         sorted(e["message"] for e in events))

    def export_all(self, name, *words):
        out = os.path.join(self.vd.dir, name)
        p = run([VIGIL, "export", "--store", self.vd.store, "--since", "1h", "-o", out]
                + list(words))
        return out, p


if __name__ == "__main__":
    harness.main()
