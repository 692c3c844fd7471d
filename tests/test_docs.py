#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_docs.py - every command in README.md and docs/*.md, run as written.

What counts as a command: each line of a ```sh / ```bash block (continuation lines joined,
trailing comments dropped), each `$ ...` line of any other block, and each inline `code` span
that starts with a program (spool-..., ./build/examples/..., ./scripts/...). Templates are
skipped: spans with `...` or an upper-case placeholder word (DIR, FILE, T, LOG.csv). The
README's build commands (scripts/*.sh, meson, ninja) are exempt: they built the tree this test
runs in, and scripts/test.sh would run this test again; so are the commands that build a program
against an installed spool (pkg-config, ./prog), which tests/test_install.sh runs.

How: the commands of one document run in order in one fresh directory under the build
directory (so a `sample` finds what the `train` before it wrote), with build/examples first on
PATH as the README says, and stdin from /dev/null. Nothing is written into the source tree: the
directory holds read-only links to examples/, tests/, include/ and build/, and an empty docs/img
for the commands that regenerate figures. Each spool program gets a few extra options appended
that shrink it to seconds (fewer steps, epochs or sentences; SHRINK below, as the docs say); the
options layer takes the last value of a repeated option, so the command itself is untouched.

Code shown as a file: after a line `<!-- file: PATH -->`, the ```c blocks up to the next such
line, joined by blank lines, are PATH. A PATH in the source tree (docs/tutorial.md's
examples/tutorial/mlstm.c) must equal them byte for byte, so the page shows the program that
runs; a bare file name (the README's first.c) is written into the scratch directory before the
document's commands run, so its `cc` line compiles what the page shows.

Also checked: every relative link and image of these documents points at a file that exists,
and a link's #anchor at a heading of its target; README.md stays a front page (under
README_MAX_LINES lines).

usage: test_docs.py SOURCE_ROOT BUILD_DIR     exit status 0 when every command succeeded
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT, BUILD = (os.path.abspath(p) for p in sys.argv[1:3])

# (program, first word after it or None) -> options appended to shrink the run
SHRINK = {
    # --stop-after 2: a run stops with a checkpoint at step 2, so a --resume after it has a step left
    ("spool-charlm", "train"): ["--steps", "3", "--eval-every", "0", "--checkpoint-every", "0", "--warmup", "1",
                                "--stop-after", "2", "--batch", "6", "--valid", "tiny-valid.txt"],  # 6: any rank count up to 3 divides it
    ("spool-charlm", "eval"): ["--valid", "tiny-valid.txt"],  # a few lines instead of the 111k-character split
    ("spool-ner", "train"): ["--epochs", "1", "--limit", "40", "--log-every", "0"],
    ("spool-sentiment", "train"): ["--epochs", "1", "--limit", "200", "--log-every", "0"],
    ("spool-wordlm", "train"): ["--epochs", "1", "--max-sentences", "200"],
    ("spool-dates", None): ["--steps", "3", "--eval-every", "3", "--test-n", "20", "--beam", "2", "--show", "2"],
    ("spool-ocr", "train"): ["--steps", "3", "--hidden", "16", "--layers", "1", "--batch", "4", "--log-every", "0"],
    ("spool-ocr", "render"): ["--lines", "5"],
    ("spool-ocr", "bench"): ["--steps", "2", "--warmup", "1", "--hidden", "16", "--layers", "1", "--batch", "4"],
    ("spool-vanishing", None): ["--gaps", "3,200", "--grad-gap", "3", "--steps", "5", "--eval-every", "5", "--test-n", "20",
                                "--explode-steps", "3", "--explode-gap", "3", "--budget", "300", "--no-plot"],
}
# commands that need an optional dependency: skipped (and said so) where it is missing
REQUIRES = [(re.compile(r"check_with_torch\.py"), ["python3", "-c", "import torch"], "python3-torch")]
NO_SHRINK = {"--load", "--eval", "--help", "--version", "--info"}  # uses of a program that train nothing
EXEMPT = re.compile(r"^(\./)?scripts/[\w-]+\.sh\b|^(meson|ninja)\b|pkg-config|PKG_CONFIG_PATH|\./prog\b")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.[a-z]+)?$")
PROGRAM = re.compile(r"^(\./)?(build/examples/)?spool-[a-z]+$|^(\./)?scripts/")
FILE_MARK = re.compile(r"^<!-- file: (\S+) -->$")
README_MAX_LINES = 260  # a front page: what spool is, the commands, a program, tables, links


def commands(path):
    """(line number, command) of one markdown file."""
    text = open(path, encoding="utf-8").read()
    out, fence, lang, pending = [], False, "", None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence, lang = (not fence), line[3:].strip()
            continue
        if fence:
            if lang in ("sh", "bash"):
                cmd = line
            elif line.startswith("$ "):
                cmd = line[2:]
            elif pending is not None:
                cmd = line
            else:
                continue
            if pending is not None:
                cmd, start = pending[1] + " " + cmd.strip(), pending[0]
            else:
                start = n
            if cmd.rstrip().endswith("\\"):
                pending = (start, cmd.rstrip()[:-1].rstrip())
                continue
            pending = None
            cmd = re.sub(r"\s+#\s.*$|^\s*#.*$", "", cmd).strip()
            if cmd:
                out.append((start, cmd))
        else:
            for span in re.findall(r"`([^`]+)`", line):
                words = span.split()
                if len(words) > 1 and PROGRAM.match(words[0]):  # a bare name is a mention, not a command
                    out.append((n, span.strip()))
    return out


def shown_files(path):
    """{PATH: text} of the code a document shows as files (see the module's docstring)."""
    files, current, block, fence = {}, None, None, False
    for line in open(path, encoding="utf-8").read().splitlines():
        m = FILE_MARK.match(line.strip())
        if m and not fence:
            current = m.group(1)
            files.setdefault(current, [])
        elif line.startswith("```"):
            if not fence and line[3:].strip() == "c" and current:
                block = []
            elif fence and block is not None:
                files[current].append("\n".join(block))
                block = None
            fence = not fence
        elif block is not None:
            block.append(line)
    return {name: "\n\n".join(blocks) + "\n" for name, blocks in files.items()}


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    """The #anchors of a markdown file's headings (GitHub numbers repeated ones -1, -2, ...)."""
    seen, out, fence = {}, set(), False
    for line in open(path, encoding="utf-8").read().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            a = slug(line.lstrip("#"))
            out.add(a if a not in seen else f"{a}-{seen[a]}")
            seen[a] = seen.get(a, 0) + 1
    return out


def broken_links(path):
    """(line, target, why) for each relative link or image of a markdown file that does not resolve."""
    out, fence = [], False
    for n, line in enumerate(open(path, encoding="utf-8").read().splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                out.append((n, target, "no such file"))
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                out.append((n, target, "no such heading"))
    return out


def is_template(cmd):
    if "..." in cmd or "…" in cmd or "\\|" in cmd:  # `a\|b\|c` in a table: a choice of values
        return True
    try:
        words = shlex.split(cmd)
    except ValueError:
        return True
    return not words or words[0].endswith(":") or any(PLACEHOLDER.match(w) for w in words[1:])


def shrunk(cmd):
    """The command with SHRINK options appended to every spool program in it; the command itself,
    byte for byte, when there is nothing to shrink (so $VAR, $(...) and quoting stay as written)."""
    toks = list(shlex.shlex(cmd, posix=True, punctuation_chars=True))
    ops = ("&&", "||", "|", ";", ">", ">>", "<")
    if not any(extra_for(toks[i:]) for i in range(len(toks)) if i == 0 or toks[i - 1] in ops):
        return cmd
    if not any(t in ops for t in toks) and "$" not in cmd:
        return cmd + " " + " ".join(extra_for(toks))
    out, i = [], 0
    while i < len(toks):
        j = i
        while j < len(toks) and toks[j] not in ("&&", "||", "|", ";", ">", ">>", "<"):
            j += 1
        seg = toks[i:j]
        seg = seg + extra_for(seg)
        out += [shlex.quote(t) for t in seg]
        if j < len(toks):
            out.append(toks[j])
        i = j + 1
    return " ".join(out)


def extra_for(seg):
    """The SHRINK options for one simple command (its words), or []."""
    ops = ("&&", "||", "|", ";", ">", ">>", "<")
    if seg and seg[0] not in ops:
        seg = seg[:next((k for k, t in enumerate(seg) if t in ops), len(seg))]
    if seg and os.path.basename(seg[0]) in ("mpirun", "mpiexec"):
        # mpirun [its options] PROGRAM ...: the program is the first spool-* word (docs' MPI section)
        seg = seg[next((m for m, w in enumerate(seg) if os.path.basename(w).startswith("spool-")), len(seg)):]
    if not seg:
        return []
    prog = os.path.basename(seg[0])
    sub = seg[1] if len(seg) > 1 and not seg[1].startswith("-") else None
    if (prog, sub) in SHRINK:
        return list(SHRINK[(prog, sub)])
    extra = SHRINK.get((prog, None))
    if not extra or NO_SHRINK.intersection(seg) or sub in ("eval", "sample", "score", "tag", "predict", "plot"):
        return []
    return list(extra)


def workdir(name):
    d = os.path.join(BUILD, "docs-test", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "docs", "img"))
    for sub in ("examples", "tests", "include"):
        os.symlink(os.path.join(ROOT, sub), os.path.join(d, sub))
    os.symlink(BUILD, os.path.join(d, "build"))
    with open(os.path.join(d, "tiny-valid.txt"), "w") as f:  # held-out text for the shrunk char-LM runs
        f.write("emma\nolivia\nava\nisabella\nsophia\n")
    return d


def main():
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    env = dict(os.environ)
    env["PATH"] = os.path.join(BUILD, "examples") + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("SPOOL_DATA", None)
    # the mpirun commands: as root (CI) Open MPI wants both variables; 3 ranks on 2 cores
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    failed = ran = skipped = 0
    t0 = time.time()
    def check(ok, what):
        nonlocal failed, ran
        ran += 1
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)

    n_readme = len(open(files[0], encoding="utf-8").read().splitlines())
    check(n_readme < README_MAX_LINES, f"README.md: {n_readme} lines (a front page: under {README_MAX_LINES})")
    for path in files:
        rel = os.path.relpath(path, ROOT)
        d = workdir(os.path.basename(path)[:-3])
        for line, target, why in broken_links(path):
            check(False, f"{rel}:{line}: link {target}: {why}")
        for name, text in shown_files(path).items():
            if "/" not in name and not os.path.exists(os.path.join(ROOT, name)):
                with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                    f.write(text)
                continue
            src = os.path.join(ROOT, name)
            same = os.path.isfile(src) and open(src, encoding="utf-8").read() == text
            check(same, f"{rel}: the code it shows is {name}")
        for line, cmd in commands(path):
            if EXEMPT.search(cmd) or is_template(cmd):
                skipped += 1
                continue
            missing = [name for pat, probe, name in REQUIRES if pat.search(cmd) and
                       subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0]
            if missing:
                print(f"skip {rel}:{line}: {cmd} (needs {', '.join(missing)}, not installed)")
                skipped += 1
                continue
            run = shrunk(cmd)
            r = subprocess.run(["bash", "-c", run], cwd=d, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
            ran += 1
            ok = r.returncode == 0
            print(f"{'ok  ' if ok else 'FAIL'} {rel}:{line}: {cmd}", flush=True)
            if not ok:
                failed += 1
                tail = r.stdout.decode(errors="replace").splitlines()[-15:]
                print(f"     ran as: {run}\n     exit status {r.returncode}; last lines:")
                for t in tail:
                    print("     | " + t)
    print(f"{ran} commands run, {failed} failed, {skipped} skipped (build commands and templates), "
          f"{time.time() - t0:.0f} s")
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
