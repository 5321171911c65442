"""One memory budget for every connection (limits.memory) and the timeouts after the
handshake (listen.header_timeout, listen.frame_timeout). Before: each connection could
buffer ~16 MiB of an unfinished frame (120 connections held 2.09 GB), and 100 slowloris
connections at 1 byte/s stayed open 45 s and more. Scaled down: small frames, a small
budget, short timeouts. The clients are verified agents: these are limits on what even
an authenticated peer can hold."""
import os
import socket
import ssl
import struct
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import VigildTest, wait_for


def healthz(vd):
    """(status, body) of GET /healthz on the admin listener."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % vd.admin_port,
                                    timeout=harness.timeout(10)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def agent_socket(vd, port, agent="agent-node-1"):
    ctx = ssl.create_default_context(cafile=vd.ca)
    cert, key = vd.cert(agent)
    ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=harness.timeout(10))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def closed_by_peer(s, wait):
    """True once the server closed s (EOF, reset, or a TLS close), within wait seconds."""
    s.settimeout(wait)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (socket.timeout, TimeoutError):
        return False
    except (ssl.SSLError, OSError):
        return True


class MemoryBudget(VigildTest):
    listen = {"max_frame_bytes": "256KiB", "frame_timeout": "4s"}
    extra_config = "limits: { memory: 4MiB }\n"

    def test_unfinished_frames_wait_within_the_budget(self):
        vd = self.vd
        m = vd.metrics()
        self.assertEqual(m["vigil_memory_limit_bytes"], 4 << 20)
        # 20 agents each begin a PackedForward message that says it is 200 KiB and send
        # 150 KiB of it: 5 MiB of buffers if each could hold its frame; large frames may
        # hold three quarters of the 4 MiB budget.
        header = b"\x93\xa3app\xc6" + struct.pack(">I", 200 * 1024)
        socks = []
        done = threading.Event()

        def stall(s):
            try:
                s.sendall(header + b"\x92" * (150 * 1024))
            except OSError:
                pass  # refused or cut off by the frame timeout
            done.wait()

        threads = []
        for _ in range(20):
            s = agent_socket(vd, vd.forward_port)
            s.settimeout(harness.timeout(30))
            socks.append(s)
            t = threading.Thread(target=stall, args=(s,), daemon=True)
            t.start()
            threads.append(t)
        try:
            wait_for("connections waiting for memory",
                     lambda: vd.metrics()["vigil_memory_waiting_connections"] > 0)
            m = vd.metrics()
            self.assertLessEqual(m["vigil_memory_used_bytes"], 4 << 20)
            self.assertLessEqual(m["vigil_memory_peak_bytes"], 4 << 20)
            self.assertGreater(m['vigil_listener_mem_pauses_total{listener="forward"}'], 0)
            code, body = healthz(vd)
            self.assertEqual(code, 503)
            self.assertIn("limits.memory", body)
            # Small frames still get through meanwhile.
            path = os.path.join(vd.dir, "small.ndjson")
            with open(path, "w") as f:
                for i in range(50):
                    f.write('{"message":"small %d","run":"mem"}\n' % i)
            p = vd.send([path], check=False, extra=("--chunk", "10"))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(len(vd.search("raw.run=mem")), 50)
            # The unfinished frames end at listen.frame_timeout: memory comes back.
            for s in socks:
                self.assertTrue(closed_by_peer(s, harness.timeout(30)))
            wait_for("the memory to come back",
                     lambda: vd.metrics()["vigil_memory_used_bytes"] == 0)
            self.assertEqual(healthz(vd)[0], 200)
            m = vd.metrics()
            self.assertEqual(m['vigil_listener_frame_timeouts_total{listener="forward"}'], 20)
        finally:
            done.set()
            for s in socks:
                s.close()
            for t in threads:
                t.join()


class Slowloris(VigildTest):
    listen = {"https": "127.0.0.1:0", "header_timeout": "2s", "frame_timeout": "3s"}

    def test_one_byte_a_second_is_closed_in_bounded_time(self):
        vd = self.vd
        heads = [agent_socket(vd, vd.ports["https"]) for _ in range(10)]
        frames = [agent_socket(vd, vd.forward_port) for _ in range(10)]
        head = b"POST /v1/events HTTP/1.1\r\nHost: vigild\r\nContent-Type: application/json\r\n"
        frame = b"\x93\xa3app\xc4\xff" + b"\x92" * 200
        stop = threading.Event()
        open_socks = {id(s): s for s in heads + frames}

        def drip():
            # One byte a second per connection, for as long as it is open: the clients
            # never stop sending, they just never finish.
            i = 0
            while not stop.is_set() and open_socks:
                for s in list(open_socks.values()):
                    data = head if s in heads else frame
                    try:
                        s.send(data[i % len(data):i % len(data) + 1])
                    except OSError:
                        open_socks.pop(id(s), None)
                i += 1
                stop.wait(1.0)

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        try:
            for s in heads + frames:
                self.assertTrue(closed_by_peer(s, harness.timeout(30)))
        finally:
            stop.set()
            t.join()
            for s in heads + frames:
                s.close()
        m = vd.metrics()
        self.assertEqual(m['vigil_listener_header_timeouts_total{listener="https"}'], 10)
        self.assertEqual(m['vigil_listener_frame_timeouts_total{listener="forward"}'], 10)
        ev = vd.search("source=vigil", "action=rejected_input")
        self.assertEqual(len(ev), 20)
        self.assertTrue(any("listen.header_timeout" in e["message"] for e in ev))
        self.assertTrue(any("listen.frame_timeout" in e["message"] for e in ev))
        # An idle connection between frames is not a slow one: it stays.
        s = agent_socket(vd, vd.forward_port)
        self.assertFalse(closed_by_peer(s, 4))
        s.close()


class HealthzDiskFull(VigildTest):
    """/healthz says not ready, with the reason, while ingest is refused; /livez still
    says alive (a supervisor must not restart vigild for a full disk)."""
    store = {"free_reserve": "1000TiB"}  # no disk has that much: refusing from the start
    listen = {"https": "127.0.0.1:0"}

    def test_not_ready_while_the_disk_is_full(self):
        vd = self.vd
        wait_for("the disk to be full", lambda: vd.metrics()["vigil_store_disk_full"] == 1)
        code, body = healthz(vd)
        self.assertEqual(code, 503)
        self.assertIn("store.free_reserve", body)
        with urllib.request.urlopen("http://127.0.0.1:%d/livez" % vd.admin_port,
                                    timeout=harness.timeout(10)) as r:
            self.assertEqual((r.status, r.read()), (200, b"ok\n"))
        # The HTTPS listener's /healthz says the same.
        s = agent_socket(vd, vd.ports["https"])
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: vigild\r\nConnection: close\r\n\r\n")
        reply = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            reply += b
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 503 "), reply)
        self.assertIn(b"not ready: store disk below store.free_reserve", reply)


if __name__ == "__main__":
    harness.main()
