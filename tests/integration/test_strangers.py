"""What strangers (peers without an accepted client certificate) can do to vigild: fill
its disk with refusal records, or take every connection slot so agents are locked out.
Both were possible before the guard (collector/guard.h): 20 clients looping "connect,
send 8 NUL bytes, close" filled a 20 MB store with refused-handshake events, and 4,100
idle TCP connections kept mTLS agents out. Scaled down here: small limits, short
intervals. The strangers connect from 127.0.0.2 and up (Linux routes 127/8 to loopback),
the agents from 127.0.0.1, so the per-address limits tell them apart."""
import os
import socket
import threading
import time
import unittest

import harness
from harness import Vigild, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def make_events(path, n, run_id):
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"time":"2024-05-01T00:00:%02dZ","message":"event %d","run_id":"%s"}\n'
                    % (i % 60, i, run_id))


def connect_from(src, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


class Flood:
    """Threads that connect from src, send garbage (or nothing) and close, in a loop,
    until stopped. Counts the connections they made."""

    def __init__(self, port, sources, threads_per_source, payload=b"\0" * 8):
        self.port = port
        self.payload = payload
        self.stop_ev = threading.Event()
        self.count = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(src,), daemon=True)
                        for src in sources for _ in range(threads_per_source)]

    def loop(self, src):
        while not self.stop_ev.is_set():
            try:
                s = connect_from(src, self.port)
                if self.payload:
                    s.sendall(self.payload)
                s.close()
            except OSError:
                time.sleep(0.01)  # refused at accept, reset: try again
                continue
            with self.lock:
                self.count += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join()


def refused_total(m):
    """Every refusal of a stranger the metrics count, all listeners."""
    total = 0
    for name in ("tls_handshake_failures_total", "tls_handshake_timeouts_total",
                 "conns_refused_rate_total", "conns_refused_per_ip_total",
                 "conns_refused_limit_total", "handshakes_evicted_total"):
        total += sum(v for k, v in m.items() if k.startswith("vigil_listener_" + name))
    return total


class DiskFill(unittest.TestCase):
    """20 clients looping connect / 8 NUL bytes / close: counted, but stored as a few
    samples and one summary per address per interval, not one event each."""

    INTERVAL = 3  # listen.refusal_interval, seconds

    def setUp(self):
        self.vd = Vigild("strangers-fill", listen={"refusal_interval": "%ds" % self.INTERVAL})
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def test_garbage_loop_costs_a_few_records(self):
        vd = self.vd
        sources = ["127.0.0.%d" % i for i in range(2, 6)]
        t0 = time.monotonic()
        with Flood(vd.forward_port, sources, 5):
            wait_for("a thousand refusals", lambda: refused_total(vd.metrics()) >= 1000, 120)
        elapsed = time.monotonic() - t0
        m = vd.metrics()
        vd.stop()  # the last interval's summaries are recorded on the way out
        refused = refused_total(m)
        samples = vd.search("source=vigil", "action=tls_handshake") + \
            vd.search("source=vigil", "action=connection_refused")
        summaries = vd.search("source=vigil", "action=refusal_summary")
        # Per address and interval: at most 3 samples and one summary.
        intervals = elapsed / self.INTERVAL + 2
        bound = intervals * len(sources) * 4
        records = len(samples) + len(summaries)
        self.assertLessEqual(records, bound, "%d records for %d refusals in %.0f s" % (
            records, refused, elapsed))
        self.assertLess(records, refused / 4)
        self.assertTrue(all(e["src_ip"] in sources for e in samples + summaries))
        # Nothing drops out of the account: the samples plus what each summary counted
        # beyond its samples are every refusal the metrics counted.
        summarized = sum(e["raw"]["refused"] - e["raw"]["recorded"] for e in summaries)
        self.assertEqual(len(samples) + summarized, refused)
        self.assertEqual(summarized, m["vigil_refusals_summarized_total"])
        self.assertIn("tls", summaries[0]["raw"]["reasons"])
        self.assertIn("forward", summaries[0]["raw"]["listeners"])


class DiskFullStrangers(unittest.TestCase):
    """Below store.free_reserve, strangers' refusal records use at most their quarter of
    store.evidence_reserve: the collector's own evidence keeps the rest."""

    def setUp(self):
        # A reserve no disk has: the store refuses ordinary events from the start.
        self.vd = Vigild("strangers-full", store={"free_reserve": "1000TiB",
                                                  "evidence_reserve": "8KiB"},
                         listen={"refusal_interval": "1s", "accept_rate_per_ip": "1000",
                                 "accept_burst_per_ip": "1000"})
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def test_strangers_cannot_use_up_the_reserve(self):
        vd = self.vd
        wait_for("the disk to be full", lambda: vd.metrics()["vigil_store_disk_full"] == 1)
        sources = ["127.0.0.%d" % i for i in range(10, 30)]
        with Flood(vd.forward_port, sources, 1):
            wait_for("strangers' evidence refused",
                     lambda: vd.metrics()["vigil_evidence_refused_disk_full_total"] >= 10, 120)
        vd.stop()
        # The strangers' part is 2 KiB: a handful of records at most got in.
        strangers = vd.search("source=vigil", "action=tls_handshake") + \
            vd.search("source=vigil", "action=refusal_summary")
        self.assertLessEqual(len(strangers), 8)
        # The collector's own evidence (the disk_full event) was stored before them and
        # is not crowded out.
        self.assertEqual(len(vd.search("source=vigil", "action=disk_full")), 1)


class Lockout(unittest.TestCase):
    """Idle TCP connections that never start TLS, kept up by reconnecting: agents still
    get in (scaled down from 4,100 connections against listen.max_connections 4096)."""

    def setUp(self):
        self.vd = Vigild("strangers-lockout", listen={
            "max_connections": "40", "max_handshakes": "10", "max_handshakes_per_ip": "4",
            "accept_rate_per_ip": "1000", "accept_burst_per_ip": "1000",
            "refusal_interval": "2s"})
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def hold(self, src, n, stop):
        """Keeps n idle connections from src open, reopening those vigild closes."""
        socks = []
        while not stop.is_set():
            socks = [s for s in socks if s.fileno() >= 0]
            alive = []
            for s in socks:
                try:
                    s.setblocking(False)
                    if s.recv(1) == b"":
                        s.close()
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    continue
                alive.append(s)
            socks = alive
            while len(socks) < n and not stop.is_set():
                try:
                    socks.append(connect_from(src, self.vd.forward_port))
                except OSError:
                    break
            time.sleep(0.05)
        for s in socks:
            s.close()

    def test_agents_get_in_while_strangers_hold_connections(self):
        vd = self.vd
        stop = threading.Event()
        holders = [threading.Thread(target=self.hold, args=("127.0.0.%d" % i, 60, stop),
                                    daemon=True) for i in range(2, 8)]
        for t in holders:
            t.start()
        try:
            wait_for("the strangers to take every handshake place",
                     lambda: vd.metrics()["vigil_handshakes_pending"] >= 10)
            path = os.path.join(vd.dir, "ev.ndjson")
            for i in range(5):
                make_events(path, 20, "lockout-%d" % i)
                p = vd.send([path], check=False)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            m = vd.metrics()
        finally:
            stop.set()
            for t in holders:
                t.join()
        self.assertEqual(len(vd.search("raw.run_id=lockout-*")), 100)
        self.assertGreater(m['vigil_listener_conns_refused_per_ip_total{listener="forward"}'], 0)
        self.assertLessEqual(m["vigil_handshakes_pending"], 10)
        vd.stop()


if __name__ == "__main__":
    harness.main()
