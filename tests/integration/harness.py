"""Integration test harness: a real vigild on 127.0.0.1 with a throwaway PKI.

Each test gets a temp dir, a PKI from `vigil pki init` plus a second, unrelated CA,
and vigild on port 0. The harness learns the ports from vigild's ready line on a pipe
(--ready-fd), never by sleeping. vigild is stopped by PID with SIGTERM and must exit
0; its log must hold no sanitizer report and no unexpected error line.

Environment: VIGIL_BIN, VIGILD_BIN (set by ctest), VG_KEEP_TESTDIR=1 keeps the
directory, VG_TIMEOUT_MULT stretches timeouts (sanitizer builds), VG_REQUIRE_CLIENTS=1
turns a missing client (curl, openssl, node, rsyslogd) from a skip into a failure.
Standard library only.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

VIGIL = os.environ.get("VIGIL_BIN", "vigil")
VIGILD = os.environ.get("VIGILD_BIN", "vigild")
MULT = float(os.environ.get("VG_TIMEOUT_MULT", "1"))
SKIP = 77

SANITIZER_PATTERNS = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"ThreadSanitizer|UndefinedBehaviorSanitizer)")


def timeout(seconds):
    return seconds * MULT


def wait_for(what, fn, seconds=20, every=0.05):
    """Polls fn() until it returns a true value, which it returns; fails after seconds
    (stretched by VG_TIMEOUT_MULT)."""
    deadline = time.monotonic() + timeout(seconds)
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".agents")


def unpacked(command, package, rel):
    """command on PATH, else the copy `scripts/setup.sh --test` unpacked from package's
    .deb into .agents/package/rel (syslog-ng-core, prometheus), else None."""
    found = shutil.which(command)
    if found:
        return found
    path = os.path.join(AGENTS, package, rel)
    return path if os.access(path, os.X_OK) else None


def need(test, ok, what):
    """Skips test when a client it drives is missing (ok is false), or fails it when
    VG_REQUIRE_CLIENTS=1 (scripts/test.sh sets it: setup.sh installed every client, so a
    missing one is a broken setup, not a reason to pass)."""
    if ok:
        return
    if os.environ.get("VG_REQUIRE_CLIENTS") == "1":
        test.fail("%s missing although scripts/setup.sh --test installs it" % what)
    test.skipTest("%s not installed" % what)


def run(args, check=True, input=None, env=None, t=60):
    """Runs a command; returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run(args, input=input, capture_output=True, text=True,
                       timeout=timeout(t), env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def cmake_install(prefix, destdir=None):
    """`cmake --install` of the build under test (VG_BUILD_DIR) into prefix (under destdir
    when given, as a packager does). Returns the directory the files landed in."""
    build = os.environ.get("VG_BUILD_DIR")
    if not build:
        raise AssertionError("VG_BUILD_DIR is not set (ctest sets it)")
    env = dict(os.environ)
    if destdir:
        env["DESTDIR"] = destdir
    run(["cmake", "--install", build, "--prefix", prefix], env=env, t=120)
    return (destdir + prefix) if destdir else prefix


class Vigild:
    """A vigild process with its own directory, PKI and config."""

    # Listener addresses written to the config; `listen` overrides some of them, e.g.
    # {"syslog": "127.0.0.1:0"} enables the syslog listener on a free port, or adds
    # other listen keys, e.g. {"max_frame_bytes": "1MiB"}.
    LISTEN_DEFAULTS = (("forward", "127.0.0.1:0"), ("syslog", "null"), ("https", "null"),
                       ("admin", "127.0.0.1:0"))
    # Store keys besides path; `store` overrides or adds some, e.g. {"free_reserve": "1GiB"}.
    # Retention keeps a century by default: test events are dated 2024.
    # Compaction off unless a test turns it on: tests that count segments and deletions
    # must not race the background rewrite (test_compaction.py covers it).
    STORE_DEFAULTS = (("partition", "1h"), ("retention", "{ max_age: 36500d }"),
                      ("compaction", "off"))
    vigild_bin = VIGILD  # test_install.py runs the installed one

    def __init__(self, name="vigild", extra_config="", insecure=False, listen=None, store=None,
                 server_names=(), tls=None):
        self.dir = tempfile.mkdtemp(prefix="vigil-it-%s-" % name)
        self.pki = os.path.join(self.dir, "pki")
        self.other_pki = os.path.join(self.dir, "other-pki")
        # server_names: more names on the server certificate (vigil pki init --server-name).
        run([VIGIL, "pki", "init", self.pki] +
            [a for n in server_names for a in ("--server-name", n)])
        run([VIGIL, "pki", "init", self.other_pki])
        self.store = os.path.join(self.dir, "store")
        self.config = os.path.join(self.dir, "vigil.yaml")
        self.log_path = os.path.join(self.dir, "vigild.log")
        self.extra_config = extra_config
        self.listen = dict(self.LISTEN_DEFAULTS)
        self.listen.update(listen or {})
        self.store_opts = dict(self.STORE_DEFAULTS)
        self.store_opts.update(store or {})
        # More tls keys, e.g. {"crl": "pki/crl.pem", "crl_expired": "warn"}.
        self.tls_opts = dict(tls or {})
        self.proc = None
        self.ports = {}
        self.expected_errors = []

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(
                "store:  { path: %s, %s }\n"
                "tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem%s }\n"
                "listen: { %s }\n"
                "%s" % (self.store,
                        ", ".join("%s: %s" % kv for kv in self.store_opts.items()),
                        "".join(", %s: %s" % kv for kv in self.tls_opts.items()),
                        ", ".join("%s: %s" % kv for kv in self.listen.items()),
                        self.extra_config))

    # As root (CI), vigild refuses to start without `user:` or --allow-root; tests that
    # are not about privileges pass --allow-root (test_systemd.py covers both).
    allow_root = True

    def args(self, ready_fd):
        a = [self.vigild_bin, "-c", self.config, "--ready-fd", str(ready_fd)]
        if self.allow_root and os.geteuid() == 0:
            a.append("--allow-root")
        return a

    def start(self, env=None):
        self.write_config()
        r, w = os.pipe()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args(w), env=env,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, pass_fds=(w,))
        os.close(w)
        line = b""
        deadline = time.monotonic() + timeout(20)
        while b"\n" not in line:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                break
            chunk = os.read(r, 1024)
            if not chunk:
                break
            line += chunk
        os.close(r)
        if not line.startswith(b"ready "):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("vigild did not become ready; log:\n" + self.read_log())
        for tok in line.decode().split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                self.ports[k] = int(v.rsplit(":", 1)[1]) if k != "pid" else int(v)
        return self

    @property
    def forward_port(self):
        return self.ports["forward"]

    @property
    def admin_port(self):
        return self.ports["admin"]

    @property
    def syslog_port(self):
        return self.ports["syslog"]

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, expect_rc=0):
        """SIGTERM by PID; asserts the exit code and a clean log."""
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout(30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("vigild did not stop within 30 s of SIGTERM")
        self.proc = None
        self.log.close()
        self.check_log()
        if rc != expect_rc:
            raise AssertionError("vigild exited %d, expected %d; log:\n%s" % (
                rc, expect_rc, self.read_log()[-4000:]))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def check_log(self):
        text = self.read_log()
        if SANITIZER_PATTERNS.search(text):
            raise AssertionError("sanitizer report in vigild's log:\n" + text[-6000:])
        for line in text.splitlines():
            if " error: " in line and not any(e in line for e in self.expected_errors):
                raise AssertionError("unexpected error line in vigild's log: " + line)

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin_port,
                                    timeout=timeout(10)) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        return out

    def cert(self, name, other_ca=False):
        d = self.other_pki if other_ca else self.pki
        return os.path.join(d, name + ".pem"), os.path.join(d, name + "-key.pem")

    @property
    def ca(self):
        return os.path.join(self.pki, "ca.pem")

    def send(self, files, agent="agent-node-1", fmt="ndjson", check=True, stdin=None,
             extra=()):
        cert, key = self.cert(agent)
        args = [VIGIL, "send", "--server", "127.0.0.1:%d" % self.forward_port,
                "--ca", self.ca, "--cert", cert, "--key", key, "--format", fmt]
        args += list(extra) + list(files)
        return run(args, check=check, input=stdin, t=300)

    def search(self, *filter_words, fmt="ndjson", check=True, extra=()):
        args = [VIGIL, "search", "--store", self.store, "--format", fmt]
        args += list(extra) + list(filter_words)
        p = run(args, check=check)
        if fmt == "ndjson" and p.returncode == 0:
            return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        return p

    def verify(self, *extra):
        """`vigil verify --store`; returns the CompletedProcess (exit 0 ok, 1 failed)."""
        return run([VIGIL, "verify", "--store", self.store] + list(extra), check=False)

    def cleanup(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if os.environ.get("VG_KEEP_TESTDIR") == "1":
            print("kept test directory:", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class VigildTest(unittest.TestCase):
    """Base class: self.vd is a started vigild, stopped (and checked) after each test."""

    extra_config = ""
    listen = None  # listener overrides, see Vigild
    store = None   # store key overrides, see Vigild
    server_names = ()  # more names on the server certificate, see Vigild

    def setUp(self):
        self.vd = Vigild(self.id().rsplit(".", 1)[-1][:40], self.extra_config,
                         listen=self.listen, store=self.store, server_names=self.server_names)
        self.addCleanup(self.vd.cleanup)
        self.vd.start()

    def tearDown(self):
        self.vd.stop()


def main():
    """Runs the module's tests and prints the plain closing line 'N passed, N failed'."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if failed:
        sys.exit(1)
    if r.testsRun and skipped == r.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
