"""The container image (Dockerfile): linted here without a container runtime, built and
run where one answers.

Static checks (always): two stages on Debian slim, the runtime stage as a non-root user
with the store on a volume and a HEALTHCHECK on the admin /healthz; every COPY source
exists and is not excluded by .dockerignore; the build stage installs setup.sh's build
packages; the runtime stage installs the Debian package of every library vigild and
vigil link (their NEEDED entries, mapped with dpkg -S); the build's configure line works
with tests off.

Runtime (only where `docker info` or `podman info` answers; setup.sh installs no container
engine, so elsewhere this part is skipped, saying why): build the image, run it with a
PKI mounted, wait until the HEALTHCHECK says healthy, ship events over mTLS to the
published Forward port, stop it (exit 0) and find the events in the volume.
"""
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import VIGIL, main, run, timeout, wait_for  # noqa: E402

SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VG_BUILD_DIR", "")


def dockerfile():
    """[(stage, INSTRUCTION, args)] with continuations joined and comments dropped."""
    out = []
    stage = -1
    cur = ""
    with open(os.path.join(SRC, "Dockerfile")) as f:
        for line in f:
            line = line.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            ins, _, args = cur.strip().partition(" ")
            ins = ins.upper()
            if ins == "FROM":
                stage += 1
            out.append((stage, ins, args.strip()))
            cur = ""
    return out


def apt_packages(run_args):
    """Package names given to `apt-get install` in a RUN line."""
    m = re.search(r"apt-get install ([^&]*)", run_args)
    if not m:
        return set()
    return {w for w in m.group(1).split() if not w.startswith("-")}


def setup_build_pkgs():
    with open(os.path.join(SRC, "scripts/setup.sh")) as f:
        text = f.read()
    m = re.search(r"BUILD_PKGS=\(([^)]*)\)", text)
    return set(m.group(1).split())


