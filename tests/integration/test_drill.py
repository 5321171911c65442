"""Fire drills (issue 16): `vigil drill run|report|list` against a real vigild with the
default rule pack (etc/rules) and a local webhook receiver (a plain HTTP server of the
standard library on loopback, as vigild's forwarders speak to any webhook).

- every shipped scenario (etc/drills/*.yaml) passes, and the receiver sees each alert
  marked as a drill (the webhook's "drill" field is the run id);
- a scenario whose expected rule is removed from the pack fails, naming the step;
- with the receiver down the drill reports "detected, not paged" with the outbox state,
  and once the receiver is back `drill report` shows the late page;
- `vigil search` with the drill filter returns exactly the non-drill events;
- a bad scenario file is refused with file:line:column, exit 2, nothing shipped.
"""
import glob
import http.server
import json
import os
import shutil
import threading

import harness
from harness import VIGIL, run, wait_for
from receivers import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
DRILLS = sorted(glob.glob(os.path.join(SRC, "etc", "drills", "*.yaml")))
RULES = os.path.join(SRC, "etc", "rules")


class Hook:
    """A webhook receiver on 127.0.0.1:port (plain HTTP): records every JSON body."""

    def __init__(self, port):
        self.port = port
        self.bodies = []
        self.lock = threading.Lock()
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        http.server.HTTPServer.allow_reuse_address = True
        self.srv = http.server.HTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def drills(self):
        with self.lock:
            return [b for b in self.bodies if b.get("drill")]


def forwarder(port):
    return ("forwarders:\n"
            "  - { name: oncall, type: webhook, url: 'http://127.0.0.1:%d/hook',"
            " retry: { min: 200ms, max: 1s } }\n" % port)


