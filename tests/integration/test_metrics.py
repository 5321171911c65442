"""vigild's /metrics as Prometheus sees it, and what deploy/ builds on it.

- A live /metrics, after two agents shipped real events that fire the default rules,
  passes `promtool check metrics`; the per-agent counters equal what each agent
  shipped; the per-rule alert counters add up to vigil_rules_alerts_total; the
  histograms (ack latency, group commit, rule evaluation) are cumulative and counted
  where they should be; the store's bytes on disk and the free-space reserve are there.
- deploy/prometheus/vigil-alerts.yaml passes `promtool check rules` and its own
  `promtool test rules`; deploy/grafana/vigil-dashboard.json is valid JSON. Every metric
  either names exists in the live /metrics, except vigil_forwarder_* (exported by the
  forwarders).
"""
import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import VigildTest, main, need, run, timeout, unpacked, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
DEMO = os.path.join(SRC, "etc", "demo")
PROM = os.path.join(SRC, "deploy", "prometheus")
RESERVE = 1 << 20


def families(text):
    """{name: type} of the # TYPE lines."""
    return dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text))


def used_metrics(expr):
    return set(re.findall(r"\b(vigil_[a-z0-9_]+)", expr))


def known(name, fams):
    """A name an expression may use: a family, or a histogram's _bucket/_sum/_count."""
    if name in fams:
        return True
    m = re.match(r"(.*)_(bucket|sum|count)$", name)
    return bool(m and fams.get(m.group(1)) == "histogram")


class MetricsTest(VigildTest):
    listen = {"https": "127.0.0.1:0"}
    extra_config = "rules: { paths: [ %s ] }\n" % os.path.join(SRC, "etc", "rules")
    store = {"retention": "{ max_age: 36500d, interval: 1s }", "free_reserve": "1MiB"}

    def scrape(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.vd.admin_port,
                                    timeout=timeout(10)) as r:
            return r.read().decode()

    def ship(self, agent, fmt, name):
        p = self.vd.send([os.path.join(DEMO, name)], agent=agent, fmt=fmt)
        m = re.search(r"(\d+) events acknowledged", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        return int(m.group(1))

    def test_live_metrics(self):
        promtool = unpacked("promtool", "prometheus", "usr/bin/promtool")
        need(self, promtool, "promtool (setup.sh --test unpacks prometheus)")
        n1 = self.ship("agent-node-1", "syslog", "sshd-invalid-bf.log")
        n2 = self.ship("agent-sidecar-1", "k8s-audit", "k8s-audit-pod-exec.log")
        n2 += self.ship("agent-sidecar-1", "k8s-audit", "k8s-audit-priv-pod.log")
        wait_for("the rules to see every event",
                 lambda: self.vd.metrics()["vigil_rules_events_total"] >= n1 + n2)
        wait_for("alerts", lambda: self.vd.metrics()["vigil_rules_alerts_total"] >= 2)
        # The store's size: measured every retention interval (1 s here).
        wait_for("vigil_store_disk_bytes", lambda: self.vd.metrics()["vigil_store_disk_bytes"] > 0)

        text = self.scrape()
        p = run([promtool, "check", "metrics"], input=text, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = self.vd.metrics()
        self.assertEqual(m['vigil_agent_events_total{agent="agent-node-1"}'], n1)
        self.assertEqual(m['vigil_agent_events_total{agent="agent-sidecar-1"}'], n2)
        # The rules' own alerts are ingested as agent vigild.
        self.assertEqual(m['vigil_agent_events_total{agent="vigild"}'],
                         m["vigil_rules_alerts_total"])
        per_rule = {k: v for k, v in m.items() if k.startswith("vigil_rule_alerts_total{")}
        self.assertGreaterEqual(len(per_rule), 2, per_rule)
        self.assertEqual(sum(per_rule.values()), m["vigil_rules_alerts_total"])
        self.assertTrue(any('title="Kubernetes exec or attach into a pod"' in k for k in per_rule),
                        per_rule)
        self.assertEqual(m["vigil_store_free_reserve_bytes"], RESERVE)
        self.assertGreater(m["vigil_store_free_bytes"], 0)
        for h, count in (("vigil_ack_latency_seconds", None),
                         ("vigil_store_commit_seconds", m["vigil_store_commits_total"]),
                         ("vigil_rules_eval_seconds", m["vigil_rules_events_total"])):
            buckets = [(float(le), v) for k, v in m.items()
                       for le in re.findall(r'^%s_bucket\{le="([^"]+)"\}$' % h, k)]
            buckets.sort()
            self.assertEqual(buckets[-1][0], float("inf"), h)
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), h)
            self.assertEqual(buckets[-1][1], m[h + "_count"], h)
            self.assertGreater(m[h + "_count"], 0, h)
            if count is not None:
                self.assertEqual(m[h + "_count"], count, h)
            self.assertGreater(m[h + "_sum"], 0, h)
        # Every acknowledgement waited for durability once.
        acks = sum(v for k, v in m.items() if k.startswith("vigil_listener_acks_sent_total{"))
        self.assertGreaterEqual(m["vigil_ack_latency_seconds_count"], acks)

        fams = families(text)
        # The alert rules: valid, their own tests pass, and every metric they name exists.
        p = run([promtool, "check", "rules", os.path.join(PROM, "vigil-alerts.yaml")],
                check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = run([promtool, "test", "rules", os.path.join(PROM, "vigil-alerts.test.yaml")],
                check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(PROM, "vigil-alerts.yaml")) as f:
            rules_text = f.read()
        names = used_metrics(rules_text)
        self.assertGreater(len(names), 8)
        self.assertEqual({n for n in names if not known(n, fams)
                          and not n.startswith("vigil_forwarder_")}, set())
        # The dashboard: JSON, unique panel ids, every query's metrics exist.
        with open(os.path.join(SRC, "deploy", "grafana", "vigil-dashboard.json")) as f:
            dash = json.load(f)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 10)
        used = set().union(*(used_metrics(e) for e in exprs))
        self.assertEqual({n for n in used if not known(n, fams)
                          and not n.startswith("vigil_forwarder_")}, set())
        for h in ("vigil_ack_latency_seconds", "vigil_store_commit_seconds",
                  "vigil_rules_eval_seconds", "vigil_agent_events_total",
                  "vigil_rule_alerts_total", "vigil_store_disk_bytes"):
            self.assertTrue(any(h in e for e in exprs), h)


if __name__ == "__main__":
    main()
