"""`vigil hunt` equals live for any --since/--until window (issue 9; rules/TIME.md).

A store is built the way a deployment fills one: six hours of the bench generator's
background (re-timed to end now) with the pack's attacks injected at several places,
shipped by two agents (one the first three hours, the other the last three: its first
half, then the rest at the same time as the first agent's), so the store's seq order
(live's order) is not its time order. vigild evaluates
it live with the default pack. Then, for random windows (seeded), `vigil hunt --since
--until` must print exactly the alert records live stored for the window: every record
whose event time lies in it, except the updates and resolutions of incidents opened
before the window (hunt sees those from its warm-up on; rules/TIME.md says why).

Also: hunt refuses a rule path with rules that did not load unless --allow-invalid."""
import json
import os
import random
import shutil
import subprocess
import sys
import time
import unittest

import harness
from harness import Vigild, run
from test_rules import GEN, RULES, S, injected, iso, retime, rules_config, wait_rules_done

HOURS = 6


def build(path_a, path_b1, path_b2, n_background, seed, start):
    """Writes the events of [start, start + HOURS h) into NDJSON files split at the middle
    (the second half in two, at 4.5 h). Returns (events, injected attack times)."""
    p = run([sys.executable, GEN, "-n", str(n_background), "--seed", str(seed), "-o", "-"],
            t=120)
    bg = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    span = HOURS * 3600 * S
    evs = [(start + i * span // len(bg), 0, i, ev) for i, ev in enumerate(bg)]
    random.seed(seed)
    at = []
    for k, base in enumerate((0.4, 1.9, 2.95, 3.05, 4.5, 5.8)):  # hours; one across the split
        t = start + int(base * 3600) * S
        at.append(t)
        for j, (off, ev) in enumerate(injected()):
            evs.append((t + off * S + 777, 1, 1000 * k + j, ev))
    evs.sort(key=lambda x: (x[0], x[1], x[2]))
    mid = start + span // 2
    late = start + int(4.5 * 3600) * S
    with open(path_a, "w") as a, open(path_b1, "w") as b1, open(path_b2, "w") as b2:
        for ts, _, _, ev in evs:
            (a if ts < mid else b1 if ts < late else b2).write(json.dumps(retime(ev, ts)) + "\n")
    return len(evs), at


def key(a):
    r = a["raw"]
    return (r.get("state"), a["rule"], r.get("fingerprint"), r.get("incident"), r["count"],
            tuple(r["seqs"]), r.get("seqs_total"), r.get("first_seen"), r.get("last_seen"),
            a["ts"])


def in_window(records, since, until):
    """The records of the window hunt must reproduce."""
    out = []
    for a in records:
        t = parse(a["ts"])
        r = a["raw"]
        if since <= t < until and (r.get("state", "firing") == "firing" or
                                   r.get("opened", since) >= since):
            out.append(a)
    return out


def parse(s):
    import calendar
    sec, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    return calendar.timegm(time.strptime(sec, "%Y-%m-%dT%H:%M:%S")) * S + int(frac.ljust(9, "0"))


class HuntWindows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vd = Vigild("hunt-windows", rules_config(RULES))
        cls.vd.start()
        cls.start = time.time_ns() - (HOURS * 3600 + 600) * S
        a = os.path.join(cls.vd.dir, "a.ndjson")
        b1 = os.path.join(cls.vd.dir, "b1.ndjson")
        b2 = os.path.join(cls.vd.dir, "b2.ndjson")
        cls.n, cls.attacks = build(a, b1, b2, 6000, 11, cls.start)
        # the second agent's first part, then the first agent's hours while the second
        # agent ships the rest: seq order is not time order, whatever the timing
        cls.vd.send([b1], agent="agent-sidecar-1")
        procs = []
        for path, agent in ((a, "agent-node-1"), (b2, "agent-sidecar-1")):
            cert, key_ = cls.vd.cert(agent)
            procs.append(subprocess.Popen(
                [harness.VIGIL, "send", "--server", "127.0.0.1:%d" % cls.vd.forward_port,
                 "--ca", cls.vd.ca, "--cert", cert, "--key", key_, "--format", "ndjson", path],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=harness.timeout(300))
            assert p.returncode == 0, err
        wait_rules_done(cls.vd, cls.n)
        cls.live = cls.vd.search("kind=alert")

    @classmethod
    def tearDownClass(cls):
        cls.vd.stop()
        cls.vd.cleanup()

    def hunt(self, since, until, *extra):
        p = run([harness.VIGIL, "hunt", RULES, "--store", self.vd.store, "--format", "ndjson",
                 "--since", iso(since), "--until", iso(until)] + list(extra), t=300)
        return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]

    def check(self, since, until):
        want = sorted(key(a) for a in in_window(self.live, since, until))
        got = sorted(key(a) for a in in_window(self.hunt(since, until), since, until))
        self.assertEqual(got, want, "window %s .. %s" % (iso(since), iso(until)))
        return len(want)

    def test_seq_order_is_not_time_order(self):
        events = self.vd.search("NOT", "kind=alert")
        by_seq = [parse(e["ts"]) for e in sorted(events, key=lambda e: e["seq"])]
        self.assertTrue(by_seq != sorted(by_seq), "the store's seq order is its time order")

    def test_every_injected_attack_alerted_live(self):
        # The attacks at 2.95 h and 3.05 h are six minutes apart, shipped by two agents at
        # once: one incident (the quiet period is 15 min), opened by whichever came first.
        bf = [a for a in self.live if a["rule"] == "SSH brute force from one address" and
              a["src_ip"] == "198.18.0.10"]
        firing = [a for a in bf if a["raw"]["state"] == "firing"]
        self.assertEqual(len(firing), len(self.attacks) - 1)
        split = [a for a in firing if parse(a["ts"]) // S in
                 ((self.attacks[2] + 45 * S) // S, (self.attacks[3] + 45 * S) // S)]
        self.assertEqual(len(split), 1, [(parse(a["ts"]) - self.start) / S for a in firing])
        login = [a for a in self.live if a["rule"].startswith("SSH login after brute force") and
                 a["src_ip"] == "198.18.0.10" and a["raw"]["state"] == "firing"]
        self.assertEqual(len(login), len(self.attacks) - 1)

    def test_random_windows(self):
        rng = random.Random(2024)
        end = self.start + HOURS * 3600 * S
        windows = [(self.start - 3600 * S, end + 3600 * S),  # everything
                   (self.attacks[2] + 60 * S, self.attacks[3] + 60 * S)]  # across agents
        for _ in range(10):
            a = rng.randrange(self.start - 600 * S, end)
            b = rng.randrange(a + 60 * S, end + 600 * S)
            windows.append((a, b))
        total = 0
        for since, until in windows:
            total += self.check(since, until)
        self.assertGreater(total, 100)  # the windows held alerts to compare

    def test_invalid_rules_fail_the_hunt(self):
        d = os.path.join(self.vd.dir, "rules-bad")
        shutil.copytree(RULES, d)
        with open(os.path.join(d, "broken.yml"), "w") as f:
            f.write("title: broken\nlogsource: { product: linux, service: sshd }\n"
                    "detection:\n  sel: { user: root }\n  condition: sel and nope\n")
        p = run([harness.VIGIL, "hunt", d, "--store", self.vd.store, "--format", "ndjson"],
                check=False, t=300)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("broken.yml", p.stderr)
        self.assertIn("--allow-invalid", p.stderr)
        self.assertEqual(p.stdout, "")
        p = run([harness.VIGIL, "hunt", d, "--allow-invalid", "--store", self.vd.store,
                 "--format", "ndjson"], t=300)
        self.assertTrue(p.stdout.strip())


if __name__ == "__main__":
    harness.main()
