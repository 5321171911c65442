"""vigild as cluster nodes over NATS JetStream (issue 17, slice 1; schemas/cluster.md).

Real nats-server processes (a 3-server JetStream cluster on loopback, free ports, their
own directories, stopped by PID), real vigild nodes (2 ingest, 2 store) and `vigil send`
as the agents:

- test_replicated: agents ship through both ingest nodes while one NATS server is
  killed with SIGKILL; every acknowledged event is then in its shard's store, exactly
  once (in both replicas of a replicated shard), nowhere else; every shard store
  verifies; the two replicas of a shard are byte-identical segment for segment; a store
  node restarted catches up, and one whose directory was deleted is rebuilt from the
  stream, byte-identical again.
- test_nats_down: with NATS gone, agents get no acknowledgement (backpressure, as for a
  full disk) and vigild's readiness says why; once NATS is back, the same events are
  acknowledged and stored, nothing acknowledged before is lost, and the outage is
  recorded as source=vigil evidence.
- vigil cluster status: the stream, its replicas (a killed server offline: exit 1), each
  store node's consumer per shard with what it wrote and its lag, a shard no store node
  writes (exit 1); its usage errors.
- test_aged_out: a store node later than the stream's limits says what it lost.
- test_deploy_example: deploy/cluster/ passes nats-server -t and vigild --check-config.
- test_check_config: what vigild --check-config refuses in cluster:.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import VIGIL, VIGILD, run, wait_for

NATS_SERVER = shutil.which("nats-server")
SHARDS = 4


def shard_of(agent, shards=SHARDS):
    """schemas/cluster.md 1: FNV-1a 64 of the agent, modulo shards."""
    h = 0xcbf29ce484222325
    for b in agent.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class NatsServer:
    def __init__(self, base, name, port, cport, hport, routes):
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name, self.port, self.hport = name, port, hport
        self.conf = os.path.join(self.dir, "nats.conf")
        self.log_path = os.path.join(self.dir, "nats.log")
        with open(self.conf, "w") as f:
            f.write("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                    "max_payload: 8MB\njetstream { store_dir: \"%s\" }\n"
                    % (name, port, hport, os.path.join(self.dir, "js")))
            if cport:
                f.write("cluster { name: vigiltest, listen: 127.0.0.1:%d, routes: [%s] }\n"
                        % (cport, ", ".join("nats-route://127.0.0.1:%d" % r for r in routes)))
        self.proc = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    def healthy(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.hport,
                                        timeout=2) as r:
                return json.loads(r.read().decode()).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=harness.timeout(30))
            self.proc = None
            self.log.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()


class NatsCluster:
    def __init__(self, base, n=3):
        ports = free_ports(3 * n)
        cports = ports[n:2 * n] if n > 1 else [0]
        self.servers = [
            NatsServer(base, "n%d" % (i + 1), ports[i], cports[i] if n > 1 else 0,
                       ports[2 * n + i], [c for j, c in enumerate(cports) if j != i] if n > 1 else [])
            for i in range(n)]

    def urls(self):
        return [s.url for s in self.servers]

    def start(self):
        for s in self.servers:
            s.start()
        wait_for("the NATS servers to be healthy (JetStream ready)",
                 lambda: all(s.healthy() for s in self.servers if s.proc), seconds=60)

    def stop(self):
        for s in self.servers:
            if s.proc:
                s.stop()


def node(name, nats, roles, replicas, store_shards=None, pki=None, listen=None):
    """A vigild cluster node (harness.Vigild), sharing pki when given."""
    extra = ("cluster:\n  nats: [ %s ]\n  roles: [ %s ]\n  shards: %d\n  replicas: %d\n"
             "  node: %s\n" % (", ".join('"%s"' % u for u in nats), ", ".join(roles), SHARDS,
                               replicas, name))
    if store_shards is not None:
        extra += '  store_shards: "%s"\n' % store_shards
    if "ingest" not in roles:
        listen = dict(listen or {}, forward="null")
    vd = harness.Vigild(name, extra, listen=listen)
    if pki:
        shutil.rmtree(vd.pki)
        os.symlink(pki, vd.pki)
    return vd


def write_events(path, agent, n, first=0):
    with open(path, "w") as f:
        for i in range(first, first + n):
            f.write(json.dumps({
                "ts": "2024-05-01T%02d:%02d:%02dZ" % (10 + i // 3600 % 10, i // 60 % 60, i % 60),
                "source": "app", "host": "h-" + agent,
                "message": "evt %s %06d" % (agent, i)}) + "\n")


def send(vd, files, agent, extra=(), popen=False):
    cert, key = vd.cert(agent)
    args = [VIGIL, "send", "--server", "127.0.0.1:%d" % vd.forward_port, "--ca", vd.ca,
            "--cert", cert, "--key", key, "--format", "ndjson"] + list(extra) + list(files)
    if popen:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return run(args, check=False, t=300)


def shard_events(store_dir, shard):
    """Every record of a shard's store (vigil search over <store>/shard-N)."""
    d = os.path.join(store_dir, "shard-%d" % shard)
    p = run([VIGIL, "search", "--store", d, "--format", "ndjson"], check=False)
    if p.returncode not in (0, 1):
        raise AssertionError("vigil search %s: %s" % (d, p.stderr))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def messages(events, agent):
    return sorted(e["message"] for e in events if e.get("agent") == agent)


