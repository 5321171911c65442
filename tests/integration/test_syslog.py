"""Syslog listener (RFC 5425 syslog over mutual TLS), end to end with real clients: a
real rsyslogd forwarding corpus auth lines with omfwd over TLS (OpenSSL driver, client
certificate, octet-counted framing), `openssl s_client` sending octet-counted and LF
frames, malformed input, truncated frames and refused handshakes."""
import collections
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
from harness import VigildTest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("VG_CORPUS_DIR", os.path.join(HERE, "../data/corpus"))
AUTH = os.path.join(CORPUS, "auth")
ELASTIC = os.path.join(AUTH, "elastic-examples_suspicious_login_activity_auth.log")
INVALID_BF = os.path.join(AUTH, "crowdsec-hub-tests", "sshd-invalid-bf.log")
ELASTIC_LINES = 2500  # has Failed/Accepted/Invalid user lines and rsyslog repeats
ELASTIC_HOST = "ip-10-77-20-248"


def octet(msg):
    return b"%d %s" % (len(msg), msg)


def wait_for(what, fn, limit_s=60):
    return harness.wait_for(what, fn, seconds=limit_s, every=0.2)


def recv_until_closed(s, limit_s=10):
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


class SyslogTest(VigildTest):
    listen = {"syslog": "127.0.0.1:0"}

    def tls_client(self, agent="agent-node-1"):
        ctx = ssl.create_default_context(cafile=self.vd.ca)
        cert, key = self.vd.cert(agent)
        ctx.load_cert_chain(cert, key)
        s = socket.create_connection(("127.0.0.1", self.vd.syslog_port),
                                     timeout=harness.timeout(10))
        return ctx.wrap_socket(s, server_hostname="localhost")

    def s_client(self, data, cert=True, other_ca=False, close_at_eof=True):
        """openssl s_client sends data; with close_at_eof it closes once data is sent,
        else it waits for the server to close (to read a refusal's alert)."""
        harness.need(self, shutil.which("openssl"), "openssl")
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.vd.syslog_port,
                "-CAfile", self.vd.ca, "-servername", "localhost", "-quiet"]
        if close_at_eof:
            args.append("-no_ign_eof")
        if cert:
            c, k = self.vd.cert("agent-node-1", other_ca)
            args += ["-cert", c, "-key", k]
        return subprocess.run(args, input=data, capture_output=True,
                              timeout=harness.timeout(30))

    def metric(self, name):
        return self.vd.metrics()['vigil_listener_%s_total{listener="syslog"}' % name]

    def count(self, *flt):
        return len(self.vd.search(*flt))


