"""Forward listener over mutual TLS, end to end: vigil send -> vigild -> store ->
vigil search, refusals by openssl s_client, malformed input, and a third-party Forward
client (@fluent-org/logger from npm)."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import VigildTest, run

HERE = os.path.dirname(os.path.abspath(__file__))


def make_events(path, n, run_id):
    """n generic JSON events with unique ids, realistic fields, 1 s apart."""
    base = 1714521600  # 2024-05-01T00:00:00Z
    with open(path, "w") as f:
        for i in range(n):
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i))
            f.write(json.dumps({
                "time": "%s.%09dZ" % (t, i),
                "message": "event %d of run %s" % (i, run_id),
                "host": "node-%d" % (i % 7),
                "user": "user-%d" % (i % 13),
                "run_id": run_id,
                "n": i,
            }) + "\n")


def tls_client(vd, agent="agent-node-1", other_ca=False):
    ctx = ssl.create_default_context(cafile=vd.ca)
    cert, key = vd.cert(agent, other_ca)
    ctx.load_cert_chain(cert, key)
    s = socket.create_connection(("127.0.0.1", vd.forward_port), timeout=harness.timeout(10))
    return ctx.wrap_socket(s, server_hostname="localhost")


def recv_until_closed(s, limit_s=10):
    """Reads until the server closes; returns what it sent."""
    s.settimeout(harness.timeout(limit_s))
    data = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return data
            data += b
    except (ssl.SSLError, ConnectionResetError):
        return data


class SendSearch(VigildTest):
    def test_10000_events_acknowledged_and_found(self):
        path = os.path.join(self.vd.dir, "events.ndjson")
        make_events(path, 10000, "r10k")
        p = self.vd.send([path])
        self.assertIn("10000 events acknowledged", p.stdout)
        m = self.vd.metrics()
        self.assertEqual(m['vigil_events_stored_total'], 10000)
        self.assertEqual(m['vigil_listener_acks_sent_total{listener="forward"}'], 10)
        # Readers see acknowledged events while vigild runs.
        hits = self.vd.search("raw.run_id=r10k")
        self.assertEqual(len(hits), 10000)
        self.assertEqual({h["agent"] for h in hits}, {"agent-node-1"})
        self.assertEqual(sorted(h["raw"]["n"] for h in hits), list(range(10000)))
        # Event time kept with full precision, in time order.
        self.assertEqual(hits[0]["ts"], "2024-05-01T00:00:00.000000000Z")
        self.assertEqual(hits[9999]["ts"], "2024-05-01T02:46:39.000009999Z")
        self.assertEqual(hits[1234]["raw"]["message"], "event 1234 of run r10k")
        # Filters narrow: field equality, substring, time window, limit.
        self.assertEqual(len(self.vd.search("host=node-3", "raw.run_id=r10k")), 1429)
        self.assertEqual(len(self.vd.search("user=user-5", "host=node-3")), 110)
        few = self.vd.search("raw.run_id=r10k", extra=["--since", "2024-05-01T00:00:10Z",
                                                       "--until", "2024-05-01T00:00:20Z"])
        self.assertEqual([h["raw"]["n"] for h in few], list(range(10, 20)))
        self.assertEqual(len(self.vd.search("run", "r10k", extra=["--limit", "5"])), 5)

    def test_second_agent_identity_comes_from_its_certificate(self):
        path = os.path.join(self.vd.dir, "e.ndjson")
        with open(path, "w") as f:
            # A payload claiming to be another agent must not change `agent`.
            f.write(json.dumps({"message": "spoof", "agent": "agent-node-1"}) + "\n")
        self.vd.send([path], agent="agent-sidecar-1")
        hits = self.vd.search("spoof")
        self.assertEqual(len(hits), 1)
        self.assertEqual(hits[0]["agent"], "agent-sidecar-1")

    def test_corpus_falco_and_k8s_audit(self):
        corpus = os.environ.get("VG_CORPUS_DIR", os.path.join(HERE, "../data/corpus"))
        falco = os.path.join(corpus, "falco", "falco-test_single_rule_with_cat_write.json")
        audit = os.path.join(corpus, "k8s-audit", "crowdsec_k8s-audit-pod-exec-file.log")
        self.assertTrue(os.path.exists(falco) and os.path.exists(audit), "corpus not found under %s" % corpus)
        with open(falco) as f:
            n_falco = sum(1 for l in f if l.strip())
        p = self.vd.send([falco], fmt="falco")
        self.assertIn("%d events acknowledged" % n_falco, p.stdout)
        self.vd.send([audit], fmt="k8s-audit")
        hits = self.vd.search("source=falco")
        self.assertEqual(len(hits), n_falco)
        self.assertTrue(all(h["rule"] == "open_from_cat" for h in hits))
        exec_ = self.vd.search("pod=test-pod-1")
        self.assertEqual(len(exec_), 1)
        e = exec_[0]
        self.assertEqual((e["source"], e["user"], e["src_ip"], e["namespace"]),
                         ("k8s-audit", "minikube-user", "192.168.49.1", "foo"))
        self.assertEqual(e["ts"], "2023-05-17T15:08:22.763960000Z")

    def test_bad_filter_points_at_the_token(self):
        p = self.vd.search("usr=bob", fmt="table", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usr", p.stderr)
        self.assertIn("^", p.stderr)


class Refusals(VigildTest):
    def s_client(self, cert=None, key=None):
        harness.need(self, shutil.which("openssl"), "openssl")
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.vd.forward_port,
                "-CAfile", self.vd.ca, "-servername", "localhost", "-quiet"]
        if cert:
            args += ["-cert", cert, "-key", key]
        # A Forward message that would be stored if the connection were accepted.
        payload = bytes.fromhex("93") + b"\xa4test" + b"\xce\x66\x31\x8a\x00" + \
            b"\x81\xa7message\xa9SMUGGLED!"
        return subprocess.run(args, input=payload, capture_output=True,
                              timeout=harness.timeout(20))

    def test_clients_without_valid_certificate_are_refused(self):
        no_cert = self.s_client()
        other_cert, other_key = self.vd.cert("agent-node-1", other_ca=True)
        wrong_ca = self.s_client(other_cert, other_key)
        for p in (no_cert, wrong_ca):
            self.assertIn(b"alert", p.stderr.lower() + p.stdout.lower())
        # Nothing stored from either, and the daemon goes on serving others.
        path = os.path.join(self.vd.dir, "ok.ndjson")
        make_events(path, 3, "after-refusal")
        self.vd.send([path])
        self.assertEqual(self.vd.search("SMUGGLED"), [])
        self.assertEqual(len(self.vd.search("raw.run_id=after-refusal")), 3)
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_tls_handshake_failures_total{listener="forward"}'], 2)
        # Each refusal is evidence: a source=vigil event with the peer and the reason. It is
        # stored by the store thread after the refusal, so it may land a moment later.
        ev = harness.wait_for("two refusal records", lambda: (
            lambda e: e if len(e) >= 2 else None)(
                self.vd.search("source=vigil", "action=tls_handshake")))
        self.assertEqual(len(ev), 2)
        self.assertTrue(all(e["src_ip"] == "127.0.0.1" for e in ev))
        reasons = " ".join(e["message"] for e in ev)
        self.assertIn("certificate", reasons)

    def test_plaintext_on_tls_port_is_refused(self):
        s = socket.create_connection(("127.0.0.1", self.vd.forward_port))
        s.sendall(b"\x93\xa4test\x01\x80")  # a plaintext Forward message
        # Closed at once: at most a TLS alert record (0x15), never a Forward ack.
        self.assertIn(recv_until_closed(s)[:1], (b"", b"\x15"))
        s.close()
        ev = harness.wait_for("the refusal record", lambda: self.vd.search(
            "source=vigil", "action=tls_handshake"))
        self.assertEqual([e["outcome"] for e in ev], ["failure"])


class BadInput(VigildTest):
    def test_malformed_frame_closes_only_that_connection(self):
        self.vd.expected_errors = []
        good = tls_client(self.vd)
        bad = tls_client(self.vd)
        bad.sendall(b"\xc1\xc1\xc1\xc1")  # 0xc1 starts no msgpack value
        self.assertEqual(recv_until_closed(bad), b"")
        bad.close()
        # The other connection still works: a Message-mode event with a chunk is acked.
        msg = (b"\x94\xa4test\xce\x66\x31\x8a\x00\x81\xa7message\xa5hello"
               b"\x81\xa5chunk\xa3c-1")
        good.sendall(msg)
        good.settimeout(harness.timeout(10))
        ack = good.recv(100)
        self.assertEqual(ack, b"\x81\xa3ack\xa3c-1")
        good.close()
        self.assertEqual(len(self.vd.search("hello")), 1)
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="forward"}'], 1)
        self.assertIn("malformed Forward message", self.vd.read_log())
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)

    def test_frame_cut_off_then_closed_stores_nothing_of_it(self):
        s = tls_client(self.vd)
        full = (b"\x94\xa4test\xce\x66\x31\x8a\x00\x81\xa7message\xa8cut-test"
                b"\x81\xa5chunk\xa3c-9")
        s.sendall(full[:-6])
        s.close()
        path = os.path.join(self.vd.dir, "ok.ndjson")
        make_events(path, 2, "after-cut")
        self.vd.send([path])
        self.assertEqual(len(self.vd.search("raw.run_id=after-cut")), 2)
        self.assertEqual(self.vd.search("cut-test"), [])

    def test_broken_json_line_is_reported_and_others_sent(self):
        path = os.path.join(self.vd.dir, "mixed.ndjson")
        with open(path, "w") as f:
            f.write('{"message": "first good"}\n{"message": broken\n{"message": "second good"}\n')
        p = self.vd.send([path], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("mixed.ndjson:2", p.stderr)
        self.assertIn("2 events acknowledged", p.stdout)
        self.assertEqual(len(self.vd.search("good")), 2)


class Oversized(VigildTest):
    def setUp(self):
        # max_frame_bytes is a listen key: rewrite the listen line with it.
        self.vd = harness.Vigild("oversized")
        self.addCleanup(self.vd.cleanup)
        orig = self.vd.write_config

        def write_config():
            orig()
            with open(self.vd.config) as f:
                text = f.read().replace(
                    "admin: 127.0.0.1:0 }", "admin: 127.0.0.1:0, max_frame_bytes: 64KiB }")
            with open(self.vd.config, "w") as f:
                f.write(text)
        self.vd.write_config = write_config
        self.vd.start()

    def test_frame_over_max_frame_bytes_is_refused(self):
        s = tls_client(self.vd)
        # A str32 of 1 MiB inside a Message: refused as soon as its header is seen, so
        # the server may close while we are still sending.
        try:
            s.sendall(b"\x94\xa4test\xce\x66\x31\x8a\x00\x81\xa7message\xdb\x00\x10\x00\x00" +
                      b"x" * 70000)
            self.assertEqual(recv_until_closed(s), b"")
        except (ssl.SSLError, BrokenPipeError, ConnectionResetError):
            pass
        s.close()
        self.assertIn("listen.max_frame_bytes", self.vd.read_log())
        path = os.path.join(self.vd.dir, "ok.ndjson")
        make_events(path, 2, "after-big")
        self.vd.send([path])
        self.assertEqual(len(self.vd.search("raw.run_id=after-big")), 2)


class FluentLogger(VigildTest):
    def test_fluent_org_logger_with_tls_and_acks(self):
        node = shutil.which("node")
        mod = os.path.join(HERE, "node_modules", "@fluent-org", "logger")
        harness.need(self, node and os.path.isdir(mod),
                     "node or @fluent-org/logger (npm ci in tests/integration)")
        cert, key = self.vd.cert("agent-sidecar-1")
        for mode, n in (("PackedForward", 500), ("Forward", 200), ("Message", 50),
                        ("CompressedPackedForward", 300)):
            run_id = "fl-" + mode
            env = dict(os.environ, FLUENT_TIMEOUT_MS=str(int(harness.timeout(20000))))
            p = run([node, os.path.join(HERE, "fluent_client.js"), str(self.vd.forward_port),
                     self.vd.ca, cert, key, str(n), mode, run_id], t=120, env=env)
            self.assertIn("acknowledged %d" % n, p.stdout)
            hits = self.vd.search("raw.run_id=" + run_id)
            self.assertEqual(len(hits), n, mode)
            self.assertEqual(sorted(h["raw"]["seq_no"] for h in hits), list(range(n)))
            self.assertEqual({h["agent"] for h in hits}, {"agent-sidecar-1"})
            self.assertEqual({h["source"] for h in hits}, {"forward"})


class SharedKey(VigildTest):
    """Forward v1 HELO/PING/PONG with listen.shared_key_file, against @fluent-org/logger."""

    def setUp(self):
        self.vd = harness.Vigild("sharedkey")
        self.addCleanup(self.vd.cleanup)
        key = os.path.join(self.vd.dir, "forward.key")
        with open(key, "w") as f:
            f.write("s3cret-forward-key\n")
        orig = self.vd.write_config

        def write_config():
            orig()
            with open(self.vd.config) as f:
                text = f.read().replace(
                    "admin: 127.0.0.1:0 }",
                    "admin: 127.0.0.1:0, shared_key_file: forward.key }")
            with open(self.vd.config, "w") as f:
                f.write(text)
        self.vd.write_config = write_config
        self.vd.start()

    def fluent(self, key, run_id, n=20):
        node = shutil.which("node")
        harness.need(self, node and os.path.isdir(os.path.join(HERE, "node_modules", "@fluent-org")),
                     "node or @fluent-org/logger (npm ci in tests/integration)")
        cert, key_file = self.vd.cert("agent-node-1")
        env = dict(os.environ, SHARED_KEY=key,
                   FLUENT_TIMEOUT_MS=str(int(harness.timeout(20000))))
        return run([node, os.path.join(HERE, "fluent_client.js"), str(self.vd.forward_port),
                    self.vd.ca, cert, key_file, str(n), "PackedForward", run_id],
                   env=env, check=False, t=60)

    def test_right_key_is_accepted_wrong_key_refused(self):
        ok = self.fluent("s3cret-forward-key", "sk-good")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("acknowledged 20", ok.stdout)
        self.assertEqual(len(self.vd.search("raw.run_id=sk-good")), 20)
        bad = self.fluent("wrong-key", "sk-bad")
        self.assertNotEqual(bad.returncode, 0)
        self.assertNotIn("acknowledged", bad.stdout)
        self.assertEqual(self.vd.search("raw.run_id=sk-bad"), [])
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_auth_failures_total{listener="forward"}'], 1)
        ev = self.vd.search("source=vigil", "action=forward_auth")
        self.assertEqual(len(ev), 1)
        self.assertIn("shared key mismatch", ev[0]["message"])
        self.assertNotIn("s3cret", self.vd.read_log())


if __name__ == "__main__":
    harness.main()
