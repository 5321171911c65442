"""Search and stats that fit an investigation (issue 13, items 6 and 7): seq lookups
through the index, --reverse, clock times, --fields, stats aggregates and time buckets,
progress and interruption, a closed pipe, compared with an independent reference.

The events come from a seeded generator; they are shipped out of order (shuffled), with
some exactly on partition edges, into a vigild with small blocks. The reference is
Python's sqlite3 over the generator's own values (never vigil's output), joined to the
seq vigild gave each event by its unique message. Every check runs over the store as
written (many small lz4 blocks) and over a copy rewritten by `vigil compact` (large zstd
blocks)."""
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

import harness
from harness import VIGIL, Vigild, run, wait_for

T0 = 1714568400  # 2024-05-01T13:00:00Z, a partition edge (1h partitions)
HOUR = 3600
N = 2400
PODS = ["web-%d" % i for i in range(7)]
NAMESPACES = ["prod", "staging"]
USERS = ["alice", "bob", "carol", "dave", "erin", None]
IMAGES = ["nginx:1.25", "registry.example.com/team/api:2.1", "redis:7", None]
TEAMS = ["red", "blue", "green"]


def iso(ns):
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac


def generate():
    """The events, as shipped (shuffled), and their reference rows by message."""
    rnd = random.Random(1313)
    events = []
    for i in range(N):
        # 12:30 to 15:30 UTC, so three partition edges lie inside; some events sit
        # exactly on an edge, or one nanosecond before it.
        if i % 97 == 0:
            ts = (T0 + HOUR * (i % 3)) * 10**9 - (i % 2)
        else:
            ts = (T0 - 1800) * 10**9 + rnd.randrange(3 * HOUR * 10**9)
        ev = {"time": iso(ts), "message": "event %05d" % i,
              "pod": rnd.choice(PODS), "namespace": rnd.choice(NAMESPACES),
              "outcome": rnd.choice(["success", "failure", "failure"]),
              "team": rnd.choice(TEAMS), "n": rnd.randrange(10),
              "cmdline": "sh -c 'job %d'" % rnd.randrange(40)}
        user = rnd.choice(USERS)
        if user:
            ev["user"] = user
        if rnd.random() < 0.8:
            ev["src_ip"] = "203.0.113.%d" % rnd.randrange(1, 30)
        image = rnd.choice(IMAGES)
        if image:
            ev["image"] = image
        if rnd.random() < 0.2:
            ev["cve"] = "CVE-2024-%04d" % rnd.randrange(5)
        events.append((ts, ev))
    shipped = events[:]
    rnd.shuffle(shipped)  # out-of-order arrival
    return shipped


