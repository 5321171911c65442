"""Certificates under attack: who may ship (tls.agents), a CRL reloaded on SIGHUP and
when the file changes, an expired CRL, and refusal records that name the certificate.
Before: any certificate the CA signed could ship (3 events accepted from `analyst`); a
newly revoked agent was acked until restart; a CRL past its next update passed
--check-config and then refused every agent; refusals did not say which certificate."""
import os
import signal
import socket
import ssl
import subprocess
import unittest

import harness
from forward_client import pack
from harness import VIGIL, Vigild, run, wait_for


def events_file(vd, name, n, run_id):
    path = os.path.join(vd.dir, name)
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"message":"event %d","run":"%s"}\n' % (i, run_id))
    return path


def serial_of(cert):
    """The certificate's serial as vigild names it (upper-case hex)."""
    p = run(["openssl", "x509", "-in", cert, "-noout", "-serial"])
    return p.stdout.strip().split("=", 1)[1].upper()


def tls_socket(vd, port, agent):
    ctx = ssl.create_default_context(cafile=vd.ca)
    cert, key = vd.cert(agent)
    ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=harness.timeout(10))
    return ctx.wrap_socket(raw, server_hostname="localhost")


# What each listener answers when it takes a connection; refused, the peer sees an alert
# or the end of the stream instead (TLS 1.3 clients at their first read).
PROBES = {
    "forward": pack(["probe", 1714521600, {"message": "probe"}, {"chunk": "probe-1"}]),
    "https": b"GET /healthz HTTP/1.1\r\nHost: vigild\r\n\r\n",
}


def refused(vd, port, agent):
    """True when vigild refuses agent's certificate on port, False when it answers."""
    kind = next(k for k, v in vd.ports.items() if v == port)
    try:
        s = tls_socket(vd, port, agent)
        s.settimeout(harness.timeout(10))
        # syslog answers nothing: a refused peer still sees the end of the stream.
        s.sendall(PROBES.get(kind, b"1 x"))
        data = s.recv(100)
        s.close()
        return data == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        if kind in PROBES:
            raise
        return False  # syslog: taken, and silent


class WhoMayShip(unittest.TestCase):
    """The default rule (OU agents) and the certificates vigil pki init issues agree:
    agents ship, the analyst is refused on every listener and recorded."""

    def setUp(self):
        self.vd = Vigild("tls-policy", listen={"syslog": "127.0.0.1:0",
                                               "https": "127.0.0.1:0"})
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def test_analyst_refused_everywhere_agents_ship(self):
        vd = self.vd
        harness.need(self, harness.shutil.which("openssl"), "openssl")
        path = events_file(vd, "a.ndjson", 3, "analyst")
        p = vd.send([path], agent="analyst", check=False)
        self.assertNotEqual(p.returncode, 0)
        for port in (vd.ports["syslog"], vd.ports["https"]):
            self.assertTrue(refused(vd, port, "analyst"))
        self.assertEqual(vd.search("raw.run=analyst"), [])
        vd.send([events_file(vd, "b.ndjson", 3, "agent")], agent="agent-sidecar-1")
        self.assertEqual(len(vd.search("raw.run=agent")), 3)
        m = vd.metrics()
        for lst in ("forward", "syslog", "https"):
            self.assertGreaterEqual(
                m['vigil_listener_tls_unauthorized_total{listener="%s"}' % lst], 1, lst)
        ev = vd.search("source=vigil", "action=tls_handshake")
        self.assertGreaterEqual(len(ev), 3)
        serial = serial_of(vd.cert("analyst")[0])
        for e in ev:
            self.assertIn("not an agent's certificate: tls.agents allows OU agents",
                          e["message"])
            self.assertEqual(e["raw"]["certificate"]["subject"], "CN=analyst,OU=analysts")
            self.assertEqual(e["raw"]["certificate"]["serial"], serial)
            self.assertIn("vigil development CA", e["raw"]["certificate"]["issuer"])
            self.assertIn(serial, e["message"])
        vd.stop()


