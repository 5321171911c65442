"""The README's `vigil …` examples run as written (issue 13 item 8): every query and
evidence example in a ```sh block of README.md (search, stats, timeline, sql, export,
verify of the store and of a bundle, pki pubkey, hunt, rules, hold list; commands written
over several lines too) runs against the store `vigil demo --keep` made (real vigild,
real mTLS agents), with the README's store, config and /elsewhere paths pointed at the
demo's and a scratch directory, in README order (pki pubkey first: a later example pins
the key it writes), and exits 0. Examples that need what a test machine has not (a
running daemon on fixed ports, root, kubectl, docker, a pager) are the Install and
deployment tests' (test_install.py, test_kubernetes.py); those with a placeholder (`…`,
a hash noted earlier) cannot run as written."""
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import VIGIL, run

SRC = os.environ.get("VG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
QUERY = {"search", "stats", "timeline", "sql", "export", "hunt", "rules", "verify",
         "completion"}


def examples():
    """(line number, command) of every `vigil` line in the README's sh blocks."""
    out = []
    block = False
    pending = None
    cont = False
    with open(os.path.join(SRC, "README.md")) as f:
        for n, line in enumerate(f, 1):
            if line.startswith("```"):
                block = line.strip() in ("```sh", "```bash")
                continue
            if not block:
                continue
            # a comment after the command: two spaces or more, then '#'
            text = re.split(r"\s{2,}#", line.rstrip("\n"))[0].rstrip()
            if pending is not None:
                # the command goes on: after a backslash, or inside a quoted string
                pending = (pending[0], pending[1] + (" " if cont else "\n") + text.lstrip())
            elif text.startswith("vigil "):
                pending = (n, text)
            else:
                continue
            cont = pending[1].endswith("\\")
            if cont:
                pending = (pending[0], pending[1][:-1].rstrip())
                continue
            try:
                shlex.split(pending[1])
            except ValueError:  # an open quote: the next line belongs to it
                continue
            out.append(pending)
            pending = None
    return out


class ReadmeExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vigil-it-readme-")
        p = run([VIGIL, "demo", "--keep"], env=dict(os.environ, TMPDIR=cls.tmp), t=600)
        m = re.search(r"kept: (\S+)", p.stdout + p.stderr)
        if not m:
            raise AssertionError("vigil demo --keep did not say where: " + p.stdout[-2000:])
        cls.demo = m.group(1)
        cls.store = os.path.join(cls.demo, "store")
        cls.config = os.path.join(cls.demo, "vigil.yaml")

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("VG_KEEP_TESTDIR") != "1":
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def runnable(self, cmd):
        words = shlex.split(cmd)
        if words[1] not in QUERY and words[1:3] not in (["hold", "list"], ["pki", "pubkey"]):
            return None
        if "…" in cmd:
            return None  # a placeholder (a hash noted earlier): not runnable as written
        cmd = cmd.replace("/elsewhere/", os.path.join(self.tmp, "elsewhere") + "/")
        cmd = cmd.replace("/var/lib/vigil", shlex.quote(self.store))
        cmd = cmd.replace("-c vigil.yaml", "-c " + shlex.quote(self.config))
        cmd = re.sub(r"(?<=\s)etc/rules\b", shlex.quote(os.path.join(SRC, "etc/rules")), cmd)
        words = shlex.split(cmd)
        bundle = words[1] == "verify" and any(w.endswith(".tar") for w in words)
        if words[1] not in ("rules", "completion") and not bundle and "--store" not in words \
                and "-c" not in words:
            cmd += " --store " + shlex.quote(self.store)  # README: "or the default store"
        return cmd

    def test_every_query_example_runs(self):
        ran = []
        skipped = []
        os.makedirs(os.path.join(self.tmp, "elsewhere"), exist_ok=True)
        todo = examples()
        # pki pubkey first: a verify further up pins the key it writes
        todo.sort(key=lambda e: not e[1].startswith("vigil pki pubkey"))
        for n, cmd in todo:
            actual = self.runnable(cmd)
            if actual is None:
                skipped.append(cmd)
                continue
            p = subprocess.run(["bash", "-c", actual.replace("vigil ", shlex.quote(VIGIL) + " ",
                                                               1)],
                               capture_output=True, text=True, timeout=harness.timeout(120),
                               cwd=self.tmp)
            self.assertEqual(p.returncode, 0, "README.md:%d: %s\n%s" % (n, cmd, p.stderr[-2000:]))
            ran.append(cmd)
        # The Searching section's examples are among them, the clock-time one included.
        self.assertTrue(any("--until 14:00" in c for c in ran), ran)
        self.assertTrue(any(c.startswith("vigil stats") for c in ran), ran)
        self.assertTrue(any(c.startswith("vigil sql") and "\n" in c for c in ran), ran)
        self.assertTrue(any(c.startswith("vigil verify incident-42.tar --key") for c in ran),
                        ran)
        self.assertGreaterEqual(len(ran), 10, ran)
        print("README examples run: %d; not query examples or with placeholders: %d"
              % (len(ran), len(skipped)))


if __name__ == "__main__":
    harness.main()
