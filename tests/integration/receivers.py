"""Receivers for the forwarder tests: a local HTTPS server (Python standard library, its
own throwaway CA made with the openssl CLI) that stands in for PagerDuty, Opsgenie, Slack
and a webhook, checks every request against the vendor's documented required fields and
types, and can misbehave on demand: refuse connections, answer 503 (or 429 with
Retry-After: 3), answer 400, or hang. And the real Prometheus Alertmanager (Debian
prometheus-alertmanager), started on loopback with its own config and storage, clustering
off.

Paths: /pd/v2/enqueue (PagerDuty Events API v2), /og/v2/alerts and
/og/v2/alerts/ALIAS/close?identifierType=alias (Opsgenie Alert API),
/slack/services/T0/B0/TOKEN (Slack incoming webhook), /hook (vigil's webhook).
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import harness

PD_KEY = "0123456789abcdef0123456789abcdef"   # 32 characters, like an integration key
OG_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
HOOK_SECRET = "webhook-hmac-secret-for-the-tests"
SLACK_PATH = "/slack/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


def make_ca(d):
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    os.makedirs(d, exist_ok=True)
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca-key.pem", "ca.pem", "key.pem", "req.csr", "cert.pem"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: harness.run(["openssl"] + list(a))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=vigil test receiver CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    return ca, crt, key


def _iso(s):
    """True for an ISO 8601 / RFC 3339 timestamp as the vendors take them."""
    return isinstance(s, str) and re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$", s) is not None


def check_pagerduty(body, problems):
    """developer-docs events-API-v2/02-Trigger-Events.md: routing_key (required, 32
    characters), event_action (required: trigger, acknowledge, resolve), dedup_key (at
    most 255), payload.summary (required, at most 1024), payload.source (required),
    payload.severity (required: critical, error, warning, info), payload.timestamp
    (ISO 8601), payload.custom_details (an object)."""
    p = problems.append
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        p("pagerduty: routing_key must be the 32-character key")
    if body.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        p("pagerduty: bad event_action %r" % body.get("event_action"))
    dk = body.get("dedup_key")
    if not isinstance(dk, str) or not 0 < len(dk) <= 255:
        p("pagerduty: dedup_key must be a string of 1..255")
    if body.get("event_action") == "trigger":
        pl = body.get("payload")
        if not isinstance(pl, dict):
            p("pagerduty: trigger without payload")
            return
        if not isinstance(pl.get("summary"), str) or not 0 < len(pl["summary"]) <= 1024:
            p("pagerduty: payload.summary must be 1..1024 characters")
        if not isinstance(pl.get("source"), str) or not pl["source"]:
            p("pagerduty: payload.source is required")
        if pl.get("severity") not in ("critical", "error", "warning", "info"):
            p("pagerduty: bad payload.severity %r" % pl.get("severity"))
        if "timestamp" in pl and not _iso(pl["timestamp"]):
            p("pagerduty: payload.timestamp %r is not ISO 8601" % pl["timestamp"])
        for k in ("component", "group", "class"):
            if k in pl and not isinstance(pl[k], str):
                p("pagerduty: payload.%s must be a string" % k)
        if "custom_details" in pl and not isinstance(pl["custom_details"], dict):
            p("pagerduty: payload.custom_details must be an object")


def check_opsgenie_create(body, headers, problems):
    """docs.opsgenie.com alert-api, Create Alert: message (required, at most 130), alias
    (512), description (15000), tags (at most 20 of 50), details (a map of strings),
    entity (512), source, priority (P1..P5); header Authorization: GenieKey KEY."""
    p = problems.append
    if headers.get("Authorization") != "GenieKey " + OG_KEY:
        p("opsgenie: Authorization is not 'GenieKey <key>'")
    m = body.get("message")
    if not isinstance(m, str) or not 0 < len(m) <= 130:
        p("opsgenie: message must be 1..130 characters, got %r" % m)
    for k, n in (("alias", 512), ("description", 15000), ("entity", 512), ("source", 100)):
        if k in body and (not isinstance(body[k], str) or len(body[k]) > n):
            p("opsgenie: %s must be a string of at most %d" % (k, n))
    tags = body.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 20 or \
            any(not isinstance(t, str) or len(t) > 50 for t in tags):
        p("opsgenie: tags must be at most 20 strings of at most 50")
    det = body.get("details", {})
    if not isinstance(det, dict) or any(not isinstance(v, str) for v in det.values()):
        p("opsgenie: details must map strings to strings")
    if body.get("priority") not in ("P1", "P2", "P3", "P4", "P5"):
        p("opsgenie: bad priority %r" % body.get("priority"))


def check_webhook(raw, body, headers, problems):
    """vigil's webhook: the alert document and its HMAC-SHA256 signature."""
    p = problems.append
    want = "sha256=" + hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    if headers.get("X-Vigil-Signature") != want:
        p("webhook: X-Vigil-Signature does not match the body")
    for k in ("state", "fingerprint", "incident", "rule", "severity", "count", "first_seen",
              "last_seen", "evidence", "seq"):
        if k not in body:
            p("webhook: missing %s" % k)
    if headers.get("X-Vigil-Event") != body.get("state"):
        p("webhook: X-Vigil-Event differs from state")
    if headers.get("X-Vigil-Delivery") != str(body.get("seq")):
        p("webhook: X-Vigil-Delivery differs from seq")


