"""Alerts reach a human: vigild's forwarders against the real Alertmanager (Debian
prometheus-alertmanager) and a local HTTPS receiver standing in for PagerDuty, Opsgenie,
Slack and a webhook (receivers.py: every request checked against the vendor's documented
required fields and types).

(a) End to end: real corpus Falco events (a shell in a container), the default rule pack,
    vigild: the alert appears in Alertmanager's GET /api/v2/alerts with the right labels
    and an evidence command that finds the triggering event; PagerDuty, Opsgenie, Slack
    and the signed webhook get it, a forwarder whose match does not fit does not;
    metrics, `vigil alerts`, `vigil alerts test`, and SIGHUP adding a forwarder.
(b) Lifecycle: alert records written per schemas/alert.md (firing, update, resolved)
    through the forwarders (fwd_drive: vigild's forwarders fed by the test): the
    Alertmanager alert stays active past its expire_after while firing (re-sends) and
    ends after the resolve; PagerDuty trigger(s) then resolve with one stable dedup_key,
    Opsgenie create then close by alias, Slack firing then resolved, webhook all three.
(c) Outage: the receiver refuses connections, then answers 503, then hangs, then answers
    429 with Retry-After (honoured), while alerts fire; vigild is SIGKILLed and restarted
    in the middle; after recovery every alert
    arrives, once per incident and state, nothing lost; a receiver answering 400 gets
    dead letters, listed and replayed.
(d) Bad config: each mistake gets its file:line:key error from vigild --check-config.
"""
import copy
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import Vigild, run
import receivers
from receivers import Alertmanager, Receiver

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
RULES = os.path.join(SRC, "etc", "rules")
CORPUS = os.environ.get("VG_CORPUS_DIR", os.path.join(SRC, "tests", "data", "corpus"))
FWD_DRIVE = os.environ.get("FWD_DRIVE_BIN", "fwd_drive")
SHELL_EVENT = os.path.join(CORPUS, "falco", "extracted",
                           "website_blog_falcosidekick-response-engine-part-1-kubeless.ndjson")
S = 10**9
SHELL_RULE = "Shell spawned in a container"


def need_alertmanager(test):
    harness.need(test, Alertmanager.BIN is not None, "prometheus-alertmanager")
    harness.need(test, subprocess.run(["which", "openssl"], capture_output=True).returncode == 0,
                 "openssl")


