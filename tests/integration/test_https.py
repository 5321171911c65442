"""HTTPS ingest listener over mutual TLS, end to end with a real client (curl with
--cacert/--cert/--key): every corpus format posted to its route (Falco alerts one per
request, an audit.k8s.io EventList built from the corpus audit events, each Trivy and
Grype report) and found by `vigil search`; keep-alive and pipelining; refusals (no or
wrong client certificate, bad JSON inside NDJSON, a body over the limit, a wrong content
type, binary garbage on the port), each answered or logged while the daemon keeps
serving."""
import json
import os
import shutil
import socket
import ssl
import tempfile
import unittest

import harness
from harness import VigildTest, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("VG_CORPUS_DIR", os.path.join(HERE, "../data/corpus"))


def json_docs(path):
    """Every JSON document of a file (NDJSON, concatenated or pretty-printed)."""
    with open(path) as f:
        text = f.read()
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        doc, i = dec.raw_decode(text, i)
        out.append(doc)


def corpus_files(sub):
    d = os.path.join(CORPUS, sub)
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if os.path.isfile(os.path.join(d, n)))


def trivy_findings(doc):
    """Findings of a report, counted here in Python, independently of the C splitter."""
    def results(rs):
        n = 0
        for r in rs or []:
            for k in ("Vulnerabilities", "Misconfigurations", "Secrets"):
                n += len(r.get(k) or [])
        return n
    if isinstance(doc, list):
        return results(doc)
    if "matches" in doc:
        return len(doc["matches"])
    if "Resources" in doc:
        return sum(results(r.get("Results")) for r in doc["Resources"])
    if "Results" in doc:
        return results(doc["Results"])
    if "ClusterName" in doc:
        return sum(results(r.get("Results")) for k in ("Vulnerabilities", "Misconfigurations")
                   for r in doc.get(k) or [])
    raise AssertionError("not a report")


def recv_until_closed(s, limit_s=10):
    s.settimeout(harness.timeout(limit_s))
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data
            data += b
    except (ssl.SSLError, ConnectionResetError, socket.timeout):
        return data


class HttpsTest(VigildTest):
    listen = {"https": "127.0.0.1:0"}

    def setUp(self):
        harness.need(self, shutil.which("curl"), "curl")
        super().setUp()
        self.tmp = tempfile.mkdtemp(dir=self.vd.dir)

    @property
    def port(self):
        return self.vd.ports["https"]

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def tls_opts(self, agent="agent-node-1", cert=True, other_ca=False):
        opts = ["--cacert", self.vd.ca]
        if cert:
            c, k = self.vd.cert(agent, other_ca)
            opts += ["--cert", c, "--key", k]
        return opts

    def curl(self, transfers, agent="agent-node-1", extra=(), check=True):
        """One curl process, one transfer per entry (method, path, body bytes or None,
        content type or None, extra args), separated by --next so the connection is
        reused. Returns [(status, num_connects, body text)] and the process."""
        args = ["curl", "-sS"] + list(extra)
        outs = []
        for i, (method, path, body, ctype, more) in enumerate(transfers):
            if i:
                args.append("--next")
            args += self.tls_opts(agent)
            if body is not None:
                f = os.path.join(self.tmp, "body-%d" % i)
                with open(f, "wb") as fh:
                    fh.write(body)
                args += ["--data-binary", "@" + f]
            if ctype:
                args += ["-H", "Content-Type: " + ctype]
            if method not in ("GET", "POST"):
                args += ["-X", method]
            elif method == "GET" and body is not None:
                args += ["-G"]
            out = os.path.join(self.tmp, "out-%d" % i)
            outs.append(out)
            args += list(more) + ["-o", out, "-w", "%{http_code} %{num_connects}\\n",
                                  self.url(path)]
        p = run(args, check=check, t=300)
        res = []
        for line, out in zip(p.stdout.splitlines(), outs):
            code, nc = line.split()
            body = ""
            if os.path.exists(out):
                with open(out, errors="replace") as fh:
                    body = fh.read()
            res.append((int(code), int(nc), body))
        return res, p

    def post(self, path, body, ctype="application/json", extra=()):
        (r,), _ = self.curl([("POST", path, body, ctype, list(extra))])
        return r

    def tls_socket(self, agent="agent-node-1"):
        ctx = ssl.create_default_context(cafile=self.vd.ca)
        cert, key = self.vd.cert(agent)
        ctx.load_cert_chain(cert, key)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=harness.timeout(10))
        return ctx.wrap_socket(s, server_hostname="localhost")


