"""One bad clock must not blind the rules (issue 9; rules/TIME.md).

vigild runs the default pack (etc/rules) with the syslog listener on. Real TLS clients
ship sshd lines over RFC 5425 syslog (RFC 5424 and RFC 3164 headers) and over Forward
(`vigil send`):

- one line dated an hour ahead (any program, any host) between two brute forces does
  not switch correlation off, neither live nor after a restart (the checkpoint keeps no
  poisoned clock); the future line is counted in /metrics with reason "future";
- lines dated minutes, hours and years ahead by one agent, interleaved with attacks by
  another agent: every attack alerts, live and in `vigil hunt`;
- a backlog hours old replayed by one agent while another agent's live traffic flows:
  the attacks of both alert, as if each had arrived on time; hunt agrees;
- an event out of order by more than the lateness bound within its own source is not
  counted, and the metric says so (reason "late").
"""
import calendar
import json
import os
import socket
import ssl
import time
import unittest

import harness
from harness import VigildTest
from test_rules import (RULES, S, alert_key, falco, hunt, iso, retime, rules_config, sshd,
                        wait_rules_done)

BF = "SSH brute force from one address"
BF_LOGIN = "SSH login after brute force from the same address"
SHELL = "Shell spawned in a container"


def rfc5424(ts_ns, host, app, msg, pid=4242):
    return ("<38>1 %s %s %s %d - - %s" % (iso(ts_ns, 6), host, app, pid, msg)).encode()


