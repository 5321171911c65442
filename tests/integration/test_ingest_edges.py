"""Edges of ingest an attacker can reach with a valid agent certificate: invalid UTF-8
(kept byte for byte, and what vigil prints goes back in unchanged), transfer codings
vigild does not implement (501, not read as plain), and a syslog frame cut off by the end
of the connection (a rejection record, not a silent drop). Before: invalid bytes came out
as U+FFFD with the originals lost, `TE: gzip, chunked` was accepted with the gzip coding
ignored, and a truncated last frame vanished."""
import json
import os
import socket
import ssl
import unittest

import harness
from harness import VigildTest, run, wait_for
from test_forward import recv_until_closed


def agent_socket(vd, port):
    ctx = ssl.create_default_context(cafile=vd.ca)
    cert, key = vd.cert("agent-node-1")
    ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=harness.timeout(10))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def octet(msg):
    return b"%d %s" % (len(msg), msg)


class Edges(VigildTest):
    listen = {"syslog": "127.0.0.1:0", "https": "127.0.0.1:0"}

    def test_invalid_utf8_round_trips(self):
        vd = self.vd
        # An sshd line whose user name is Latin-1, and bytes no encoding has.
        user = b"j\xe9r\xf4me"
        line = b"<38>Jan 10 10:00:00 node-1 sshd[42]: Failed password for invalid user " + \
            user + b" from 10.0.0.9 port 4242 ssh2 \xff\xfe\x80"
        s = agent_socket(vd, vd.syslog_port)
        s.sendall(octet(line))
        s.close()
        ev = wait_for("the event", lambda: vd.search("source=sshd"))
        # JSON output: each invalid byte a lone-surrogate escape (surrogateescape).
        p = run([harness.VIGIL, "search", "--store", vd.store, "--format", "ndjson",
                 "source=sshd"])
        self.assertIn("\\udce9", p.stdout)
        got = json.loads(p.stdout.splitlines()[0])
        self.assertEqual(got["user"].encode("utf-8", "surrogateescape"), user)
        self.assertEqual(got["raw"]["line"].encode("utf-8", "surrogateescape"), line)
        # The table shows them as \xNN: distinct from other bytes, never U+FFFD.
        t = run([harness.VIGIL, "search", "--store", vd.store, "--format", "table",
                 "source=sshd"]).stdout
        self.assertIn("j\\xe9r\\xf4me", t)
        self.assertNotIn("\ufffd", t)
        # What vigil printed goes back in unchanged: shipped again, stored byte for byte.
        path = os.path.join(vd.dir, "again.ndjson")
        with open(path, "w") as f:
            f.write(json.dumps({"user": got["user"], "line": got["raw"]["line"],
                                "run": "again"}) + "\n")
        vd.send([path])
        back = vd.search("raw.run=again")[0]
        self.assertEqual(back["raw"]["line"].encode("utf-8", "surrogateescape"), line)
        self.assertEqual(back["raw"]["user"].encode("utf-8", "surrogateescape"), user)

    def test_unknown_transfer_coding_is_501(self):
        vd = self.vd
        s = agent_socket(vd, vd.ports["https"])
        body = b"5\r\nhello\r\n0\r\n\r\n"
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: vigild\r\nContent-Type: "
                  b"application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + body)
        reply = recv_until_closed(s)
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), reply[:200])
        self.assertIn(b"Transfer-Encoding other than chunked", reply)
        self.assertIn(b"Connection: close", reply)
        m = vd.metrics()
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="https"}'], 1)
        self.assertEqual(vd.search("source=http"), [])

    def test_truncated_last_syslog_frame_is_recorded(self):
        vd = self.vd
        s = agent_socket(vd, vd.syslog_port)
        whole = b"<13>1 2024-05-01T00:00:00Z node-1 app - - - complete one"
        cut = b"<13>1 2024-05-01T00:00:01Z node-1 app - - - cut off in the mid"
        s.sendall(octet(whole) + b"%d " % (len(cut) + 20) + cut)
        s.close()
        ev = wait_for("the rejection", lambda: vd.search("source=vigil",
                                                          "action=rejected_input"))
        self.assertIn("cut off by the end of the connection", ev[0]["message"])
        self.assertEqual(ev[0]["raw"]["truncated_frame"].encode("utf-8", "surrogateescape"),
                         b"%d " % (len(cut) + 20) + cut)
        self.assertEqual(len(vd.search("complete", "one")), 1)
        m = vd.metrics()
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="syslog"}'], 1)


if __name__ == "__main__":
    harness.main()
