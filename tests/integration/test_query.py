"""Queries over a store vigild wrote (DESIGN.md "Query CLI", schemas/segment.md 3.2, 4.1):
a selective search reads only the blocks that can match, says so in --explain, and finds
exactly what a scan of every block finds; `vigil stats` counts by field values."""
import json
import os
import random
import re
import unittest

import harness
from harness import VIGIL, VigildTest, run

T0 = 1714568400  # 2024-05-01T13:00:00Z
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
PODS = ["web-%d" % i for i in range(12)]


def falco(i, t, cmd, user, pod):
    ts = time_iso(t)
    return {"hostname": "node-%d" % (i % 5),
            "output": "%s: Notice A shell was spawned (user=%s command=%s)" % (ts, user, cmd),
            "priority": "Notice", "rule": "Terminal shell in container", "source": "syscall",
            "tags": ["container", "shell"], "time": ts,
            "output_fields": {"container.id": "%012x" % (i * 7919), "evt.time": t * 10**9,
                              "k8s.ns.name": "prod", "k8s.pod.name": pod, "proc.cmdline": cmd,
                              "proc.name": cmd.split()[0], "user.name": user}}


def sshd(i, t, user, ip, ok):
    msg = ("Accepted publickey for %s from %s port %d ssh2" if ok else
           "Failed password for %s from %s port %d ssh2") % (user, ip, 1024 + i)
    return {"@timestamp": time_iso(t), "message": msg,
            "process": {"name": "sshd", "pid": 1000 + i},
            "host": {"name": "bastion-1", "hostname": "bastion-1"},
            "event": {"outcome": "success" if ok else "failure"},
            "syslog_line": "May  1 13:00:00 bastion-1 sshd[%d]: %s" % (1000 + i, msg)}


def time_iso(t):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (t % 1000 * 997)


def explain(stderr):
    """The block counts of `--explain` as a dict."""
    m = re.search(r"blocks read (\d+), skipped by time (\d+), skipped by index (\d+)", stderr)
    if not m:
        raise AssertionError("no explain line in: " + stderr)
    return {"read": int(m.group(1)), "time": int(m.group(2)), "index": int(m.group(3))}