def rfc3164(ts_ns, host, app, msg, pid=4242):
    stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(ts_ns // S))
    if stamp[4] == "0":
        stamp = stamp[:4] + " " + stamp[5:]  # "Jan  5": the day space-padded
    return ("<38>%s %s %s[%d]: %s" % (stamp, host, app, pid, msg)).encode()


def burst(ip, t0, host="bastion-1", fmt=rfc5424, n_fail=7):
    """n_fail failed logins a second apart, then a success: a brute force and a login
    after it."""
    out = [fmt(t0 + i * S, host, "sshd", "Failed password for root from %s port %d ssh2"
               % (ip, 40000 + i)) for i in range(n_fail)]
    out.append(fmt(t0 + n_fail * S, host, "sshd",
                   "Accepted password for root from %s port 41000 ssh2" % ip))
    return out


def firing(alerts):
    """Alert records that open an incident (schemas/alert.md)."""
    return [a for a in alerts if a["raw"].get("state", "firing") == "firing"]


def attacked(alerts, title):
    return sorted({a.get("src_ip") for a in firing(alerts) if a["rule"] == title})


class Clocks(VigildTest):
    extra_config = rules_config(RULES)
    listen = {"syslog": "127.0.0.1:0"}

    def syslog(self, frames, agent="agent-node-1"):
        """Ships RFC 5425 octet-counted frames over mutual TLS and waits until vigild
        stored them (the listener acknowledges nothing: poll the store)."""
        ctx = ssl.create_default_context(cafile=self.vd.ca)
        cert, key = self.vd.cert(agent)
        ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", self.vd.syslog_port),
                                       timeout=harness.timeout(10))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"".join(b"%d %s" % (len(f), f) for f in frames))
        self.sent += len(frames)
        self.sent_run += len(frames)
        want = self.sent
        harness.wait_for("%d events stored" % want,
                         lambda: len(self.vd.search("NOT", "kind=alert")) >= want, 60)

    def settle(self):
        """Waits until the rules evaluated everything stored in this run of vigild (its
        metrics start at a restart) and stored their alerts; returns the alerts."""
        def done():
            m = self.vd.metrics()
            return (m.get("vigil_rules_events_total", 0) >= self.sent_run and
                    len(self.vd.search("kind=alert")) ==
                    self.alerts_before + m["vigil_rules_alerts_total"])
        harness.wait_for("the rules to catch up", done, 60)
        return self.vd.search("kind=alert")

    def restart(self):
        self.vd.stop()
        self.alerts_before = len(self.vd.search("kind=alert"))
        self.sent_run = 0
        self.vd.start()

    def setUp(self):
        super().setUp()
        self.sent = 0
        self.sent_run = 0
        self.alerts_before = 0

    def test_one_future_line_does_not_blind_correlation(self):
        now = time.time_ns() - 60 * S
        self.syslog(burst("192.0.2.10", now))
        alerts = self.settle()
        self.assertEqual(attacked(alerts, BF), ["192.0.2.10"])
        self.assertEqual(attacked(alerts, BF_LOGIN), ["192.0.2.10"])
        # one line of another program on another host, dated an hour ahead; and a failed
        # login there dated so too (the rules count it, at the time it was received)
        self.syslog([rfc5424(time.time_ns() + 3600 * S, "build-7", "cron", "(root) CMD (true)"),
                     rfc5424(time.time_ns() + 3600 * S, "build-7", "sshd",
                             "Failed password for root from 198.51.100.7 port 1 ssh2")])
        self.syslog(burst("192.0.2.20", time.time_ns() - 20 * S))
        alerts = self.settle()
        self.assertEqual(attacked(alerts, BF), ["192.0.2.10", "192.0.2.20"])
        self.assertEqual(attacked(alerts, BF_LOGIN), ["192.0.2.10", "192.0.2.20"])
        m = self.vd.metrics()
        self.assertGreaterEqual(sum(v for k, v in m.items() if k.startswith(
            "vigil_rules_unevaluated_total{") and 'reason="future"' in k), 1, m)
        # the same after a restart: the checkpoint did not keep a poisoned clock
        self.restart()
        self.syslog([rfc5424(time.time_ns() + 3 * 3600 * S, "build-7", "cron", "(root) CMD (x)")])
        self.syslog(burst("192.0.2.30", time.time_ns() - 20 * S))
        alerts = self.settle()
        self.assertEqual(attacked(alerts, BF), ["192.0.2.10", "192.0.2.20", "192.0.2.30"])
        self.assertEqual(attacked(alerts, BF_LOGIN), ["192.0.2.10", "192.0.2.20", "192.0.2.30"])
        hunted, _ = hunt(self.vd)
        self.assertEqual(attacked(hunted, BF), ["192.0.2.10", "192.0.2.20", "192.0.2.30"])

    def test_future_clocks_of_one_agent_do_not_hide_attacks_of_another(self):
        ahead = [10 * 60, 3 * 3600, 2 * 365 * 86400]  # minutes, hours, years
        ips = []
        for k, dt in enumerate(ahead):
            noise = [rfc5424(time.time_ns() + dt * S, "skewed-%d" % j, app, "clock %d" % dt)
                     for j, app in enumerate(("cron", "sshd", "kernel"))]
            # the same agent's sshd lines dated in the future too: a brute force it shows
            # is evaluated at the time vigild received it
            noise += burst("198.51.100.%d" % (k + 1), time.time_ns() + dt * S, "skewed-ssh")
            self.syslog(noise, agent="agent-sidecar-1")
            ip = "192.0.2.%d" % (40 + k)
            ips.append(ip)
            self.syslog(burst(ip, time.time_ns() - 15 * S, "bastion-%d" % k))
        # an RFC 3164 line has no year: one dated two days ahead is last year's, never
        # next week's
        self.syslog([rfc3164(time.time_ns() + 2 * 86400 * S, "skewed-3164", "cron", "x")],
                    agent="agent-sidecar-1")
        ip = "192.0.2.49"
        ips.append(ip)
        self.syslog(burst(ip, time.time_ns() - 15 * S, "bastion-9", fmt=rfc3164))
        alerts = self.settle()
        self.assertEqual(set(attacked(alerts, BF)) & set(ips), set(ips))
        self.assertEqual(set(attacked(alerts, BF_LOGIN)) & set(ips), set(ips))
        stored = self.vd.search("host=skewed-3164")
        self.assertEqual(len(stored), 1)
        self.assertLess(calendar.timegm(time.strptime(stored[0]["ts"][:19], "%Y-%m-%dT%H:%M:%S")),
                        time.time() + 86400)
        hunted, _ = hunt(self.vd)
        self.assertEqual(set(attacked(hunted, BF)) & set(ips), set(ips))
        self.assertEqual(set(attacked(hunted, BF_LOGIN)) & set(ips), set(ips))
        self.assertEqual(sorted(alert_key(a) for a in firing(hunted)),
                         sorted(alert_key(a) for a in firing(alerts)))


