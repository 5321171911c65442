"""The agent configurations shipped in deploy/kubernetes/, exercised against a real vigild
whose certificate carries the in-cluster name agents verify (vigild.vigil.svc).

- rsyslog (nodes/rsyslog/60-vigil.conf) and syslog-ng (nodes/syslog-ng/vigil.conf) run
  the shipped drop-ins as they are, only paths, target address and port substituted, under
  a main config shaped like Debian's; a real auth log (sshd, PAM) goes in through their
  local socket with `logger` and must arrive over mutual TLS, normalized, while a
  non-auth message must not. syslog-ng runs from its unpacked .deb (setup.sh --test:
  syslog-ng-core conflicts with the rsyslog package).
- kube-apiserver's audit webhook (apiserver/audit-webhook.kubeconfig): a real curl POST of
  a corpus EventList with the kubeconfig's server path, TLS server name and certificate
  files; and the audit policy gives every default k8s rule the level it needs and secrets
  no more than Metadata.
- Falco (falco/values.yaml): the http_output fields vigild needs, then a curl POST of real
  Falco alerts the way http_output sends them, with the values' URL and certificates.
- Fluent Bit (fluent-bit/fluent-bit.yaml): the forward output's fields, then a real Forward
  client (@fluent-org/logger) with the output's host name verification and acks.
- Trivy (trivy/trivy-to-vigil.sh): the script run as it is with a stand-in `trivy` that
  prints a real report; every finding must arrive.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import AGENTS, VigildTest, main, need, run, timeout, unpacked, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
CORPUS = os.environ.get("VG_CORPUS_DIR", os.path.join(SRC, "tests", "data", "corpus"))
DEPLOY = os.path.join(SRC, "deploy", "kubernetes")
SERVER_NAME = "vigild.vigil.svc"  # the vigild Service's name, on its certificate
AUTH_LOGS = ("auth/crowdsec-hub-tests/sshd-logs.log", "auth/crowdsec-hub-tests/pam-logs.log",
             "auth/crowdsec-hub-tests/sshd-success-logs.log")


def literal(path, subs):
    """The shipped file's text with each (old, new) substituted; each old must occur, so
    a change to the file cannot silently leave a production path in the test."""
    with open(path) as f:
        text = f.read()
    for old, new in subs:
        if old not in text:
            raise AssertionError("%s no longer contains %r" % (path, old))
        text = text.replace(old, new)
    return text


def yaml_docs(path):
    """The YAML documents of path, parsed by the npm `yaml` package (k8s_validate.js)."""
    p = run(["node", os.path.join(HERE, "k8s_validate.js"), "--json", path])
    return json.loads(p.stdout)


def need_yaml(test):
    need(test, shutil.which("node") and os.path.isdir(os.path.join(HERE, "node_modules", "yaml")),
         "node with the yaml package (tests/integration/package.json)")


def auth_messages():
    """(program, pid or None, message) of each line of the corpus auth logs."""
    out = []
    for rel in AUTH_LOGS:
        with open(os.path.join(CORPUS, rel)) as f:
            for line in f:
                m = re.match(r"^(?:\w{3} +\d+ [\d:]+|\S+T\S+) \S+ ([\w.-]+)(?:\[(\d+)\])?: (.*)$",
                             line.rstrip("\n"))
                if not m:
                    raise AssertionError("%s: unexpected line %r" % (rel, line))
                out.append(m.groups())
    return out


def logger(sock, prog, pid, msg, facility="authpriv.info"):
    """util-linux logger into a syslog daemon's local socket, as sshd's syslog() would."""
    args = ["logger", "--socket-errors=on", "-u", sock, "-p", facility, "-t", prog]
    if pid:
        args.append("--id=%s" % pid)
    run(args + ["--", msg])


class NodeSyslogTest(VigildTest):
    """The node drop-ins: a real auth log through rsyslog or syslog-ng into vigild."""

    listen = {"syslog": "127.0.0.1:0"}
    server_names = (SERVER_NAME,)

    def agent_files(self):
        cert, key = self.vd.cert("agent-node-1")
        return [("/etc/vigil/agent/ca.pem", self.vd.ca), ("/etc/vigil/agent/node.pem", cert),
                ("/etc/vigil/agent/node-key.pem", key)]

    def shipped(self, d, rel, subs):
        """Writes deploy/kubernetes/<rel> into d, the agent's files and subs substituted."""
        path = os.path.join(d, os.path.basename(rel))
        with open(path, "w") as f:
            f.write(literal(os.path.join(DEPLOY, rel), self.agent_files() + subs))
        return path

    def config_ok(self, argv, env=None):
        """The daemon's own configuration check (rsyslogd -N1, syslog-ng -s) passes."""
        p = run(argv, check=False, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def daemon(self, args, d, env=None):
        out = open(os.path.join(d, "daemon.out"), "w")
        self.addCleanup(out.close)
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=env)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout(20))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.addCleanup(stop)
        return p

    def ship_and_check(self, sock, d, proc):
        wait_for("the daemon's socket", lambda: os.path.exists(sock), 30)
        marker = "not-auth-%d" % os.getpid()
        logger(sock, "cron", "77", "%s: a user.info message stays on the node" % marker,
               facility="user.info")
        msgs = auth_messages()
        for prog, pid, msg in msgs:
            logger(sock, prog, pid, msg)

        def arrived():
            if proc.poll() is not None:
                with open(os.path.join(d, "daemon.out")) as f:
                    raise AssertionError("the syslog daemon exited: " + f.read()[-3000:])
            return len(self.vd.search("agent=agent-node-1")) >= len(msgs)
        wait_for("%d auth messages in the store" % len(msgs), arrived, 120)
        got = self.vd.search("agent=agent-node-1")
        self.assertEqual(len(got), len(msgs))
        self.assertEqual(self.vd.search(marker), [])
        # Normalized as the same lines sent straight to vigild (`vigil send --format
        # syslog` as another agent): the daemon's transport changes nothing but the header.
        self.vd.send([os.path.join(CORPUS, rel) for rel in AUTH_LOGS], agent="agent-sidecar-1",
                     fmt="syslog")

        def fields(events):
            return sorted(tuple(str(e.get(k)) for k in ("kind", "source", "outcome", "user",
                                                         "src_ip", "action")) +
                          (e["message"].strip(),) for e in events)
        direct = self.vd.search("agent=agent-sidecar-1")
        self.assertEqual(fields(got), fields(direct))
        host = socket.gethostname()
        self.assertTrue(all(e.get("host") == host for e in got), [e.get("host") for e in got])
        self.assertTrue(all(e["raw"].get("format") == "rfc5424" and
                            e["raw"].get("facility") in ("auth", "authpriv") for e in got))
        self.assertEqual(len(self.vd.search("agent=agent-node-1", "outcome=failure", "user=root",
                                            "src_ip=192.168.1.2", "source=sshd")), 1)
        self.assertEqual(len(self.vd.search("agent=agent-node-1", "user=pascal",
                                            "src_ip=35.188.49.176", "outcome=failure")), 3)
        self.assertEqual(len(self.vd.search("agent=agent-node-1", "kind=auth",
                                            "outcome=success")), 4)

    def test_rsyslog_dropin(self):
        need(self, shutil.which("rsyslogd"), "rsyslogd (rsyslog, rsyslog-openssl)")
        need(self, shutil.which("logger"), "logger (util-linux)")
        d = os.path.join(self.vd.dir, "rsyslog")
        os.makedirs(os.path.join(d, "work"))
        dropin = self.shipped(d, "nodes/rsyslog/60-vigil.conf", [
            ('target="vigild.vigil.svc"', 'target="127.0.0.1"'),
            ('port="6514"', 'port="%d"' % self.vd.syslog_port)])
        sock = os.path.join(d, "log.sock")
        conf = os.path.join(d, "rsyslog.conf")
        # Debian's rsyslog.conf in small: the local socket, a work directory, the drop-ins.
        with open(conf, "w") as f:
            f.write('global(workDirectory="%s/work")\n'
                    'module(load="imuxsock" SysSock.Use="off")\n'
                    'input(type="imuxsock" Socket="%s")\n'
                    'include(file="%s")\n' % (d, sock, dropin))
        self.config_ok(["rsyslogd", "-N1", "-f", conf])
        proc = self.daemon(["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "pid")], d)
        self.ship_and_check(sock, d, proc)

    def syslog_ng(self):
        """(argv prefix, env) to run syslog-ng: installed, or unpacked by setup.sh."""
        binary = unpacked("syslog-ng", "syslog-ng-core", "usr/sbin/syslog-ng")
        need(self, binary, "syslog-ng (setup.sh --test unpacks syslog-ng-core)")
        if not binary.startswith(AGENTS):
            return [binary], None
        libs = os.path.join(AGENTS, "syslog-ng-core", "usr/lib/syslog-ng")
        mods = glob.glob(os.path.join(libs, "3.*"))
        self.assertEqual(len(mods), 1, mods)
        env = dict(os.environ, LD_LIBRARY_PATH=libs)
        return [binary, "--module-path=" + mods[0]], env

    def test_syslog_ng_dropin(self):
        need(self, shutil.which("logger"), "logger (util-linux)")
        argv, env = self.syslog_ng()
        d = os.path.join(self.vd.dir, "syslog-ng")
        os.makedirs(os.path.join(d, "buffer"))
        # "localhost": syslog-ng checks the certificate against the name it connects to,
        # and the test cannot make vigild.vigil.svc resolve; the certificate has both.
        dropin = self.shipped(d, "nodes/syslog-ng/vigil.conf", [
            ('syslog("vigild.vigil.svc"', 'syslog("localhost"'),
            ("port(6514)", "port(%d)" % self.vd.syslog_port),
            ('dir("/var/lib/syslog-ng")', 'dir("%s/buffer")' % d)])
        sock = os.path.join(d, "log.sock")
        conf = os.path.join(d, "syslog-ng.conf")
        # Debian's syslog-ng.conf in small: s_src (here one local socket) and f_auth as
        # Debian defines them, then the drop-in.
        with open(conf, "w") as f:
            f.write('@version: 3.38\n'
                    'options { keep-hostname(yes); };\n'
                    'source s_src { unix-dgram("%s"); };\n'
                    'filter f_dbg { level(debug); };\n'
                    'filter f_auth { facility(auth, authpriv) and not filter(f_dbg); };\n'
                    '@include "%s"\n' % (sock, dropin))
        state = ["-f", conf, "-R", os.path.join(d, "persist"), "-p", os.path.join(d, "pid"),
                 "-c", os.path.join(d, "ctl")]
        self.config_ok(argv + ["-s"] + state, env=env)
        proc = self.daemon(argv + ["-F", "--no-caps"] + state, d, env=env)
        self.ship_and_check(sock, d, proc)


def audit_level(policy, req):
    """The level kube-apiserver's policy gives a request (first matching rule; an empty
    list matches everything; resource rules never match non-resource URLs and back)."""
    def any_match(vals, v, glob_=False):
        if not vals:
            return True
        for x in vals:
            if x == "*" or x == v or (glob_ and x.endswith("*") and v.startswith(x[:-1])):
                return True
        return False
    for r in policy["rules"]:
        if not any_match(r.get("users"), req["user"]):
            continue
        if r.get("userGroups") and not set(r["userGroups"]) & set(req.get("groups", [])):
            continue
        if not any_match(r.get("verbs"), req["verb"]):
            continue
        if "url" in req:
            if r.get("resources") or not any_match(r.get("nonResourceURLs"), req["url"], True):
                continue
        else:
            if r.get("nonResourceURLs"):
                continue
            if r.get("namespaces") and req.get("namespace") not in r["namespaces"]:
                continue
            if r.get("resources"):
                name = req["resource"] + ("/" + req["sub"] if req.get("sub") else "")
                if not any(g.get("group", "") == req.get("group", "") and
                           (not g.get("resources") or name in g["resources"] or
                            "*" in g["resources"]) for g in r["resources"]):
                    continue
        return r["level"]
    return "None"


LEVELS = ["None", "Metadata", "Request", "RequestResponse"]


class AuditWebhookTest(VigildTest):
    listen = {"https": "127.0.0.1:0"}
    server_names = (SERVER_NAME,)

    def test_policy_levels_fit_the_rule_pack(self):
        need_yaml(self)
        policy = yaml_docs(os.path.join(DEPLOY, "apiserver/audit-policy.yaml"))[0]
        self.assertEqual((policy["apiVersion"], policy["kind"]), ("audit.k8s.io/v1", "Policy"))
        self.assertIn("RequestReceived", policy["omitStages"])
        alice = {"user": "alice", "groups": ["system:authenticated"]}

        def level(**kw):
            return audit_level(policy, dict(alice, **kw))
        # k8s_privileged_pod reads requestObject.spec: pods as requested.
        self.assertGreaterEqual(LEVELS.index(level(verb="create", resource="pods",
                                                   namespace="shop")), 2)
        # k8s_pod_exec_attach, k8s_secrets_read, k8s_api_access_denied_burst: metadata.
        for sub in ("exec", "attach"):
            self.assertGreaterEqual(LEVELS.index(level(verb="create", resource="pods",
                                                       sub=sub, namespace="shop")), 1)
        for verb in ("get", "list", "watch"):
            self.assertEqual(level(verb=verb, resource="secrets", namespace="payments"),
                             "Metadata", verb)
        # A secret's contents never leave the API server, written or read.
        for verb in ("create", "update", "patch", "delete"):
            self.assertEqual(level(verb=verb, resource="secrets", namespace="payments"),
                             "Metadata", verb)
        self.assertEqual(level(verb="list", resource="pods", namespace="kube-system",
                               user="system:anonymous"), "Metadata")
        self.assertEqual(level(verb="create", resource="clusterrolebindings",
                               group="rbac.authorization.k8s.io"), "Request")
        # The chatter stays out.
        self.assertEqual(level(verb="get", url="/healthz"), "None")
        self.assertEqual(level(verb="update", resource="leases", group="coordination.k8s.io",
                               namespace="kube-node-lease"), "None")

    def test_webhook_kubeconfig_with_curl(self):
        need_yaml(self)
        need(self, shutil.which("curl"), "curl")
        kc = yaml_docs(os.path.join(DEPLOY, "apiserver/audit-webhook.kubeconfig"))[0]
        self.assertEqual((kc["apiVersion"], kc["kind"]), ("v1", "Config"))
        ctx = next(c["context"] for c in kc["contexts"] if c["name"] == kc["current-context"])
        cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in kc["users"] if u["name"] == ctx["user"])
        url = urllib.parse.urlsplit(cluster["server"])
        self.assertEqual((url.scheme, url.port, url.path), ("https", 8443, "/v1/k8s/audit"))
        self.assertEqual(cluster["tls-server-name"], SERVER_NAME)
        cert, key = self.vd.cert("agent-node-1")
        files = {cluster["certificate-authority"]: self.vd.ca,
                 user["client-certificate"]: cert, user["client-key"]: key}
        self.assertEqual(len(files), 3)
        # An EventList as the API server batches it, from real audit events.
        with open(os.path.join(CORPUS, "k8s-audit/crowdsec_k8s-audit-pod-exec-file.log")) as f:
            items = [json.loads(l) for l in f if l.strip()]
        body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                           "metadata": {}, "items": items})
        # The kubeconfig's address and name as the API server uses them: connect to the
        # (here: loopback) address, verify the certificate for tls-server-name.
        port = self.vd.ports["https"]
        p = run(["curl", "--fail-with-body", "-sS",
                 "--connect-to", "%s:%d:127.0.0.1:%d" % (SERVER_NAME, url.port, port),
                 "--cacert", files[cluster["certificate-authority"]],
                 "--cert", files[user["client-certificate"]],
                 "--key", files[user["client-key"]],
                 "-H", "Content-Type: application/json", "--data-binary", "@-",
                 "https://%s:%d%s" % (cluster["tls-server-name"], url.port, url.path)],
                input=body)
        self.assertEqual(json.loads(p.stdout).get("accepted"), len(items), p.stdout)
        got = self.vd.search("source=k8s-audit", "agent=agent-node-1")
        self.assertEqual(len(got), len(items))
        self.assertTrue(any(e.get("pod") == "test-pod-1" for e in got), got[:2])


