"""`vigil verify` finds tampering (schemas/segment.md 11): a flipped byte inside a sealed
segment, a block removed, bytes cut from the middle, a truncated file, a deleted
segment file, and catalog edits (a count, a chain head) are each reported with the
file, the offset and block where the chain breaks, with exit 1; an untouched store, and
one where retention deleted segments by policy, verify with exit 0.

The seal sequence (segment.md 13) catches what the catalog alone cannot: a sealed
segment removed together with its rows (the newest too), a row removed, a sealed row
reopened, a deletion row removed or forged, an open segment removed, entries of the
sequence changed or cut; `--head` catches the sequence cut back, `--key` a key swapped
with everything re-signed; a deleted catalog is rebuilt from the sequence; a store
written before seal sequences fails verify until vigild starts one.

The store is made once by a real vigild (events in three past partitions, sealed and
signed at the next start), then each case works on a fresh copy of it.
"""
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import time
import unittest
import zlib

import harness
from harness import VIGIL, run

SEG_HDR = 128
BLK_HDR = 128
BASE = 1714521600  # 2024-05-01T00:00:00Z
ENTRY = 336  # segment.md 13.2
TYPES = {1: "START", 2: "KEY", 3: "OPEN", 4: "CHECKPOINT", 5: "SEAL", 6: "DELETE"}


def entries(store):
    """The seal sequence's entries as (type name, segment id) (segment.md 13.2)."""
    with open(os.path.join(store, "seals.seq"), "rb") as f:
        data = f.read()
    return [(TYPES[data[i + 5]], struct.unpack_from("<Q", data, i + 56)[0])
            for i in range(0, len(data) - len(data) % ENTRY, ENTRY)]


def block_offsets(path):
    """Offsets of the blocks of a segment file (segment.md 3.1: stored_len at 20,
    index_len at 24)."""
    with open(path, "rb") as f:
        data = f.read()
    offs = []
    off = SEG_HDR
    while off + BLK_HDR <= len(data):
        assert data[off:off + 4] == b"VGBK", "not a block at %d" % off
        stored, index = struct.unpack_from("<II", data, off + 20)
        offs.append(off)
        off += BLK_HDR + index + stored
    assert off == len(data)
    return offs


