"""`cmake --install`: the layout a packager ships, and the installed programs working from
the prefix alone: `vigil demo` finds its events and rule pack under share/vigil, and a
vigild run from the installed example config (store under the prefix, the installed rule
pack) takes events over mutual TLS. The man pages document exactly the options `--help`
lists, and render without a groff warning.

The README's Install block runs literally, as root, in a copy-on-write view of this machine
(an overlay of / in a private mount and network namespace, chrooted): build, install to
/usr, the vigil user, the PKI, the unit enabled. vigild is then started as the unit says
(its User=, its ExecStart=, its state directory) and takes an event over mutual TLS. Where
that cannot be set up (not root, no namespaces), that test is skipped, saying why."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Vigild, cmake_install, main, need, run, timeout  # noqa: E402

SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def clean_env():
    """The environment without the variables that would point vigil at the source tree."""
    env = dict(os.environ)
    for k in ("VIGIL_DEMO_DATA", "VIGIL_DEMO_RULES"):
        env.pop(k, None)
    return env


class InstalledVigild(Vigild):
    """vigild from the prefix, run with the installed example config: only the listen
    addresses are changed (to free loopback ports, as other tests on this machine may
    hold the default ones)."""

    def __init__(self, prefix):
        super().__init__("installed")
        self.prefix = prefix
        self.vigild_bin = os.path.join(prefix, "bin", "vigild")
        self.installed_config = os.path.join(prefix, "etc", "vigil", "vigil.yaml")
        # The installed config names pki/*.pem next to itself: what the README's
        # `vigil pki init` makes there.
        self.pki = os.path.join(prefix, "etc", "vigil", "pki")
        self.store = os.path.join(prefix, "var", "lib", "vigil")
        self.config = os.path.join(prefix, "etc", "vigil", "vigil-test.yaml")

    def write_config(self):
        with open(self.installed_config) as f:
            text = f.read()
        for k in ("forward", "syslog", "https", "admin"):
            text, n = re.subn(r"(?m)^(  %s:\s+)\S+" % k, r"\g<1>127.0.0.1:0", text)
            if n != 1:
                raise AssertionError("listen.%s not found once in the installed config" % k)
        with open(self.config, "w") as f:
            f.write(text)


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-it-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.prefix = os.path.join(self.tmp, "prefix")
        cmake_install(self.prefix)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_layout(self):
        for b in ("vigild", "vigil"):
            self.assertTrue(os.access(self.path("bin", b), os.X_OK), b)
        rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SRC, "etc/rules/*")))
        self.assertEqual(sorted(os.listdir(self.path("share/vigil/rules"))), rules)
        demo = sorted(os.listdir(os.path.join(SRC, "etc/demo")))
        self.assertEqual(sorted(os.listdir(self.path("share/vigil/demo"))), demo)
        drills = sorted(os.listdir(os.path.join(SRC, "etc/drills")))
        self.assertEqual(sorted(os.listdir(self.path("share/vigil/drills"))), drills)
        self.assertTrue(os.path.isfile(self.path("share/man/man1/vigil.1")))
        self.assertTrue(os.path.isfile(self.path("share/man/man8/vigild.8")))
        self.assertTrue(os.path.isfile(self.path("share/doc/vigil/README.md")))
        self.assertTrue(os.access(self.path("share/doc/vigil/deploy/kubernetes/trivy/"
                                            "trivy-to-vigil.sh"), os.X_OK))
        # The example config points at this install, and share/doc has the same example.
        with open(self.path("etc/vigil/vigil.yaml")) as f:
            cfg = f.read()
        self.assertIn("  path: %s " % self.path("var/lib/vigil"), cfg)
        self.assertIn("  paths: [ %s ] " % self.path("share/vigil/rules"), cfg)
        self.assertIn("  ca: pki/ca.pem ", cfg)
        with open(self.path("share/doc/vigil/vigil.yaml")) as f:
            self.assertEqual(f.read(), cfg)

    def test_reinstall_keeps_the_config_in_use(self):
        cfg = self.path("etc/vigil/vigil.yaml")
        with open(cfg, "a") as f:
            f.write("# edited by the operator\n")
        cmake_install(self.prefix)
        with open(cfg) as f:
            self.assertTrue(f.read().endswith("# edited by the operator\n"))
        with open(self.path("share/doc/vigil/vigil.yaml")) as f:
            self.assertNotIn("edited by the operator", f.read())

    def test_packager_install_to_usr_with_destdir(self):
        dest = os.path.join(self.tmp, "dest")
        root = cmake_install("/usr", destdir=dest)
        self.assertTrue(os.access(os.path.join(root, "bin/vigild"), os.X_OK))
        # GNUInstallDirs' rule for /usr: configuration in /etc, state in /var.
        with open(os.path.join(dest, "etc/vigil/vigil.yaml")) as f:
            cfg = f.read()
        self.assertIn("  path: /var/lib/vigil ", cfg)
        self.assertIn("  paths: [ /usr/share/vigil/rules ] ", cfg)
        self.assertFalse(os.path.exists(os.path.join(dest, "usr/etc")))

    def test_installed_demo(self):
        # Run from an unrelated directory with no hint: the data must come from the prefix.
        p = subprocess.run([self.path("bin/vigil"), "demo"], cwd=self.tmp, env=clean_env(),
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        self.assertIn("rules: the default pack, %s" % os.path.realpath(
            self.path("share/vigil/rules")), p.stdout)
        self.assertIn("vigild stopped cleanly", p.stdout)
        self.assertIn("Alerts raised live by the rule pack", p.stdout)
        # the short fire drill, from share/vigil/drills, detected and paged every stage
        self.assertIn("(vigil drill run %s)" % os.path.realpath(
            self.path("share/vigil/drills/multi_stage.yaml")), p.stdout)
        self.assertIn("result: PASSED, 6 of 6 expectations met", p.stdout)

    def test_installed_vigild_with_the_example_config(self):
        vigil = self.path("bin/vigil")
        run([vigil, "pki", "init", self.path("etc/vigil/pki")])
        # The installed config, unchanged, validates (its TLS files and rule pack exist).
        p = run([self.path("bin/vigild"), "-c", self.path("etc/vigil/vigil.yaml"),
                 "--check-config"])
        self.assertIn("configuration OK", p.stdout)
        vd = InstalledVigild(self.prefix)
        self.addCleanup(vd.cleanup)
        vd.start()
        log = vd.read_log()
        self.assertRegex(log, r"rules: [1-9][0-9]* loaded, 0 unsupported, 0 invalid")
        ev = os.path.join(self.tmp, "ev.ndjson")
        with open(ev, "w") as f:
            f.write('{"ts":"2024-05-01T13:00:00Z","source":"falco","message":"installed ok"}\n')
        cert, key = vd.cert("agent-node-1")
        run([vigil, "send", "--server", "127.0.0.1:%d" % vd.forward_port, "--ca", vd.ca,
             "--cert", cert, "--key", key, ev])
        vd.stop()
        # `vigil search -c` with the installed config finds the store under the prefix.
        p = run([vigil, "search", "-c", self.path("etc/vigil/vigil.yaml"), "installed",
                 "--format", "ndjson"])
        self.assertEqual(len(p.stdout.splitlines()), 1, p.stdout)
        self.assertTrue(os.path.isfile(self.path("var/lib/vigil/catalog.db")))


def help_options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))


def man_options(path):
    with open(path) as f:
        text = f.read().replace("\\-", "-")
    return help_options(text)


# Runs inside `unshare --mount --net`: an overlay of / (upper layer on a tmpfs) chrooted
# into, so the README's commands install into /usr and /etc of a throwaway view.
INSTALL_DRIVER = r'''
set -euo pipefail
T=$1 SRC=$2 BLOCK=$3
mount -t tmpfs -o size=4g tmpfs "$T/layer"
mkdir -p "$T/layer/upper" "$T/layer/work" "$T/layer/src-upper" "$T/layer/src-work" "$T/root"
mount -t overlay overlay -o lowerdir=/,upperdir="$T/layer/upper",workdir="$T/layer/work" "$T/root"
for d in proc dev; do mount --rbind "/$d" "$T/root/$d"; done
mount -t tmpfs tmpfs "$T/root/tmp"
mount -t tmpfs tmpfs "$T/root/run"
# The checkout, copy-on-write at its own path (it may be on another file system, or
# under /tmp): build/release is written to the layer, never to the checkout.
mkdir -p "$T/root$SRC"
mount -t overlay overlay \
    -o lowerdir="$SRC",upperdir="$T/layer/src-upper",workdir="$T/layer/src-work" "$T/root$SRC"
ip link set lo up
cp "$BLOCK" "$T/root/tmp/install.sh"
cat > "$T/root/tmp/after.sh" <<'EOS'
set -euo pipefail
trap 'echo "after.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
unit=/usr/lib/systemd/system/vigild.service
[ "$(systemctl is-enabled vigild)" = enabled ]
grep -qx 'enable vigild' /tmp/systemctl-now   # the README asked for it to start now
# What systemd would do: StateDirectory=vigil, then ExecStart= as User=.
user=$(sed -n 's/^User=//p' "$unit")
install -d -o "$user" -g "$user" -m 0750 /var/lib/vigil
cmd=$(sed -n 's/^ExecStart=//p' "$unit")
setpriv --reuid "$user" --regid "$user" --init-groups -- $cmd --ready-fd 3 \
    3>/tmp/ready 2>/tmp/vigild.log &
pid=$!
for _ in $(seq 1 600); do grep -q '^ready ' /tmp/ready 2>/dev/null && break; sleep 0.1; done
grep -q '^ready ' /tmp/ready || { cat /tmp/vigild.log; exit 1; }
echo '{"ts":"2024-05-01T13:00:00Z","source":"falco","message":"installed by the README"}' |
    vigil send --server 127.0.0.1:24224 --ca /etc/vigil/pki/ca.pem \
        --cert /etc/vigil/pki/agent-node-1.pem --key /etc/vigil/pki/agent-node-1-key.pem
kill -TERM "$pid"
wait "$pid"
grep -E "running as|ready:" /tmp/vigild.log || true
vigil search -c /etc/vigil/vigil.yaml "installed by the README" --format ndjson | grep -c README
stat -c 'store owner %U' /var/lib/vigil/catalog.db
EOS
# systemd is not PID 1 here: systemctl works on the unit files only (enable makes the
# links; daemon-reload is skipped), and a --now start is left to after.sh, which starts
# vigild the way the unit says.
mkdir -p "$T/root/usr/local/sbin"
cat > "$T/root/usr/local/sbin/systemctl" <<'EOS'
#!/bin/bash
now=0 args=()
for a in "$@"; do if [ "$a" = --now ]; then now=1; else args+=("$a"); fi; done
if [ $now = 1 ]; then echo "${args[*]}" >> /tmp/systemctl-now; fi
SYSTEMD_OFFLINE=1 exec /usr/bin/systemctl "${args[@]}"
EOS
chmod +x "$T/root/usr/local/sbin/systemctl"
chroot "$T/root" /bin/bash -c \
    "cd '$SRC' && bash -euo pipefail /tmp/install.sh && bash /tmp/after.sh"
'''


class ReadmeInstallTest(unittest.TestCase):
    def test_install_block_runs(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (CI runs as root): the README installs into /usr")
        probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True,
                               text=True)
        if probe.returncode != 0:
            self.skipTest("no mount and network namespaces here (%s): the README block "
                          "needs a throwaway view of /" % probe.stderr.strip())
        with open(os.path.join(SRC, "README.md")) as f:
            m = re.search(r"(?ms)^## Install\n.*?^```sh\n(.*?)^```", f.read())
        self.assertIsNotNone(m, "README.md has no sh block under '## Install'")
        tmp = tempfile.mkdtemp(prefix="vigil-it-readme-install-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.makedirs(os.path.join(tmp, "layer"))
        block = os.path.join(tmp, "install.sh")
        with open(block, "w") as f:
            f.write(m.group(1))
        p = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "bash",
                            "-c", INSTALL_DRIVER, "driver", tmp, os.path.realpath(SRC), block],
                           capture_output=True, text=True, timeout=timeout(1800))
        out = p.stdout + p.stderr
        # The install's file list is long: show what the commands said.
        said = "\n".join(l for l in out.splitlines() if not l.startswith(("-- ", "[")))
        self.assertEqual(p.returncode, 0, said[-6000:])
        self.assertIn("configuration OK", out)
        self.assertRegex(out, r"(?m)^1$")  # the event, found by vigil search -c
        self.assertIn("store owner vigil", out)


class ManPageTest(unittest.TestCase):
    def test_vigild_man_page_documents_every_option(self):
        p = run([os.environ["VIGILD_BIN"], "--help"])
        self.assertEqual(help_options(p.stdout), man_options(os.path.join(SRC, "man/vigild.8")))

    def test_vigil_man_page_documents_every_command(self):
        p = run([os.environ["VIGIL_BIN"], "--help"])
        commands = set(re.findall(r"(?m)^  ([a-z]+) ", p.stdout))
        self.assertGreater(len(commands), 8)
        with open(os.path.join(SRC, "man/vigil.1")) as f:
            documented = set(re.findall(r"(?m)^\.B ([a-z]+)", f.read()))
        self.assertEqual(commands, documented - {"vigil"})

    def test_man_pages_render_without_warnings(self):
        need(self, shutil.which("groff"), "groff")
        for page in ("man/vigil.1", "man/vigild.8"):
            p = run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(SRC, page)])
            self.assertEqual(p.stderr, "", page)


if __name__ == "__main__":
    main()
