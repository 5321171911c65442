"""deploy/kubernetes/: the manifests are valid Kubernetes objects, they agree with each
other and with vigild, and the README's "Deploy on Kubernetes" block runs.

- Every manifest validates against the Kubernetes API's schemas offline (k8s_validate.js:
  kubernetes-models' JSON schemas plus unknown fields, as kubectl --validate=strict); the
  validator itself refuses a typo'd field and a wrong type.
- Cross-references: Services, probes, volumes, Secret and ConfigMap names, ports, the
  restricted Pod Security profile of the vigil namespace, the image's user.
- The pod's vigil.yaml (the ConfigMap) runs: vigild with it (paths and ports moved to
  the test's) answers /healthz on its admin address.
- The README block runs in bash with the real `vigil` and recording stand-ins for
  docker, kubectl and helm that check what they are given (files exist, manifests
  validate); then every Secret has the files its consumer mounts, namespaces exist before
  their Secrets, the image built is the image deployed, and vigild's certificate carries
  the name every agent checks.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import VIGIL, Vigild, main, need, run, timeout  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(SRC, "deploy", "kubernetes")
MANIFESTS = ["vigild/00-namespace.yaml", "vigild/10-config.yaml", "vigild/20-services.yaml",
             "vigild/30-statefulset.yaml", "vigild/40-networkpolicy.yaml",
             "fluent-bit/fluent-bit.yaml"]
SERVER_NAME = "vigild.vigil.svc"


def need_node(test):
    need(test, shutil.which("node") and
         os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")) and
         os.path.isdir(os.path.join(HERE, "node_modules", "yaml")),
         "node with kubernetes-models and yaml (tests/integration/package.json)")


def validate(*paths):
    return run(["node", os.path.join(HERE, "k8s_validate.js")] + list(paths), check=False)


def docs(rel):
    return json.loads(run(["node", os.path.join(HERE, "k8s_validate.js"), "--json",
                           os.path.join(DEPLOY, rel)]).stdout)


def objects():
    out = {}
    for rel in MANIFESTS:
        for d in docs(rel):
            out[(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])] = d
    return out


class ManifestTest(unittest.TestCase):
    def setUp(self):
        need_node(self)

    def test_every_manifest_validates(self):
        shipped = sorted(os.path.relpath(os.path.join(r, f), DEPLOY)
                         for r, _, fs in os.walk(DEPLOY) for f in fs
                         if f.endswith(".yaml") and not r.endswith(("falco", "apiserver")))
        self.assertEqual(shipped, sorted(MANIFESTS), "a manifest this test does not know")
        p = validate(*[os.path.join(DEPLOY, m) for m in MANIFESTS])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(re.findall(r"(?m)^ok ", p.stdout)), 12, p.stdout)

    def test_the_validator_refuses_what_kubectl_would(self):
        tmp = tempfile.mkdtemp(prefix="vigil-it-k8s-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(DEPLOY, "vigild/30-statefulset.yaml")) as f:
            text = f.read()
        for name, bad, want in (
                ("field", text.replace("readinessProbe:", "readinesProbe:"),
                 "readinesProbe: unknown field"),
                ("type", text.replace("containerPort: 9465", 'containerPort: "9465"'),
                 "containerPort must be integer"),
                ("required", text.replace("  selector:\n    matchLabels:\n"
                                          "      app.kubernetes.io/name: vigild\n  template:",
                                          "  template:"),
                 "must have required property selector")):
            path = os.path.join(tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(bad)
            p = validate(path)
            self.assertEqual(p.returncode, 1, name)
            self.assertIn(want, p.stdout, name)

    def test_references_agree(self):
        o = objects()
        sts = o[("StatefulSet", "vigil", "vigild")]
        pod = sts["spec"]["template"]
        spec = pod["spec"]
        c = spec["containers"][0]
        labels = pod["metadata"]["labels"]
        self.assertEqual(sts["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"forward": 24224, "syslog": 6514, "https": 8443,
                                 "admin": 9465})
        headless = o[("Service", "vigil", sts["spec"]["serviceName"])]
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        svc = o[("Service", "vigil", "vigild")]
        for s in (svc, headless):
            self.assertEqual(s["spec"]["selector"].items() - labels.items(), set())
            for p in s["spec"]["ports"]:
                self.assertEqual(ports[p["targetPort"]], p["port"])
        self.assertEqual({p["name"] for p in svc["spec"]["ports"]}, {"forward", "syslog", "https"})
        # Ready only while ingest is taken; alive (not restarted) while it runs at all.
        probes = {"startupProbe": "/livez", "readinessProbe": "/healthz",
                  "livenessProbe": "/livez"}
        for probe, path in probes.items():
            self.assertEqual(c[probe]["httpGet"], {"path": path, "port": "admin"}, probe)
        self.assertEqual(pod["metadata"]["annotations"]["prometheus.io/port"], str(ports["admin"]))
        # The config: the ConfigMap's vigil.yaml, where -c points; its paths are mounts.
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in spec["volumes"]}
        cm_vol = next(n for n, v in vols.items() if "configMap" in v)
        cm = o[("ConfigMap", "vigil", vols[cm_vol]["configMap"]["name"])]
        cfg_path = c["args"][c["args"].index("-c") + 1]
        self.assertEqual(os.path.dirname(cfg_path), mounts[cm_vol])
        cfg = cm["data"][os.path.basename(cfg_path)]
        m = re.search(r"(?m)^  path: (\S+)", cfg)
        claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        self.assertEqual(m.group(1), mounts[claim])
        secret_vol = next(n for n, v in vols.items() if "secret" in v)
        self.assertEqual(vols[secret_vol]["secret"]["secretName"], "vigil-tls")
        tls = dict(re.findall(r"(?m)^  (ca|cert|key): (\S+)", cfg))
        self.assertEqual({os.path.dirname(p) for p in tls.values()}, {mounts[secret_vol]})
        self.assertEqual(sorted(os.path.basename(p) for p in tls.values()),
                         ["ca.pem", "server-key.pem", "server.pem"])
        listen = dict(re.findall(r"(?m)^  (forward|syslog|https|admin): \S+:(\d+)", cfg))
        self.assertEqual({k: int(v) for k, v in listen.items()}, ports)
        self.assertRegex(cfg, r"(?m)^  admin: 0\.0\.0\.0:9465$")
        self.assertRegex(cfg, r"(?m)^  admin_remote: true$")
        # The NetworkPolicy opens the listener ports and admin (to monitoring only).
        np = o[("NetworkPolicy", "vigil", "vigild")]
        opened = {p["port"] for r in np["spec"]["ingress"] for p in r["ports"]}
        self.assertEqual(opened, set(ports.values()))
        # The image's vigil user (Dockerfile: uid 999) owns the volume via fsGroup.
        with open(os.path.join(SRC, "Dockerfile")) as f:
            uid = re.search(r"useradd .*--uid (\d+)", f.read()).group(1)
        sc = spec["securityContext"]
        self.assertEqual((str(sc["runAsUser"]), str(sc["fsGroup"])), (uid, uid))

    def test_vigil_namespace_is_restricted_and_vigild_fits(self):
        o = objects()
        ns = o[("Namespace", None, "vigil")]
        self.assertEqual(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                         "restricted")
        spec = o[("StatefulSet", "vigil", "vigild")]["spec"]["template"]["spec"]
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])
        self.assertEqual(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
        for c in spec["containers"]:
            sc = c["securityContext"]
            self.assertFalse(sc["allowPrivilegeEscalation"])
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
            self.assertTrue(sc["readOnlyRootFilesystem"])
        allowed = {"configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected",
                   "downwardAPI", "csi", "ephemeral"}
        for v in spec["volumes"]:
            self.assertTrue(set(v) - {"name"} <= allowed, v)
        # Fluent Bit needs hostPath: its own namespace, not the restricted one.
        ds = o[("DaemonSet", "vigil-agents", "fluent-bit")]
        self.assertTrue(any("hostPath" in v for v in ds["spec"]["template"]["spec"]["volumes"]))
        self.assertIn(("Namespace", None, "vigil-agents"), o)


class PodConfig(Vigild):
    """vigild with the ConfigMap's vigil.yaml: its paths moved into the test directory,
    its listeners onto free ports (the admin one still on 0.0.0.0, admin_remote)."""

    def __init__(self, text):
        super().__init__("pod-config", server_names=(SERVER_NAME,))
        self.text = text

    def write_config(self):
        text = self.text
        for old, new in (("/etc/vigil/pki/", self.pki + "/"), ("/var/lib/vigil", self.store),
                         ("/usr/share/vigil/rules", os.path.join(SRC, "etc", "rules"))):
            self.assertIn_(old, text)
            text = text.replace(old, new)
        text = re.sub(r"(?m)^(  (?:forward|syslog|https): )\S+", r"\g<1>127.0.0.1:0", text)
        text = re.sub(r"(?m)^(  admin: )\S+", r"\g<1>0.0.0.0:0", text)
        with open(self.config, "w") as f:
            f.write(text)

    @staticmethod
    def assertIn_(needle, text):
        if needle not in text:
            raise AssertionError("the pod's vigil.yaml no longer names %s" % needle)


class PodConfigTest(unittest.TestCase):
    def test_the_pods_config_runs(self):
        need_node(self)
        cm = next(d for d in docs("vigild/10-config.yaml") if d["kind"] == "ConfigMap")
        vd = PodConfig(cm["data"]["vigil.yaml"])
        self.addCleanup(vd.cleanup)
        vd.start()
        self.assertRegex(vd.read_log(), r"listening: admin on 0\.0\.0\.0:\d+ \(plain\)")
        self.assertRegex(vd.read_log(), r"rules: [1-9]\d* loaded, 0 unsupported, 0 invalid")
        for path in ("/healthz", "/livez"):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (vd.admin_port, path),
                                        timeout=timeout(10)) as r:
                self.assertEqual(r.status, 200)
        vd.stop()


# A stand-in for docker, kubectl and helm: records its argv (JSON lines in $SHIM_LOG) and
# refuses what the real tool would refuse here: missing files, invalid manifests.
SHIM = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
tool = os.path.basename(sys.argv[0]); args = sys.argv[1:]
with open(os.environ["SHIM_LOG"], "a") as f:
    f.write(json.dumps([tool] + args) + "\n")
def fail(msg):
    sys.stderr.write("%s: %s\n" % (tool, msg)); sys.exit(1)
def value(flag):
    return args[args.index(flag) + 1] if flag in args else None
if tool == "kubectl" and "apply" in args:
    path = value("-f")
    if not path or not os.path.exists(path):
        fail("no such file: %s" % path)
    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    p = subprocess.run(["node", os.environ["K8S_VALIDATE"]] + files, capture_output=True, text=True)
    if p.returncode:
        fail("invalid manifests:\n" + p.stdout)
for a in args:
    if a.startswith("--from-file=") and not os.path.isfile(a.split("=", 1)[1]):
        fail("no such file: " + a)
if tool == "helm" and "install" in args and not os.path.isfile(value("-f")):
    fail("no such values file: %s" % value("-f"))
if tool == "docker" and args[:1] == ["build"] and not os.path.isfile(os.path.join(args[-1], "Dockerfile")):
    fail("no Dockerfile in %s" % args[-1])
'''


def readme_block(title):
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    m = re.search(r"(?ms)^## %s\n.*?^```sh\n(.*?)^```" % re.escape(title), text)
    if not m:
        raise AssertionError("README.md has no sh block under '## %s'" % title)
    return m.group(1)


class ReadmeDeployTest(unittest.TestCase):
    def test_deploy_on_kubernetes_block(self):
        need_node(self)
        need(self, shutil.which("openssl"), "openssl")
        tmp = tempfile.mkdtemp(prefix="vigil-it-k8s-readme-")
        self.addCleanup(shutil.rmtree, tmp, True)
        work = os.path.join(tmp, "checkout")
        os.makedirs(work)
        for name in ("deploy", "Dockerfile"):
            os.symlink(os.path.join(SRC, name), os.path.join(work, name))
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        shim = os.path.join(bindir, "shim")
        with open(shim, "w") as f:
            f.write(SHIM)
        os.chmod(shim, 0o755)
        for tool in ("docker", "kubectl", "helm"):
            os.symlink(shim, os.path.join(bindir, tool))
        os.symlink(VIGIL, os.path.join(bindir, "vigil"))
        log = os.path.join(tmp, "shim.log")
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], SHIM_LOG=log,
                   K8S_VALIDATE=os.path.join(HERE, "k8s_validate.js"))
        block = readme_block("Deploy on Kubernetes")
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                           capture_output=True, text=True, timeout=timeout(300))
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        with open(log) as f:
            calls = [json.loads(l) for l in f]

        def ns_of(c):
            return c[c.index("-n") + 1] if "-n" in c else None
        namespaces = set()
        secrets = {}
        for c in calls:
            if c[0] == "kubectl" and "apply" in c:
                path = os.path.join(work, c[c.index("-f") + 1])
                files = ([os.path.join(path, f) for f in os.listdir(path)]
                         if os.path.isdir(path) else [path])
                for fpath in files:
                    for d in json.loads(run(["node", os.path.join(HERE, "k8s_validate.js"),
                                             "--json", fpath]).stdout):
                        if d["kind"] == "Namespace":
                            namespaces.add(d["metadata"]["name"])
            elif c[:3] == ["kubectl", "create", "namespace"]:
                namespaces.add(c[3])
            elif c[0] == "kubectl" and "secret" in c:
                ns = ns_of(c)
                self.assertIn(ns, namespaces, "secret in namespace %s before it exists" % ns)
                name = c[c.index("generic") + 1]
                secrets[(ns, name)] = sorted(os.path.basename(a.split("=", 1)[1])
                                             for a in c if a.startswith("--from-file="))
            elif c[0] == "helm" and "install" in c:
                self.assertIn(ns_of(c), namespaces)
        o = objects()
        # vigild's Secret has the files its config names.
        self.assertEqual(secrets[("vigil", "vigil-tls")],
                         ["ca.pem", "server-key.pem", "server.pem"])
        # Fluent Bit's, the files its output names.
        cm = o[("ConfigMap", "vigil-agents", "fluent-bit-config")]["data"]["fluent-bit.conf"]
        fb = sorted(os.path.basename(v) for v in
                    re.findall(r"(?m)^\s+tls\.(?:ca|crt|key)_file\s+(\S+)", cm))
        self.assertEqual(secrets[("vigil-agents", "vigil-agent-fluent-bit")], fb)
        # Falco's, the files its values name.
        with open(os.path.join(DEPLOY, "falco/values.yaml")) as f:
            falco = sorted(os.path.basename(v) for v in
                           re.findall(r"(?m)^\s+(?:ca_cert|client_cert|client_key): \"(\S+)\"",
                                      f.read()))
        self.assertEqual(secrets[("falco", "vigil-agent-falco")], falco)
        # The image built is the one the StatefulSet runs.
        built = next(c for c in calls if c[:2] == ["docker", "build"])
        image = o[("StatefulSet", "vigil", "vigild")]["spec"]["template"]["spec"]["containers"][0]["image"]
        self.assertEqual(built[built.index("-t") + 1], image)
        # vigild's certificate carries the name every agent checks; the agents' files exist.
        pki = os.path.join(work, "pki")
        for name in (SERVER_NAME, SERVER_NAME + ".cluster.local"):
            p = run(["openssl", "x509", "-noout", "-checkhost", name, "-in",
                     os.path.join(pki, "server.pem")])
            self.assertIn("does match certificate", p.stdout)
        for agent in ("fluent-bit", "falco", "kube-apiserver", "trivy", "node-1"):
            self.assertTrue(os.path.isfile(os.path.join(pki, agent + "-key.pem")), agent)


if __name__ == "__main__":
    main()
