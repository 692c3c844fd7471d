# SPDX-License-Identifier: MIT
"""test_abi.py - the shared library exports exactly the public API (docs/abi.md).

Lists the dynamic symbols libspool.so defines (nm -D) and the functions and variables the public
header include/spool.h declares (preprocessed by the C compiler, so every chapter it includes
counts and macros are expanded), and fails on:
  - an exported symbol no public header declares (an internal helper that is neither static nor
    hidden: declare it in an internal header, which -fvisibility=hidden keeps out);
  - a public declaration the library does not export (a new header or declaration outside
    SP_API_BEGIN / SP_API_END);
  - a global symbol of the static library without the sp_ prefix (it could clash with the
    program's own names when linked statically);
  - an soname other than the policy's (docs/abi.md).
usage: test_abi.py LIBSPOOL.so LIBSPOOL.a SONAME CC [CFLAGS...] -- HEADER
"""
import re
import subprocess
import sys


def nm(args):
    out = subprocess.run(["nm"] + args, check=True, capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = parts[1]
    return syms


def declared(cc, header):
    text = subprocess.run(cc + ["-E", "-P", "-x", "c", header], check=True, capture_output=True, text=True).stdout
    # drop bodies of static inline functions and struct/union/enum bodies: what is left at file
    # scope are declarations
    out, depth = [], 0
    for ch in text:
        if ch == "{":
            depth += 1
            if depth == 1:
                out.append("{}")
            continue
        if ch == "}":
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    flat = " ".join("".join(out).split())
    names, inline = set(), set()
    for stmt in re.split(r";|\{\}", flat):
        stmt = stmt.strip()
        if not stmt or stmt.startswith("typedef"):
            continue
        m = re.search(r"\b(sp_\w+)\s*\(", stmt)  # a function: the first sp_ name before a '('
        if not m:
            m = re.search(r"^extern\b.*\b(sp_\w+)\s*(\[.*\])?$", stmt)  # a variable
        if not m:
            continue
        (inline if re.match(r"(static|inline)\b", stmt) else names).add(m.group(1))
    return names - inline, inline


def main():
    so, static, soname, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    sep = rest.index("--")
    cc, header = rest[:sep], rest[sep + 1]
    exported = {n for n, t in nm(["-D", "--defined-only", so]).items() if t in "TDBRVW" or t.upper() in "TDBRVW"}
    api, inline = declared(cc, header)
    bad = 0
    extra = sorted(exported - api)
    missing = sorted(api - exported)
    if extra:
        bad = 1
        print(f"not ok: {len(extra)} exported symbols are not declared in the public headers: {' '.join(extra)}")
    if missing:
        bad = 1
        print(f"not ok: {len(missing)} public declarations are not exported (outside SP_API_BEGIN/END?): {' '.join(missing)}")
    glob = nm(["-g", "--defined-only", static])
    sanitizer = ("__odr_asan", "__asan", "__ubsan", "__sancov", "__tsan")  # added by -fsanitize builds
    unprefixed = sorted(n for n, t in glob.items()
                        if not n.startswith("sp_") and not n.startswith(sanitizer) and t not in "UwvV")
    if unprefixed:
        bad = 1
        print(f"not ok: global symbols of the static library without the sp_ prefix: {' '.join(unprefixed)}")
    dyn = subprocess.run(["readelf", "-d", so], check=True, capture_output=True, text=True).stdout
    m = re.search(r"Library soname: \[(.*?)\]", dyn)
    if not m or m.group(1) != soname:
        bad = 1
        print(f"not ok: soname {m.group(1) if m else None}, policy says {soname}")
    if len(api) < 50:
        bad = 1
        print(f"not ok: only {len(api)} public declarations found: is the header parser broken?")
    print(f"{'not ok' if bad else 'ok'}: {len(exported)} exported = {len(api)} declared "
          f"(+{len(inline)} static inline), soname {soname}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
