# SPDX-License-Identifier: MIT
"""help2man.py - a man page (section 1) for one of spool's programs, made from what the program
itself prints for --help and --version, so the page and the program cannot disagree. Run by
examples/meson.build at build time; the pages are installed into share/man/man1.
usage: help2man.py PROGRAM OUT.1"""
import datetime
import os
import subprocess
import sys


def roff(text):
    """Plain text as roff: escape backslashes, and lines starting with . or ' """
    out = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e").replace("-", "\\-")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def main():
    prog, out = sys.argv[1], sys.argv[2]
    name = os.path.basename(prog)
    env = dict(os.environ, SPOOL_DATA="/nonexistent-spool-data")  # no build paths in the page
    helptext = subprocess.run([prog, "--help"], check=True, capture_output=True, text=True, env=env).stdout
    version = subprocess.run([prog, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    lines = helptext.split("\n")
    k = 0  # the usage lines: the first, and those indented under it
    while k < len(lines) and (lines[k].startswith("usage: ") or (k > 0 and lines[k].startswith("       "))):
        k += 1
    usage, rest = lines[:k], lines[k:]
    # what the program does: the line after the usage lines, else the first usage line's comment
    what = rest[0].strip() if rest and rest[0].strip() and not rest[0].rstrip().endswith(":") else ""
    if not what and usage and "  " in usage[0].replace("usage: ", "", 1).strip():
        what = usage[0].replace("usage: ", "", 1).strip().split("  ")[-1].strip()
    what = (what or "a program of spool").rstrip(".")
    hint = [l for l in rest if "bundled data sets" in l]
    rest = [l for l in rest if "bundled data sets" not in l]
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds
    date = datetime.date.fromtimestamp(int(epoch)) if epoch else datetime.date.today()
    page = [
        f'.TH {name.upper()} 1 "{date.isoformat()}" "{roff(version)}" "User Commands"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(what[0].lower() + what[1:])}",
        ".SH SYNOPSIS",
        ".nf",
        roff("\n".join(u.replace("usage: ", "", 1).strip() for u in usage)),
        ".fi",
        ".SH DESCRIPTION",
        ".nf",
        roff("\n".join(rest).strip("\n")),
        ".fi",
        ".SH EXIT STATUS",
        "0 on success, 1 when the run failed (a bad file or checkpoint, an error while training),",
        "2 on a bad command line.",
        ".SH ENVIRONMENT",
        ".TP",
        ".B SPOOL_DATA",
        "the directory of the bundled data sets (default: ../share/spool/data next to the program)." if hint else
        "not used by this program.",
        ".TP",
        ".B OMP_NUM_THREADS",
        "threads when \\-\\-threads is not given (default: all cores).",
        ".TP",
        ".B SPOOL_KEEP_BLIS",
        "if 1, spool leaves BLIS's kernel choice alone (see BLIS_ARCH_TYPE in docs/design.md).",
        ".SH FILES",
        ".I share/spool/data",
        "under the installation prefix: the bundled data sets.",
        ".SH SEE ALSO",
        "The README of spool, and the other programs: spool\\-charlm(1), spool\\-ner(1), spool\\-sentiment(1),",
        "spool\\-dates(1), spool\\-wordlm(1), spool\\-vanishing(1), spool\\-demo(1).",
        "",
    ]
    with open(out, "w") as f:
        f.write("\n".join(page))


if __name__ == "__main__":
    main()