class Rsyslog(SyslogTest):
    """A real rsyslogd (its own config, work directory and PID file; no system daemon)
    reads corpus files with imfile and forwards them with omfwd over mutual TLS."""

    def start_rsyslog(self, conf_text, d):
        conf = os.path.join(d, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        check = subprocess.run(["rsyslogd", "-N1", "-f", conf], capture_output=True, text=True,
                               timeout=harness.timeout(30))
        self.assertEqual(check.returncode, 0, check.stderr)
        self.rs_log = open(os.path.join(d, "rsyslogd.out"), "w")
        proc = subprocess.Popen(["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rsyslogd.pid")],
                                stdin=subprocess.DEVNULL, stdout=self.rs_log,
                                stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_rsyslog, proc)
        return proc

    def stop_rsyslog(self, proc):
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=harness.timeout(30))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self.rs_log.close()

    def test_rsyslog_forwards_corpus_over_mtls(self):
        harness.need(self, shutil.which("rsyslogd"), "rsyslogd (rsyslog, rsyslog-openssl)")
        d = os.path.join(self.vd.dir, "rsyslog")
        os.makedirs(os.path.join(d, "work"))
        # Copies of the corpus files (imfile keeps state next to its work directory).
        with open(INVALID_BF, "rb") as f:
            invalid_bf = f.read()
        with open(ELASTIC, "rb") as f:
            elastic = b"".join(f.readlines()[:ELASTIC_LINES])
        # Bare messages as sshd would hand them to rsyslog: rsyslog writes the header.
        bare = [b"Failed password for invalid user admin%d from 203.0.113.%d port 4%03d ssh2" %
                (i, i, i) for i in range(5)]
        files = {"invalid_bf.log": invalid_bf, "elastic.log": elastic,
                 "bare.log": b"".join(l + b"\n" for l in bare)}
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        cert, key = self.vd.cert("agent-node-1")
        fwd = ('action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" '
               'TCP_Framing="octet-counted" StreamDriver="ossl" StreamDriverMode="1" '
               'StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost" '
               'template="%%s")' % self.vd.syslog_port)
        conf = """
global(workDirectory="{d}/work" maxMessageSize="64k"
       DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imfile")
template(name="rawline" type="string" string="%rawmsg%")
# The file lines as they are (rsyslog forwarding a log file): no PRI, BSD header.
input(type="imfile" File="{d}/invalid_bf.log" Tag="corpus" ruleset="raw")
input(type="imfile" File="{d}/elastic.log" Tag="corpus" ruleset="raw")
# Bare messages under an sshd tag: rsyslog's own RFC 5424 header.
input(type="imfile" File="{d}/bare.log" Tag="sshd[4242]:" Facility="authpriv"
      Severity="notice" ruleset="rfc5424")
ruleset(name="raw") {{ {fwd_raw} }}
ruleset(name="rfc5424") {{ {fwd_5424} }}
main_queue(queue.timeoutshutdown="5000")
""".format(d=d, ca=self.vd.ca, cert=cert, key=key, fwd_raw=fwd % "rawline",
           fwd_5424=fwd % "RSYSLOG_SyslogProtocol23Format")
        self.start_rsyslog(conf, d)

        total = 6 + ELASTIC_LINES + len(bare)
        wait_for("%d events from rsyslog" % total,
                 lambda: self.metric("events_received") >= total, 120)
        wait_for("the events in the store", lambda: self.count("agent=agent-node-1") >= total)
        self.assertEqual(self.count("agent=agent-node-1"), total)

        # sshd-invalid-bf.log: 6 pre-auth disconnects of root from one address.
        hits = self.vd.search("kind=auth", "host=server")
        self.assertEqual(len(hits), 6)
        for h in hits:
            self.assertEqual((h["source"], h["user"], h["src_ip"], h["outcome"], h["process"]),
                             ("sshd", "root", "179.43.183.98", "failure", "sshd"))
            self.assertEqual(h["agent"], "agent-node-1")
            self.assertEqual(h["raw"]["format"], "rfc3164")
            self.assertIn(h["raw"]["line"] + "\n", invalid_bf.decode())
        self.assertEqual(sorted(h["raw"]["procid"] for h in hits),
                         sorted(re.findall(r"sshd\[(\d+)\]", invalid_bf.decode())))
        self.assertEqual(hits[0]["ts"][4:], "-01-24T15:32:31.000000000Z")

        # The elastic auth.log head: every line one event; the sshd auth lines with the
        # user and address the text gives (counted here with regexes, not by vigil).
        text = elastic.decode()
        self.assertEqual(self.count("host=" + ELASTIC_HOST), ELASTIC_LINES)
        failed = collections.Counter()
        repeats = 0
        for m in re.finditer(r"sshd\[\d+\]: (?:message repeated (\d+) times: \[ )?Failed "
                             r"password for (?:invalid user )?(\S+) from (\S+) port", text):
            failed[(m.group(2), m.group(3))] += 1
            repeats += int(m.group(1) or 1)
        accepted = collections.Counter(
            m.groups() for m in re.finditer(r"sshd\[\d+\]: Accepted (\w+) for (\S+) from (\S+) "
                                            r"port", text))
        invalid = collections.Counter(
            m.groups() for m in re.finditer(r"sshd\[\d+\]: Invalid user (\S*) from (\S+)", text))
        self.assertGreater(sum(failed.values()), 10)
        self.assertGreater(repeats, sum(failed.values()))
        self.assertGreater(sum(accepted.values()), 10)
        self.assertGreater(sum(invalid.values()), 10)

        got = self.vd.search("host=" + ELASTIC_HOST, "kind=auth", "source=sshd",
                             "action=password", "outcome=failure")
        self.assertEqual(collections.Counter((h["user"], h["src_ip"]) for h in got), failed)
        # rsyslog's "message repeated N times": one event, N recorded in raw.repeat.
        self.assertEqual(sum(h["raw"].get("repeat", 1) for h in got), repeats)
        got = self.vd.search("host=" + ELASTIC_HOST, "kind=auth", "outcome=success",
                             "source=sshd")
        self.assertEqual(collections.Counter((h["action"], h["user"], h["src_ip"]) for h in got
                                             if h["message"].startswith("Accepted ")), accepted)
        got = self.vd.search("host=" + ELASTIC_HOST, "kind=auth", "action=invalid_user")
        self.assertEqual(collections.Counter((h.get("user", ""), h["src_ip"]) for h in got
                                             if h["message"].startswith("Invalid user ")), invalid)
        # sudo lines are auth events too, but not sshd's.
        sudo = self.vd.search("host=" + ELASTIC_HOST, "kind=auth", "process=sudo",
                              "action=sudo")
        self.assertEqual(len(sudo), len(re.findall(r" sudo: +\S+ : .*COMMAND=", text)))
        self.assertTrue(all(h["source"] == "syslog" for h in sudo))

        # The bare messages, with rsyslog's RFC 5424 header (APP-NAME sshd, PROCID 4242,
        # microsecond timestamp with an offset).
        got = self.vd.search("raw.procid=4242")
        self.assertEqual(len(got), len(bare))
        for h in got:
            self.assertEqual((h["source"], h["kind"], h["process"], h["action"], h["outcome"]),
                             ("sshd", "auth", "sshd", "password", "failure"))
            self.assertEqual(h["raw"]["format"], "rfc5424")
            self.assertEqual(h["raw"]["facility"], "authpriv")
            self.assertRegex(h["raw"]["timestamp"], r"\.\d{6}[+-]\d\d:\d\d$")
            self.assertNotEqual(h["ts"][20:26], "000000")  # the microseconds are kept
        self.assertEqual(sorted((h["user"], h["src_ip"]) for h in got),
                         [("admin%d" % i, "203.0.113.%d" % i) for i in range(5)])
        self.assertEqual(self.metric("frames_rejected"), 0)