class Formats(HttpsTest):
    def test_falco_alerts_one_per_request_on_one_connection(self):
        alerts = []
        for f in corpus_files("falco") + corpus_files("falco/extracted"):
            alerts += json_docs(f)
        self.assertEqual(len(alerts), 37)  # FORMATS.md section 1
        res, _ = self.curl([("POST", "/v1/falco", json.dumps(a).encode(), "application/json", [])
                            for a in alerts])
        self.assertEqual([r[0] for r in res], [200] * 37)
        self.assertEqual([json.loads(r[2]) for r in res], [{"accepted": 1}] * 37)
        # keep-alive: one TLS connection for all 37 requests
        self.assertEqual([r[1] for r in res], [1] + [0] * 36)
        hits = self.vd.search("source=falco")
        self.assertEqual(len(hits), 37)
        self.assertEqual({h["agent"] for h in hits}, {"agent-node-1"})
        cat = self.vd.search("rule=open_from_cat")
        self.assertEqual(len(cat), 8)
        self.assertEqual(cat[0]["ts"], "2016-08-04T16:17:57.881781397Z")
        self.assertEqual(cat[0]["host"], "test-falco-hostname")
        self.assertEqual(cat[0]["severity"], "warning")
        self.assertEqual(cat[0]["raw"]["output_fields"]["proc.cmdline"], "cat /dev/null")
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_acks_sent_total{listener="https"}'], 37)
        self.assertEqual(m['vigil_listener_conns_accepted_total{listener="https"}'], 1)

    def test_k8s_audit_event_list(self):
        events, bad = [], []
        for f in corpus_files("k8s-audit") + corpus_files("k8s-audit/falco-trace-files"):
            for d in json_docs(f):
                (events if d.get("kind") == "Event" else bad).append(d)
        self.assertEqual((len(events), bad), (90, [{"kind": 0}]))  # FORMATS.md section 2
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                "items": events}
        code, _, reply = self.post("/v1/k8s/audit", json.dumps(body).encode())
        self.assertEqual((code, json.loads(reply)), (200, {"accepted": 90}))
        hits = self.vd.search("source=k8s-audit")
        self.assertEqual(len(hits), 90)
        e = self.vd.search("pod=test-pod-1", "raw.objectRef.subresource=exec")
        self.assertEqual(len(e), 1)
        self.assertEqual((e[0]["user"], e[0]["src_ip"], e[0]["namespace"], e[0]["ts"]),
                         ("minikube-user", "192.168.49.1", "foo",
                          "2023-05-17T15:08:22.763960000Z"))
        self.assertEqual(len(self.vd.search("pod=test-pod-1")), 2)  # created, then exec'd
        # The malformed fixture inside a list: the good item is stored, the reply names
        # the bad one.
        body["items"] = [events[0], bad[0]]
        code, _, reply = self.post("/v1/k8s/audit", json.dumps(body).encode())
        r = json.loads(reply)
        self.assertEqual((code, r["accepted"], r["rejected_count"]), (400, 1, 1))
        self.assertEqual((r["line"], r["rejected"][0]["index"]), (1, 1))
        self.assertEqual(len(self.vd.search("source=k8s-audit")), 91)
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)
        self.assertIn("/v1/k8s/audit", ev[0]["message"])

    def test_trivy_and_grype_reports(self):
        files = corpus_files("trivy") + corpus_files("trivy/defectdojo-unittests") + \
            corpus_files("trivy/grype")
        files = [f for f in files if f.endswith(".json")]
        self.assertEqual(len(files), 24)
        want = [trivy_findings(json_docs(f)[0]) for f in files]
        self.assertEqual(sum(want), 589)
        transfers = []
        for f in files:
            with open(f, "rb") as fh:
                transfers.append(("POST", "/v1/trivy", fh.read(), "application/json", []))
        res, _ = self.curl(transfers)
        for f, n, (code, _, body) in zip(files, want, res):
            self.assertEqual((code, json.loads(body)), (200, {"accepted": n}), f)
        self.assertEqual(len(self.vd.search("source=trivy")), 589)
        self.assertEqual(len(self.vd.search("source=trivy", "kind=scan")), 589)
        self.assertEqual(len(self.vd.search("cve=CVE-2019-1549")), 2)  # libcrypto1.1, libssl1.1
        one = self.vd.search("cve=CVE-2019-1549", "package=libcrypto1.1",
                             "image=testdata/fixtures/images/alpine-310.tar.gz")
        self.assertEqual(len(one), 1)
        h = one[0]
        self.assertEqual((h["package"], h["object"], h["severity"], h["ts"]),
                         ("libcrypto1.1", "libcrypto1.1@1.1.1c-r0", "warning",
                          "2021-08-25T12:20:30.000000005Z"))
        self.assertEqual(h["raw"]["FixedVersion"], "1.1.1d-r0")
        self.assertEqual(h["raw"]["Target"],
                         "testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)")
        # trivy k8s layouts: every resource in the default namespace (20 + 37 findings)
        self.assertEqual(len(self.vd.search("source=trivy", "namespace=default")), 57)
        self.assertEqual(len(self.vd.search("raw.FindingType=secret")), 4)
        self.assertEqual(len(self.vd.search("raw.FindingType=misconfiguration")), 66)
        sec = self.vd.search("rule=aws-access-key-id")
        self.assertEqual((len(sec), sec[0]["object"]), (1, "deploy.sh"))
        # `vigil send --format trivy` splits the same way over Forward
        p = self.vd.send([os.path.join(CORPUS, "trivy", "alpine-310.json")], fmt="trivy")
        self.assertIn("4 events acknowledged", p.stdout)
        self.assertEqual(len(self.vd.search("cve=CVE-2019-1549")), 4)
        fw = self.vd.search("cve=CVE-2019-1549", "package=libcrypto1.1",
                            "raw.FindingType=vulnerability")
        self.assertEqual(len(fw), 2)
        self.assertEqual(fw[0]["raw"], fw[1]["raw"])

    def test_generic_events_object_array_ndjson_chunked_expect(self):
        code, _, r = self.post("/v1/events", b'{"message":"obj","host":"h1","run_id":"g"}')
        self.assertEqual((code, json.loads(r)), (200, {"accepted": 1}))
        arr = [{"message": "arr %d" % i, "run_id": "g"} for i in range(3)]
        code, _, r = self.post("/v1/events", json.dumps(arr).encode())
        self.assertEqual((code, json.loads(r)), (200, {"accepted": 3}))
        nd = "".join(json.dumps({"message": "nd %d" % i, "run_id": "g", "n": i}) + "\n"
                     for i in range(1000)).encode()
        code, _, r = self.post("/v1/events", nd, "application/x-ndjson",
                               ["-H", "Transfer-Encoding: chunked"])
        self.assertEqual((code, json.loads(r)), (200, {"accepted": 1000}))
        # A 2 MiB body: curl asks Expect: 100-continue and gets it.
        big = "".join(json.dumps({"message": "big %d" % i, "run_id": "g", "pad": "x" * 200}) +
                      "\n" for i in range(10000)).encode()
        self.assertGreater(len(big), 1 << 21)
        (res,), p = self.curl([("POST", "/v1/events", big, "text/plain", ["-v"])])
        self.assertEqual((res[0], json.loads(res[2])), (200, {"accepted": 10000}))
        self.assertIn("Expect: 100-continue", p.stderr)
        self.assertIn("HTTP/1.1 100 Continue", p.stderr)
        # HTTP/1.0 closes after the reply
        (res,), p = self.curl([("POST", "/v1/events", b'{"message":"ten","run_id":"g"}',
                                "application/json", ["--http1.0", "-v"])])
        self.assertEqual(res[0], 200)
        self.assertIn("Connection: close", p.stderr)
        hits = self.vd.search("raw.run_id=g")
        self.assertEqual(len(hits), 1 + 3 + 1000 + 10000 + 1)
        self.assertEqual({h["source"] for h in hits}, {"http"})
        self.assertEqual({h["agent"] for h in hits}, {"agent-node-1"})
        code, _, body = self.curl([("GET", "/healthz", None, None, [])])[0][0]
        self.assertEqual((code, body), (200, "ok\n"))

    def test_agent_comes_from_the_certificate(self):
        (res,), _ = self.curl([("POST", "/v1/events",
                                b'{"message":"spoof","agent":"agent-node-1"}',
                                "application/json", [])], agent="agent-sidecar-1")
        self.assertEqual(res[0], 200)
        hits = self.vd.search("spoof")
        self.assertEqual([h["agent"] for h in hits], ["agent-sidecar-1"])


