"""`vigil timeline` against an independent reference (issue 13, item 1).

A real vigild with the default rule pack (etc/rules) stores generated events shipped
with `vigil send` in shuffled batches (out-of-order arrival: late events reopen earlier
partitions), some exactly on partition edges (13:00:00, 14:00:00 with 1h partitions),
plus an SSH brute force dated now, whose alert (grouped by src_ip) is about the user
whose logins it counted. The reference is computed in Python over the whole store as
`vigil search` prints it (a full scan, no index): every event whose entity field equals
the value (addresses compared as addresses) in [since, until), plus the alert records
of the window whose raw.seqs hold one of those events, in (ts, seq) order. Each query
of the table must give exactly those seqs; the table output shows the minute headings
and the quiet gaps; the related entities in JSON are the reference's counts.
"""
import ipaddress
import json
import os
import random
import subprocess
import time
import unittest

import harness
from harness import VIGIL, VigildTest, run

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
RULES = os.path.join(SRC, "etc", "rules")
S = 10**9
BF_IP = "198.18.0.10"


def ns_of(text):
    """RFC 3339 with 9 fraction digits and Z (as vigil prints) to ns."""
    base, frac = text[:-1].split(".") if "." in text else (text[:-1], "0")
    t = time.strptime(base, "%Y-%m-%dT%H:%M:%S")
    import calendar
    return calendar.timegm(t) * S + int(frac.ljust(9, "0")[:9])


def iso(ns):
    sec, frac = divmod(ns, S)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%09dZ" % frac


T0 = ns_of("2024-05-01T12:00:00Z")
PODS = ["web-1", "web-2", "db-0", "quiet-pod", "ghost"]
USERS = ["alice", "bob", "carol", "system:serviceaccount:shop:api", "ghost"]
IPS = ["10.0.0.5", "10.0.0.6", "192.0.2.9", BF_IP]
HOSTS = ["node-1", "node-2", "ghost"]
IMAGES = ["registry.example.com/shop/web:1.2", "registry.example.com/shop/db:15", "busybox:1.36"]


def generated():
    """The generic events (fields as the generic mapper reads them), dated 2024-05-01."""
    rnd = random.Random(13)
    out = []
    for i in range(900):
        # 12:40 .. 14:20, clustered so that pods have quiet minutes
        ts = T0 + 40 * 60 * S + rnd.randrange(100 * 60) * S + rnd.randrange(S)
        pod = rnd.choice(PODS[:3])
        e = {"time": iso(ts), "pod": pod, "namespace": "shop",
             "container_id": "c%04x" % (PODS.index(pod) * 16 + rnd.randrange(2)),
             "image": IMAGES[PODS.index(pod) % 3], "user": rnd.choice(USERS[:4]),
             "src_ip": rnd.choice(IPS), "host": rnd.choice(HOSTS[:2]),
             "action": rnd.choice(["get", "list", "create", "exec"]), "message": "ev %d" % i}
        out.append(e)
    # On the partition edges and just before them.
    for t in ("2024-05-01T13:00:00Z", "2024-05-01T12:59:59.999999999Z", "2024-05-01T14:00:00Z",
              "2024-05-01T13:59:59.999999999Z"):
        out.append({"time": t if "." in t else t[:-1] + ".000000000Z", "pod": "web-1",
                    "user": "alice", "src_ip": "10.0.0.5", "host": "node-1", "message": "edge"})
    # A pod with a quiet gap: 13:02 then 13:17 (14 minutes without events between).
    out.append({"time": "2024-05-01T13:02:10.5Z", "pod": "quiet-pod", "user": "carol",
                "message": "first"})
    out.append({"time": "2024-05-01T13:02:40Z", "pod": "quiet-pod", "user": "dave",
                "message": "second"})
    out.append({"time": "2024-05-01T13:17:30Z", "pod": "quiet-pod", "user": "carol",
                "object": "pods/quiet-pod/exec", "action": "create", "message": "exec"})
    # A value that is a user, a host and a pod: a bare "ghost" finds all three.
    out.append({"time": "2024-05-01T13:30:00Z", "user": "ghost", "pod": "web-2",
                "message": "ghost user"})
    out.append({"time": "2024-05-01T13:31:00Z", "host": "ghost", "message": "ghost host"})
    out.append({"time": "2024-05-01T13:32:00Z", "pod": "ghost", "message": "ghost pod"})
    # bob exec'd into web-1
    out.append({"time": "2024-05-01T13:40:00Z", "pod": "web-1", "namespace": "shop",
                "user": "bob", "object": "pods/web-1/exec", "action": "create",
                "message": "kubectl exec"})
    return out