class Store:
    """A store vigild wrote from the generator's events, a compacted copy of it, and the
    reference database."""

    def __init__(self):
        self.vd = Vigild("investigate", store={"block_bytes": "4KiB"})
        self.vd.start()
        shipped = generate()
        path = os.path.join(self.vd.dir, "events.ndjson")
        with open(path, "w") as f:
            for _, ev in shipped:
                f.write(json.dumps(ev) + "\n")
        self.vd.send([path])
        # vigild seals partitions that ended over a minute ago every 10 s; vigil compact
        # rewrites sealed ones only.
        wait_for("the partitions sealed", lambda: self.open_segments() == 0, seconds=60)
        self.vd.stop()
        self.written = self.vd.store
        self.compacted = os.path.join(self.vd.dir, "compacted")
        shutil.copytree(self.written, self.compacted)
        p = run([VIGIL, "compact", "--store", self.compacted, "--block-bytes", "65536"],
                check=False)
        if p.returncode != 0:
            raise AssertionError("vigil compact failed: " + p.stderr)
        with sqlite3.connect(os.path.join(self.compacted, "catalog.db")) as c:
            n = c.execute("SELECT count(*) FROM deletions WHERE reason = 'compacted'").fetchone()[0]
        if n < 3:
            raise AssertionError("only %d segments compacted: %s" % (n, p.stderr))
        self.stores = {"as written": self.written, "compacted": self.compacted}
        self.db = self.reference(shipped)

    def open_segments(self):
        with sqlite3.connect(os.path.join(self.vd.store, "catalog.db")) as c:
            return c.execute("SELECT count(*) FROM segments WHERE state = 'open'").fetchone()[0]

    def reference(self, shipped):
        """sqlite3 over the generator's values; seq from vigil, joined by message."""
        p = run([VIGIL, "search", "--store", self.written, "--format", "ndjson"])
        seqs = {}
        for line in p.stdout.splitlines():
            e = json.loads(line)
            seqs[e["message"]] = e["seq"]
        if len(seqs) != N:
            raise AssertionError("%d events stored, %d shipped" % (len(seqs), N))
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE ev (ts INTEGER, seq INTEGER, message TEXT, pod TEXT,"
                   " namespace TEXT, user TEXT, src_ip TEXT, outcome TEXT, image TEXT,"
                   " cmdline TEXT, cve TEXT, team TEXT, n INTEGER)")
        for ts, ev in shipped:
            db.execute("INSERT INTO ev VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (ts, seqs[ev["message"]], ev["message"], ev["pod"], ev["namespace"],
                        ev.get("user"), ev.get("src_ip"), ev["outcome"], ev.get("image"),
                        ev["cmdline"], ev.get("cve"), ev["team"], ev["n"]))
        return db

    def cleanup(self):
        self.vd.cleanup()


STORE = None


def setUpModule():
    global STORE
    STORE = Store()


def tearDownModule():
    if STORE:
        STORE.cleanup()


def vigil(*args, check=True):
    return run([VIGIL] + list(args), check=check)