class KeepAlive(HttpsTest):
    def test_rejections_keep_the_connection(self):
        nd = b'{"message":"ka1","run_id":"k"}\n{"message":"ka2","run_id":"k"}\n'
        res, _ = self.curl([
            ("GET", "/healthz", None, None, []),
            ("POST", "/v1/events", nd, "application/x-ndjson", []),
            ("GET", "/nope", None, None, []),
            ("GET", "/v1/events", None, None, []),
            ("POST", "/v1/events", b"a=b", None, []),  # curl's default form type
            ("POST", "/v1/falco", b"{}", "application/json", []),
            ("POST", "/v1/events", nd, "application/x-ndjson", []),
        ])
        self.assertEqual([r[0] for r in res], [200, 200, 404, 405, 415, 400, 200])
        self.assertEqual([r[1] for r in res], [1, 0, 0, 0, 0, 0, 0])
        self.assertIn("no such path", json.loads(res[2][2])["error"])
        self.assertIn("Content-Type", json.loads(res[4][2])["error"])
        self.assertIn("rule", json.loads(res[5][2])["error"])  # a Falco alert needs a rule
        self.assertEqual(len(self.vd.search("raw.run_id=k")), 4)
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="https"}'], 3)
        self.assertEqual(m['vigil_listener_events_rejected_total{listener="https"}'], 1)
        self.assertEqual(len(self.vd.search("source=vigil", "action=rejected_input")), 4)

    def test_pipelined_requests_answered_in_order(self):
        s = self.tls_socket()
        body = b'{"message":"p1","run_id":"pl"}\n{"message":"p2","run_id":"pl"}'
        reqs = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body) +
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
                b"POST /v1/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}" +
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: 30\r\n\r\n{\"message\":\"p3\",\"run_id\":\"pl\"}")
        s.sendall(reqs)
        data = recv_until_closed(s)
        s.close()
        parts = data.split(b"HTTP/1.1 ")[1:]
        self.assertEqual([p[:3] for p in parts], [b"200", b"200", b"404", b"200"])
        self.assertTrue(parts[0].endswith(b'{"accepted":2}\n'))
        self.assertTrue(parts[1].endswith(b"ok\n"))
        self.assertIn(b"Connection: close", parts[3])
        self.assertTrue(parts[3].endswith(b'{"accepted":1}\n'))
        self.assertEqual(len(self.vd.search("raw.run_id=pl")), 3)


    def test_many_pipelined_requests_past_the_reply_queue(self):
        # More requests in one write than replies may wait on a connection (64): reading
        # stops, and resumes as the replies leave.
        s = self.tls_socket()
        body = b'{"message":"mid","run_id":"many"}'
        post = (b"POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        get = b"GET /healthz HTTP/1.1\r\n\r\n"
        last = b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
        s.sendall((get * 100 + post + get * 100 + post) * 2 + last)
        data = recv_until_closed(s, 60)
        s.close()
        codes = [p[:3] for p in data.split(b"HTTP/1.1 ")[1:]]
        self.assertEqual(len(codes), 405)
        self.assertEqual(set(codes), {b"200"})
        self.assertEqual(data.count(b'{"accepted":1}'), 4)
        self.assertEqual(len(self.vd.search("raw.run_id=many")), 4)
        self.assertGreaterEqual(self.vd.metrics()['vigil_listener_pauses_total{listener="https"}'], 1)


class Refusals(HttpsTest):
    def test_no_or_wrong_client_certificate_gets_no_http_response(self):
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
                '{"message":"SMUGGLED"}', "-H", "Content-Type: application/json",
                self.url("/v1/events")]
        no_cert = run(args[:1] + self.tls_opts(cert=False) + args[1:], check=False)
        wrong_ca = run(args[:1] + self.tls_opts(other_ca=True) + args[1:], check=False)
        for p in (no_cert, wrong_ca):
            self.assertIn(p.returncode, (35, 56))  # TLS failure, no HTTP exchange
            self.assertEqual(p.stdout, "000")
        self.assertEqual(self.vd.search("SMUGGLED"), [])
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_tls_handshake_failures_total{listener="https"}'], 2)
        ev = self.vd.search("source=vigil", "action=tls_handshake")
        self.assertEqual(len(ev), 2)
        self.assertIn("certificate", " ".join(e["message"] for e in ev))
        code, _, _ = self.post("/v1/events", b'{"message":"after"}')
        self.assertEqual(code, 200)

    def test_bad_json_line_in_ndjson(self):
        lines = [json.dumps({"message": "line %d" % i, "run_id": "bad"}) for i in range(1, 6)]
        lines[2] = '{"message": "line 3", "run_id": "bad"'  # cut off
        code, _, reply = self.post("/v1/events", ("\n".join(lines) + "\n").encode(),
                                   "application/x-ndjson")
        r = json.loads(reply)
        self.assertEqual((code, r["accepted"], r["rejected_count"], r["line"]), (400, 4, 1, 3))
        self.assertEqual(r["rejected"][0]["line"], 3)
        self.assertIn("bad JSON", r["error"])
        hits = self.vd.search("raw.run_id=bad")
        self.assertEqual(sorted(h["message"] for h in hits),
                         ["line 1", "line 2", "line 4", "line 5"])
        ev = self.vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 1)
        self.assertIn("line 3", ev[0]["message"])
        self.assertEqual(ev[0]["agent"], "agent-node-1")
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_events_rejected_total{listener="https"}'], 1)
        self.assertIn("1 document(s) rejected, 4 accepted; first at line 3", self.vd.read_log())

    def test_body_over_limit_and_wrong_content_type(self):
        big = b'{"message":"big"}\n' * (1024 * 1024)  # 18 MiB > listen.max_frame_bytes 16 MiB
        (res,), p = self.curl([("POST", "/v1/events", big, "application/x-ndjson", ["-v"])])
        self.assertEqual(res[0], 413)
        self.assertIn("max_frame_bytes", json.loads(res[2])["error"])
        self.assertIn("Connection: close", p.stderr)
        code, _, reply = self.post("/v1/events", b'{"message":"x"}', "text/html")
        self.assertEqual(code, 415)
        code, _, reply = self.post("/v1/events", b'{"message":"x"}', "application/json",
                                   ["-H", "Content-Encoding: gzip"])
        self.assertEqual(code, 415)
        self.assertEqual(self.vd.search("big"), [])
        self.assertEqual(self.vd.search("message=x"), [])
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="https"}'], 3)
        self.assertEqual(len(self.vd.search("source=vigil", "action=rejected_input")), 3)
        log = self.vd.read_log()
        self.assertIn("413 Content Too Large", log)
        self.assertIn("415 Unsupported Media Type", log)
        code, _, _ = self.post("/v1/events", b'{"message":"still serving"}')
        self.assertEqual(code, 200)

    def test_binary_garbage(self):
        garbage = bytes(range(256)) * 8
        # on the port, before TLS: refused in the handshake, never an HTTP answer
        s = socket.create_connection(("127.0.0.1", self.port), timeout=harness.timeout(10))
        s.sendall(garbage)
        self.assertIn(recv_until_closed(s)[:1], (b"", b"\x15"))
        s.close()
        # inside TLS: a 400 that closes the connection
        t = self.tls_socket()
        t.sendall(garbage)
        data = recv_until_closed(t)
        t.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data[:100])
        self.assertIn(b"Connection: close", data)
        # a head over 16 KiB: 431
        t = self.tls_socket()
        t.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        data = recv_until_closed(t)
        t.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 431 "), data[:100])
        code, _, body = self.curl([("GET", "/healthz", None, None, [])])[0][0]
        self.assertEqual((code, body), (200, "ok\n"))
        m = self.vd.metrics()
        self.assertEqual(m['vigil_listener_tls_handshake_failures_total{listener="https"}'], 1)
        self.assertEqual(m['vigil_listener_frames_rejected_total{listener="https"}'], 2)
        self.assertIn("400 Bad Request", self.vd.read_log())


