#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh - install dependencies, build spool twice (release in build/, ASan+UBSan in
# build-asan/), run the whole test suite in both, and print "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test || exit 1

run_suite() { # dir, meson setup args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then meson setup "$dir" "$@" >/dev/null || return 1
  else meson configure "$dir" -Dtests=true >/dev/null || return 1; fi  # demo.sh sets up without tests
  ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
  meson test -C "$dir" --print-errorlogs --num-processes 2
}
run_suite build
rc1=$?
run_suite build-asan -Db_sanitize=address,undefined -Dbuildtype=debug -Db_lundef=true
rc2=$?

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        for line in open(path):
            r = json.loads(line)
            if r.get("result") == "SKIP":
                skipped += 1
                print(f"skipped: {r.get('name')} ({path.split('/')[0]})")
            elif r.get("result") in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
                print(f"FAILED: {r.get('name')} ({path.split('/')[0]}): {r.get('result')}")
    except FileNotFoundError:
        failed += 1
        print(f"FAILED: no test log {path} (build failed?)")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
rc3=$?
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ]