def ndjson(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def blocks(stderr):
    m = re.search(r"blocks read (\d+), skipped by time (\d+), skipped by index (\d+)", stderr)
    if not m:
        raise AssertionError("no explain line in: " + stderr)
    return int(m.group(1)), int(m.group(2)) + int(m.group(3))


class Search(unittest.TestCase):
    def q(self, sql, *args):
        return STORE.db.execute(sql, args).fetchall()

    def test_seq_lookups_use_the_index(self):
        rnd = random.Random(7)
        all_seqs = [r[0] for r in self.q("SELECT seq FROM ev")]
        for name, store in STORE.stores.items():
            total = sum(blocks(vigil("search", "--store", store, "--explain", "--format",
                                    "ndjson", "--limit", "1", "NOT", "pod=none").stderr))
            for _ in range(6):
                n = rnd.choice(all_seqs)
                m = n + rnd.randrange(0, 40)
                for flt, lo, hi in (("seq=%d" % n, n, n), ("seq=%d..%d" % (n, m), n, m)):
                    p = vigil("search", "--store", store, "--format", "ndjson", "--explain", flt)
                    got = [(e["seq"], e["message"]) for e in ndjson(p.stdout)]
                    want = self.q("SELECT seq, message FROM ev WHERE seq BETWEEN ? AND ?"
                                  " ORDER BY ts, seq", lo, hi)
                    self.assertEqual(got, [tuple(w) for w in want], (name, flt))
                    read, skipped = blocks(p.stderr)
                    # The seq range, not a scan: a block or two read per segment (arrival
                    # was shuffled, so each partition holds some of every seq range),
                    # the others skipped unread.
                    segs = int(re.search(r"segments (\d+);", p.stderr).group(1))
                    self.assertLessEqual(read, 2 * segs, (name, flt, p.stderr))
                    self.assertGreater(skipped, 0, (name, flt, p.stderr))
                    self.assertLessEqual(read + skipped, total, (name, flt))
            # A range past the end finds nothing and reads nothing.
            p = vigil("search", "--store", store, "--format", "ndjson", "--explain",
                      "seq=%d..%d" % (max(all_seqs) + 1, max(all_seqs) + 100))
            self.assertEqual(p.stdout, "")
            self.assertEqual(blocks(p.stderr)[0], 0)
            p = vigil("search", "--store", store, "seq=9..5", check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("empty range '9..5'", p.stderr)

    def test_reverse(self):
        for name, store in STORE.stores.items():
            for flt, where in (("pod=web-1", "pod = 'web-1'"),
                               ("outcome=failure user=bob", "outcome = 'failure' AND user = 'bob'")):
                want = [r[0] for r in self.q("SELECT seq FROM ev WHERE %s ORDER BY ts DESC,"
                                             " seq DESC" % where)]
                p = vigil("search", "--store", store, "--format", "ndjson", "--reverse", flt)
                self.assertEqual([e["seq"] for e in ndjson(p.stdout)], want, (name, flt))
                p = vigil("search", "--store", store, "--format", "ndjson", "--reverse",
                          "--limit", "7", flt)
                self.assertEqual([e["seq"] for e in ndjson(p.stdout)], want[:7], (name, flt))
                self.assertIn("showing the latest 7 of %d matches" % len(want), p.stderr)

    def test_clock_times(self):
        # README "Searching": --until 14:00 is on the date of --since (UTC).
        want = [r[0] for r in self.q("SELECT seq FROM ev WHERE ts >= ? AND ts < ? ORDER BY ts,"
                                     " seq", T0 * 10**9, (T0 + HOUR) * 10**9)]
        self.assertGreater(len(want), 100)
        for name, store in STORE.stores.items():
            p = vigil("search", "--store", store, "--format", "ndjson", "--since",
                      "2024-05-01T13:00:00Z", "--until", "14:00")
            self.assertEqual([e["seq"] for e in ndjson(p.stdout)], want, name)
            p = vigil("search", "--store", store, "--format", "ndjson", "--since", "13:00",
                      "--until", "2024-05-01T14:00:00Z")
            self.assertEqual([e["seq"] for e in ndjson(p.stdout)], want, name)
        p = vigil("search", "--store", STORE.written, "--until", "25:00", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("'25:00' is not a time", p.stderr)

    def test_closed_pipe_ends_quietly(self):
        for fmt in ("ndjson", "table", "csv", "json"):
            proc = subprocess.Popen([VIGIL, "search", "--store", STORE.written, "--format", fmt],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            proc.stdout.readline()
            proc.stdout.close()  # the reader goes away, as `| head -1` does
            err = proc.stderr.read().decode()
            proc.stderr.close()
            rc = proc.wait(timeout=harness.timeout(60))
            self.assertEqual(rc, 0, (fmt, err))
            self.assertEqual(err, "", fmt)


def hour_text(ns, width):
    b = ns // width * width
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b // 10**9))


class Stats(unittest.TestCase):
    """vigil stats against sqlite3 over the generator's values: counts, dc, min/max(ts),
    time buckets, raw keys, --rare, and the order of ties."""

    def q(self, sql, *args):
        return [list(r) for r in STORE.db.execute(sql, args).fetchall()]

    def stats(self, store, *args):
        p = vigil("stats", "--store", store, "--format", "json", *args)
        return [list(r.values()) for r in json.loads(p.stdout)]

    def test_counts_dc_first_and_last_seen(self):
        want = self.q("SELECT src_ip, count(*), count(DISTINCT user), min(ts), max(ts) FROM ev"
                      " WHERE outcome = 'failure' GROUP BY src_ip"
                      " ORDER BY count(*) DESC, src_ip IS NULL, src_ip")
        for r in want:
            r[3], r[4] = iso(r[3]), iso(r[4])
        self.assertGreater(len(want), 20)
        for name, store in STORE.stores.items():
            got = self.stats(store, "outcome=failure", "--by", "src_ip", "--top", "0",
                             "--agg", "count,dc(user),min(ts),max(ts)")
            self.assertEqual(got, want, name)
            # --top 5, and the other spelling of the aggregates
            got = self.stats(store, "outcome=failure", "--by", "src_ip", "--top", "5",
                             "--agg", "count", "--agg", "dc:user,min:ts,max:ts")
            self.assertEqual(got, want[:5], name)
            # the default: count, the 20 most frequent
            got = self.stats(store, "--by", "pod,namespace")
            self.assertEqual(got, self.q("SELECT pod, namespace, count(*) FROM ev GROUP BY 1, 2"
                                         " ORDER BY 3 DESC, 1, 2 LIMIT 20"), name)

    def test_time_buckets(self):
        for width, spec in ((HOUR * 10**9, "ts:1h"), (15 * 60 * 10**9, "ts:15m"),
                            (7 * 60 * 10**9, "ts:7m")):
            rows = self.q("SELECT ts, pod FROM ev WHERE user = 'alice'")
            counts = {}
            for ts, _ in rows:
                k = ts // width * width
                counts[k] = counts.get(k, 0) + 1
            want = [[hour_text(k, width), counts[k]] for k in sorted(counts)]
            for name, store in STORE.stores.items():
                # in time order, all of them (no --top cut)
                got = self.stats(store, "user=alice", "--by", spec)
                self.assertEqual(got, want, (name, spec))
        # a bucket with another key: bucket order, then most frequent first
        rows = self.q("SELECT ts, namespace FROM ev")
        counts = {}
        for ts, ns in rows:
            k = (hour_text(ts, HOUR * 10**9), ns)
            counts[k] = counts.get(k, 0) + 1
        want = sorted(([k[0], k[1], c] for k, c in counts.items()),
                      key=lambda r: (r[0], -r[2], r[1]))
        # the partition edges: events exactly on 13:00, 14:00, 15:00 open their bucket
        self.assertIn("2024-05-01T13:00:00Z", [r[0] for r in want])
        for name, store in STORE.stores.items():
            self.assertEqual(self.stats(store, "--by", "ts:1h,namespace"), want, name)

    def test_rare_and_raw_keys(self):
        want = self.q("SELECT cmdline, count(*) FROM ev GROUP BY 1 ORDER BY 2, 1 LIMIT 6")
        want_team = self.q("SELECT team, n, count(*), count(DISTINCT pod) FROM ev"
                           " GROUP BY 1, 2 ORDER BY 3 DESC, 1, n")
        for r in want_team:
            r[1] = str(r[1])  # a raw number as a key: its JSON text
        for name, store in STORE.stores.items():
            self.assertEqual(self.stats(store, "--by", "cmdline", "--rare", "--top", "6"), want,
                             name)
            got = self.stats(store, "--by", "raw.team,raw.n", "--agg", "count,dc(pod)",
                             "--top", "0")
            # ties by the key's text: "10" sorts before "2"; compare as sets of rows and
            # check the order of the counts
            self.assertEqual(sorted(got), sorted(want_team), name)
            self.assertEqual([r[2] for r in got], [r[2] for r in want_team], name)
            # dc of a raw path, without --by: one row
            got = self.stats(store, "outcome=failure", "--agg", "count,dc(raw.team),dc(cve)")
            self.assertEqual(got, self.q("SELECT count(*), count(DISTINCT team),"
                                         " count(DISTINCT cve) FROM ev WHERE outcome='failure'"),
                             name)
        got = self.stats(STORE.written, "pod=nosuch", "--agg", "count,min(ts)")
        self.assertEqual(got, [[0, None]])

    def test_bad_specs(self):
        for args, why in ((["--by", "ts"], "--by: 'ts': group times into buckets, like ts:1h"),
                          (["--by", "ts:soon"], "bad bucket width 'soon'"),
                          (["--by", "container"], "did you mean 'container_id' or"),
                          (["--agg", "avg(ts)"], "--agg: 'avg(ts)' is not an aggregate"),
                          (["--agg", "min(pod)"], "min and max are of ts, received, seq")):
            p = vigil("stats", "--store", STORE.written, *args, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(why, p.stderr, args)


class Fields(unittest.TestCase):
    """--fields for every format: the columns and keys follow it, raw paths included."""

    COLS = ["ts", "seq", "pod", "image", "cve", "cmdline", "raw.team", "raw.n", "user"]

    def test_csv_ndjson_table(self):
        import csv
        import io
        rows = STORE.db.execute("SELECT ts, seq, pod, image, cve, cmdline, team, n, user FROM ev"
                                " WHERE namespace = 'prod' ORDER BY ts, seq").fetchall()
        for name, store in STORE.stores.items():
            p = vigil("search", "--store", store, "--format", "csv", "--fields",
                      ",".join(self.COLS), "namespace=prod")
            got = list(csv.reader(io.StringIO(p.stdout, newline="")))
            self.assertEqual(got[0], self.COLS)
            want = [[iso(r[0]), str(r[1]), r[2], r[3] or "", r[4] or "", r[5], r[6], str(r[7]),
                     r[8] or ""] for r in rows]
            self.assertEqual(got[1:], want, name)
            p = vigil("search", "--store", store, "--format", "ndjson", "--fields",
                      ",".join(self.COLS), "namespace=prod")
            got = ndjson(p.stdout)
            want = []
            for r in rows:
                e = {"ts": iso(r[0]), "seq": r[1], "pod": r[2], "image": r[3], "cve": r[4],
                     "cmdline": r[5], "raw.team": r[6], "raw.n": r[7], "user": r[8]}
                want.append({k: v for k, v in e.items() if v is not None})
            self.assertEqual(got, want, name)
            self.assertEqual([list(e) for e in got[:3]], [list(e) for e in want[:3]])  # key order
        p = vigil("search", "--store", STORE.written, "--fields", "pod,image,cve", "--limit",
                  "2", "namespace=prod")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["POD", "IMAGE", "CVE"])
        self.assertEqual(len(lines), 3)
        p = vigil("search", "--store", STORE.written, "--fields", "pod,container", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--fields: unknown field 'container' (did you mean 'container_id' or "
                      "'container_name'?)", p.stderr)


def slow_filter():
    """Matches every event and makes each cost: 250 full-text words that occur nowhere,
    under a NOT, so the index can skip nothing and every record is searched 250 times."""
    return ["NOT", "(" + " OR ".join("zq%03d" % i for i in range(250)) + ")"]


class Interrupt(unittest.TestCase):
    """Ctrl-C (SIGINT) during a scan: what was found so far, a message, exit 130; the
    progress line on a terminal, none when stderr is not one."""

    @classmethod
    def setUpClass(cls):
        cls.vd = Vigild("interrupt", store={"block_bytes": "16KiB"})
        cls.vd.start()
        path = os.path.join(cls.vd.dir, "events.ndjson")
        with open(path, "w") as f:
            for i in range(20000):
                # A note of some length: every full-text word searches it.
                f.write(json.dumps({"time": iso((T0 + i) * 10**9), "message": "event %d" % i,
                                    "pod": PODS[i % 7], "team": TEAMS[i % 3],
                                    "note": "lorem ipsum dolor sit amet %d " % i * 8}) + "\n")
        cls.vd.send([path])
        cls.vd.stop()

    @classmethod
    def tearDownClass(cls):
        cls.vd.cleanup()

    def start(self, *args):
        """The command with stderr on a terminal (a pty) and stdout on a pipe."""
        master, slave = pty.openpty()
        env = dict(os.environ, VIGIL_SCAN_THREADS="1")
        env.pop("CI", None)
        proc = subprocess.Popen([VIGIL] + list(args), stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        return proc, master

    def read_until(self, master, pattern, seconds):
        """What the terminal got until pattern shows (or EOF / the deadline)."""
        text = b""
        deadline = time.monotonic() + harness.timeout(seconds)
        while not re.search(pattern, text):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            text += chunk
        return text.decode(errors="replace")

    def interrupt(self, *args):
        proc, master = self.start(*args)
        try:
            # The progress line shows once the scan has run a second (the ETA once 1% is
            # done): the scan is running.
            seen = self.read_until(master, rb"\d+% of [\d.]+ MB, blocks \d+ read \d+ skipped, "
                                   rb"\S+ matched, \S+ events/s, ETA \d+ s", 60)
            self.assertRegex(seen, r"ETA \d+ s", seen[-2000:])
            proc.send_signal(signal.SIGINT)
            out = proc.stdout.read().decode()
            rc = proc.wait(timeout=harness.timeout(30))
            rest = self.read_until(master, rb"interrupted[^\n]*\n", 10)
        finally:
            proc.stdout.close()
            os.close(master)
        return rc, out, seen + rest

    def test_search_prints_what_it_found(self):
        args = ["search", "--store", self.vd.store, "--format", "ndjson"] + slow_filter()
        rc, out, err = self.interrupt(*args)
        self.assertEqual(rc, 130, err[-2000:])
        got = ndjson(out)
        m = re.search(r"vigil search: interrupted: (\d+) matches in the (\d+) of (\d+) blocks",
                      err)
        self.assertIsNotNone(m, err[-2000:])
        # Something was found, not everything, and all of it is printed, in order.
        self.assertEqual(len(got), int(m.group(1)))
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), 20000)
        self.assertLess(int(m.group(2)), int(m.group(3)))
        ts = [(e["ts"], e["seq"]) for e in got]
        self.assertEqual(ts, sorted(ts))
        # Piped, the same kind of scan (over a second of it) draws no progress line and
        # runs to the end.
        env = dict(os.environ, VIGIL_SCAN_THREADS="1")
        env.pop("CI", None)
        p = run([VIGIL] + args + ["--limit", "3", "--until", iso((T0 + 8000) * 10**9)], env=env)
        self.assertEqual(len(ndjson(p.stdout)), 3)
        self.assertEqual(p.stderr, "vigil search: showing the earliest 3 of 8000 matches "
                         "(--limit)\n")

    def test_terminal_table_is_capped_and_says_so(self):
        """stdout on a 100-column terminal: 1,000 rows, the who and where whole, no line
        past the width, and a line saying it capped."""
        import fcntl
        import struct
        import termios
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        env = dict(os.environ)
        env.pop("CI", None)
        proc = subprocess.Popen([VIGIL, "search", "--store", self.vd.store, "pod=web-3"],
                                stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        try:
            text = self.read_until(master, rb"showing the earliest[^\n]*\n", 120)
            rc = proc.wait(timeout=harness.timeout(60))
        finally:
            os.close(master)
        self.assertEqual(rc, 0, text[-2000:])
        lines = [l for l in text.replace("\r", "").split("\n") if l]
        self.assertIn("vigil search: showing the earliest 1000 of 2857 matches (--limit)", lines)
        rows = [l for l in lines if l.startswith("2024-")]
        self.assertEqual(len(rows), 1000)
        self.assertTrue(all(len(l) <= 100 for l in lines), max(lines, key=len))
        self.assertTrue(all("web-3 " in l or l.endswith("web-3") for l in rows), rows[:3])

    def test_stats_prints_the_counts_so_far(self):
        rc, out, err = self.interrupt("stats", "--store", self.vd.store, "--by", "pod",
                                      "--format", "json", *slow_filter())
        self.assertEqual(rc, 130, err[-2000:])
        m = re.search(r"vigil stats: interrupted: the counts of the (\d+) matches", err)
        self.assertIsNotNone(m, err[-2000:])
        counts = json.loads(out)
        self.assertEqual(sum(g["count"] for g in counts), int(m.group(1)))
        self.assertGreater(int(m.group(1)), 0)
        self.assertLess(int(m.group(1)), 20000)


if __name__ == "__main__":
    harness.main()