class FalcoTest(VigildTest):
    listen = {"https": "127.0.0.1:0"}
    server_names = (SERVER_NAME,)

    def test_http_output_values_with_curl(self):
        need_yaml(self)
        need(self, shutil.which("curl"), "curl")
        values = yaml_docs(os.path.join(DEPLOY, "falco/values.yaml"))[0]
        falco = values["falco"]
        out = falco["http_output"]
        # vigild's /v1/falco reads Falco's JSON alert; http_output must speak mTLS to it.
        self.assertTrue(falco["json_output"])
        self.assertTrue(out["enabled"])
        self.assertFalse(out["insecure"])
        self.assertTrue(out["mtls"])
        self.assertFalse(out["compress_uploads"])
        url = urllib.parse.urlsplit(out["url"])
        self.assertEqual((url.scheme, url.hostname, url.port, url.path),
                         ("https", SERVER_NAME, 8443, "/v1/falco"))
        # The certificate paths are the Secret's files, where the values mount them.
        mounts = {m["name"]: m["mountPath"] for m in values["mounts"]["volumeMounts"]}
        vols = {v["name"]: v for v in values["mounts"]["volumes"]}
        (name, path), = mounts.items()
        self.assertEqual(vols[name]["secret"]["secretName"], "vigil-agent-falco")
        cert, key = self.vd.cert("agent-node-1")
        files = {path + "/ca.pem": self.vd.ca, path + "/falco.pem": cert,
                 path + "/falco-key.pem": key}
        self.assertEqual({out["ca_cert"], out["client_cert"], out["client_key"]}, set(files))
        # Falco's http_output: one JSON alert per POST.
        with open(os.path.join(CORPUS, "falco/falco-test_single_rule_with_cat_write.json")) as f:
            alerts = [l for l in f.read().splitlines() if l.strip()][:3]
        port = self.vd.ports["https"]
        for a in alerts:
            run(["curl", "--fail-with-body", "-sS",
                 "--connect-to", "%s:%d:127.0.0.1:%d" % (SERVER_NAME, url.port, port),
                 "--cacert", files[out["ca_cert"]], "--cert", files[out["client_cert"]],
                 "--key", files[out["client_key"]], "-A", out["user_agent"],
                 "-H", "Content-Type: application/json", "--data-binary", a, out["url"]])
        got = self.vd.search("source=falco", "rule=open_from_cat")
        self.assertEqual(len(got), len(alerts))


