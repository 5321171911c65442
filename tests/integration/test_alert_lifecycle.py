"""Alert lifecycle inside the engine (issue 9; schemas/alert.md): one open incident per
rule and fingerprint while it keeps matching, updates throttled on event time, resolved
after a quiet period, triggering seqs capped with their total, checkpointed across a
restart; per-rule settings under `vigil:` in the rule, unknown ones refused.

vigild runs the default pack with short lifecycle settings (rules.resolve_after 4s,
rules.update_every 10s, rules.lateness 2s) so a resolution arrives within seconds."""
import json
import os
import shutil
import time
import unittest

import harness
from harness import Vigild, VigildTest, run
from test_rules import RULES, S, retime, sshd, wait_rules_done

BF = "SSH brute force from one address"
BF_LOGIN = "SSH login after brute force from the same address"
BF_ID = "3581c8f4-01c0-4966-9589-2a780dce1b17"

LIFECYCLE = "rules: { paths: [ %s ], resolve_after: 4s, update_every: 10s, lateness: 2s }\n"


def records(vd, title):
    return sorted((a for a in vd.search("kind=alert") if a["rule"] == title),
                  key=lambda a: a["seq"])


def write(vd, name, events):
    path = os.path.join(vd.dir, name)
    with open(path, "w") as f:
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    return path


def wait_evaluated(vd, n_events, stored_before=0):
    """wait_rules_done for a vigild restarted after storing stored_before alert records:
    its metrics count this run only."""
    def done():
        m = vd.metrics()
        return (m.get("vigil_rules_events_total", 0) >= n_events and
                len(vd.search("kind=alert")) == stored_before + m["vigil_rules_alerts_total"])
    harness.wait_for("rules evaluated %d events" % n_events, done, 60)


def failures(ip, t0, n, every_s=2, host="bastion-1"):
    return [retime(sshd("Failed password for root from %s port %d ssh2" % (ip, 40000 + i), host),
                   t0 + i * every_s * S) for i in range(n)]


class Lifecycle(VigildTest):
    extra_config = LIFECYCLE % RULES

    def test_a_sustained_brute_force_is_one_incident(self):
        # 30 failures two seconds apart, then a login: one brute force incident (not one
        # alert per six failures), updated every 10 s of event time, resolved once quiet
        t0 = time.time_ns() // 1000 * 1000 - 70 * S  # @timestamp has microseconds
        evs = failures("192.0.2.10", t0, 30)
        evs.append(retime(sshd("Accepted password for root from 192.0.2.10 port 1 ssh2"),
                          t0 + 61 * S))
        self.vd.send([write(self.vd, "bf.ndjson", evs)])
        wait_rules_done(self.vd, 31)
        harness.wait_for("the incidents resolved", lambda: [
            a for a in records(self.vd, BF) if a["raw"]["state"] == "resolved"] and [
            a for a in records(self.vd, BF_LOGIN) if a["raw"]["state"] == "resolved"], 60)
        bf = records(self.vd, BF)
        states = [a["raw"]["state"] for a in bf]
        # firing at the 6th failure (t0+10s), updates at +20, +30, +40, +50 s, resolved
        self.assertEqual(states, ["firing", "update", "update", "update", "update", "resolved"])
        fp = {a["raw"]["fingerprint"] for a in bf}
        inc = {a["raw"]["incident"] for a in bf}
        self.assertEqual(len(fp), 1)
        self.assertEqual(inc, {"%s-%d" % (fp.pop(), bf[0]["raw"]["first_seen"])})
        self.assertEqual([a["raw"]["count"] for a in bf], [6, 11, 16, 21, 26, 30])
        sshd_seqs = sorted(e["seq"] for e in self.vd.search("source=sshd", "outcome=failure"))
        self.assertEqual(bf[-1]["raw"]["seqs"], sshd_seqs)  # 30 <= the cap of 64
        self.assertEqual(bf[-1]["raw"]["seqs_total"], 30)
        self.assertEqual(bf[-1]["raw"]["first_seen"], t0)
        self.assertEqual(bf[-1]["raw"]["last_seen"], t0 + 58 * S)
        self.assertEqual(bf[-1]["raw"]["resolve_after"], 4 * S)
        # ts is the event time of each change; the resolution's is last_seen + quiet period
        self.assertEqual(bf[0]["raw"]["window"]["end"], t0 + 10 * S)
        self.assertEqual(self.ns(bf[-1]["ts"]), t0 + 62 * S)
        self.assertTrue(all(a["agent"] == "vigild" and a["source"] == "rule" for a in bf))
        # the login after it lists the failures that made the brute force, and the login
        login = records(self.vd, BF_LOGIN)
        self.assertEqual([a["raw"]["state"] for a in login], ["firing", "resolved"])
        trig = login[0]["raw"]["seqs"]
        self.assertGreaterEqual(len(trig), 7)
        success = [e["seq"] for e in self.vd.search("source=sshd", "outcome=success")]
        self.assertEqual(trig[-1], success[0])
        self.assertTrue(set(trig[:-1]) <= set(sshd_seqs))
        self.assertEqual(login[0]["raw"]["seqs_total"], len(trig))
        self.assertEqual(login[0]["raw"]["count"], 2)  # rules seen: brute force, then login

        # a new brute force after the quiet period: a new incident, same fingerprint, with
        # its own events (the earlier failures still in its two-minute window were the
        # first incident's)
        t1 = time.time_ns() // 1000 * 1000 - 1 * S
        self.assertGreater(t1, t0 + 62 * S)
        self.vd.send([write(self.vd, "bf2.ndjson", failures("192.0.2.10", t1, 6))])
        wait_rules_done(self.vd, 37)
        new = [a for a in records(self.vd, BF) if a["raw"]["incident"] != bf[0]["raw"]["incident"]]
        self.assertEqual(new[0]["raw"]["state"], "firing")
        self.assertEqual(len([a for a in new if a["raw"]["state"] == "firing"]), 1)
        self.assertEqual(new[0]["raw"]["fingerprint"], bf[0]["raw"]["fingerprint"])
        self.assertEqual(new[0]["raw"]["last_seen"], new[0]["raw"]["window"]["end"])
        self.assertGreaterEqual(new[0]["raw"]["first_seen"], t1)
        self.assertLess(new[0]["raw"]["window"]["start"], t1)

    def ns(self, rfc3339):
        import calendar
        sec, frac = rfc3339.rstrip("Z").split(".")
        return calendar.timegm(time.strptime(sec, "%Y-%m-%dT%H:%M:%S")) * S + int(frac.ljust(9, "0"))

    def test_detections_are_incidents_per_pod(self):
        from test_rules import falco
        t0 = time.time_ns() - 30 * S
        evs = [retime(falco("Terminal shell in container", "Notice", pod, cid, "bash", "bash"),
                      t0 + i * S)
               for i, (pod, cid) in enumerate([("a-0", "c0ffee0000a0"), ("a-0", "c0ffee0000a0"),
                                               ("b-0", "c0ffee0000b0"), ("a-0", "c0ffee0000a0")])]
        self.vd.send([write(self.vd, "shells.ndjson", evs)])
        wait_rules_done(self.vd, 4)
        fire = [a for a in records(self.vd, "Shell spawned in a container")
                if a["raw"]["state"] == "firing"]
        self.assertEqual(sorted(a["pod"] for a in fire), ["a-0", "b-0"])
        a0 = [a for a in fire if a["pod"] == "a-0"][0]
        self.assertEqual(a0["raw"]["group"]["pod"], "a-0")
        harness.wait_for("resolved", lambda: len([
            a for a in records(self.vd, "Shell spawned in a container")
            if a["raw"]["state"] == "resolved"]) == 2, 60)
        res = [a for a in records(self.vd, "Shell spawned in a container")
               if a["raw"]["state"] == "resolved" and a["raw"]["group"]["pod"] == "a-0"]
        self.assertEqual(res[0]["raw"]["count"], 3)
        self.assertEqual(res[0]["pod"], "a-0")  # identity fields on every record


