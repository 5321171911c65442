"""`vigil explain ALERT` of a real alert (issue 13, item 3).

A real vigild with the default rule pack (etc/rules) is sent an excerpt of the corpus'
sshd auth.log (elastic-examples, tests/data/corpus/auth) with `vigil send --format
syslog`: the failed logins of 181.25.206.27 make the pack's "SSH brute force from one
address" fire. `vigil explain` by the alert's seq, fingerprint and incident id must show
that record, the rule as loaded from etc/rules (type, timespan, threshold, group-by, the
YAML as written and the rule it counts), the group values, and exactly the triggering
events raw.seqs lists, as a full `vigil search` (no index) prints them.
"""
import json
import os
import time

import harness
from harness import VIGIL, VigildTest, run

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
RULES = os.path.join(SRC, "etc", "rules")
CORPUS = os.environ.get("VG_CORPUS_DIR", os.path.join(SRC, "tests", "data", "corpus"))
AUTH = os.path.join(CORPUS, "auth", "elastic-examples_suspicious_login_activity_auth.log")
BF_IP = "181.25.206.27"
BF_RULE = "SSH brute force from one address"


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


class ExplainTest(VigildTest):
    extra_config = "rules:  { paths: [ %s ] }\n" % RULES

    def explain(self, *args, fmt="json", check=True, config=True):
        base = [VIGIL, "explain", "--format", fmt]
        base += ["-c", self.vd.config] if config else ["--store", self.vd.store]
        p = run(base + list(args), check=False)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def setUp(self):
        super().setUp()
        with open(AUTH, errors="replace") as f:
            lines = f.readlines()[1780:1900]
        self.assertGreaterEqual(sum(BF_IP in l and "Failed password" in l for l in lines), 6)
        path = os.path.join(self.vd.dir, "auth.log")
        with open(path, "w") as f:
            f.writelines(lines)
        self.vd.send([path], fmt="syslog")
        self.stored = [e for e in self.vd.search() if e.get("kind") != "alert"]
        wait_rules_done(self.vd, len(self.stored))
        self.alerts = [a for a in self.vd.search("kind=alert") if a["rule"] == BF_RULE]
        self.assertTrue(self.alerts)
        self.by_seq = {e["seq"]: e for e in self.vd.search()}

    def test_explain_brute_force(self):
        a = self.alerts[-1]
        self.assertEqual(a["raw"]["group"], {"src_ip": BF_IP})
        doc = json.loads(self.explain(str(a["seq"])).stdout)
        self.assertEqual(doc["alert"], a)
        rule = doc["rule"]
        self.assertEqual(rule["id"], "3581c8f4-01c0-4966-9589-2a780dce1b17")
        self.assertEqual((rule["name"], rule["type"], rule["timespan"], rule["threshold"]),
                         ("ssh_brute_force", "event_count", "2m", "events >= 6"))
        self.assertEqual(rule["group_by"], ["src_ip"])
        self.assertEqual(rule["file"], os.path.join(RULES, "ssh_brute_force.yml"))
        self.assertIn("title: SSH brute force from one address", rule["text"])
        self.assertIn("gte: 6", rule["text"])
        self.assertNotIn("---", rule["text"])
        self.assertEqual([r["name"] for r in rule["refers_to"]], ["ssh_auth_failure"])
        self.assertIn("outcome: failure", rule["refers_to"][0]["text"])
        self.assertEqual(doc["group"], {"src_ip": BF_IP})
        # Exactly the events raw.seqs lists, in full, as a full scan prints them.
        want = sorted(a["raw"]["seqs"])
        self.assertGreaterEqual(len(want), 6)
        self.assertEqual(sorted(e["seq"] for e in doc["events"]), want)
        for e in doc["events"]:
            self.assertEqual(e, self.by_seq[e["seq"]])
            self.assertEqual(e["src_ip"], BF_IP)
        self.assertEqual(doc["missing"], [])
        self.assertEqual([e["seq"] for e in doc["events"]],
                         [e["seq"] for e in sorted(doc["events"], key=lambda e: (e["ts"], e["seq"]))])

        # By fingerprint and incident id: that incident's latest record.
        fp, inc = a["raw"]["fingerprint"], a["raw"]["incident"]
        latest_fp = max(x["seq"] for x in self.alerts if x["raw"]["fingerprint"] == fp)
        latest_inc = max(x["seq"] for x in self.alerts if x["raw"]["incident"] == inc)
        self.assertEqual(json.loads(self.explain(fp).stdout)["alert"]["seq"], latest_fp)
        self.assertEqual(json.loads(self.explain(inc).stdout)["alert"]["seq"], latest_inc)

        # The table: the summary, the rule as written, the events; found through the index.
        p = self.explain(str(a["seq"]), fmt="table")
        self.assertIn("rule         " + BF_RULE, p.stdout)
        self.assertIn("event_count over 2m, grouped by src_ip; fires on events >= 6", p.stdout)
        self.assertIn("  | title: SSH brute force from one address", p.stdout)
        self.assertIn("which counts the matches of 'ssh_auth_failure'", p.stdout)
        self.assertIn("group        src_ip=" + BF_IP, p.stdout)
        self.assertEqual(sum(BF_IP in l and "Failed password" in l
                             for l in p.stdout.split("\ntriggering events (")[1].splitlines()),
                         sum("Failed password" in self.by_seq[s].get("message", "")
                             for s in want))
        self.assertIn("read in 1 pass (", p.stderr)
        self.assertRegex(p.stderr, r"skipped by index [0-9]+")

        # ndjson: the alert, then its events
        p = self.explain(str(a["seq"]), fmt="ndjson")
        got = [json.loads(l)["seq"] for l in p.stdout.splitlines()]
        self.assertEqual(got[0], a["seq"])
        self.assertEqual(sorted(got[1:]), want)

        # Without the rules at hand: the record's own account, and how to get the rest.
        p = self.explain(str(a["seq"]), fmt="table", config=False)
        self.assertIn("no rules at hand: give --rules PATH or -c vigil.yaml", p.stdout)
        self.assertEqual(json.loads(self.explain(str(a["seq"]), config=False).stdout)["rule"],
                         None)
        doc = json.loads(self.explain(str(a["seq"]), "--rules", RULES, config=False).stdout)
        self.assertEqual(doc["rule"]["name"], "ssh_brute_force")

    def test_errors(self):
        not_alert = min(e["seq"] for e in self.stored)
        for args, rc, what in ((["x1"], 2, "not an alert"),
                               (["0"], 2, "not an alert"),
                               ([], 2, "give one alert"),
                               (["1", "2"], 2, "give one alert"),
                               ([str(not_alert)], 1, "no alert record with seq"),
                               (["999999"], 1, "no alert record with seq 999999"),
                               (["0123456789abcdef0123456789abcdef"], 1, "fingerprint")):
            with self.subTest(args=args):
                p = self.explain(*args, check=False)
                self.assertEqual(p.returncode, rc, p.stderr)
                self.assertIn(what, p.stderr)


if __name__ == "__main__":
    harness.main()