def sshd(msg, ts, host="bastion-9"):
    return {"message": msg, "process": {"name": "sshd", "pid": 4242}, "host": {"name": host},
            "@timestamp": iso(ts)[:26] + "Z",
            "syslog_line": time.strftime("%b %d %H:%M:%S", time.gmtime(ts // S)) +
            " %s sshd[4242]: %s" % (host, msg)}


def brute_force(now):
    """Eight failed logins of alice from BF_IP within 40 s: the pack's brute force fires."""
    return [sshd("Failed password for alice from %s port %d ssh2" % (BF_IP, 40000 + i),
                 now + i * 5 * S) for i in range(8)]


def ip_eq(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b) or (
            ipaddress.ip_address(a).version != ipaddress.ip_address(b).version and
            str(ipaddress.ip_address(a)).replace("::ffff:", "") ==
            str(ipaddress.ip_address(b)).replace("::ffff:", ""))
    except ValueError:
        return a == b


FIELDS = ["pod", "container_id", "image", "user", "src_ip", "host"]


def reference(store, pairs, since=None, until=None):
    """The timeline's seqs computed from every stored event."""
    def match(e):
        for f, v in pairs:
            if f in e and (ip_eq(e[f], v) if f == "src_ip" else e[f] == v):
                return True
        return False

    def inside(e):
        t = e["_ns"]
        return (since is None or t >= since) and (until is None or t < until)

    ents = [e for e in store if inside(e) and match(e)]
    seqs = {e["seq"] for e in ents}
    alerts = [e for e in store if inside(e) and e.get("kind") == "alert" and e["seq"] not in seqs
              and seqs & set(e.get("raw", {}).get("seqs", []))] if seqs else []
    return [e["seq"] for e in sorted(ents + alerts, key=lambda e: (e["_ns"], e["seq"]))]


def wait_rules_done(vd, n_events):
    deadline = time.monotonic() + harness.timeout(60)
    while True:
        m = vd.metrics()
        if m.get("vigil_rules_events_total", 0) >= n_events:
            stored = len(vd.search("kind=alert"))
            if stored == m.get("vigil_rules_alerts_total", -1):
                return stored
        if time.monotonic() > deadline:
            raise AssertionError("rules did not catch up")
        time.sleep(0.1)


class TimelineTest(VigildTest):
    extra_config = "rules:  { paths: [ %s ] }\n" % RULES

    def timeline(self, *args, fmt="ndjson", check=True):
        p = run([VIGIL, "timeline", "--store", self.vd.store, "--format", fmt] + list(args),
                check=False)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def load(self):
        evs = generated()
        random.Random(7).shuffle(evs)
        n = 0
        # Four sends: each a group commit of its own, with events of every hour.
        for k in range(4):
            path = os.path.join(self.vd.dir, "batch%d.ndjson" % k)
            with open(path, "w") as f:
                for e in evs[k::4]:
                    f.write(json.dumps(e) + "\n")
                    n += 1
            self.vd.send([path])
        now = time.time_ns() - 120 * S
        path = os.path.join(self.vd.dir, "bf.ndjson")
        with open(path, "w") as f:
            for e in brute_force(now):
                f.write(json.dumps(e) + "\n")
                n += 1
        self.vd.send([path])
        self.assertGreaterEqual(wait_rules_done(self.vd, n), 1)
        store = self.vd.search()
        for e in store:
            e["_ns"] = ns_of(e["ts"])
        return store

    def test_timeline_matches_reference(self):
        store = self.load()
        alerts = [e for e in store if e.get("kind") == "alert"]
        bf = [a for a in alerts if a["rule"] == "SSH brute force from one address"]
        self.assertTrue(bf, [a["rule"] for a in alerts])
        self.assertNotIn("user", bf[0])  # grouped by src_ip: found through its seqs
        e13, e14 = ns_of("2024-05-01T13:00:00Z"), ns_of("2024-05-01T14:00:00Z")
        cases = [
            (["pod=web-1"], [("pod", "web-1")], None, None),
            (["--pod", "web-1"], [("pod", "web-1")], None, None),
            (["pod=web-1", "--since", "2024-05-01T13:00:00Z", "--until", "2024-05-01T14:00:00Z"],
             [("pod", "web-1")], e13, e14),
            (["user=alice", "--since", "2024-05-01T12:59:59.999999999Z",
              "--until", "2024-05-01T13:59:59.999999999Z"],
             [("user", "alice")], e13 - 1, e14 - 1),
            (["user=alice"], [("user", "alice")], None, None),
            (["--user", "alice", "--since", "2024-05-01T14:00:00Z"], [("user", "alice")], e14,
             None),
            (["src_ip=" + BF_IP], [("src_ip", BF_IP)], None, None),
            (["--ip", "::ffff:" + BF_IP], [("src_ip", BF_IP)], None, None),
            (["ip=10.0.0.6", "--until", "2024-05-01T13:00:00Z"], [("src_ip", "10.0.0.6")], None,
             e13),
            (["image=" + IMAGES[1]], [("image", IMAGES[1])], None, None),
            (["--image", IMAGES[0], "--since", "2024-05-01T13:30:00Z"], [("image", IMAGES[0])],
             ns_of("2024-05-01T13:30:00Z"), None),
            (["container_id=c0001"], [("container_id", "c0001")], None, None),
            (["--container", "c0010"], [("container_id", "c0010")], None, None),
            (["host=node-2", "--since", "2024-05-01T13:59:00Z", "--until",
              "2024-05-01T14:01:00Z"], [("host", "node-2")], ns_of("2024-05-01T13:59:00Z"),
             ns_of("2024-05-01T14:01:00Z")),
            (["--host", "bastion-9"], [("host", "bastion-9")], None, None),
            (["ghost"], [(f, "ghost") for f in FIELDS], None, None),
            (["pod=nobody"], [("pod", "nobody")], None, None),
        ]
        for args, pairs, since, until in cases:
            with self.subTest(args=args):
                p = self.timeline(*args)
                got = [json.loads(l)["seq"] for l in p.stdout.splitlines() if l.strip()]
                want = reference(store, pairs, since, until)
                self.assertEqual(got, want)
        # The cases are not vacuous: edges, alerts found by seqs, a bare value's fields.
        alice = [e for e in store if e["seq"] in reference(store, [("user", "alice")])]
        self.assertIn(bf[0]["seq"], [e["seq"] for e in alice])
        edge = reference(store, [("pod", "web-1")], e13, e14)
        self.assertIn("2024-05-01T13:00:00.000000000Z",
                      [e["ts"] for e in store if e["seq"] in edge])
        self.assertNotIn("2024-05-01T14:00:00.000000000Z",
                         [e["ts"] for e in store if e["seq"] in edge])
        ghost = [e for e in store if e["seq"] in reference(store, [(f, "ghost") for f in FIELDS])]
        self.assertEqual(sorted(e["message"] for e in ghost),
                         ["ghost host", "ghost pod", "ghost user"])
        # csv: a header and the same events
        p = self.timeline("pod=web-1", fmt="csv")
        self.assertEqual(len(p.stdout.splitlines()) - 1,
                         len(reference(store, [("pod", "web-1")])))

        # json: the related entities are the reference's counts
        p = self.timeline("user=alice", fmt="json")
        doc = json.loads(p.stdout)
        self.assertEqual(doc["entity"], {"field": "user", "value": "alice"})
        seqs = reference(store, [("user", "alice")])
        self.assertEqual([e["seq"] for e in doc["events"]], seqs)
        evs = [e for e in store if e["seq"] in seqs]
        want_ips = {}
        for e in evs:
            if "src_ip" in e:
                want_ips[e["src_ip"]] = want_ips.get(e["src_ip"], 0) + 1
        self.assertEqual({r["value"]: r["count"] for r in doc["related"]["src_ip"]}, want_ips)
        self.assertNotIn("user", doc["related"])  # the entity itself is not related
        self.assertEqual(doc["alerts"], sum(1 for e in evs if e.get("kind") == "alert"))
        self.assertIn("SSH brute force from one address",
                      [r["value"] for r in doc["related"]["alerts"]])
        p = self.timeline("pod=web-1", fmt="json")
        doc = json.loads(p.stdout)
        self.assertEqual([r["value"] for r in doc["related"]["exec_users"]], ["bob"])

        # The block index: a pod's timeline skips the blocks without it. The events may
        # still be in the commit journal (schemas/segment.md 5.6: blocks are cut when
        # full, old, sealed, or at a stop): a restart cuts them.
        self.vd.stop()
        self.vd.start()
        p = self.timeline("pod=quiet-pod", "--explain")
        self.assertRegex(p.stderr, r"skipped by index [1-9]")

    def test_table_minutes_and_quiet_gaps(self):
        self.load()
        p = self.timeline("pod=quiet-pod", fmt="table")
        lines = p.stdout.splitlines()
        heads = [l for l in lines if l.startswith("\u2500\u2500 ")]
        self.assertEqual(heads, ["\u2500\u2500 2024-05-01 13:02 UTC \u2500\u2500",
                                 "\u2500\u2500 2024-05-01 13:17 UTC \u2500\u2500"])
        quiet = [l.strip() for l in lines if "min quiet" in l]
        self.assertEqual(quiet, ["\u2026 14 min quiet \u2026"])
        order = [i for i, l in enumerate(lines) if "13:02 UTC" in l or "min quiet" in l or
                 "13:17 UTC" in l]
        self.assertEqual(order, sorted(order))
        self.assertIn("3 events (0 alerts) for pod=quiet-pod", p.stdout)
        self.assertRegex(p.stdout, r"exec/attach by\s+\(1\) carol \(1\)")
        self.assertRegex(p.stdout, r"users\s+\(2\) carol \(2\), dave \(1\)")

    def test_bad_entities(self):
        for args, what in ((["pod=x", "user=y"], "more than one entity"),
                           ([], "no entity"),
                           (["--pod", "x", "user=y"], "more than one entity"),
                           (["namespace=x"], "'namespace' is not an entity field"),
                           (["pod="], "empty"),
                           (["pod=x", "--since", "yesterday"], "not a time"),
                           (["pod=x", "--since", "1h", "--until", "2h"], "before --until")):
            with self.subTest(args=args):
                p = self.timeline(*args, check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(what, p.stderr)


if __name__ == "__main__":
    harness.main()