class Backlog(VigildTest):
    """An agent that was offline replays hours of events while others are live."""
    extra_config = rules_config(RULES)

    def write(self, name, events):
        path = os.path.join(self.vd.dir, name)
        with open(path, "w") as f:
            for ev in events:
                f.write(json.dumps(ev) + "\n")
        return path

    def attack(self, ip, t0, host):
        evs = [retime(sshd("Failed password for root from %s port %d ssh2" % (ip, i), host),
                      t0 + i * S) for i in range(7)]
        evs.append(retime(sshd("Accepted password for root from %s port 9 ssh2" % ip, host),
                          t0 + 20 * S))
        return evs

    def test_backlog_and_live_traffic_both_alert(self):
        now = time.time_ns()
        live1 = self.write("live1.ndjson", self.attack("192.0.2.61", now - 40 * S, "web-1"))
        live2 = self.write("live2.ndjson", self.attack("192.0.2.62", now - 20 * S, "web-1"))
        # the backlog: three hours of one host, an attack at its start and at its end, a
        # shell in a container in the middle
        t0 = now - 3 * 3600 * S
        old = self.attack("192.0.2.71", t0, "db-1")
        old.append(retime(falco("Terminal shell in container", "Notice", "old-0", "c0ffee0000aa",
                                "bash", "bash -il"), t0 + 3600 * S))
        old += self.attack("192.0.2.72", t0 + 2 * 3600 * S, "db-1")
        backlog = self.write("backlog.ndjson", old)
        self.vd.send([live1])
        self.vd.send([backlog], agent="agent-sidecar-1")
        self.vd.send([live2])
        n = 8 * 4 + 1
        wait_rules_done(self.vd, n)
        alerts = self.vd.search("kind=alert")
        want = ["192.0.2.61", "192.0.2.62", "192.0.2.71", "192.0.2.72"]
        self.assertEqual(attacked(alerts, BF), want)
        self.assertEqual(attacked(alerts, BF_LOGIN), want)
        self.assertEqual([a["pod"] for a in firing(alerts) if a["rule"] == SHELL], ["old-0"])
        m = self.vd.metrics()
        self.assertEqual(sum(v for k, v in m.items() if k.startswith(
            "vigil_rules_unevaluated_total{") and 'reason="late"' in k), 0)
        hunted, _ = hunt(self.vd)
        self.assertEqual(sorted(alert_key(a) for a in firing(hunted)),
                         sorted(alert_key(a) for a in firing(alerts)))

    def test_out_of_order_beyond_lateness_is_counted(self):
        # one source (agent, host) sends an event, then one three minutes older than
        # it: more than the lateness bound (2 min) behind its own clock
        now = time.time_ns()
        evs = [retime(sshd("Failed password for root from 192.0.2.81 port 1 ssh2", "web-2"),
                      now - 10 * S),
               retime(sshd("Failed password for root from 192.0.2.81 port 2 ssh2", "web-2"),
                      now - 190 * S)]
        self.vd.send([self.write("ooo.ndjson", evs)])
        wait_rules_done(self.vd, 2)
        m = self.vd.metrics()
        late = {k: v for k, v in m.items()
                if k.startswith("vigil_rules_unevaluated_total{") and 'reason="late"' in k}
        # the failure feeds three correlations: brute force, its sequence copy, spraying
        self.assertEqual(sum(late.values()), 3, late)
        self.assertEqual(late['vigil_rules_unevaluated_total{rule="3581c8f4-01c0-4966-9589-'
                              '2a780dce1b17",reason="late"}'], 1)


class Uncounted(VigildTest):
    """Every reason an event is not counted, in /metrics per rule, and summed up every
    rules.summary_every as a source=vigil event (the evidence of a gap in detection)."""
    extra_config = "rules: { paths: [ %s ], summary_every: 1s }\n" % RULES

    def test_every_reason_is_counted_and_summed_up(self):
        now = time.time_ns() - 30 * S
        evs = []
        # state_cap: 1,030 failures from one address within two minutes: a group keeps
        # 1,024 (rules_limits.max_events_per_group)
        for i in range(1030):
            evs.append(retime(sshd("Failed password for root from 192.0.2.91 port %d ssh2" % i,
                                   "web-3"), now + i * (S // 100)))
        # late: three minutes behind its own source (the same agent and host)
        evs.append(retime(sshd("Failed password for root from 192.0.2.92 port 1 ssh2", "web-3"),
                          now - 200 * S))
        # future: a year ahead of its receipt
        evs.append(retime(sshd("Failed password for root from 192.0.2.93 port 1 ssh2", "web-4"),
                          time.time_ns() + 365 * 86400 * S))
        path = os.path.join(self.vd.dir, "reasons.ndjson")
        with open(path, "w") as f:
            for ev in evs:
                f.write(json.dumps(ev) + "\n")
        self.vd.send([path])
        wait_rules_done(self.vd, len(evs))
        m = self.vd.metrics()
        bf = 'vigil_rules_unevaluated_total{rule="3581c8f4-01c0-4966-9589-2a780dce1b17",'
        self.assertEqual(m[bf + 'reason="late"}'], 1)
        self.assertEqual(m[bf + 'reason="future"}'], 1)
        self.assertEqual(m[bf + 'reason="state_cap"}'], 1030 - 1024)
        # the summary: one source=vigil event naming the rules and counts
        ev = harness.wait_for("the summary event", lambda: self.vd.search(
            "source=vigil", "action=rules_unevaluated"), 30)
        self.assertEqual(len(ev), 1)
        self.assertEqual((ev[0]["outcome"], ev[0]["severity"]), ("failure", "warning"))
        self.assertIn("'SSH brute force from one address' late 1 future 1 state_cap 6",
                      ev[0]["message"])
        rules = {r["rule_id"]: r for r in ev[0]["raw"]["rules"]}
        self.assertEqual((rules["3581c8f4-01c0-4966-9589-2a780dce1b17"]["late"],
                          rules["3581c8f4-01c0-4966-9589-2a780dce1b17"]["future"],
                          rules["3581c8f4-01c0-4966-9589-2a780dce1b17"]["state_cap"]), (1, 1, 6))
        self.assertGreaterEqual(ev[0]["raw"]["sources"], 2)
        self.assertIn("rules: ", self.vd.read_log())  # and the operator's log line


if __name__ == "__main__":
    harness.main()