class Receiver:
    """One HTTPS server playing every vendor. mode: ok, refuse, 503, 429, 400, hang."""

    def __init__(self, d):
        self.dir = d
        self.ca, self.cert, self.key = make_ca(d)
        self.lock = threading.Lock()
        self.requests = []   # every request read: dict(path, headers, raw, body, status)
        self.problems = []
        self.mode = "ok"
        self.release = threading.Event()  # ends hangs
        self.server = None
        self.port = 0
        self.start()

    def start(self):
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                rcv.handle(self, raw)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.port = srv.server_address[1]
        self.server = srv
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set_mode(self, mode):
        with self.lock:
            old, self.mode = self.mode, mode
        if old == "hang":
            self.release.set()
        if mode == "hang":
            self.release = threading.Event()
        if mode == "refuse" and self.server:
            self.stop()
        elif mode != "refuse" and not self.server:
            self.start()

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def handle(self, h, raw):
        with self.lock:
            mode = self.mode
            release = self.release
        entry = {"path": h.path, "headers": dict(h.headers), "raw": raw, "status": None,
                 "t": time.time()}
        try:
            entry["body"] = json.loads(raw)
        except ValueError:
            entry["body"] = None
            with self.lock:
                self.problems.append("%s: body is not JSON" % h.path)
        with self.lock:
            self.requests.append(entry)
        if mode == "hang":
            release.wait(harness.timeout(120))
            h.close_connection = True
            return
        if mode in ("503", "429", "400"):
            status = int(mode)
            body = b'{"status":"unavailable"}' if status != 400 else \
                b'{"status":"invalid event","message":"Event object is invalid"}'
            h.send_response(status)
            if status == 429:
                h.send_header("Retry-After", "3")
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            entry["status"] = status
            return
        self.validate(entry)
        path = h.path
        if path.startswith("/pd/"):
            status, body = 202, json.dumps({"status": "success", "message": "Event processed",
                                            "dedup_key": (entry["body"] or {}).get("dedup_key")})
        elif path.startswith("/og/"):
            status, body = 202, json.dumps({"result": "Request will be processed", "took": 0.01,
                                            "requestId": "%032x" % len(self.requests)})
        elif path.startswith("/slack/"):
            status, body = 200, "ok"
        else:
            status, body = 200, "{}"
        body = body.encode()
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        entry["status"] = status

    def validate(self, e):
        problems = []
        b = e["body"]
        if not isinstance(b, dict):
            problems.append("%s: body is not a JSON object" % e["path"])
        elif e["path"] == "/pd/v2/enqueue":
            check_pagerduty(b, problems)
        elif e["path"] == "/og/v2/alerts":
            check_opsgenie_create(b, e["headers"], problems)
        elif e["path"].startswith("/og/v2/alerts/"):
            if not re.match(r"^/og/v2/alerts/[0-9a-f]{32}/close\?identifierType=alias$",
                            e["path"]):
                problems.append("opsgenie: bad close path %s" % e["path"])
            if e["headers"].get("Authorization") != "GenieKey " + OG_KEY:
                problems.append("opsgenie: close without the GenieKey")
        elif e["path"].startswith("/slack/"):
            if not isinstance(b.get("text"), str) or not b["text"]:
                problems.append("slack: a message needs its text")
        elif e["path"] == "/hook":
            check_webhook(e["raw"], b, e["headers"], problems)
        elif e["path"] == "/hook-unsigned":
            if "X-Vigil-Signature" in e["headers"]:
                problems.append("webhook: signed without a secret")
        else:
            problems.append("unexpected path %s" % e["path"])
        with self.lock:
            self.problems += problems

    def accepted(self, prefix):
        """Requests answered 2xx whose path starts with prefix, in arrival order."""
        with self.lock:
            return [e for e in self.requests
                    if e["status"] and 200 <= e["status"] < 300 and e["path"].startswith(prefix)]

    def count(self, prefix):
        with self.lock:
            return len([e for e in self.requests if e["path"].startswith(prefix)])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Alertmanager:
    """The real Alertmanager on loopback: own config and --storage.path, no cluster."""

    BIN = harness.unpacked("prometheus-alertmanager", "prometheus-alertmanager",
                           "usr/bin/prometheus-alertmanager")

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write("route:\n  receiver: blackhole\n  group_wait: 1s\n"
                    "receivers:\n  - name: blackhole\n")
        self.log = open(os.path.join(d, "alertmanager.log"), "ab")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [self.BIN, "--config.file=" + cfg, "--storage.path=" + os.path.join(d, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--cluster.listen-address=",
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            try:
                harness.wait_for("alertmanager ready", self.ready, seconds=30, every=0.1)
                return
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        raise AssertionError("alertmanager did not start")

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("alertmanager exited")
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def alerts(self, **filters):
        """GET /api/v2/alerts (active alerts; filter label=value)."""
        q = "&".join("filter=%s" % urllib.request.quote('%s="%s"' % kv) for kv in filters.items())
        with urllib.request.urlopen("%s/api/v2/alerts?%s" % (self.url, q),
                                    timeout=harness.timeout(10)) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=harness.timeout(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self.log.close()