class Restart(unittest.TestCase):
    def test_open_incident_survives_restart_and_resolves_after(self):
        vd = Vigild("lifecycle-restart", LIFECYCLE.replace("4s", "30s") % RULES)
        self.addCleanup(vd.cleanup)
        vd.start()
        t0 = time.time_ns() - 40 * S
        vd.send([write(vd, "a.ndjson", failures("192.0.2.20", t0, 7))])
        wait_rules_done(vd, 7)
        vd.stop()
        vd.start()
        vd.send([write(vd, "b.ndjson", failures("192.0.2.20", t0 + 14 * S, 3))])
        wait_evaluated(vd, 3, stored_before=1)
        bf = records(vd, BF)
        # still the same incident: no second firing
        self.assertEqual([a["raw"]["state"] for a in bf], ["firing"])
        harness.wait_for("resolved after the restart", lambda: [
            a for a in records(vd, BF) if a["raw"]["state"] == "resolved"], 120)
        bf = records(vd, BF)
        self.assertEqual([a["raw"]["state"] for a in bf], ["firing", "resolved"])
        self.assertEqual(bf[-1]["raw"]["count"], 10)
        self.assertEqual(bf[-1]["raw"]["incident"], bf[0]["raw"]["incident"])
        vd.stop()


class RuleSettings(unittest.TestCase):
    """Per-rule settings: `vigil: { resolve_after, update_every, group-by }`; anything else
    under `vigil:` makes the rule invalid (said, never ignored)."""

    def test_rule_level_keys(self):
        d = harness.tempfile.mkdtemp(prefix="vigil-it-rulekeys-")
        self.addCleanup(shutil.rmtree, d, True)
        good = os.path.join(d, "good.yml")
        with open(good, "w") as f:
            f.write("title: SSH root login\nid: 0c3b6b4e-6f6f-4a52-9a4e-6f0d0a1b2c3d\n"
                    "logsource: { product: linux, service: sshd }\n"
                    "detection:\n  sel: { outcome: success, user: root }\n  condition: sel\n"
                    "level: high\nvigil:\n  group-by: [ user, src_ip ]\n  resolve_after: 1h\n"
                    "  update_every: 10m\n")
        p = run([harness.VIGIL, "rules", "check", good])
        self.assertIn("1 loaded", p.stdout)
        bad = os.path.join(d, "bad.yml")
        with open(bad, "w") as f:
            f.write("title: SSH root login\nid: 0c3b6b4e-6f6f-4a52-9a4e-6f0d0a1b2c3e\n"
                    "logsource: { product: linux, service: sshd }\n"
                    "detection:\n  sel: { outcome: success, user: root }\n  condition: sel\n"
                    "level: high\nvigil:\n  resolve_afterr: 1h\n")
        p = run([harness.VIGIL, "rules", "check", bad], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad.yml:9:3: unknown key 'vigil.resolve_afterr'", p.stdout)


if __name__ == "__main__":
    harness.main()
