"""Shell completion (issue 13 item 8): `vigil completion bash|zsh` offers the commands,
each command's options (every option its --help names), their values (formats, codecs,
subcommands) and field names, in bash and in zsh, driven as the shells drive them."""
import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import VIGIL, need, run


def help_options(text):
    """The options a --help names where it lists them: its synopsis (the usage: lines, up
    to a blank one) and the lines that start with an option (not the prose)."""
    found = set()
    synopsis = False
    for line in text.splitlines():
        if line.startswith("usage:"):
            synopsis = True
        elif not line.strip():
            synopsis = False
        if synopsis or line.lstrip().startswith("--"):
            found |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))
    return found


class Bash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.script = run([VIGIL, "completion", "bash"]).stdout

    def complete(self, line):
        """COMPREPLY for the cursor at the end of line (a trailing space: a new word)."""
        words = line.split()
        if line.endswith(" "):
            words.append("")
        prog = (self.script + "\ncompopt() { :; }\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_vigil\n"
                "printf '%%s\\n' \"${COMPREPLY[@]}\"\n"
                % (" ".join("'%s'" % w for w in words), len(words) - 1))
        p = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True,
                           timeout=harness.timeout(30))
        self.assertEqual(p.stderr, "", line)
        return [l for l in p.stdout.splitlines() if l]

    def test_commands_options_values_fields(self):
        commands = re.findall(r"(?m)^  ([a-z]+) ", run([VIGIL, "--help"]).stdout)
        self.assertIn("completion", commands)
        self.assertEqual(set(self.complete("vigil ")) - {"--help", "--version"}, set(commands))
        self.assertEqual(self.complete("vigil se"), ["search", "send"])
        # every option a command's --help names is offered
        for c in commands:
            opts = help_options(run([VIGIL, c, "--help"]).stdout)
            got = set(self.complete("vigil %s --" % c))
            self.assertLessEqual(opts, got, c)
        self.assertEqual(self.complete("vigil search --format "), ["table", "json", "ndjson",
                                                                   "csv"])
        self.assertEqual(self.complete("vigil send --format "),
                         ["ndjson", "falco", "k8s-audit", "trivy", "syslog"])
        self.assertEqual(self.complete("vigil compact --codec "), ["zstd", "lz4hc"])
        self.assertEqual(self.complete("vigil hold "), ["add", "list", "release"])
        self.assertEqual(self.complete("vigil completion "), ["bash", "zsh"])
        self.assertEqual(self.complete("vigil stats --by pod,sr"), ["pod,src_ip"])
        self.assertEqual(sorted(self.complete("vigil search --fields container")),
                         ["container_id", "container_name"])
        self.assertEqual(self.complete("vigil search po"), ["pod="])
        self.assertIn("cmdline=", self.complete("vigil stats c"))


class Zsh(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.script = run([VIGIL, "completion", "zsh"]).stdout

    def complete(self, line):
        """What _vigil hands compadd / _describe / _files (stubbed), for the cursor at the
        end of line."""
        need(self, shutil.which("zsh"), "zsh")
        words = line.split()
        if line.endswith(" "):
            words.append("")
        prog = ("compdef() { :; }\n" + self.script +
                "\ncompadd() { while [[ $# -gt 0 && $1 != -- ]]; do shift; done; shift;"
                " local a; for a; do print -r -- $a; done }\n"
                "_describe() { local a; for a in ${(P)${@[-1]}}; do print -r -- ${a%%%%:*}; done }\n"
                "_files() { print -r -- '<files>' }\ncompset() { return 1 }\n"
                "words=(%s)\nCURRENT=%d\n_vigil\n"
                % (" ".join("'%s'" % w for w in words), len(words)))
        p = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True,
                           timeout=harness.timeout(30))
        self.assertEqual(p.stderr, "", line)
        return [l for l in p.stdout.splitlines() if l]

    def test_commands_options_values_fields(self):
        commands = re.findall(r"(?m)^  ([a-z]+) ", run([VIGIL, "--help"]).stdout)
        self.assertEqual(set(self.complete("vigil ")), set(commands))
        for c in commands:
            opts = help_options(run([VIGIL, c, "--help"]).stdout)
            self.assertLessEqual(opts, set(self.complete("vigil %s --" % c)), c)
        self.assertEqual(self.complete("vigil search --format "), ["table", "json", "ndjson",
                                                                   "csv"])
        self.assertEqual(self.complete("vigil compact --codec "), ["zstd", "lz4hc"])
        self.assertEqual(self.complete("vigil pki "), ["init", "issue", "crl"])
        self.assertIn("src_ip", self.complete("vigil stats --by pod,"))
        self.assertIn("pod", self.complete("vigil search p"))
        self.assertEqual(self.complete("vigil search --store "), ["<files>"])


if __name__ == "__main__":
    harness.main()