class DrillTest(harness.VigildTest):
    rules_dir = RULES

    def setUp(self):
        self.port = free_port()
        self.hook = Hook(self.port)
        self.addCleanup(self.hook.stop)
        self.extra_config = "rules: { paths: [ %s ] }\n%s" % (self.rules_dir, forwarder(self.port))
        super().setUp()

    def drill(self, *args, check=None):
        p = run([VIGIL, "drill"] + list(args) + ["--store", self.vd.store], check=False, t=600)
        if check is not None and p.returncode != check:
            raise AssertionError("vigil drill %s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                                 % (" ".join(args), p.returncode, check, p.stdout, p.stderr))
        return p

    def drill_run(self, files, *extra, check=None):
        return self.drill("run", *files, "--server", "127.0.0.1:%d" % self.vd.forward_port,
                          "--pki", self.vd.pki, *extra, check=check)


class EveryScenario(DrillTest):
    def test_every_shipped_scenario_passes(self):
        self.assertGreaterEqual(len(DRILLS), 10)
        p = self.drill_run(DRILLS, "--format", "json", check=0)
        reports = json.loads(p.stdout)
        self.assertEqual([r["file"] for r in reports], DRILLS)
        expected_rules = set()
        for r in reports:
            self.assertTrue(r["passed"], r)
            self.assertEqual(r["noise"], [], r["scenario"])
            for s in r["steps"]:
                self.assertTrue(s["shipped"])
                self.assertGreater(s["events"], 0)
                self.assertIn(s["agent"], ("agent-node-1", "agent-sidecar-1"))
                for x in s["expectations"]:
                    self.assertTrue(x["detected"], x)
                    self.assertGreaterEqual(x["detect_seconds"], 0)
                    self.assertLessEqual(x["detect_seconds"], x["within_seconds"])
                    expected_rules.add(x["alert"]["title"])
                    for pg in x["pages"]:
                        self.assertEqual((pg["receiver"], pg["state"], pg["paged"]),
                                         ("oncall", "delivered", True))
                        self.assertLessEqual(pg["page_seconds"], pg["within_seconds"])
        # one scenario per alerting rule of the pack
        self.assertEqual(expected_rules, {
            "SSH brute force from one address",
            "SSH password spraying from one address",
            "SSH login after brute force from the same address",
            "Shell spawned in a container",
            "Kubernetes exec or attach into a pod",
            "Kubernetes secrets read by a non-system user",
            "Kubernetes privileged or hostPath pod created",
            "Kubernetes API access denied or anonymous burst",
            "Runtime alert in an image with a critical vulnerability",
        })
        # the receiver was told each page is a drill, with the run id
        runs = {r["run"] for r in reports}
        multi = [r for r in reports if r["scenario"] == "multi-stage-intrusion"][0]
        paged = wait_for("the multi-stage drill's pages",
                         lambda: [b for b in self.hook.drills() if b["drill"] == multi["run"]])
        self.assertEqual(len(paged), 6)
        self.assertTrue({b["drill"] for b in self.hook.drills()} <= runs)

        # list shows every run with its outcome; report rebuilds each the same
        listed = json.loads(self.drill("list", "--format", "json", check=0).stdout)
        self.assertEqual({(l["run"], l["result"]) for l in listed},
                         {(r["run"], "passed") for r in reports})
        again = json.loads(self.drill("report", multi["run"], "--format", "json",
                                      check=0).stdout)
        self.assertEqual(again, multi)
        table = self.drill("report", multi["run"], check=0).stdout
        self.assertIn("result: PASSED, 6 of 6 expectations met", table)
        self.assertIn("paged oncall", table)


class RuleRemoved(DrillTest):
    """The pack without k8s_secrets_read.yml: step 5 of the multi-stage drill fails."""

    def setUp(self):
        import tempfile
        self.pack = tempfile.mkdtemp(prefix="vigil-it-pack-")
        self.addCleanup(shutil.rmtree, self.pack, True)
        for f in os.listdir(RULES):
            if f.endswith(".yml") and not f.startswith("k8s_secrets_read"):
                shutil.copy(os.path.join(RULES, f), self.pack)
        self.rules_dir = self.pack
        super().setUp()

    def test_missing_rule_fails_naming_the_step(self):
        multi = os.path.join(SRC, "etc", "drills", "multi_stage.yaml")
        p = self.drill_run([multi], check=1)
        self.assertIn('MISSED    Kubernetes secrets read by a non-system user: no alert '
                      'within 30.000 s', p.stdout)
        self.assertIn('result: FAILED, 5 of 6 expectations met', p.stdout)
        self.assertIn('failed: step 5 "read a secret": Kubernetes secrets read by a '
                      'non-system user not detected', p.stdout)
        j = self.drill("list", "--format", "json", check=0).stdout
        self.assertEqual([l["result"] for l in json.loads(j)], ["failed"])


class ReceiverDown(DrillTest):
    """The webhook's port has nothing listening during the drill."""

    def setUp(self):
        super().setUp()
        self.hook.stop()

    def test_detected_not_paged_then_late_page(self):
        scn = os.path.join(self.vd.dir, "down.yaml")
        with open(scn, "w") as f:
            f.write(
                "name: receiver-down\n"
                "steps:\n"
                "  - name: exec into a pod\n"
                "    format: k8s-audit\n"
                "    agent: agent-sidecar-1\n"
                "    events: |\n"
                "      {\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Request\","
                "\"auditID\":\"{{name:a}}\",\"stage\":\"ResponseComplete\",\"verb\":\"create\","
                "\"requestURI\":\"/api/v1/namespaces/x/pods/{{name:pod}}/exec\","
                "\"user\":{\"username\":\"{{name:user}}\"},\"sourceIPs\":[\"{{ip:c}}\"],"
                "\"objectRef\":{\"resource\":\"pods\",\"namespace\":\"x\",\"name\":\"{{name:pod}}\","
                "\"subresource\":\"exec\"},\"responseStatus\":{\"code\":101},"
                "\"requestReceivedTimestamp\":\"{{now}}\"}\n"
                "    expect:\n"
                "      - rule: Kubernetes exec or attach into a pod\n"
                "        group: { pod: \"{{name:pod}}\" }\n"
                "        page: [ oncall ]\n"
                "        page_within: 3s\n")
        p = self.drill_run([scn], check=1)
        self.assertIn("DETECTED, NOT PAGED Kubernetes exec or attach into a pod", p.stdout)
        self.assertRegex(p.stdout, r"NOT PAGED oncall +outbox: queued, [1-9][0-9]* attempts?, "
                                   r"last error: ")
        self.assertIn("failed: step 1 \"exec into a pod\": Kubernetes exec or attach into a "
                      "pod not paged", p.stdout)
        run_id = p.stdout.split()[1].rstrip(":")
        # the receiver comes back: the outbox delivers, and the report shows the late page
        self.hook = Hook(self.port)
        self.addCleanup(self.hook.stop)
        wait_for("the late page", lambda: [b for b in self.hook.drills()
                                           if b["drill"] == run_id], seconds=30)

        def delivered():
            r = json.loads(self.drill("report", run_id, "--format", "json").stdout)
            pg = r["steps"][0]["expectations"][0]["pages"][0]
            return r if pg["state"] == "delivered" else None
        r = wait_for("the delivery in the outbox", delivered)
        pg = r["steps"][0]["expectations"][0]["pages"][0]
        self.assertTrue(pg["paged"])
        self.assertGreater(pg["page_seconds"], 3.0)   # late: after page_within
        self.assertFalse(r["passed"])
        table = self.drill("report", run_id, check=1).stdout
        self.assertRegex(table, r"paged oncall +in [0-9.]+ s \(late: allowed 3.000 s\)")


class HttpsListener(DrillTest):
    """Steps with listener: https go through POST /v1/falco, /v1/k8s/audit, /v1/trivy."""
    listen = {"https": "127.0.0.1:0"}

    def test_scenarios_over_https(self):
        files = []
        shipped = 0
        for name, events in (("container_shell", 1), ("image_cve_then_runtime", 2),
                             ("k8s_api_denied_burst", 12), ("k8s_secrets_read", 1)):
            with open(os.path.join(SRC, "etc", "drills", name + ".yaml")) as f:
                text = f.read()
            text = text.replace("    agent: ", "    listener: https\n    agent: ")
            path = os.path.join(self.vd.dir, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            files.append(path)
            shipped += events
        before = self.vd.metrics().get('vigil_listener_events_received_total{listener="https"}', 0)
        p = self.drill_run(files, "--https", "127.0.0.1:%d" % self.vd.ports["https"],
                           "--format", "json", check=0)
        reports = json.loads(p.stdout)
        self.assertEqual([r["passed"] for r in reports], [True] * 4)
        after = self.vd.metrics()['vigil_listener_events_received_total{listener="https"}']
        self.assertEqual(after - before, shipped)
        # every event stored carries the marks, the Trivy finding split from its report too
        for r in reports:
            evs = self.vd.search("raw.vigil_drill=%s" % r["run"], "NOT", "raw.vigil_drill_step=0")
            self.assertEqual(len(evs), sum(s["events"] for s in r["steps"]))
        # without --https the step says what is missing
        p = self.drill_run(files[:1], check=1)
        self.assertIn("give --https HOST:PORT", p.stderr)


class Markers(DrillTest):
    def test_search_excluding_drills_returns_exactly_the_rest(self):
        plain = os.path.join(self.vd.dir, "plain.ndjson")
        with open(plain, "w") as f:
            for i in range(5):
                f.write(json.dumps({"message": "ordinary event %d" % i, "host": "web-%d" % i})
                        + "\n")
        self.vd.send([plain])
        self.drill_run([os.path.join(SRC, "etc", "drills", "ssh_brute_force_then_login.yaml"),
                        os.path.join(SRC, "etc", "drills", "container_shell.yaml")], check=0)
        self.vd.send([plain])
        everything = self.vd.search()
        drill_seqs = {e["seq"] for e in everything
                      if "vigil_drill" in e["raw"] or (e.get("kind") == "alert"
                                                       and "drill" in e["raw"])}
        rest = self.vd.search("NOT", "raw.vigil_drill=*", "NOT", "raw.drill=*")
        self.assertEqual({e["seq"] for e in rest}, {e["seq"] for e in everything} - drill_seqs)
        self.assertEqual(len([e for e in rest if e["message"].startswith("ordinary event")]), 10)
        # the two runs: 2 first records, 9 + 1 events, 3 alerts that fired
        selected = self.vd.search("raw.vigil_drill=*")
        self.assertEqual(len(selected), 2 + 9 + 1)
        alerts = self.vd.search("raw.drill=*", "raw.state=firing")
        self.assertEqual(len(alerts), 3)
        self.assertTrue(drill_seqs >= {e["seq"] for e in selected + alerts})


class BadScenario(DrillTest):
    def check_refused(self, text, message):
        path = os.path.join(self.vd.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = self.drill_run([path], check=2)
        self.assertIn(message.replace("FILE", path), p.stderr)
        self.assertEqual(p.stdout, "")

    def test_errors_name_file_line_and_key(self):
        step = "steps:\n  - name: s\n    events: |\n      {\"message\": \"x\"}\n"
        self.check_refused("name: x\n" + step.replace("s\n", "s\n    formt: syslog\n", 1),
                           "FILE:4:5: unknown key 'steps[0].formt'")
        self.check_refused("name: x\n" + step.replace("\"x\"", "\"{{nwo}}\""),
                           "FILE:4:13: 'steps[0].events': line 1 of the template: unknown "
                           "template variable '{{nwo}}'")
        self.check_refused("name: x\n" + step + "    expect:\n      - { within: 5s }\n",
                           "FILE:7:9: 'steps[0].expect[0].rule': an expectation needs a rule "
                           "or a tag")
        self.check_refused("name: x\n" + step.replace("s\n", "s\n    listener: syslog\n", 1),
                           "FILE:4:15: 'steps[0].listener': expected one of forward, https")
        self.check_refused("name: x\n" + step.replace("s\n", "s\n    listener: https\n"
                                                           "    format: syslog\n", 1),
                           "FILE:4:15: 'steps[0].listener': syslog lines are not shipped over "
                           "HTTPS")
        self.check_refused("steps: []\n", "FILE:")
        # nothing of a refused scenario was shipped
        self.assertEqual(self.vd.search("raw.vigil_drill=*"), [])


if __name__ == "__main__":
    harness.main()