def segments(store_dir, shard):
    d = os.path.join(store_dir, "shard-%d" % shard, "segments")
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def metric(vd, name):
    try:
        return vd.metrics().get(name, 0)
    except OSError:
        return 0


class ClusterTest(unittest.TestCase):
    def setUp(self):
        harness.need(self, NATS_SERVER, "nats-server")
        self.base = tempfile.mkdtemp(prefix="vigil-it-cluster-")
        self.nodes = []
        self.nats = None

        def cleanup():
            for vd in self.nodes:
                vd.cleanup()
            if self.nats:
                for s in self.nats.servers:
                    if s.proc:
                        s.kill9()
            if os.environ.get("VG_KEEP_TESTDIR") != "1":
                shutil.rmtree(self.base, ignore_errors=True)
        self.addCleanup(cleanup)

    def add(self, vd):
        self.nodes.append(vd)
        return vd

    def test_replicated(self):
        self.nats = NatsCluster(self.base, 3)
        self.nats.start()
        urls = self.nats.urls()
        agents = ["agent-a", "agent-b", "agent-c", "agent-d"]
        # The replicated shard R is agent-a's; S1 writes every shard but X, S2 writes X and R,
        # so every shard has a store and R has two.
        r = shard_of("agent-a")
        x = next(s for s in [shard_of(a) for a in agents[1:]] + list(range(SHARDS)) if s != r)
        s1_shards = ",".join(str(s) for s in range(SHARDS) if s != x)
        s2_shards = "%d,%d" % (min(r, x), max(r, x))

        ia = self.add(node("ingest-a", urls, ["ingest"], 3))
        pki = ia.pki
        for a in agents:
            run([VIGIL, "pki", "issue", pki, a])
        ib = self.add(node("ingest-b", urls, ["ingest"], 3, pki=pki))
        s1 = self.add(node("store-1", urls, ["store"], 3, s1_shards, pki=pki))
        s2 = self.add(node("store-2", urls, ["store"], 3, s2_shards, pki=pki))
        for vd in (ia, ib, s1, s2):
            vd.start()
        # The publish path goes through a leader election when a server dies.
        for vd in (ia, ib):
            vd.expected_errors.append("not published")
            vd.expected_errors.append("store commit failed")
            vd.expected_errors.append("commit of")

        n = 1500
        files = {}
        for a in agents:
            files[a] = os.path.join(self.base, a + ".ndjson")
            write_events(files[a], a, n)
        # Small chunks, one at a time: the sends are still running when the server dies.
        procs = {a: send(ia if a in ("agent-a", "agent-c") else ib, [files[a]], a,
                         extra=("--chunk", "10", "--window", "1", "--timeout", "600"), popen=True)
                 for a in agents}
        wait_for("the first publishes", lambda: metric(ia, "vigil_cluster_published_messages_total")
                 >= 5 and metric(ib, "vigil_cluster_published_messages_total") >= 5, seconds=60)
        running = [a for a, p in procs.items() if p.poll() is None]
        self.assertTrue(running, "every send ended before the NATS server was killed")
        before = metric(ia, "vigil_cluster_published_messages_total") + \
            metric(ib, "vigil_cluster_published_messages_total")
        self.nats.servers[1].kill9()
        for a, p in procs.items():
            out, err = p.communicate(timeout=harness.timeout(600))
            self.assertEqual(p.returncode, 0, "%s: vigil send failed: %s" % (a, err))
            self.assertIn("%d events acknowledged" % n, err + out)
        after = metric(ia, "vigil_cluster_published_messages_total") + \
            metric(ib, "vigil_cluster_published_messages_total")
        self.assertGreater(after, before, "nothing was published after the server was killed")
        # Every acked message's publish latency was measured.
        self.assertEqual(metric(ia, "vigil_cluster_publish_seconds_count"),
                         metric(ia, "vigil_cluster_published_messages_total"))

        owners = {s: [vd for vd, sh in ((s1, s1_shards), (s2, s2_shards))
                      if str(s) in sh.split(",")] for s in range(SHARDS)}
        expected = {a: ["evt %s %06d" % (a, i) for i in range(n)] for a in agents}

        def complete():
            for a in agents:
                for vd in owners[shard_of(a)]:
                    if len(messages(shard_events(vd.store, shard_of(a)), a)) < n:
                        return False
            return True
        wait_for("every acknowledged event in its shard's store(s)", complete, seconds=180,
                 every=1)
        for a in agents:
            for vd in owners[shard_of(a)]:
                got = messages(shard_events(vd.store, shard_of(a)), a)
                self.assertEqual(got, expected[a],
                                 "%s in %s shard %d: missing or duplicated events" % (
                                     a, vd.dir, shard_of(a)))
            # Nowhere else.
            for s in range(SHARDS):
                if s == shard_of(a):
                    continue
                for vd in owners[s]:
                    self.assertEqual(messages(shard_events(vd.store, s), a), [],
                                     "%s's events in shard %d" % (a, s))
        # Seqs come from the stream: the replicas agree on them.
        seq1 = sorted(e["seq"] for e in shard_events(s1.store, r))
        seq2 = sorted(e["seq"] for e in shard_events(s2.store, r))
        self.assertEqual(seq1, seq2)
        self.assertTrue(all(q >= 1 << 20 for q in seq1), "seq is not from the stream sequence")

        def same_position():
            a = metric(s1, 'vigil_cluster_store_last_sequence{shard="%d"}' % r)
            b = metric(s2, 'vigil_cluster_store_last_sequence{shard="%d"}' % r)
            return a > 0 and a == b
        wait_for("both replicas of shard %d at the same message" % r, same_position, seconds=60)
        self.assertEqual(segments(s1.store, r), segments(s2.store, r),
                         "the replicas of shard %d differ" % r)

        # vigil cluster status: the dead server as an offline replica (exit 1), each store
        # node's consumer of each of its shards, written up to the stream, no lag.
        def status():
            p = run([VIGIL, "cluster", "status", "-c", s1.config], check=False)
            return p if "OFFLINE" in p.stdout else None
        p = wait_for("cluster status to see the killed server offline", status, seconds=120,
                     every=1)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("replica n2", p.stdout)
        p = run([VIGIL, "cluster", "status", "-c", s1.config, "--format", "ndjson"], check=False)
        rows = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(rows[0]["stream"], "vigil-events")
        self.assertEqual(rows[0]["replicas"], 3)
        self.assertTrue(any(x["name"] == "n2" and x["offline"] for x in rows[0]["peers"]),
                        rows[0])
        got = sorted((x["shard"], x["node"]) for x in rows[1:] if "shard" in x)
        want = sorted([(int(q), "store-1") for q in s1_shards.split(",")] +
                      [(int(q), "store-2") for q in s2_shards.split(",")])
        self.assertEqual(got, want)
        for x in rows[1:]:
            self.assertEqual(x["lag"], 0, x)
        written = {x["node"]: x["written"] for x in rows[1:] if x.get("shard") == r}
        self.assertEqual(written["store-1"], written["store-2"])
        # Written up to a stream sequence at or past the shard's last message.
        self.assertGreaterEqual(written["store-1"],
                                metric(s1, 'vigil_cluster_store_last_sequence{shard="%d"}' % r))
        for vd, shs in ((s1, s1_shards), (s2, s2_shards)):
            for s in shs.split(","):
                p = run([VIGIL, "verify", "--store", os.path.join(vd.store, "shard-" + s)],
                        check=False)
                self.assertEqual(p.returncode, 0, "verify %s shard %s:\n%s%s" % (
                    vd.dir, s, p.stdout, p.stderr))

        # A store node restarted catches up from where its store is.
        s2.stop()
        write_events(files["agent-a"], "agent-a", 300, first=n)
        p = send(ia, [files["agent-a"]], "agent-a")
        self.assertEqual(p.returncode, 0, p.stderr)
        s2.start()
        want = expected["agent-a"] + ["evt agent-a %06d" % i for i in range(n, n + 300)]
        wait_for("the restarted store node to catch up",
                 lambda: messages(shard_events(s2.store, r), "agent-a") == want, seconds=120,
                 every=1)
        wait_for("both replicas at the same message", same_position, seconds=60)
        self.assertEqual(segments(s1.store, r), segments(s2.store, r))

        # One whose disk was lost is rebuilt from the stream, byte for byte.
        s2.stop()
        reference = segments(s1.store, r)
        shutil.rmtree(s2.store)
        s2.start()
        wait_for("the rebuilt store node to catch up",
                 lambda: messages(shard_events(s2.store, r), "agent-a") == want, seconds=120,
                 every=1)
        wait_for("both replicas at the same message", same_position, seconds=60)
        self.assertEqual(segments(s2.store, r), reference,
                         "the rebuilt replica differs from the one that kept running")
        p = run([VIGIL, "verify", "--store", os.path.join(s2.store, "shard-%d" % r)], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        for vd in (ia, ib, s1, s2):
            vd.stop()
        self.nats.stop()

    def test_nats_down(self):
        self.nats = NatsCluster(self.base, 1)
        self.nats.start()
        vd = self.add(node("both", self.nats.urls(), ["ingest", "store"], 1))
        vd.start()
        # While NATS is down the connections of refused batches are closed, as for a full disk.
        vd.expected_errors.append("store commit failed")
        first = os.path.join(self.base, "first.ndjson")
        write_events(first, "agent-node-1", 200)
        p = send(vd, [first], "agent-node-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        sh = shard_of("agent-node-1")
        wait_for("the first events stored",
                 lambda: len(messages(shard_events(vd.store, sh), "agent-node-1")) == 200,
                 seconds=60, every=0.5)

        self.nats.servers[0].stop()
        wait_for("vigild to see NATS gone",
                 lambda: metric(vd, "vigil_cluster_nats_connected") == 0, seconds=30)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % vd.admin_port, timeout=5)
        self.assertIn("not connected to NATS", cm.exception.read().decode())
        second = os.path.join(self.base, "second.ndjson")
        write_events(second, "agent-node-1", 100, first=200)
        p = send(vd, [second], "agent-node-1", extra=("--timeout", "5"))
        self.assertNotEqual(p.returncode, 0, "events were acknowledged while NATS was down")
        self.assertIn("no acknowledgement", p.stderr)

        self.nats.servers[0].start()
        wait_for("vigild to reconnect", lambda: metric(vd, "vigil_cluster_nats_connected") == 1,
                 seconds=60)
        p = send(vd, [second], "agent-node-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        want = ["evt agent-node-1 %06d" % i for i in range(300)]
        wait_for("every acknowledged event stored",
                 lambda: messages(shard_events(vd.store, sh), "agent-node-1") == want,
                 seconds=60, every=0.5)
        # The outage is evidence, published once NATS was back.
        sv = shard_of("vigild")
        ev = [e for e in shard_events(vd.store, sv)
              if e.get("source") == "vigil" and e.get("action") == "nats_connection"]
        self.assertEqual(sorted(e["outcome"] for e in ev)[:2], ["failure", "success"], ev)

        # vigil cluster status: one server (no replicas), every shard written: all well;
        # asked about a cluster of five shards, the fifth has no store node.
        p = run([VIGIL, "cluster", "status", "-c", vd.config], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for q in range(SHARDS):
            self.assertRegex(p.stdout, r"\n%d +both +vigil-store-both-%d " % (q, q))
        five = os.path.join(vd.dir, "five.yaml")  # beside it: its paths are relative
        with open(vd.config) as f:
            text = f.read().replace("shards: %d" % SHARDS, "shards: 5")
        with open(five, "w") as f:
            f.write(text)
        p = run([VIGIL, "cluster", "status", "-c", five], check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("shard 4: no store node writes it", p.stdout)
        vd.stop()
        self.nats.stop()

    def test_status_usage(self):
        p = run([VIGIL, "cluster", "status"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("-c FILE is required", p.stderr)
        p = run([VIGIL, "cluster", "stats", "-c", "x"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown subcommand 'stats'", p.stderr)
        vd = self.add(harness.Vigild("nocluster"))
        vd.write_config()
        p = run([VIGIL, "cluster", "status", "-c", vd.config], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("has no cluster: section", p.stderr)
        # Nothing listens there: said, exit 1.
        port = free_ports(1)[0]
        vd.extra_config = ('cluster: { nats: [ "nats://127.0.0.1:%d" ], roles: [ ingest ] }\n'
                           % port)
        vd.write_config()
        p = run([VIGIL, "cluster", "status", "-c", vd.config], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no NATS server reachable (nats://127.0.0.1:%d)" % port, p.stderr)

    def test_deploy_example(self):
        """deploy/cluster/: the NATS configs are valid for nats-server, the vigild configs
        for vigild --check-config (with a PKI beside them, and no `user:`, which names an
        account the test machine may not have)."""
        src = os.path.join(os.environ.get("VG_SOURCE_DIR", os.path.join(
            os.path.dirname(__file__), "..", "..")), "deploy", "cluster")
        for i in (1, 2, 3):
            with open(os.path.join(src, "nats-%d.conf" % i)) as f:
                text = f.read().replace("/var/lib/nats", os.path.join(self.base, "js"))
            conf = os.path.join(self.base, "nats-%d.conf" % i)
            with open(conf, "w") as f:
                f.write(text)
            p = run([NATS_SERVER, "-c", conf, "-t"], check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        vd = self.add(harness.Vigild("deploy"))
        for name in ("ingest", "store-a", "store-b"):
            with open(os.path.join(src, name + ".yaml")) as f:
                lines = [l for l in f if not l.startswith("user:")]
            conf = os.path.join(vd.dir, name + ".yaml")
            with open(conf, "w") as f:
                f.write("".join(lines).replace("/var/lib/vigil", vd.store))
            p = run([VIGILD, "-c", conf, "--check-config"], check=False)
            self.assertEqual(p.returncode, 0, name + ": " + p.stdout + p.stderr)

    def test_aged_out(self):
        """A store node that comes after the stream dropped messages (stream.max_bytes)
        says what it can no longer have, and counts it; it stores what is left."""
        self.nats = NatsCluster(self.base, 1)
        self.nats.start()
        urls = self.nats.urls()
        ing = self.add(node("ing", urls, ["ingest"], 1))
        ing.extra_config += "  stream: { max_bytes: 64KiB }\n"
        ing.start()
        events = os.path.join(self.base, "many.ndjson")
        write_events(events, "agent-node-1", 1000)
        p = send(ing, [events], "agent-node-1", extra=("--chunk", "20", "--window", "1"))
        self.assertEqual(p.returncode, 0, p.stderr)
        st = self.add(node("late", urls, ["store"], 1, pki=ing.pki))
        st.expected_errors.append("the stream no longer holds messages 1..")
        st.start()
        sh = shard_of("agent-node-1")
        gap = 'vigil_cluster_store_gap_messages_total{shard="%d"}' % sh
        wait_for("the gap counted", lambda: metric(st, gap) > 0, seconds=60)
        wait_for("what is left stored",
                 lambda: metric(st, 'vigil_cluster_store_lag_messages{shard="%d"}' % sh) == 0
                 and metric(st, 'vigil_cluster_store_messages_total{shard="%d"}' % sh) > 0,
                 seconds=60)
        got = messages(shard_events(st.store, sh), "agent-node-1")
        self.assertTrue(0 < len(got) < 1000, len(got))
        self.assertEqual(got[-1], "evt agent-node-1 000999")  # the newest are kept
        self.assertIn("the stream no longer holds messages 1..", st.read_log())
        st.stop()
        ing.stop()
        self.nats.stop()

    def test_check_config(self):
        vd = self.add(harness.Vigild("cfg"))
        cases = [
            ("cluster: { roles: [ ingest ] }\n", "'cluster.nats': a cluster needs the URLs"),
            ('cluster: { nats: [ "nats://127.0.0.1:1" ] }\n', "does not run yet"),
            ('cluster: { nats: [ "nats://127.0.0.1:1" ], roles: [ ingest, rules ] }\n',
             "rules role is not available yet"),
            ('cluster: { nats: [ "http://x:1" ], roles: [ ingest ] }\n', "expected nats://"),
            ('cluster: { nats: [ "nats://127.0.0.1:1" ], roles: [ store ], shards: 4, '
             'store_shards: "2-5" }\n', "shard 5 is past the last one"),
            ('cluster: { nats: [ "nats://127.0.0.1:1" ], roles: [ ingest ], '
             'store_shards: "1" }\n', "only a store node writes shards"),
            ('cluster: { nats: [ "nats://127.0.0.1:1" ], roles: [ ingest ], node: "a.b" }\n',
             "it names JetStream consumers"),
        ]
        for extra, want in cases:
            vd.extra_config = extra
            vd.write_config()
            p = run([VIGILD, "-c", vd.config, "--check-config"], check=False)
            self.assertEqual(p.returncode, 2, extra + p.stdout + p.stderr)
            self.assertIn(want, p.stderr, extra)
        # A store-only node names no event listener.
        vd.extra_config = 'cluster: { nats: [ "nats://127.0.0.1:1" ], roles: [ store ] }\n'
        vd.write_config()
        p = run([VIGILD, "-c", vd.config, "--check-config"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("'listen.forward': a node without the ingest role takes no events",
                      p.stderr)
        vd.listen["forward"] = "null"
        vd.write_config()
        p = run([VIGILD, "-c", vd.config, "--check-config"], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    harness.main()