class PerListenerRule(unittest.TestCase):
    """A listener's own rule replaces the default there only."""

    def setUp(self):
        self.vd = Vigild("tls-rule", listen={"https": "127.0.0.1:0"},
                         tls={"agents": "{ ous: [agents], https: { subjects: [analyst] } }"})
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def test_https_takes_the_analyst_forward_does_not(self):
        vd = self.vd
        self.assertFalse(refused(vd, vd.ports["https"], "analyst"))
        self.assertTrue(refused(vd, vd.ports["https"], "agent-node-1"))
        self.assertTrue(refused(vd, vd.forward_port, "analyst"))
        self.assertFalse(refused(vd, vd.forward_port, "agent-node-1"))
        vd.stop()


class CrlReload(unittest.TestCase):
    def make(self, **tls):
        vd = Vigild("tls-crl", tls=dict({"crl": "pki/crl.pem"}, **tls))
        self.addCleanup(vd.cleanup)
        run([VIGIL, "pki", "crl", vd.pki])
        return vd

    def test_revoked_on_sighup_and_recorded(self):
        vd = self.make(watch_interval="0")
        vd.start()
        vd.send([events_file(vd, "1.ndjson", 2, "before")], agent="agent-sidecar-1")
        run([VIGIL, "pki", "crl", vd.pki, "--revoke", "agent-sidecar-1"])
        vd.proc.send_signal(signal.SIGHUP)
        wait_for("the reload", lambda: vd.metrics()["vigil_tls_reloads_total"] == 1)
        p = vd.send([events_file(vd, "2.ndjson", 2, "after")], agent="agent-sidecar-1",
                    check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("revoked", p.stderr)
        vd.send([events_file(vd, "3.ndjson", 2, "other")], agent="agent-node-1")
        self.assertEqual(vd.search("raw.run=after"), [])
        self.assertEqual(len(vd.search("raw.run=other")), 2)
        ok = wait_for("the reload's record", lambda: vd.search("source=vigil",
                                                               "action=tls_reload"))
        self.assertEqual(ok[0]["outcome"], "success")
        self.assertIn("SIGHUP", ok[0]["message"])
        self.assertIn("1 revoked", ok[0]["message"])
        ev = wait_for("the refusal", lambda: vd.search("source=vigil", "action=tls_handshake"))
        self.assertIn("certificate revoked", ev[0]["message"])
        self.assertEqual(ev[0]["raw"]["certificate"]["serial"],
                         serial_of(vd.cert("agent-sidecar-1")[0]))
        self.assertIn("reloaded (SIGHUP)", vd.read_log())
        vd.stop()

    def test_file_change_reloads_and_a_bad_file_keeps_the_old(self):
        vd = self.make(watch_interval="1s")
        vd.start()
        run([VIGIL, "pki", "crl", vd.pki, "--revoke", "agent-node-1"])
        wait_for("the reload", lambda: vd.metrics()["vigil_tls_reloads_total"] >= 1)
        wait_for("agent-node-1 refused", lambda: refused(vd, vd.forward_port, "agent-node-1"))
        # A CRL that does not parse: the reload fails, the CRL in force stays.
        vd.expected_errors = ["TLS files not reloaded"]
        with open(os.path.join(vd.pki, "crl.pem"), "w") as f:
            f.write("-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n")
        wait_for("the failed reload",
                 lambda: vd.metrics()["vigil_tls_reload_failures_total"] >= 1)
        self.assertTrue(refused(vd, vd.forward_port, "agent-node-1"))
        self.assertFalse(refused(vd, vd.forward_port, "agent-sidecar-1"))
        bad = wait_for("the failure's record", lambda: vd.search(
            "source=vigil", "action=tls_reload", "outcome=failure"))
        self.assertIn("stay in force", bad[0]["message"])
        vd.stop()

    def test_expired_crl(self):
        vd = self.make()
        run([VIGIL, "pki", "crl", vd.pki, "--days", "-1"])
        vd.write_config()
        p = run([harness.VIGILD, "-c", vd.config, "--check-config"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("past its next update", p.stderr)
        self.assertIn("tls.crl_expired: warn", p.stderr)
        # warn: a clear warning, the agents still get in, the fact is recorded.
        vd.tls_opts["crl_expired"] = "warn"
        vd.write_config()
        p = run([harness.VIGILD, "-c", vd.config, "--check-config"], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("past its next update", p.stderr)
        vd.start()
        vd.send([events_file(vd, "w.ndjson", 2, "stale")])
        self.assertEqual(len(vd.search("raw.run=stale")), 2)
        self.assertEqual(len(vd.search("source=vigil", "action=tls_crl")), 1)
        vd.stop()


if __name__ == "__main__":
    harness.main()
