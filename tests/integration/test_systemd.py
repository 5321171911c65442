"""vigild under systemd, and as root.

- The installed unit passes `systemd-analyze verify`, carries the hardening the README
  promises, and `systemd-analyze security` rates it "OK" or better; the sysusers.d file
  creates the vigil user.
- Type=notify: with NOTIFY_SOCKET set, vigild sends READY=1 (with MAINPID) only once its
  listeners answer, and STOPPING=1 on SIGTERM.
- Journal: when stderr is the stream JOURNAL_STREAM names, each line carries its
  priority prefix ("<6>info: ...") instead of a timestamp.
- Root (CI runs as root): without `user:` or --allow-root, vigild refuses to start; with
  `user: nobody` it binds, then runs as nobody with no capabilities, and its store
  belongs to nobody.
"""
import os
import pwd
import re
import shutil
import socket
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import VIGILD, Vigild, cmake_install, main, need, run, timeout  # noqa: E402


def unit_directives(path):
    """The unit's [Service] directives: name -> list of values (repeats kept)."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k), []).append(v)
    return out


class UnitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vigil-it-systemd-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        cmake_install(cls.prefix)
        cls.unit = os.path.join(cls.prefix, "lib/systemd/system/vigild.service")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def test_systemd_analyze_verify(self):
        need(self, shutil.which("systemd-analyze"), "systemd-analyze (systemd)")
        env = dict(os.environ, MANPATH=os.path.join(self.prefix, "share/man"))
        p = run(["systemd-analyze", "verify", self.unit], check=False, env=env)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_hardening_directives(self):
        d = unit_directives(self.unit)
        s = "[Service]"
        want = {
            "Type": ["notify"], "NotifyAccess": ["main"], "User": ["vigil"],
            "Group": ["vigil"], "StateDirectory": ["vigil"], "ProtectSystem": ["strict"],
            "NoNewPrivileges": ["yes"], "PrivateTmp": ["yes"], "ProtectHome": ["yes"],
            "CapabilityBoundingSet": [""], "AmbientCapabilities": [""],
            "ReadWritePaths": ["-" + os.path.join(self.prefix, "var/lib/vigil")],
            "SyslogIdentifier": ["vigild"], "StandardError": ["journal"],
        }
        for k, v in want.items():
            self.assertEqual(d.get((s, k)), v, k)
        config = os.path.join(self.prefix, "etc/vigil/vigil.yaml")
        vigild = os.path.join(self.prefix, "bin/vigild")
        self.assertEqual(d[(s, "ExecStart")], ["%s -c %s" % (vigild, config)])
        self.assertEqual(d[(s, "ExecReload")], ["%s -c %s --check-config" % (vigild, config),
                                                "/bin/kill -HUP $MAINPID"])
        self.assertTrue(os.access(vigild, os.X_OK))
        self.assertTrue(os.path.isfile(config))

    def test_systemd_analyze_security(self):
        need(self, shutil.which("systemd-analyze"), "systemd-analyze (systemd)")
        p = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", self.unit],
                check=False)
        m = re.search(r"Overall exposure level for vigild.service: ([0-9.]+) (\w+)", p.stdout)
        self.assertIsNotNone(m, p.stdout[-2000:] + p.stderr[-2000:])
        # systemd's scale: <2 "OK", <5 "MEDIUM"; an unhardened service is ~9.6 "UNSAFE".
        self.assertLess(float(m.group(1)), 2.0, p.stdout)

    def test_sysusers_creates_the_user(self):
        need(self, shutil.which("systemd-sysusers"), "systemd-sysusers (systemd)")
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        run(["systemd-sysusers", "--root", root,
             os.path.join(self.prefix, "lib/sysusers.d/vigil.conf")])
        with open(os.path.join(root, "etc/passwd")) as f:
            self.assertRegex(f.read(), r"(?m)^vigil:x:\d+:\d+:[^:]*:/var/lib/vigil:/usr/sbin/nologin$")


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.sock_dir = tempfile.mkdtemp(prefix="vigil-it-notify-")
        self.addCleanup(shutil.rmtree, self.sock_dir, True)
        self.path = os.path.join(self.sock_dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(self.path)
        self.sock.settimeout(timeout(20))
        self.vd = Vigild("notify")
        self.addCleanup(self.vd.cleanup)

    def recv(self):
        return dict(l.split("=", 1) for l in self.sock.recv(4096).decode().splitlines())

    def test_ready_once_listening_and_stopping_on_sigterm(self):
        self.vd.start(env=dict(os.environ, NOTIFY_SOCKET=self.path))
        msg = self.recv()
        self.assertEqual(msg.get("READY"), "1", msg)
        self.assertEqual(int(msg["MAINPID"]), self.vd.proc.pid)
        self.assertIn("forward=127.0.0.1:%d" % self.vd.forward_port, msg["STATUS"])
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.vd.admin_port,
                                    timeout=timeout(10)) as r:
            self.assertEqual(r.status, 200)
        self.vd.stop()
        self.assertEqual(self.recv().get("STOPPING"), "1")


class JournalTest(unittest.TestCase):
    def test_priority_prefixes_when_stderr_is_the_journal_stream(self):
        vd = Vigild("journal")
        self.addCleanup(vd.cleanup)
        open(vd.log_path, "w").close()
        st = os.stat(vd.log_path)
        vd.start(env=dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino)))
        vd.stop()
        lines = vd.read_log().splitlines()
        self.assertTrue(any(l.startswith("<6>info: ready: ") for l in lines), lines)
        for l in lines:
            self.assertRegex(l, r"^<[3467]>(error|warn|info|debug): ")

    def test_plain_lines_when_stderr_is_elsewhere(self):
        vd = Vigild("journal-stale")
        self.addCleanup(vd.cleanup)
        vd.start(env=dict(os.environ, JOURNAL_STREAM="1:1"))  # a stream we do not write to
        vd.stop()
        self.assertRegex(vd.read_log(), r"(?m)^\d{4}-\d\d-\d\dT[0-9:.]+Z vigild info: ready: ")


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)


@unittest.skipUnless(os.geteuid() == 0, "needs root (CI runs as root): the privilege drop")
class RootTest(unittest.TestCase):
    def test_refuses_root_without_user_or_allow_root(self):
        vd = Vigild("root-refused")
        self.addCleanup(vd.cleanup)
        vd.write_config()
        p = run([VIGILD, "-c", vd.config], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("refusing to run as root", p.stderr)
        self.assertIn("--allow-root", p.stderr)
        self.assertFalse(os.path.exists(vd.store), "refused, yet it opened the store")

    def test_user_root_is_refused_too(self):
        vd = Vigild("root-user", extra_config="user: root\n")
        self.addCleanup(vd.cleanup)
        vd.write_config()
        p = run([VIGILD, "-c", vd.config], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("user: 'root' is root", p.stderr)

    def test_unknown_user_fails_check_config(self):
        vd = Vigild("root-nouser", extra_config="user: vigil-no-such-user\n")
        self.addCleanup(vd.cleanup)
        vd.write_config()
        p = run([VIGILD, "-c", vd.config, "--check-config"], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("user: 'vigil-no-such-user'", p.stderr)

    def test_drops_to_user_after_binding(self):
        nobody = pwd.getpwnam("nobody")
        vd = Vigild("root-drop", extra_config="user: nobody\n")
        vd.allow_root = False
        self.addCleanup(vd.cleanup)
        # The test directory is root's (0700); the store inside must be nobody's.
        os.chmod(vd.dir, 0o755)
        os.mkdir(vd.store, 0o750)
        os.chown(vd.store, nobody.pw_uid, nobody.pw_gid)
        vd.start()
        st = proc_status(vd.proc.pid)
        self.assertEqual(st["Uid"].split(), [str(nobody.pw_uid)] * 4)
        self.assertEqual(st["Gid"].split(), [str(nobody.pw_gid)] * 4)
        self.assertNotIn("0", st["Groups"].split())
        for cap in ("CapEff", "CapPrm", "CapInh"):
            self.assertEqual(int(st[cap], 16), 0, cap)
        self.assertIn("running as user 'nobody'", vd.read_log())
        ev = os.path.join(vd.dir, "ev.ndjson")
        with open(ev, "w") as f:
            f.write('{"ts":"2024-05-01T13:00:00Z","source":"falco","message":"as nobody"}\n')
        vd.send([ev])
        vd.stop()
        self.assertEqual(len(vd.search("nobody")), 1)
        self.assertEqual(os.stat(os.path.join(vd.store, "catalog.db")).st_uid, nobody.pw_uid)


if __name__ == "__main__":
    main()