class Query(VigildTest):
    # Small blocks, so that a few thousand events make many of them.
    store = {"block_bytes": "4KiB"}

    def load(self):
        rnd = random.Random(42)
        lines = []
        for i in range(3000):
            t = T0 + i
            if i == 1777:
                ev = falco(i, t, "/tmp/kdevtmpfsi -o stratum+tcp://pool:3333", "www-data",
                           "miner-0")
            elif i % 3 == 0:
                ev = sshd(i, t, rnd.choice(USERS), "203.0.113.%d" % rnd.randrange(1, 40),
                          rnd.random() < 0.2)
            else:
                ev = falco(i, t, rnd.choice(["bash -i", "ls -la /root", "cat /etc/hosts"]),
                           rnd.choice(USERS), rnd.choice(PODS))
            lines.append(json.dumps(ev))
        path = os.path.join(self.vd.dir, "events.ndjson")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.vd.send([path])
        # A restart cuts the blocks still open (their events in the commit journal,
        # schemas/segment.md 5.6) and seals the partitions, so the block counts compared
        # below do not change between two searches (a seal pass cuts blocks too).
        self.vd.stop()
        self.vd.start()
        return 3000

    def search(self, *words):
        p = run([VIGIL, "search", "--store", self.vd.store, "--format", "ndjson", "--explain"]
                + list(words))
        events = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        return events, explain(p.stderr), p.stderr

    def test_selective_search_reads_only_matching_blocks(self):
        n = self.load()
        everything, all_stats, _ = self.search()
        self.assertEqual(len(everything), n)
        total = all_stats["read"]
        self.assertGreater(total, 50, "the test needs many blocks")

        # A rare word: one event; nearly every block is skipped by its index.
        events, st, text = self.search("kdevtmpfsi")
        self.assertEqual(len(events), 1)
        self.assertIn("kdevtmpfsi", events[0]["cmdline"])
        self.assertLessEqual(st["read"], 2, text)
        self.assertEqual(st["read"] + st["index"], total, text)
        self.assertIn("skipped by index", text)
        self.assertRegex(text, r"bytes decompressed \d+")
        self.assertRegex(text, r"time catalog [\d.]+ ms, read [\d.]+ ms, index")

        # The same through a field: a substring of the command line, and the pod.
        for words in (["cmdline~KDEVTMPFSI"], ["pod=miner-0"], ["user=www-data"]):
            events, st, text = self.search(*words)
            self.assertEqual(len(events), 1, words)
            self.assertLessEqual(st["read"], 2, text)

        # Skipping never changes what is found: the same queries, with a term that defeats
        # the index (OR), over every block.
        for words in (["user=alice"], ["pod=web-3", "AND", "user=bob"], ["Failed"],
                      ["src_ip=203.0.113.7"], ["outcome=failure", "user=carol"]):
            fast, st, _ = self.search(*words)
            slow, st_all, _ = self.search("(", *words, ")", "OR", "no-such-word-anywhere")
            self.assertEqual(st_all["index"], 0)
            self.assertEqual([e["seq"] for e in fast], [e["seq"] for e in slow], words)
            self.assertGreater(len(fast), 0, words)
            self.assertLessEqual(st["read"], st_all["read"])

        # Nothing has it: nothing is decompressed.
        events, st, text = self.search("user=mallory")
        self.assertEqual(events, [])
        self.assertEqual(st["read"], 0, text)
        self.assertIn("bytes decompressed 0", text)

        self.assertEqual(self.vd.verify().returncode, 0)

    def test_stats(self):
        n = self.load()
        p = run([VIGIL, "stats", "--store", self.vd.store, "--by", "source", "--format", "json"])
        rows = json.loads(p.stdout)
        self.assertEqual(sum(r["count"] for r in rows), n)
        self.assertEqual({r["source"] for r in rows}, {"falco", "sshd"})
        self.assertEqual(rows, sorted(rows, key=lambda r: -r["count"]))

        p = run([VIGIL, "stats", "--store", self.vd.store, "outcome=failure", "--by", "src_ip",
                 "--top", "3", "--format", "csv", "--explain"])
        lines = p.stdout.strip().splitlines()
        self.assertEqual(lines[0], "src_ip,count")
        self.assertEqual(len(lines), 4)
        counts = [int(l.rsplit(",", 1)[1]) for l in lines[1:]]
        self.assertEqual(counts, sorted(counts, reverse=True))
        failures = self.search("outcome=failure")[0]
        by_ip = {}
        for e in failures:
            by_ip[e["src_ip"]] = by_ip.get(e["src_ip"], 0) + 1
        self.assertEqual(counts, sorted(by_ip.values(), reverse=True)[:3])
        self.assertIn("explain:", p.stderr)

        p = run([VIGIL, "stats", "--store", self.vd.store, "--by", "nosuchfield"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("nosuchfield", p.stderr)

    def test_threads_give_the_same_answers(self):
        """Scans split into stripes (VIGIL_SCAN_THREADS) find what one thread finds, in the
        same order; a bad value is said and ignored."""
        self.load()

        def answers(threads):
            env = dict(os.environ, VIGIL_SCAN_THREADS=threads)
            s = run([VIGIL, "search", "--store", self.vd.store, "--format", "ndjson",
                     "--explain", "user=root", "OR", "outcome=failure"], env=env)
            st = run([VIGIL, "stats", "--store", self.vd.store, "--by", "src_ip",
                      "--format", "csv"], env=env)
            return s.stdout, st.stdout, s.stderr + st.stderr

        one, one_stats, one_err = answers("1")
        self.assertIn("on 1 thread\n", one_err)
        three, three_stats, three_err = answers("3")
        self.assertIn("on 3 threads", three_err)
        self.assertGreater(len(one.splitlines()), 100)
        self.assertEqual(three, one)
        self.assertEqual(three_stats, one_stats)
        bad, bad_stats, bad_err = answers("lots")
        self.assertIn("VIGIL_SCAN_THREADS='lots' is not a number from 1 to 64: ignored",
                      bad_err)
        self.assertEqual((bad, bad_stats), (one, one_stats))


if __name__ == "__main__":
    harness.main()