def fluent_bit_sections(text):
    """[(SECTION, {key: value})] of a Fluent Bit classic config."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            out.append((line.strip("[]").upper(), {}))
            continue
        k, _, v = line.partition(" ")
        out[-1][1][k.lower()] = v.strip()
    return out


class FluentBitTest(VigildTest):
    server_names = (SERVER_NAME,)

    def test_forward_output_and_a_real_forward_client(self):
        need_yaml(self)
        node = shutil.which("node")
        need(self, node and os.path.isdir(os.path.join(HERE, "node_modules", "@fluent-org")),
             "node with @fluent-org/logger")
        docs = yaml_docs(os.path.join(DEPLOY, "fluent-bit/fluent-bit.yaml"))
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        ds = next(d for d in docs if d["kind"] == "DaemonSet")
        outputs = [s for n, s in fluent_bit_sections(cm["data"]["fluent-bit.conf"])
                   if n == "OUTPUT"]
        self.assertEqual(len(outputs), 1)
        o = outputs[0]
        self.assertEqual(o["name"], "forward")
        self.assertEqual((o["host"], o["port"]), (SERVER_NAME, "24224"))
        # At least once: Fluent Bit keeps a chunk until vigild acks it (durable).
        self.assertEqual(o["require_ack_response"].lower(), "true")
        self.assertEqual((o["tls"].lower(), o["tls.verify"].lower()), ("on", "on"))
        self.assertEqual(o["tls.vhost"], SERVER_NAME)
        spec = ds["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"].rstrip("/"): m["name"] for m in spec["containers"][0]["volumeMounts"]}
        tls_dir = os.path.dirname(o["tls.ca_file"])
        self.assertEqual(vols[mounts[tls_dir]]["secret"]["secretName"], "vigil-agent-fluent-bit")
        self.assertEqual([os.path.basename(o[k]) for k in ("tls.ca_file", "tls.crt_file",
                                                           "tls.key_file")],
                         ["ca.pem", "fluent-bit.pem", "fluent-bit-key.pem"])
        self.assertTrue(all(os.path.dirname(o[k]) == tls_dir
                            for k in ("tls.crt_file", "tls.key_file")))
        # The config's -c path is the ConfigMap's mount.
        args = spec["containers"][0]["args"]
        self.assertEqual(os.path.dirname(args[args.index("-c") + 1]),
                         next(p for p, n in mounts.items() if n == "config"))
        # A Forward client with what the output does: TLS with a client certificate,
        # vigild's certificate verified for tls.vhost, acks awaited.
        cert, key = self.vd.cert("agent-node-1")
        env = dict(os.environ, FLUENT_SERVERNAME=o["tls.vhost"],
                   FLUENT_TIMEOUT_MS=str(int(timeout(20) * 1000)))
        p = run([node, os.path.join(HERE, "fluent_client.js"), str(self.vd.forward_port),
                 self.vd.ca, cert, key, "5", "Forward", "fluent-bit-%d" % os.getpid()], env=env)
        self.assertIn("acknowledged 5", p.stdout)
        self.assertEqual(len(self.vd.search("raw.run_id=fluent-bit-%d" % os.getpid())), 5)


class TrivyTest(VigildTest):
    listen = {"https": "127.0.0.1:0"}

    def test_script_with_a_stand_in_trivy(self):
        need(self, shutil.which("curl"), "curl")
        report = os.path.join(CORPUS, "trivy/alpine-310.json")
        with open(report) as f:
            findings = sum(len(r.get("Vulnerabilities") or []) for r in json.load(f)["Results"])
        self.assertGreater(findings, 0)
        bindir = os.path.join(self.vd.dir, "bin")
        os.makedirs(bindir)
        # Trivy's command line as the script gives it; the report a real scan wrote.
        with open(os.path.join(bindir, "trivy"), "w") as f:
            f.write('#!/bin/sh\n'
                    'echo "$@" > "%s/trivy.args"\n'
                    'out=""; while [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
                    'cp "%s" "$out"\n' % (self.vd.dir, report))
        os.chmod(os.path.join(bindir, "trivy"), 0o755)
        cert, key = self.vd.cert("agent-node-1")
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"],
                   VIGIL_URL="https://localhost:%d" % self.vd.ports["https"],
                   VIGIL_CA=self.vd.ca, VIGIL_CERT=cert, VIGIL_KEY=key)
        p = run(["sh", os.path.join(DEPLOY, "trivy/trivy-to-vigil.sh"), "alpine:3.10"], env=env)
        self.assertEqual(json.loads(p.stdout).get("accepted"), findings, p.stdout)
        with open(os.path.join(self.vd.dir, "trivy.args")) as f:
            args = f.read().split()
        self.assertEqual(args[0], "image")
        self.assertEqual(args[args.index("--format") + 1], "json")
        self.assertEqual(args[-1], "alpine:3.10")
        self.assertEqual(len(self.vd.search("source=trivy", "cve=CVE*")), findings)


if __name__ == "__main__":
    main()
