# SPDX-License-Identifier: MIT
"""test_tree.py - the source tree shows the design (TAP): no generated or result files among the
sources (figures and their data only under docs/img/, data sets under examples/data/, fuzz seeds
under tests/fuzz/corpus/, the bench's raw files bench/results.jsonl and results-bf16.jsonl); no #include circles
between the repository's files; comments in code, build files and scripts cite no issue
numbers (the tracker is not part of the repository: a comment says what the code does).

The files are those git knows (tracked, or untracked and not ignored, so a test that writes into
the source tree is caught), else every file outside build directories.
usage: test_tree.py SOURCE_ROOT
"""
import os
import re
import subprocess
import sys

root = sys.argv[1]
os.chdir(root)


def tree_files():
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True).stdout
        return [f for f in out.split("\n") if f and os.path.isfile(f)]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, subdirs, names in os.walk("."):
            subdirs[:] = [s for s in subdirs if not s.startswith((".", "build"))
                          and not os.path.exists(os.path.join(d, s, "meson-private"))]
            found += [os.path.normpath(os.path.join(d, n)) for n in names]
        return found


files = tree_files()
failures = []
n = 0


def check(ok, what, details=()):
    global n
    n += 1
    print(("ok" if ok else "not ok") + f" {n} - {what}")
    for d in list(details)[:20]:
        print(f"#   {d}")
    if not ok:
        failures.append(what)


# 1. generated or result files only where they belong
generated = re.compile(r"\.(dot|svg|png|csv|tsv|gp|jsonl|log|safetensors|o|a|so|out|tmp)$|\.tmp\.")
allowed = ("docs/img/", "examples/data/", "tests/fuzz/corpus/")
allowed_files = {"bench/results.jsonl",   # the bench's raw files (bench/RESULTS.md reads it,
                 "bench/results-bf16.jsonl",  # and bench/RESULTS-bf16.md this one)
                 "tests/dates_human.tsv"}  # hand-written test input, not generated
stray = [f for f in files if generated.search(f) and not f.startswith(allowed) and f not in allowed_files]
check(not stray, "no generated or result files among the sources", stray)

# 2. no include circles between the repository's C files
code = [f for f in files if f.endswith((".c", ".h"))]
known = set(code)
graph = {}
for f in code:
    deps = set()
    with open(f, encoding="utf-8", errors="replace") as fh:
        for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)"', fh.read(), re.M):
            for base in (os.path.dirname(f), "include", "examples"):
                p = os.path.normpath(os.path.join(base, m.group(1)))
                if p in known:
                    deps.add(p)
                    break
    graph[f] = deps
circles, state = [], {}


def visit(v, path):
    state[v] = 1
    for w in sorted(graph[v]):
        if state.get(w) == 1:
            circles.append(" -> ".join(path[path.index(w):] + [w]))
        elif w not in state:
            visit(w, path + [w])
    state[v] = 2


for v in sorted(graph):
    if v not in state:
        visit(v, [v])
check(not circles, "no #include circles", circles)

# 3. no issue numbers cited in code, build files and scripts
cited = []
pattern = re.compile(r"\bissues? #?[0-9]+|\(#[0-9]+\)", re.I)
for f in files:
    if f.startswith(allowed) or not (f.endswith((".c", ".h", ".py", ".sh", ".in", ".txt", ".cmake"))
                                     or os.path.basename(f) in ("meson.build", "run")):
        continue
    with open(f, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh, 1):
            if pattern.search(line):
                cited.append(f"{f}:{i}: {line.strip()[:100]}")
check(not cited, "comments cite no issue numbers (say what the code does instead)", cited)

print(f"1..{n}")
sys.exit(1 if failures else 0)