def needed_packages(binary):
    """The Debian packages of the libraries binary links directly (its NEEDED entries),
    less the toolchain's own (libc, libgcc, sanitizer runtimes: a sanitizer build's)."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        run(["readelf", "-d", binary]).stdout)
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", run(["ldd", binary]).stdout, re.M))
    pkgs = {}
    for lib in needed:
        path = where[lib]
        cands = [path, os.path.realpath(path)]
        cands += ["/usr" + c for c in cands if not c.startswith("/usr/")]
        pkg = None
        for c in cands:
            p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
            if p.returncode == 0:
                pkg = p.stdout.split(":")[0]
                break
        if pkg is None:
            raise AssertionError("no Debian package owns %s (%s)" % (lib, path))
        if re.match(r"^(libc6|libgcc-s1|libasan\d+|libubsan\d+|libtsan\d+)$", pkg):
            continue
        pkgs[lib] = pkg
    return pkgs


def dockerignored(path):
    with open(os.path.join(SRC, ".dockerignore")) as f:
        pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    parts = path.strip("/").split("/")
    for pat in pats:
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:i]), pat.rstrip("/")):
                return True
    return False


class DockerfileLint(unittest.TestCase):
    def setUp(self):
        self.ins = dockerfile()
        self.last = max(s for s, _, _ in self.ins)
        self.runtime = [(i, a) for s, i, a in self.ins if s == self.last]

    def test_two_stages_on_debian_slim(self):
        froms = [a for _, i, a in self.ins if i == "FROM"]
        self.assertEqual(len(froms), 2, froms)
        args = dict(a.split("=", 1) for _, i, a in self.ins if i == "ARG" and "=" in a)
        for f in froms:
            image = f.split()[0].replace("${DEBIAN_RELEASE}", args.get("DEBIAN_RELEASE", "?"))
            self.assertRegex(image, r"^debian:[a-z]+-slim$")

    def test_runtime_stage_user_volume_healthcheck(self):
        users = [a for i, a in self.runtime if i == "USER"]
        self.assertTrue(users and users[-1] not in ("root", "0"), users)
        # The volume is the installed config's store.path for a /usr install.
        self.assertIn('VOLUME ["/var/lib/vigil"]', ["VOLUME " + a for i, a in self.runtime
                                                    if i == "VOLUME"])
        hc = " ".join(a for i, a in self.runtime if i == "HEALTHCHECK")
        self.assertIn("http://127.0.0.1:9465/healthz", hc)  # listen.admin's default
        self.assertIn("curl", apt_packages(" ".join(a for i, a in self.runtime if i == "RUN")))
        exposed = " ".join(a for i, a in self.runtime if i == "EXPOSE").split()
        self.assertEqual(sorted(exposed), ["24224", "6514", "8443"])
        entry = [a for i, a in self.runtime if i == "ENTRYPOINT"]
        self.assertEqual(entry, ['["/usr/bin/vigild"]'])

    def test_copy_sources_exist_and_are_not_ignored(self):
        n = 0
        for _, i, a in self.ins:
            if i != "COPY" or a.startswith("--from"):
                continue
            srcs = shlex.split(a)[:-1]
            for s in srcs:
                n += 1
                self.assertTrue(os.path.exists(os.path.join(SRC, s)), s)
                self.assertFalse(dockerignored(s), "%s is excluded by .dockerignore" % s)
        self.assertGreater(n, 5)
        # Every directory the top CMakeLists.txt adds (tests aside: VG_TESTS=OFF) is copied.
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            subdirs = set(re.findall(r"add_subdirectory\((\w+)\)", f.read())) - {"tests"}
        copied = {s.strip("/") for _, i, a in self.ins if i == "COPY"
                  for s in shlex.split(a)[:-1]}
        self.assertEqual(subdirs - copied, set())

    def test_build_stage_has_setup_build_packages(self):
        build = apt_packages(" ".join(a for s, i, a in self.ins if s == 0 and i == "RUN"))
        self.assertEqual(setup_build_pkgs() - {"libcmocka-dev"}, build)

    def test_runtime_stage_has_the_linked_libraries(self):
        need = {}
        for b in (os.environ["VIGILD_BIN"], os.environ["VIGIL_BIN"]):
            need.update(needed_packages(b))
        self.assertIn("libuv.so.1", need)
        have = apt_packages(" ".join(a for i, a in self.runtime if i == "RUN"))
        missing = {lib: pkg for lib, pkg in need.items() if pkg not in have}
        self.assertEqual(missing, {}, "runtime stage lacks these libraries' packages")

    def test_build_configure_line_works_with_tests_off(self):
        line = " ".join(a for s, i, a in self.ins if s == 0 and i == "RUN" and "cmake -S" in a)
        m = re.search(r"cmake -S \. -B /build (.*?) &&", line)
        self.assertIsNotNone(m, line)
        tmp = tempfile.mkdtemp(prefix="vigil-it-container-")
        self.addCleanup(shutil.rmtree, tmp, True)
        p = run(["cmake", "-S", SRC, "-B", tmp] + m.group(1).split(), check=False, t=300)
        self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr[-2000:])
        with open(os.path.join(tmp, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertIn("VG_TESTS:BOOL=OFF", cache)
        self.assertNotIn("CMOCKA_FOUND:INTERNAL=1", cache)


def container_engine():
    """('docker' or 'podman', None) when one answers, else (None, why)."""
    why = []
    for eng in ("docker", "podman"):
        if not shutil.which(eng):
            why.append("%s: not installed" % eng)
            continue
        p = subprocess.run([eng, "info"], capture_output=True, text=True)
        if p.returncode == 0:
            return eng, None
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        why.append("%s: %s" % (eng, err))
    return None, "; ".join(why)


class ContainerRun(unittest.TestCase):
    def test_build_and_run(self):
        eng, why = container_engine()
        if not eng:
            self.skipTest("no container runtime answers (%s); setup.sh installs none, so "
                          "the image is only linted here" % why)
        tag = "vigil-test:%d" % os.getpid()
        run([eng, "build", "-t", tag, SRC], t=3600)
        self.addCleanup(subprocess.run, [eng, "rmi", "-f", tag], capture_output=True)
        tmp = tempfile.mkdtemp(prefix="vigil-it-container-")
        self.addCleanup(shutil.rmtree, tmp, True)
        pki = os.path.join(tmp, "pki")
        run([VIGIL, "pki", "init", pki])
        for f in os.listdir(pki):
            os.chmod(os.path.join(pki, f), 0o644)  # the image's user is uid 999
        os.chmod(pki, 0o755)
        vol = "vigil-test-store-%d" % os.getpid()
        name = "vigil-test-%d" % os.getpid()
        run([eng, "run", "-d", "--name", name, "-v", "%s:/var/lib/vigil" % vol,
             "-v", "%s:/etc/vigil/pki:ro" % pki, "-p", "127.0.0.1::24224", tag])
        self.addCleanup(subprocess.run, [eng, "volume", "rm", "-f", vol], capture_output=True)
        self.addCleanup(subprocess.run, [eng, "rm", "-f", name], capture_output=True)

        def health():
            p = run([eng, "inspect", "-f", "{{.State.Health.Status}}", name], check=False)
            if p.stdout.strip() == "unhealthy":
                raise AssertionError(run([eng, "logs", name], check=False).stderr[-3000:])
            return p.stdout.strip() == "healthy"
        wait_for("the HEALTHCHECK to pass", health, seconds=180, every=1)
        port = run([eng, "port", name, "24224/tcp"]).stdout.strip().rsplit(":", 1)[1]
        self.assertEqual(run([eng, "exec", name, "id", "-u"]).stdout.strip(), "999")
        ev = os.path.join(tmp, "ev.ndjson")
        with open(ev, "w") as f:
            f.write('{"ts":"2024-05-01T13:00:00Z","source":"falco","message":"in a container"}\n')
        run([VIGIL, "send", "--server", "127.0.0.1:" + port, "--ca", pki + "/ca.pem",
             "--cert", pki + "/agent-node-1.pem", "--key", pki + "/agent-node-1-key.pem", ev])
        run([eng, "stop", "-t", "60", name], t=120)
        self.assertEqual(run([eng, "inspect", "-f", "{{.State.ExitCode}}", name]).stdout.strip(),
                         "0")
        p = run([eng, "run", "--rm", "-v", "%s:/var/lib/vigil" % vol, "--entrypoint",
                 "/usr/bin/vigil", tag, "search", "--store", "/var/lib/vigil", "container",
                 "--format", "ndjson"])
        self.assertEqual(len(p.stdout.splitlines()), 1, p.stdout)


if __name__ == "__main__":
    main()