def shell_events(pods):
    """The corpus' Falco 'Terminal shell in container' alert, dated now, one per pod."""
    with open(SHELL_EVENT) as f:
        ev = json.loads(f.readline())
    out = []
    for i, pod in enumerate(pods):
        e = copy.deepcopy(ev)
        ns = time.time_ns() + i * 1000
        e["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // S)) + ".%09dZ" % (ns % S)
        e["output_fields"]["evt.time"] = ns
        e["output_fields"]["k8s.pod.name"] = pod
        out.append(json.dumps(e))
    return "\n".join(out) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def forwarders_yaml(rcv, am=None, extra="", hook_path="/hook", retry="{ min: 200ms, max: 1s }",
                    timeout="3s"):
    """Every receiver type against rcv (and am); secrets from files and the environment."""
    d = rcv.dir
    write(os.path.join(d, "pd.key"), receivers.PD_KEY + "\n")
    write(os.path.join(d, "hook.key"), receivers.HOOK_SECRET + "\n")
    write(os.path.join(d, "slack.url"), rcv.url(receivers.SLACK_PATH) + "\n")
    os.environ["VG_TEST_OPSGENIE_KEY"] = receivers.OG_KEY
    common = "ca_file: %s, retry: %s, timeout: %s" % (rcv.ca, retry, timeout)
    y = "forwarders:\n"
    if am:
        y += ("  - { name: am, type: alertmanager, url: '%s', resend_every: 1s,"
              " expire_after: 4s, retry: %s }\n" % (am.url, retry))
    y += ("  - { name: pd, type: pagerduty, url: '%s', secret_file: %s/pd.key, %s }\n"
          % (rcv.url("/pd/v2/enqueue"), d, common))
    y += ("  - { name: og, type: opsgenie, url: '%s', secret_env: VG_TEST_OPSGENIE_KEY, %s }\n"
          % (rcv.url("/og/v2/alerts"), common))
    y += "  - { name: slack, type: slack, secret_file: %s/slack.url, %s }\n" % (d, common)
    y += ("  - { name: hook, type: webhook, url: '%s', secret_file: %s/hook.key, %s }\n"
          % (rcv.url(hook_path), d, common))
    return y + extra


def body_incident(e):
    b = e["body"]
    if e["path"].startswith("/pd/"):
        return b.get("payload", {}).get("custom_details", {}).get("incident") \
            if b.get("event_action") == "trigger" else b.get("dedup_key")
    if e["path"].startswith("/og/"):
        return b.get("details", {}).get("incident") if "alias" in b else e["path"]
    return b.get("incident")


class Forwarders(unittest.TestCase):

    def setUp(self):
        need_alertmanager(self)
        self.tmp = tempfile.mkdtemp(prefix="vigil-it-fwd-")
        self.rcv = Receiver(os.path.join(self.tmp, "rcv"))
        self.addCleanup(self.rcv.stop)

    def tearDown(self):
        self.assertEqual(self.rcv.problems, [], "requests broke the vendors' documented format")
        if os.environ.get("VG_KEEP_TESTDIR") != "1":
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)

    def alertmanager(self):
        am = Alertmanager(os.path.join(self.tmp, "am"))
        self.addCleanup(am.stop)
        return am

    def vigild(self, cfg, name):
        vd = Vigild(name, "rules: { paths: [ %s ] }\n%s" % (RULES, cfg))
        self.addCleanup(vd.cleanup)
        return vd

    def metric(self, vd, name, fwd):
        m = vd.metrics()
        for k, v in m.items():
            if k.startswith(name + "{") and 'forwarder="%s"' % fwd in k:
                return v
        return 0

    # ---- (a) end to end ----

    def test_end_to_end_real_rules(self):
        am = self.alertmanager()
        extra = ("  - { name: pd-critical, type: pagerduty, url: '%s', secret_file: %s/pd.key,"
                 " ca_file: %s, match: { severity: '>=critical' } }\n"
                 % (self.rcv.url("/pd-critical/v2/enqueue"), self.rcv.dir, self.rcv.ca))
        vd = self.vigild(forwarders_yaml(self.rcv, am, extra), "fwd-e2e")
        vd.start()
        vd.send([], fmt="falco", stdin=shell_events(["web-1"]))

        def am_alert():
            a = am.alerts(alertname=SHELL_RULE)
            return a[0] if a else None
        a = harness.wait_for("the alert in Alertmanager", am_alert, seconds=30)
        stored = vd.search("kind=alert")
        self.assertEqual(len(stored), 1)
        raw = stored[0]["raw"]
        lab = a["labels"]
        self.assertEqual(lab["alertname"], SHELL_RULE)
        self.assertEqual(lab["severity"], "warning")
        self.assertEqual(lab["level"], "medium")
        self.assertEqual(lab["rule_id"], raw["rule_id"])
        self.assertEqual(lab["fingerprint"], raw["fingerprint"])
        self.assertEqual(lab["namespace"], "default")
        self.assertEqual(lab["pod"], "web-1")
        for k in lab:
            self.assertRegex(k, r"^[a-zA-Z_][a-zA-Z0-9_]*$")
        ann = a["annotations"]
        self.assertEqual(ann["namespace"], "default")
        self.assertEqual(ann["pod"], "web-1")
        self.assertEqual(a["status"]["state"], "active")
        # the evidence command shows the event that fired the rule
        cmd = shlex.split(ann["evidence"])
        self.assertEqual(cmd[:2], ["vigil", "search"])
        ev = harness.run([harness.VIGIL] + cmd[1:] + ["--store", vd.store, "--format", "ndjson"])
        found = [json.loads(l) for l in ev.stdout.splitlines() if l.strip()]
        self.assertEqual([e["seq"] for e in found], raw["seqs"])
        self.assertEqual(found[0]["pod"], "web-1")

        # every receiver whose match fits; not the critical-only one
        harness.wait_for("pagerduty, opsgenie, slack, webhook", lambda: all(
            self.rcv.accepted(p) for p in ("/pd/", "/og/", "/slack/", "/hook")), seconds=30)
        pd = self.rcv.accepted("/pd/")[0]["body"]
        self.assertEqual(pd["event_action"], "trigger")
        self.assertEqual(pd["dedup_key"], raw["fingerprint"])
        self.assertEqual(pd["payload"]["severity"], "warning")
        og = self.rcv.accepted("/og/")[0]["body"]
        self.assertEqual(og["alias"], raw["fingerprint"])
        self.assertIn(SHELL_RULE, self.rcv.accepted("/slack/")[0]["body"]["text"])
        hook = self.rcv.accepted("/hook")[0]
        self.assertEqual(hook["body"]["seq"], stored[0]["seq"])
        self.assertEqual(self.rcv.count("/pd-critical/"), 0)

        harness.wait_for("metrics", lambda: self.metric(vd, "vigil_forwarder_sent_total",
                                                        "hook") == 1, seconds=20)
        m = vd.metrics()
        self.assertEqual(m['vigil_forwarder_sent_total{forwarder="pd",type="pagerduty"}'], 1)
        self.assertEqual(m['vigil_forwarder_dead_total{forwarder="pd",type="pagerduty"}'], 0)
        self.assertEqual(
            m['vigil_forwarder_delivery_seconds_count{forwarder="am",type="alertmanager"}'], 1)
        self.assertEqual(m['vigil_forwarder_sent_total{forwarder="pd-critical",type="pagerduty"}'],
                         0)

        # the forwarders' series are promtool-clean like the rest of /metrics
        promtool = harness.unpacked("promtool", "prometheus", "usr/bin/promtool")
        harness.need(self, promtool, "promtool")
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % vd.admin_port,
                                    timeout=harness.timeout(10)) as r:
            text = r.read().decode()
        self.assertIn("vigil_forwarder_delivery_seconds_bucket{", text)
        pc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=harness.timeout(30))
        self.assertEqual(pc.returncode, 0, pc.stdout + pc.stderr)

        # vigil alerts: the incident and how each receiver took it
        out = run([harness.VIGIL, "alerts", "--store", vd.store, "--format", "json"]).stdout
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        inc = [r for r in rows if "incident" in r]
        self.assertEqual(len(inc), 1)
        self.assertEqual(inc[0]["fingerprint"], raw["fingerprint"])
        self.assertEqual(inc[0]["state"], "firing")
        for r in ("am", "pd", "og", "slack", "hook"):
            self.assertIn("%s=firing delivered" % r, inc[0]["deliveries"])
        summary = {r["receiver"]: r for r in rows if "receiver" in r}
        self.assertEqual(summary["hook"]["delivered"], 1)
        self.assertEqual(summary["hook"]["queued"], 0)

        # vigil alerts test RECEIVER: what the receiver answered
        t = run([harness.VIGIL, "alerts", "test", "pd", "-c", vd.config], check=False)
        self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
        self.assertIn("pd: firing", t.stdout)
        self.assertIn("HTTP 202", t.stdout)
        self.assertIn("pd: resolved", t.stdout)
        self.assertNotIn(receivers.PD_KEY, t.stdout + t.stderr)
        t = run([harness.VIGIL, "alerts", "test", "nope", "-c", vd.config], check=False)
        self.assertEqual(t.returncode, 2)
        self.assertIn("no forwarder named 'nope'", t.stderr)

        # SIGHUP: a forwarder added to vigil.yaml gets the next alert
        with open(vd.config, "a") as f:
            f.write("  - { name: hook2, type: webhook, url: '%s', ca_file: %s }\n"
                    % (self.rcv.url("/hook-unsigned"), self.rcv.ca))
        vd.proc.send_signal(signal.SIGHUP)
        harness.wait_for("the reload", lambda: "forwarders reloaded" in vd.read_log(),
                         seconds=20)
        vd.send([], fmt="falco", stdin=shell_events(["web-2"]))
        harness.wait_for("hook2", lambda: self.rcv.accepted("/hook-unsigned"), seconds=30)
        vd.stop()
        self.assertNotIn(receivers.PD_KEY, vd.read_log())
        self.assertNotIn(receivers.OG_KEY, vd.read_log())

    def test_real_rules_resolve_end_to_end(self):
        """The default pack's own life cycle, not contract records from the test: a shell in
        a container fires, goes quiet, and the engine's resolve reaches every receiver
        (Alertmanager's alert ends, PagerDuty resolves the same dedup_key, Opsgenie closes
        the same alias, Slack and the webhook say resolved)."""
        am = self.alertmanager()
        vd = Vigild("fwd-resolve", "rules: { paths: [ %s ], resolve_after: 3s, lateness: 1s }\n%s"
                    % (RULES, forwarders_yaml(self.rcv, am)))
        self.addCleanup(vd.cleanup)
        vd.start()
        vd.send([], fmt="falco", stdin=shell_events(["resolve-1"]))

        def am_state():
            a = am.alerts(alertname=SHELL_RULE)
            return [x["status"]["state"] for x in a]
        harness.wait_for("the alert active in Alertmanager", lambda: "active" in am_state(),
                         seconds=30)
        harness.wait_for("the resolved record", lambda: [
            a for a in vd.search("kind=alert") if a["raw"]["state"] == "resolved"], seconds=60)
        harness.wait_for("the alert ended in Alertmanager",
                         lambda: "active" not in am_state(), seconds=30)
        harness.wait_for("every receiver's resolve", lambda: (
            len(self.rcv.accepted("/pd/")) == 2 and len(self.rcv.accepted("/og/")) == 2 and
            len(self.rcv.accepted("/slack/")) == 2 and len(self.rcv.accepted("/hook")) == 2),
            seconds=30)
        stored = vd.search("kind=alert")
        self.assertEqual([a["raw"]["state"] for a in stored], ["firing", "resolved"])
        fp = stored[0]["raw"]["fingerprint"]
        self.assertEqual(stored[1]["raw"]["fingerprint"], fp)
        pd = [e["body"] for e in self.rcv.accepted("/pd/")]
        self.assertEqual([b["event_action"] for b in pd], ["trigger", "resolve"])
        self.assertEqual({b["dedup_key"] for b in pd}, {fp})
        og = self.rcv.accepted("/og/")
        self.assertEqual(og[0]["body"]["alias"], fp)
        self.assertEqual(og[1]["path"], "/og/v2/alerts/%s/close?identifierType=alias" % fp)
        slack = [e["body"]["text"] for e in self.rcv.accepted("/slack/")]
        self.assertIn("FIRING", slack[0])
        self.assertIn("RESOLVED", slack[1])
        self.assertEqual([e["body"]["state"] for e in self.rcv.accepted("/hook")],
                         ["firing", "resolved"])
        vd.stop()

    def test_sighup_adds_the_first_forwarder(self):
        # no forwarders at start: no outbox; history is not paged once they come
        vd = self.vigild("", "fwd-hup")
        vd.start()
        vd.send([], fmt="falco", stdin=shell_events(["before-1"]))
        harness.wait_for("the first alert stored", lambda: vd.search("kind=alert"), seconds=30)
        self.assertFalse(os.path.exists(os.path.join(vd.store, "outbox.db")))
        with open(vd.config, "a") as f:
            f.write(forwarders_yaml(self.rcv))
        vd.proc.send_signal(signal.SIGHUP)
        harness.wait_for("the reload", lambda: "forwarders reloaded: 0 kept, 4 added" in
                         vd.read_log(), seconds=20)
        vd.send([], fmt="falco", stdin=shell_events(["after-1"]))
        hook = harness.wait_for("the webhook", lambda: self.rcv.accepted("/hook"), seconds=30)
        time.sleep(harness.timeout(1))
        self.assertEqual([e["body"]["fields"]["pod"] for e in self.rcv.accepted("/hook")],
                         ["after-1"])
        self.assertEqual(hook[0]["body"]["state"], "firing")
        vd.stop()

    # ---- (b) lifecycle ----

    def drive(self, cfg_text):
        store = os.path.join(self.tmp, "store")
        cfg = write(os.path.join(self.tmp, "drive.yaml"),
                    "store: { path: %s, fsync: false }\n"
                    "listen: { forward: off, syslog: off, https: off, admin: off }\n%s"
                    % (store, cfg_text))
        log = open(os.path.join(self.tmp, "drive.log"), "ab")
        p = subprocess.Popen([FWD_DRIVE, "-c", cfg], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=log, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        self.assertEqual(p.stdout.readline().strip(), "ready")
        p.store = store
        p.logfile = log
        return p

    @staticmethod
    def alert(p, fp, inc, state, count, first, last, seqs, **fields):
        raw = {"rule_id": "rule-ssh-bf", "title": "SSH brute force", "level": "high",
               "type": "event_count", "tags": ["attack.t1110"], "fingerprint": fp,
               "incident": inc, "state": state, "count": count, "first_seen": first,
               "last_seen": last, "seqs": seqs, "seqs_total": len(seqs),
               "group": {"src_ip": fields.get("src_ip", "198.18.0.10")},
               "window": {"start": first, "end": last}, "resolve_after": 60 * S}
        line = {"alert": raw, "severity": "error", "title": "SSH brute force",
                "host": "bastion-9", "message": "SSH brute force: %d failures" % count}
        line.update(fields)
        if state == "resolved":
            line["ts"] = last + 60 * S
        p.stdin.write(json.dumps(line) + "\n")
        p.stdin.flush()
        ok = p.stdout.readline().split()
        assert ok[0] == "ok", ok
        return int(ok[1])

    def test_lifecycle_contract_records(self):
        am = self.alertmanager()
        p = self.drive(forwarders_yaml(self.rcv, am))
        fp = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        t0 = time.time_ns() - 30 * S
        inc = "%s-%d" % (fp, t0)
        self.alert(p, fp, inc, "firing", 6, t0, t0 + 10 * S, [1, 2, 3, 4, 5, 6])

        def active():
            return [a for a in am.alerts(fingerprint=fp) if a["status"]["state"] == "active"]
        a = harness.wait_for("firing in Alertmanager", active, seconds=30)[0]
        self.assertEqual(a["labels"]["alertname"], "SSH brute force")
        self.assertEqual(a["labels"]["src_ip"], "198.18.0.10")
        self.assertEqual(a["labels"]["severity"], "error")
        self.assertEqual(a["annotations"]["count"], "6")
        # stays active well past expire_after (4 s): vigil re-sends it every second
        time.sleep(harness.timeout(3) + 6)
        self.assertTrue(active(), "Alertmanager let a firing alert expire")

        self.alert(p, fp, inc, "update", 40, t0, t0 + 20 * S, [1, 2, 3, 38, 39, 40])
        harness.wait_for("the update", lambda: len(self.rcv.accepted("/pd/")) == 2 and
                         len(self.rcv.accepted("/hook")) == 2, seconds=30)
        harness.wait_for("the update in Alertmanager",
                         lambda: [a for a in active() if a["annotations"]["count"] == "40"],
                         seconds=30)
        self.alert(p, fp, inc, "resolved", 41, t0, t0 + 21 * S, [1, 2, 3, 39, 40, 41])
        harness.wait_for("resolved in Alertmanager", lambda: not active(), seconds=30)
        harness.wait_for("every receiver's resolve", lambda: (
            len(self.rcv.accepted("/pd/")) == 3 and len(self.rcv.accepted("/og/")) == 2 and
            len(self.rcv.accepted("/slack/")) == 2 and len(self.rcv.accepted("/hook")) == 3),
            seconds=30)
        pd = [e["body"] for e in self.rcv.accepted("/pd/")]
        self.assertEqual([b["event_action"] for b in pd], ["trigger", "trigger", "resolve"])
        self.assertEqual({b["dedup_key"] for b in pd}, {fp})
        og = self.rcv.accepted("/og/")
        self.assertEqual(og[0]["path"], "/og/v2/alerts")
        self.assertEqual(og[0]["body"]["alias"], fp)
        self.assertEqual(og[1]["path"], "/og/v2/alerts/%s/close?identifierType=alias" % fp)
        slack = [e["body"]["text"] for e in self.rcv.accepted("/slack/")]
        self.assertIn("FIRING", slack[0])
        self.assertIn("RESOLVED", slack[1])
        hook = [e["body"]["state"] for e in self.rcv.accepted("/hook")]
        self.assertEqual(hook, ["firing", "update", "resolved"])
        # a new incident of the same fingerprint pages again
        t1 = time.time_ns()
        self.alert(p, fp, "%s-%d" % (fp, t1), "firing", 6, t1, t1, [50])
        harness.wait_for("the next incident", lambda: len(self.rcv.accepted("/pd/")) == 4,
                         seconds=30)
        rows = run([harness.VIGIL, "alerts", "--store", p.store, "--format", "json"]).stdout
        states = [json.loads(l).get("state") for l in rows.splitlines() if '"incident"' in l]
        self.assertEqual(sorted(states), ["firing", "resolved"])
        p.stdin.write("stop\n")
        p.stdin.flush()
        self.assertEqual(p.wait(timeout=harness.timeout(30)), 0)

    # ---- (c) outage ----

    def test_outage_kill9_dead_letters(self):
        bad = Receiver(os.path.join(self.tmp, "bad"))
        self.addCleanup(bad.stop)
        bad.set_mode("400")
        extra = ("  - { name: refused, type: webhook, url: '%s', ca_file: %s,"
                 " retry: { min: 100ms, max: 1s } }\n" % (bad.url("/hook-unsigned"), bad.ca))
        self.rcv.set_mode("refuse")
        vd = self.vigild(forwarders_yaml(self.rcv, None, extra, timeout="2s"), "fwd-outage")
        vd.start()
        pods = iter("pod-%02d" % i for i in range(100))
        vd.send([], fmt="falco", stdin=shell_events([next(pods) for _ in range(3)]))
        harness.wait_for("refused attempts", lambda: self.metric(
            vd, "vigil_forwarder_failed_total", "pd") >= 2, seconds=30)
        harness.wait_for("dead letters", lambda: self.metric(
            vd, "vigil_forwarder_dead_total", "refused") == 3, seconds=30)
        self.rcv.set_mode("503")
        vd.send([], fmt="falco", stdin=shell_events([next(pods) for _ in range(2)]))
        harness.wait_for("503s", lambda: self.rcv.count("/pd/") >= 3, seconds=30)
        vd.kill9()
        vd.start()
        vd.send([], fmt="falco", stdin=shell_events([next(pods)]))
        n503 = self.rcv.count("/")
        harness.wait_for("503s after the restart", lambda: self.rcv.count("/") > n503 + 2,
                         seconds=30)
        self.rcv.set_mode("hang")
        n = self.rcv.count("/")
        vd.send([], fmt="falco", stdin=shell_events([next(pods)]))
        harness.wait_for("hung requests", lambda: self.rcv.count("/") > n + 2, seconds=30)
        time.sleep(harness.timeout(1))
        # 429 with Retry-After: 3: the next attempt waits that long, more than any backoff
        # of this config (retry.max 1s)
        self.rcv.set_mode("429")
        first = harness.wait_for("a 429", lambda: [e for e in self.rcv.requests
                                                    if e["status"] == 429 and
                                                    e["path"].startswith("/pd/")], seconds=60)[0]
        after = harness.wait_for("the attempt after the 429", lambda: [
            e for e in self.rcv.requests if e["path"].startswith("/pd/") and
            e["t"] > first["t"]], seconds=60)[0]
        self.assertGreaterEqual(after["t"] - first["t"], 2.9, "Retry-After was not honoured")
        self.rcv.set_mode("ok")

        stored = harness.wait_for("7 alerts stored", lambda: (lambda a: a if len(a) == 7 else None)(
            vd.search("kind=alert")), seconds=30)
        incidents = {}
        for a in stored:
            incidents[a["raw"].get("incident") or "%s-%d" % (
                a["raw"]["fingerprint"], a["raw"]["window"]["start"])] = a["seq"]
        self.assertEqual(len(incidents), 7)

        def all_arrived():
            for prefix in ("/pd/", "/og/", "/slack/", "/hook"):
                got = {body_incident(e) if prefix != "/slack/" else e["body"]["text"]
                       for e in self.rcv.accepted(prefix)}
                if len(got) < 7:
                    return False
            return True
        try:
            harness.wait_for("every alert at every receiver", all_arrived, seconds=90)
        except AssertionError:
            for prefix in ("/pd/", "/og/", "/slack/", "/hook"):
                print(prefix, len(self.rcv.accepted(prefix)), self.rcv.count(prefix),
                      file=sys.stderr)
            print(run([harness.VIGIL, "alerts", "outbox", "--store", vd.store]).stdout,
                  file=sys.stderr)
            print(vd.read_log()[-5000:], file=sys.stderr)
            raise
        time.sleep(harness.timeout(2))  # anything sent twice would arrive now
        for prefix in ("/pd/", "/og/", "/hook"):
            keys = [(body_incident(e), e["body"].get("state", e["body"].get("event_action")))
                    for e in self.rcv.accepted(prefix)]
            self.assertEqual(len(keys), len(set(keys)), "%s: sent twice: %s" % (prefix, keys))
            self.assertEqual({k[0] for k in keys}, set(incidents), prefix)
        self.assertEqual(len(self.rcv.accepted("/slack/")), 7)
        seqs = sorted(e["body"]["seq"] for e in self.rcv.accepted("/hook"))
        self.assertEqual(seqs, sorted(incidents.values()))

        # dead letters: kept, listed, replayable
        out = run([harness.VIGIL, "alerts", "outbox", "--state", "dead", "--store", vd.store,
                   "--format", "json"]).stdout
        dead = [json.loads(l) for l in out.splitlines() if l.strip()]
        self.assertEqual(len(dead), 7)
        self.assertTrue(all(d["receiver"] == "refused" and d["status"] == 400 for d in dead))
        self.assertIn("HTTP 400", dead[0]["error"])
        self.assertEqual(self.metric(vd, "vigil_forwarder_dead_letters", "refused"), 7)
        bad.set_mode("ok")
        r = run([harness.VIGIL, "alerts", "replay", "--dead", "--store", vd.store])
        self.assertIn("7 dead letters queued again", r.stdout)
        harness.wait_for("the replay", lambda: len(bad.accepted("/hook-unsigned")) == 7,
                         seconds=60)
        self.assertEqual(bad.problems, [])
        log = vd.read_log()
        # a dead letter is logged once, failures once per outage (not per attempt)
        self.assertGreaterEqual(log.count("kept as a dead letter"), 3)
        self.assertLessEqual(log.count("'pd' (https://127.0.0.1:%d): delivery failed"
                                       % self.rcv.port), 4)
        vd.stop()

    # ---- (d) bad config ----

    def test_check_config_errors(self):
        d = self.tmp
        write(os.path.join(d, "ok.key"), receivers.PD_KEY + "\n")
        base = ("store: { path: %s/store }\n"
                "listen: { forward: off, syslog: off, https: off, insecure: true }\n" % d)
        cases = [
            ("forwarders:\n  - { name: a, type: sms, url: 'https://h/x' }\n",
             "vigil.yaml:4:22: 'forwarders[0].type': expected one of alertmanager, pagerduty"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'htps://h/x' }\n",
             "vigil.yaml:4:36: 'forwarders[0].url': expected an http:// or https:// URL"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'https://h:0/x' }\n",
             "vigil.yaml:4:36: 'forwarders[0].url': the URL's port is not a number"),
            ("forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/x',\n"
             "      secret_file: missing.key }\n",
             "vigil.yaml:5:20: 'forwarders[0].secret_file': cannot read 'missing.key'"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x',\n"
             "      match: { sevrity: high } }\n",
             "vigil.yaml:5:16: 'forwarders[0].match.sevrity': cannot match on 'sevrity'"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x',\n"
             "      match: { severity: '>=hgih' } }\n",
             "vigil.yaml:5:16: 'forwarders[0].match.severity': '>=hgih' is not a severity"),
            ("forwarders:\n  - { name: a, type: opsgenie, url: 'https://h/x' }\n",
             "vigil.yaml:4:22: 'forwarders[0].type': type opsgenie needs its API key"),
            ("forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/x',"
             " secret_env: VG_TEST_NOT_SET_EVER }\n",
             "vigil.yaml:4:65: 'forwarders[0].secret_env': environment variable "
             "'VG_TEST_NOT_SET_EVER' is not set"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x', expire_after: 1m }\n",
             "vigil.yaml:4:65: 'forwarders[0].expire_after': 'expire_after' is for type "
             "alertmanager"),
            ("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x', timeout: 1y }\n",
             "vigil.yaml:4:60: 'forwarders[0].timeout': expected a duration"),
        ]
        for text, want in cases:
            cfg = write(os.path.join(d, "vigil.yaml"), base + text)
            p = run([harness.VIGILD, "-c", cfg, "--check-config"], check=False)
            self.assertEqual(p.returncode, 2, text + p.stdout + p.stderr)
            self.assertIn(want.replace("vigil.yaml", cfg), p.stderr, text)
        ok = write(os.path.join(d, "vigil.yaml"), base +
                   "forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/x',"
                   " secret_file: ok.key, match: { severity: '>=high', namespace: [a, b*] } }\n")
        p = run([harness.VIGILD, "-c", ok, "--check-config"], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)


if __name__ == "__main__":
    harness.main()