class BatchLimit(HttpsTest):
    listen = {"https": "127.0.0.1:0", "max_frame_bytes": "1MiB"}

    def test_tiny_events_over_one_store_batch(self):
        # 340,000 empty objects fit the 1 MiB body limit but not, once normalized, one
        # store batch: a request is all or nothing, so none of it is stored (a client
        # sending it again in smaller bodies stores nothing twice), and 413 says where
        # they stopped fitting.
        n = 340000
        code, _, reply = self.post("/v1/events", b"{}\n" * n, "application/x-ndjson")
        r = json.loads(reply)
        self.assertEqual(code, 413)
        self.assertEqual(r["accepted"], 0, r)
        self.assertTrue(1 < r["line"] < n, r)
        self.assertIn("smaller bodies", r["error"])
        self.assertEqual(self.vd.search("source=http", extra=("--limit", "5")), [])
        # The evidence is recorded beside the reply, not before it: readers see it once its
        # commit is done (schemas/segment.md 4.3).
        ev = wait_for("the rejected_input evidence",
                      lambda: self.vd.search("source=vigil", "action=rejected_input"))
        self.assertEqual(len(ev), 1)
        self.assertIn("do not fit one store batch", ev[0]["message"])
        code, _, reply = self.post("/v1/events", b'{"message":"small"}')
        self.assertEqual((code, json.loads(reply)), (200, {"accepted": 1}))


if __name__ == "__main__":
    harness.main()
