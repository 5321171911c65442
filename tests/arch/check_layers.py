#!/usr/bin/env python3
"""tests/arch/check_layers.py: the module graph of ARCHITECTURE.md, checked.

1. Includes between modules follow the library graph: common <- schemas <- store, rules
   <- collector, query, forwarders; nothing includes collector/ or query/ from another
   module (a unit test directory may include what its module may).
2. Each third-party header is included only by the files that fence it (STYLE.md,
   "Layout and module boundaries").
3. With --lib ARCHIVE...: no call cycle between the object files of one library (nm:
   a file that uses a symbol another file defines depends on it), so every library is
   layered file by file, except the groups listed in ALLOWED_CYCLES with the reason.

Python 3 standard library and binutils' nm only. Exit 0 when every check holds, 1 with
one line per finding otherwise."""
import argparse
import os
import re
import subprocess
import sys

MODULES = ["common", "schemas", "store", "rules", "collector", "query", "forwarders"]
# What each module's files may include (besides their own module).
MAY_INCLUDE = {
    "common": set(),
    "schemas": {"common"},
    "store": {"common"},
    "rules": {"common", "schemas"},
    "collector": {"common", "schemas", "store", "rules", "forwarders"},
    "query": {"common", "schemas", "store", "rules", "forwarders"},
    "forwarders": {"common", "schemas", "store", "rules"},
}
# What a module's unit tests may include beyond what the module may: the store's tests
# build realistic records with the schema's encoder.
TEST_MAY_INCLUDE = {"store": {"schemas"}}
# Third-party headers (a regex on the include path) and the only files that may include
# them. Tests are not fenced (they may build their fixtures with anything).
FENCES = [
    (r"openssl/", {"common/tls.c", "common/pki.c", "common/digest.c", "store/sign.c"}),
    (r"msgpack\.h$", {"common/mp.c"}),
    (r"yajl/", {"common/json.c"}),
    (r"yaml\.h$", {"common/cfg_yaml.c", "rules/ytree.c"}),
    (r"sqlite3\.h$", {"store/catalog.c", "forwarders/outbox.c", "query/sql.c"}),
    (r"(lz4|lz4hc|lz4frame|zstd)\.h$", {"store/block.c"}),
    (r"zlib\.h$", {"schemas/forward.c", "store/block.c", "store/segment.c"}),
    (r"http_parser\.h$", {"collector/https.c"}),
    (r"curl/", {"forwarders/http.c"}),
    (r"archive(_entry)?\.h$", {"query/bundle.c"}),
    (r"systemd/", {"collector/vigild.c"}),
    (r"nats/", {"common/cnats.c"}),
]
# Call cycles between files that are one responsibility, on purpose. Each entry: the
# library, the set of object files, why.
ALLOWED_CYCLES = [
    ("libvg_schemas.a", {"map.c.o", "map_falco.c.o", "map_k8s.c.o", "map_sshd.c.o", "map_trivy.c.o"},
     "map_event dispatches to the per-source mappers, which share map.c's helpers "
     "(map_int.h): one responsibility, mapping"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)


def sources(root):
    for mod in MODULES:
        d = os.path.join(root, mod)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                yield mod, f"{mod}/{name}"
    unit = os.path.join(root, "tests", "unit")
    if os.path.isdir(unit):
        for mod in sorted(os.listdir(unit)):
            d = os.path.join(unit, mod)
            if mod not in MAY_INCLUDE or not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if name.endswith((".c", ".h")):
                    yield "test:" + mod, f"tests/unit/{mod}/{name}"


def check_includes(root):
    bad = []
    for owner, rel in sources(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        is_test = owner.startswith("test:")
        mod = owner[5:] if is_test else owner
        allowed = MAY_INCLUDE[mod] | {mod}
        if is_test:
            allowed |= TEST_MAY_INCLUDE.get(mod, set())
        for kind, path in INCLUDE.findall(text):
            if kind == '"':
                top = path.split("/", 1)[0]
                if top in MAY_INCLUDE and top not in allowed:
                    bad.append(f"{rel}: includes \"{path}\": {mod} may include only "
                               f"{', '.join(sorted(allowed))}")
            elif not is_test:
                for pat, files in FENCES:
                    if re.search(pat, path) and rel not in files:
                        bad.append(f"{rel}: includes <{path}>, which only "
                                   f"{', '.join(sorted(files))} may include")
    return bad


def check_include_cycles(root):
    """No cycle among the project's own includes."""
    graph = {}
    for _, rel in sources(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        graph[rel] = {path for kind, path in INCLUDE.findall(text)
                      if kind == '"' and os.path.exists(os.path.join(root, path))}
    return [f"include cycle: {' -> '.join(comp)}" for comp in sccs(graph) if len(comp) > 1]


def nm_objects(archive):
    """{member: (defined symbols, undefined symbols)} of a static library."""
    out = subprocess.run(["nm", "-A", "-g", archive], check=True, capture_output=True,
                         text=True).stdout
    objs = {}
    for line in out.splitlines():
        # "lib.a:member.o: 0000 T name" or "lib.a:member.o:          U name"
        m = re.match(r"^[^:]+:([^:]+):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$", line)
        if not m:
            continue
        member, kind, sym = m.groups()
        d, u = objs.setdefault(member, (set(), set()))
        (u if kind == "U" else d).add(sym)
    return objs


def sccs(graph):
    """Tarjan: strongly connected components of {node: set(nodes)}."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_cycles(archive):
    objs = nm_objects(archive)
    owner = {}
    for member, (defined, _) in objs.items():
        for s in defined:
            owner[s] = member
    graph = {m: set() for m in objs}
    for member, (_, undef) in objs.items():
        for s in undef:
            o = owner.get(s)
            if o and o != member:
                graph[member].add(o)
    lib = os.path.basename(archive)
    bad = []
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        if any(lib == a and set(comp) == set(objs_) for a, objs_, _ in ALLOWED_CYCLES):
            continue
        # Name one edge of the cycle per member, so the finding says where to look.
        why = []
        for m in comp:
            for o in sorted(graph[m] & set(comp)):
                syms = sorted(s for s in objs[m][1] if owner.get(s) == o)
                why.append(f"{m} -> {o} ({', '.join(syms[:3])})")
        bad.append(f"{lib}: call cycle between {', '.join(comp)}: " + "; ".join(why))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--lib", nargs="*", default=[])
    a = ap.parse_args()
    bad = check_includes(a.src) + check_include_cycles(a.src)
    for lib in a.lib:
        bad += check_cycles(lib)
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} finding(s)")
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