class Tamper(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vd = harness.Vigild("tamper", store={"block_bytes": "4KiB"})
        vd = cls.vd
        try:
            vd.start()
            path = os.path.join(vd.dir, "events.ndjson")
            with open(path, "w") as f:
                for i in range(1800):  # 600 per partition: several blocks each
                    t = BASE + i * 6
                    f.write(json.dumps({
                        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
                        "message": "tamper test event %d with some text to compress" % i,
                        "host": "node-%d" % (i % 5), "n": i}) + "\n")
            vd.send([path])
            vd.stop()
            vd.start()  # seals the ended partitions at start (and signs them)
            vd.stop()
        except Exception:
            vd.cleanup()
            raise
        cls.pristine = os.path.join(vd.dir, "pristine")
        shutil.copytree(vd.store, cls.pristine)

    @classmethod
    def tearDownClass(cls):
        cls.vd.cleanup()

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="vigil-tamper-", dir=self.vd.dir)
        self.store = os.path.join(self.work, "store")
        shutil.copytree(self.pristine, self.store)
        self.segs = sorted(os.listdir(os.path.join(self.store, "segments")))

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def seg(self, i):
        return os.path.join(self.store, "segments", self.segs[i])

    def verify(self, expect_rc, *extra):
        p = run([VIGIL, "verify", "--store", self.store] + list(extra), check=False)
        self.assertEqual(p.returncode, expect_rc,
                         "vigil verify exited %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        return p.stdout

    def failed_line(self, out, name):
        lines = [l for l in out.splitlines() if l.startswith(name + ": FAILED")]
        self.assertEqual(len(lines), 1, out)
        return lines[0]

    def test_untouched_store_verifies(self):
        self.assertEqual(len(self.segs), 3)
        out = self.verify(0)
        self.assertEqual(out.count("sealed, signature ok"), 3, out)
        self.assertIn("summary: 3 segments checked, 3 ok, 0 failed", out)
        self.assertIn("1800 records: store OK", out)
        # Trusting the store's public key file explicitly works too.
        pub = os.path.join(self.store, "keys", "collector-ed25519.pub.pem")
        self.verify(0, "--key", pub)

    def test_flipped_byte_names_the_block(self):
        offs = block_offsets(self.seg(1))
        self.assertGreaterEqual(len(offs), 3)
        with open(self.seg(1), "r+b") as f:
            f.seek(offs[2] + BLK_HDR + 10)
            b = f.read(1)
            f.seek(offs[2] + BLK_HDR + 10)
            f.write(bytes([b[0] ^ 0x01]))
        line = self.failed_line(self.verify(1), self.segs[1])
        self.assertIn("at offset %d: block 2:" % offs[2], line)
        self.assertIn("checksum mismatch", line)
        self.assertNotIn(self.segs[0] + ": FAILED", self.verify(1))

    def test_block_removed(self):
        path = self.seg(0)
        offs = block_offsets(path)
        with open(path, "rb") as f:
            data = f.read()
        # Cut block 1 out whole: every block after it chains from the wrong hash.
        with open(path, "wb") as f:
            f.write(data[:offs[1]] + data[offs[2]:])
        line = self.failed_line(self.verify(1), self.segs[0])
        self.assertIn("at offset %d: block 1:" % offs[1], line)
        self.assertIn("chain hash mismatch", line)

    def test_bytes_cut_from_the_middle(self):
        path = self.seg(2)
        offs = block_offsets(path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:offs[1] + 300] + data[offs[1] + 700:])
        line = self.failed_line(self.verify(1), self.segs[2])
        self.assertIn("at offset %d: block 1:" % offs[1], line)

    def test_truncated_file(self):
        path = self.seg(1)
        offs = block_offsets(path)
        # At a block boundary: the chain is fine but blocks are missing at the end.
        os.truncate(path, offs[-1])
        line = self.failed_line(self.verify(1), self.segs[1])
        self.assertIn("at offset %d: block %d:" % (offs[-1], len(offs) - 1), line)
        self.assertIn("blocks were removed from the end", line)
        # Inside a block.
        os.truncate(path, offs[1] + BLK_HDR + 50)
        line = self.failed_line(self.verify(1), self.segs[1])
        self.assertIn("at offset %d: block 1:" % offs[1], line)
        self.assertIn("runs past the end", line)

    def test_deleted_segment_file(self):
        os.unlink(self.seg(0))
        out = self.verify(1)
        line = self.failed_line(out, self.segs[0])
        self.assertIn("file missing", line)
        self.assertIn("no deletion by policy", line)
        self.assertIn("2 ok, 1 failed", out)

    def query(self, cmd, *extra):
        return run([VIGIL, cmd, "--store", self.store, "--format", "ndjson"] + list(extra),
                   check=False)

    def test_skip_damaged(self):
        """A damaged segment fails search and stats, naming it; --skip-damaged reads
        every other segment and says which it left out (stderr and --explain)."""
        offs = block_offsets(self.seg(1))
        with open(self.seg(1), "r+b") as f:
            f.seek(offs[1] + BLK_HDR + 20)
            b = f.read(1)
            f.seek(offs[1] + BLK_HDR + 20)
            f.write(bytes([b[0] ^ 0x40]))
        os.unlink(self.seg(2))
        for cmd, extra in (("search", ()), ("stats", ("--by", "host"))):
            p = self.query(cmd, *extra)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertEqual(p.stdout, "")
            self.assertRegex(p.stderr, r"segment '%s' offset %d: .*checksum mismatch" %
                             (self.segs[1], offs[1]))
            self.assertIn("--skip-damaged reads every other segment", p.stderr)

            p = self.query(cmd, "--skip-damaged", "--explain", *extra)
            self.assertEqual(p.returncode, 0, p.stderr)
            skipped = [l for l in p.stderr.splitlines() if "skipped a damaged segment" in l]
            self.assertEqual(len(skipped), 2, p.stderr)
            self.assertIn("segment '%s' offset %d" % (self.segs[1], offs[1]), skipped[0] + skipped[1])
            self.assertIn("segment '%s': cannot open: no such file" % self.segs[2],
                          skipped[0] + skipped[1])
            self.assertIn("explain: damaged segments skipped (--skip-damaged): 2", p.stderr)
            rows = [json.loads(l) for l in p.stdout.splitlines()]
            if cmd == "search":
                # only the first segment's events, none of the damaged one's good blocks
                self.assertEqual(len(rows), 600)
                self.assertEqual({r["n"] for r in (json.loads(x["raw"]) if isinstance(x["raw"], str)
                                                   else x["raw"] for x in rows)},
                                 set(range(600)))
            else:
                self.assertEqual(sum(r["count"] for r in rows), 600)

    def db(self):
        return sqlite3.connect(os.path.join(self.store, "catalog.db"))

    def seg_id(self, i):
        return int(self.segs[i].split("-")[1].split(".")[0])

    def remove_rows(self, i):
        with self.db() as c:
            c.execute("DELETE FROM segments WHERE file = ?", (self.segs[i],))
            c.execute("DELETE FROM seals WHERE segment_id = ?", (self.seg_id(i),))

    def vigild(self, name, **kw):
        """A vigild on this test's copy of the store (started)."""
        vd = harness.Vigild(name, **kw)
        self.addCleanup(vd.cleanup)
        vd.store = self.store
        return vd.start()

    def test_sealed_segment_removed_with_its_rows(self):
        """Issue 12: the file and its segments and seals rows deleted together, for a
        sealed segment in the middle and for the newest: named, with what it held."""
        pristine = self.store + ".pristine"
        shutil.copytree(self.store, pristine)
        for i in (1, 2):
            shutil.rmtree(self.store)
            shutil.copytree(pristine, self.store)
            os.unlink(self.seg(i))
            self.remove_rows(i)
            out = self.verify(1)
            line = self.failed_line(out, self.segs[i])
            self.assertIn("the seal sequence sealed it", line)
            self.assertIn("600 records, seq ", line)
            self.assertIn("its catalog row and its file are gone: removed", line)
            self.assertIn("2 ok, 1 failed", out)

    def test_row_removed_file_kept(self):
        self.remove_rows(0)
        line = self.failed_line(self.verify(1), self.segs[0])
        self.assertIn("its catalog row is gone; the file is still there, as sealed", line)

    def test_sealed_row_reopened(self):
        """Issue 12: a sealed row turned back to open, its seal deleted: named; the next
        vigild start seals it again from the sequence (the file is as sealed)."""
        with self.db() as c:
            c.execute("UPDATE segments SET state = 'open', sealed = NULL WHERE file = ?",
                      (self.segs[1],))
            c.execute("DELETE FROM seals WHERE segment_id = ?", (self.seg_id(1),))
        line = self.failed_line(self.verify(1), self.segs[1])
        self.assertIn("the catalog lists it as open: reopened by an edit", line)
        vd = self.vigild("reopened")
        vd.stop()
        self.assertIn("sealed by the seal sequence", vd.read_log())
        out = self.verify(0)
        self.assertIn("%s: ok" % self.segs[1], out)

    def test_deletion_rows_removed_or_forged(self):
        """Issue 12: compaction's deletions rows deleted; a deletion forged in the
        catalog for a segment removed whole."""
        p = run([VIGIL, "compact", "--store", self.store])
        self.assertIn("compacted 3 segments", p.stdout)
        self.verify(0)
        with self.db() as c:
            c.execute("DELETE FROM deletions WHERE segment_id = ?", (self.seg_id(0),))
        line = self.failed_line(self.verify(1), self.segs[0])
        self.assertIn("the seal sequence deleted it", line)
        self.assertIn("its deletions row was removed", line)

        shutil.rmtree(self.store)
        shutil.copytree(self.pristine, self.store)
        with self.db() as c:
            c.execute("INSERT INTO deletions (segment_id, file, part_start, part_end, count, "
                      "blocks, bytes, bytes_raw, chain_head, created, sealed, reason, deleted) "
                      "SELECT id, file, part_start, part_end, count, blocks, bytes, bytes_raw, "
                      "chain_head, created, sealed, 'max_age', sealed FROM segments "
                      "WHERE file = ?", (self.segs[2],))
        os.unlink(self.seg(2))
        self.remove_rows(2)
        out = self.verify(1)
        self.assertIn("%s: FAILED: a deletion (max_age) the seal sequence does not record" %
                      self.segs[2], out)

    def test_open_segment_removed(self):
        """Issue 12: the newest segment, open, removed with its row: named."""
        vd = self.vigild("open")
        ev = os.path.join(self.work, "now.ndjson")
        with open(ev, "w") as f:
            f.write(json.dumps({"message": "now", "n": 1}) + "\n")
        vd.send([ev])
        vd.stop()
        with self.db() as c:
            sid, name = c.execute("SELECT id, file FROM segments WHERE state = 'open'").fetchone()
        self.assertIn(("OPEN", sid), entries(self.store))
        os.unlink(os.path.join(self.store, "segments", name))
        with self.db() as c:
            c.execute("DELETE FROM segments WHERE id = ?", (sid,))
        line = self.failed_line(self.verify(1), name)
        self.assertIn("neither its catalog row nor its file is there: removed", line)

    def seq_bytes(self):
        with open(os.path.join(self.store, "seals.seq"), "rb") as f:
            return bytearray(f.read())

    def put_seq(self, data):
        with open(os.path.join(self.store, "seals.seq"), "wb") as f:
            f.write(data)

    def test_sequence_changed_or_cut(self):
        data = self.seq_bytes()
        kinds = entries(self.store)
        self.assertEqual(kinds[0][0], "START")
        self.assertEqual(sum(1 for k in kinds if k[0] == "SEAL"), 3)
        # A flipped byte: the entry fails its checksum, the next its prev hash.
        bad = bytearray(data)
        bad[2 * ENTRY + 100] ^= 1
        self.put_seq(bad)
        out = self.verify(1)
        self.assertIn("seals.seq: FAILED: entry 2: entry checksum mismatch", out)
        self.assertIn("seals.seq: FAILED: entry 3: prev hash mismatch", out)
        # A field changed and the CRC made right: the signature does not match.
        bad = bytearray(data)
        struct.pack_into("<Q", bad, 2 * ENTRY + 96, 7)  # count
        struct.pack_into("<I", bad, 2 * ENTRY + 332, zlib.crc32(bytes(bad[2 * ENTRY:2 * ENTRY + 332])))
        self.put_seq(bad)
        out = self.verify(1)
        self.assertRegex(out, r"entry 2 \(\w+ of segment \d+\): the signature does not match")
        # The last SEAL cut off: its row is sealed in the catalog only.
        last = max(i for i, k in enumerate(kinds) if k[0] == "SEAL")
        self.put_seq(data[:last * ENTRY])
        sid = kinds[last][1]
        name = [s for s in self.segs if int(s.split("-")[1].split(".")[0]) == sid][0]
        line = self.failed_line(self.verify(1), name)
        self.assertIn("sealed in the catalog but not in the seal sequence", line)

    def test_head_pins_the_sequence(self):
        """The sequence cut back with everything it recorded since: a consistent older
        store (documented), which only a head noted earlier reveals (--head)."""
        out = self.verify(0)
        head = [l for l in out.splitlines() if l.startswith("seal sequence:")][0].split()[-1]
        self.assertEqual(len(head), 64)
        before = self.seq_bytes()
        vd = self.vigild("head")
        ev = os.path.join(self.work, "may2.ndjson")
        with open(ev, "w") as f:
            for i in range(50):
                f.write(json.dumps({"time": "2024-05-02T00:%02d:00Z" % i, "message": "m%d" % i})
                        + "\n")
        vd.send([ev])
        vd.stop()
        vd.start()  # seals it
        vd.stop()
        out = self.verify(0)
        new_head = [l for l in out.splitlines() if l.startswith("seal sequence:")][0].split()[-1]
        self.verify(0, "--head", head)
        # Roll back: the new segment, its rows and its entries gone.
        with self.db() as c:
            rows = c.execute("SELECT id, file FROM segments WHERE part_start >= ?",
                             ((BASE + 86400) * 10**9,)).fetchall()
            self.assertEqual(len(rows), 1)
            c.execute("DELETE FROM segments WHERE id = ?", (rows[0][0],))
            c.execute("DELETE FROM seals WHERE segment_id = ?", (rows[0][0],))
        os.unlink(os.path.join(self.store, "segments", rows[0][1]))
        self.put_seq(before)
        self.verify(0)  # what the store alone cannot show (segment.md 13.7)
        out = self.verify(1, "--head", new_head)
        self.assertIn("--head %s...: no entry has this hash: the sequence was cut back" %
                      new_head[:16], out)

    def test_key_swapped_and_everything_resigned(self):
        """Replacing everything, key included: only --key with the key held elsewhere
        sees it (segment.md 13.7)."""
        pub = os.path.join(self.work, "held-elsewhere.pub.pem")
        p = run([VIGIL, "pki", "pubkey", "--store", self.store])
        with open(pub, "w") as f:
            f.write(p.stdout)
        with open(os.path.join(self.store, "keys", "collector-ed25519.pub.pem")) as f:
            self.assertEqual(f.read(), p.stdout)
        self.verify(0, "--key", pub)
        shutil.rmtree(os.path.join(self.store, "keys"))
        os.unlink(os.path.join(self.store, "seals.seq"))
        with self.db() as c:
            c.execute("DELETE FROM keys")
            c.execute("UPDATE seals SET key_id = NULL, signature = NULL, signed = NULL")
        vd = self.vigild("swap")  # a new key signs the seals and starts a new sequence
        vd.stop()
        out = self.verify(0)
        self.assertIn("note: the seal sequence began at", out)
        out = self.verify(1, "--key", pub)
        self.assertIn("signed by another key than the trusted one", out)
        self.assertIn("not the trusted one (--key)", out)

    def test_catalog_deleted(self):
        """The sequence survives the catalog: verify names what it held, and a vigild
        start rebuilds the sealed rows from it."""
        for f in os.listdir(self.store):
            if f.startswith("catalog.db"):
                os.unlink(os.path.join(self.store, f))
        out = self.verify(1)
        self.assertIn("catalog.db: FAILED: missing", out)
        for s in self.segs:
            self.assertIn("%s: FAILED: the seal sequence sealed it" % s, out)
            self.assertIn("the file is still there, as sealed", self.failed_line(out, s))
        vd = self.vigild("rebuilt")
        vd.stop()
        out = self.verify(0)
        self.assertEqual(out.count("sealed, signature ok"), 3, out)
        self.assertIn("1800 records: store OK", out)

    def test_store_without_sequence(self):
        """A store written before seal sequences: verify says so; vigild starts one and
        adopts what is there."""
        os.unlink(os.path.join(self.store, "seals.seq"))
        out = self.verify(1)
        self.assertIn("seals.seq: FAILED: no seal sequence", out)
        vd = self.vigild("migrate")
        vd.stop()
        self.assertIn("started its seal sequence on a store that held 3 segments", vd.read_log())
        kinds = entries(self.store)
        self.assertEqual(kinds[0][0], "START")
        self.assertEqual(sorted(k for k in kinds if k[0] == "SEAL"),
                         sorted(("SEAL", self.seg_id(i)) for i in range(3)))
        out = self.verify(0)
        self.assertIn("note: the seal sequence began at", out)
        self.assertIn("held 3 segments", out)

    def test_catalog_count_edited(self):
        with self.db() as c:
            c.execute("UPDATE segments SET count = count - 1 WHERE file = ?", (self.segs[1],))
        line = self.failed_line(self.verify(1), self.segs[1])
        self.assertIn("catalog counts", line)

    def test_catalog_head_edited(self):
        with self.db() as c:
            c.execute("UPDATE segments SET chain_head = ? WHERE file = ?",
                      ("ab" * 32, self.segs[2]))
        line = self.failed_line(self.verify(1), self.segs[2])
        self.assertIn("does not match the catalog's", line)

    def test_catalog_row_and_file_forged_together(self):
        # Cut the last block and make the catalog agree (count, blocks, bytes, head):
        # the chain and counts check out, the seal signature does not.
        path = self.seg(0)
        offs = block_offsets(path)
        os.truncate(path, offs[-1])
        with self.db() as c:
            row = c.execute("SELECT count, blocks, bytes_raw, ts_max, seq_max FROM segments "
                            "WHERE file = ?", (self.segs[0],)).fetchone()
        out = run([VIGIL, "search", "--store", self.pristine, "--format", "ndjson",
                   "--since", "2024-05-01T00:00:00Z", "--until", "2024-05-01T01:00:00Z"]).stdout
        self.assertEqual(len(out.splitlines()), row[0])
        # What the shortened file holds, read back through the walk that verify does:
        # easiest is to let a throwaway copy recompute it.
        probe = os.path.join(self.work, "probe")
        shutil.copytree(self.store, probe)
        with sqlite3.connect(os.path.join(probe, "catalog.db")) as c:
            c.execute("UPDATE segments SET state = 'open' WHERE file = ?", (self.segs[0],))
        # Recovery (a writer start) rebuilds the open row from the file (without the seal
        # sequence, which would keep it sealed as it was).
        os.unlink(os.path.join(probe, "seals.seq"))
        vd2 = harness.Vigild("probe")
        try:
            vd2.store = probe
            vd2.start()
            vd2.stop()
        finally:
            vd2.cleanup()
        with sqlite3.connect(os.path.join(probe, "catalog.db")) as c:
            fixed = c.execute("SELECT count, blocks, bytes, bytes_raw, ts_min, ts_max, seq_min, "
                              "seq_max, chain_head FROM segments WHERE file = ?",
                              (self.segs[0],)).fetchone()
        self.assertLess(fixed[0], row[0])
        with self.db() as c:
            c.execute("UPDATE segments SET count=?, blocks=?, bytes=?, bytes_raw=?, ts_min=?, "
                      "ts_max=?, seq_min=?, seq_max=?, chain_head=? WHERE file = ?",
                      fixed + (self.segs[0],))
        line = self.failed_line(self.verify(1), self.segs[0])
        self.assertIn("signature does not match the catalog row", line)

    def test_deletion_by_policy_is_not_tampering(self):
        # max_age counts from receipt too (the events came moments ago): a second of it
        vd = harness.Vigild("tamper-retention",
                            store={"retention": "{ max_age: 1s, interval: 1s }"})
        self.addCleanup(vd.cleanup)
        vd.store = self.store
        vd.start()  # retention runs every second: every 2024 partition is past max_age
        deadline = time.monotonic() + harness.timeout(20)

        def old_segments():
            return [f for f in os.listdir(os.path.join(self.store, "segments"))
                    if f.startswith("2024")]
        while old_segments() and time.monotonic() < deadline:
            time.sleep(0.05)
        ev = []
        while len(ev) < 3 and time.monotonic() < deadline:
            ev = vd.search("source=vigil", "action=retention_delete")
            time.sleep(0.1)
        vd.stop()
        # Only the segment of today's partition is left: it holds the events below.
        self.assertEqual(old_segments(), [])
        out = self.verify(0)
        self.assertEqual(out.count("deleted by policy (max_age"), 3, out)
        self.assertIn("3 deleted by policy", out)
        # Each deletion is evidence too: a source=vigil event naming the segment.
        self.assertEqual(len(ev), 3)
        self.assertTrue(all("retention (max_age) deleted segment" in e["message"] for e in ev))
        self.assertEqual({e["message"].split()[4].rstrip(":") for e in ev}, set(self.segs))
        with sqlite3.connect(os.path.join(self.store, "catalog.db")) as c:
            rows = c.execute("SELECT file, count, reason, chain_head FROM deletions "
                             "ORDER BY segment_id").fetchall()
        self.assertEqual([r[0] for r in rows], self.segs)
        self.assertEqual(sum(r[1] for r in rows), 1800)
        self.assertTrue(all(r[2] == "max_age" and len(r[3]) == 64 for r in rows))


if __name__ == "__main__":
    harness.main()