class OpensslClient(SyslogTest):
    def test_octet_counted_and_lf_frames_are_stored(self):
        m1 = (b'<38>1 2022-01-19T14:23:55.123456+00:00 OPNsense.localdomain sshd 44255 - '
              b'[meta sequenceId="1" note="a \\"quoted\\" \\] value"] Invalid user tutu from '
              b'1.2.3.4 port 33166')
        m2 = b"<86>Nov  2 15:40:14 workshop sshd[28179]: Failed password for bob from 5.6.7.8 port 22 ssh2"
        m3 = b"\xff\xfe not syslog at all \x01"  # LF framed: cannot break the framing
        p = self.s_client(octet(m1) + m2 + b"\r\n" + m3 + b"\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for("3 events", lambda: self.count("agent=agent-node-1") == 3)
        e = self.vd.search("user=tutu")[0]
        self.assertEqual((e["source"], e["kind"], e["src_ip"], e["host"], e["agent"]),
                         ("sshd", "auth", "1.2.3.4", "OPNsense.localdomain", "agent-node-1"))
        self.assertEqual(e["ts"], "2022-01-19T14:23:55.123456000Z")
        self.assertEqual(e["raw"]["line"], m1.decode())
        self.assertEqual(e["raw"]["sd"], {"meta": {"sequenceId": "1",
                                                   "note": 'a "quoted" ] value'}})
        self.assertEqual(e["raw"]["procid"], "44255")
        e = self.vd.search("user=bob")[0]
        self.assertEqual((e["source"], e["src_ip"], e["host"], e["raw"]["facility"]),
                         ("sshd", "5.6.7.8", "workshop", "authpriv"))
        self.assertEqual(e["ts"][4:], "-11-02T15:40:14.000000000Z")
        self.assertEqual(e["raw"]["line"], m2.decode())
        e = self.vd.search("raw.format=none")[0]
        self.assertEqual((e["source"], e["kind"]), ("syslog", "log"))
        self.assertEqual(self.metric("frames"), 3)
        self.assertEqual(self.metric("frames_rejected"), 0)

    def test_clients_without_valid_certificate_are_refused(self):
        frame = octet(b"<13>1 - - - - - - SMUGGLED")
        for p in (self.s_client(frame, cert=False, close_at_eof=False),
                  self.s_client(frame, other_ca=True, close_at_eof=False)):
            self.assertIn(b"alert", p.stderr.lower() + p.stdout.lower())
        self.assertEqual(self.metric("tls_handshake_failures"), 2)
        ev = self.vd.search("source=vigil", "action=tls_handshake")
        self.assertEqual(len(ev), 2)
        self.assertTrue(all(e["src_ip"] == "127.0.0.1" for e in ev))
        # Nothing stored from them, and the listener serves a good client.
        s = self.tls_client()
        s.sendall(octet(b"<13>1 - - - - - - after refusal"))
        s.close()
        wait_for("the good event", lambda: self.count("after", "refusal") == 1)
        self.assertEqual(self.vd.search("SMUGGLED"), [])


class BadInput(SyslogTest):
    def test_garbage_after_valid_frame_closes_that_connection(self):
        other = self.tls_client()
        s = self.tls_client()
        s.sendall(octet(b"<13>1 - h app - - - good before garbage") + b"7\xff\xfe\x00\x13garbage")
        self.assertEqual(recv_until_closed(s), b"")
        s.close()
        wait_for("the good frame", lambda: self.count("good", "before", "garbage") == 1)
        self.assertEqual(self.metric("frames_rejected"), 1)
        self.assertIn("malformed syslog octet count", self.vd.read_log())
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)
        self.assertEqual((ev[0]["agent"], ev[0]["outcome"]), ("agent-node-1", "failure"))
        self.assertIn("1 earlier frames kept", ev[0]["message"])
        # The daemon keeps serving, the other connection too.
        other.sendall(b"<13>Nov  2 12:00:00 h p: still served\n")
        other.close()
        wait_for("the other connection's event", lambda: self.count("still", "served") == 1)

    def test_truncated_frames_store_nothing_of_them(self):
        for cut in (octet(b"<13>1 - - - - - - complete") + b"100 <13>1 - - - - - - cut-test",
                    b"12"):
            s = self.tls_client()
            s.sendall(cut)
            s.close()
        s = self.tls_client()
        s.sendall(octet(b"<13>1 - - - - - - after the cuts"))
        s.close()
        wait_for("the later event", lambda: self.count("after", "cuts") == 1)
        self.assertEqual(self.count("complete"), 1)
        # Not stored as events; each cut-off frame is kept as a rejection record with its
        # bytes (syslog has no acknowledgements: the sender will not send it again).
        self.assertEqual(self.vd.search("cut-test", "source!=vigil"), [])
        rej = wait_for("the rejections", lambda: len(self.vd.search(
            "source=vigil", "action=rejected_input")) == 2 and self.vd.search(
            "source=vigil", "action=rejected_input"))
        self.assertEqual(sorted(e["raw"]["truncated_frame"] for e in rej),
                         ["100 <13>1 - - - - - - cut-test", "12"])
        self.assertEqual(self.metric("frames_rejected"), 2)

    def test_oversized_count_is_refused(self):
        s = self.tls_client()
        try:
            s.sendall(b"99999999 <13>1 - - - - - - huge")
            self.assertEqual(recv_until_closed(s), b"")
        except (ssl.SSLError, BrokenPipeError, ConnectionResetError):
            pass
        s.close()
        self.assertIn("listen.max_frame_bytes", self.vd.read_log())
        self.assertEqual(self.metric("frames_rejected"), 1)
        self.assertEqual(self.count("source=syslog"), 0)


class Bulk(SyslogTest):
    def test_many_frames_one_connection(self):
        n = 20000
        s = self.tls_client()
        chunk = []
        for i in range(n):
            m = b"<86>1 2024-05-01T00:00:%02d.%06dZ node-%d sshd %d - - Failed password for u%d " \
                b"from 10.1.%d.%d port 22 ssh2" % (i % 60, i, i % 7, i, i % 13, i % 256, i // 256)
            chunk.append(octet(m) if i % 2 else m + b"\n")
            if len(chunk) == 1000:
                s.sendall(b"".join(chunk))
                chunk = []
        s.close()
        wait_for("%d events" % n, lambda: self.metric("events_received") == n, 120)
        wait_for("the store", lambda: self.count("source=sshd") == n)
        self.assertEqual(self.count("user=u5", "host=node-3"), len(
            [i for i in range(n) if i % 13 == 5 and i % 7 == 3]))


if __name__ == "__main__":
    harness.main()
