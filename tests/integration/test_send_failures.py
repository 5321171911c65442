"""`vigil send` when things go wrong. Before: with a certificate of the wrong purpose it
retried for 11 minutes despite --timeout 5 (6,394 handshakes, each a refusal record),
and it exited 0 when vigild rejected an event ("91 events acknowledged" while a
rejected_input record was stored). Now a refused certificate is not retried, --timeout
bounds the whole run, and rejected events make it exit 3 with their count."""
import json
import os
import socket
import threading
import unittest

import harness
from harness import VIGIL, VigildTest, run


class SendFailures(VigildTest):
    def events(self, name, docs):
        path = os.path.join(self.vd.dir, name)
        with open(path, "w") as f:
            for d in docs:
                f.write(json.dumps(d) + "\n")
        return path

    def handshakes_refused(self):
        m = self.vd.metrics()
        return m['vigil_listener_tls_handshake_failures_total{listener="forward"}']

    def test_rejected_events_exit_3_with_the_count(self):
        path = self.events("falco.ndjson", [
            {"rule": "Terminal shell in container", "output": "a", "priority": "Notice"},
            {"output": "an alert without a rule does not map"},
            {"rule": "Terminal shell in container", "output": "b", "priority": "Notice"},
        ])
        p = self.vd.send([path], fmt="falco", check=False)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("3 events acknowledged", p.stdout)
        self.assertIn("1 of them rejected by vigild", p.stdout)
        self.assertIn("1 of 3 events were rejected by vigild", p.stderr)
        self.assertEqual(len(self.vd.search("source=vigil", "action=rejected_input")), 1)
        self.assertEqual(len(self.vd.search("source=falco")), 2)

    def test_refused_certificates_are_not_retried(self):
        path = self.events("e.ndjson", [{"message": "x"}])
        cases = [
            # the server's certificate: not for client authentication (wrong purpose)
            ("server", False, "unsupported certificate"),
            # an agent of another CA
            ("agent-node-1", True, "unknown ca"),
            # a certificate the CA signed, but not an agent's (tls.agents)
            ("analyst", False, "bad certificate"),
        ]
        for n, (agent, other_ca, why) in enumerate(cases, 1):
            cert, key = self.vd.cert(agent, other_ca)
            p = run([VIGIL, "send", "--server", "127.0.0.1:%d" % self.vd.forward_port,
                     "--ca", self.vd.ca, "--cert", cert, "--key", key, path],
                    check=False, t=120)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("not retried", p.stderr)
            self.assertIn(why, p.stderr.lower())
            self.assertNotIn("reconnecting", p.stderr)
            # one handshake, one refusal: not thousands
            harness.wait_for("the refusal", lambda: self.handshakes_refused() == n)
        self.assertEqual(self.vd.search("raw.message=x"), [])

    def test_timeout_bounds_the_whole_run(self):
        # A server that takes connections and never says a word: each step would wait
        # its full timeout and the reconnects would multiply it.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]
        accepted = []
        stop = threading.Event()

        def serve():
            lsock.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = lsock.accept()
                    accepted.append(c)
                except OSError:
                    pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            path = self.events("t.ndjson", [{"message": "y"}])
            cert, key = self.vd.cert("agent-node-1")
            p = run([VIGIL, "send", "--server", "127.0.0.1:%d" % port, "--ca", self.vd.ca,
                     "--cert", cert, "--key", key, "--timeout", "3", path], check=False, t=120)
        finally:
            stop.set()
            t.join()
            for c in accepted:
                c.close()
            lsock.close()
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("gave up after --timeout 3 s", p.stderr)
        # Within 3 s: the first attempt, perhaps one reconnect; never the full five.
        self.assertLessEqual(len(accepted), 2, p.stderr)


if __name__ == "__main__":
    harness.main()
