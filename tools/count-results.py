#!/usr/bin/python3
"""Count meson's test results (meson-logs/testlog.json, one JSON object a line) over several builds and
print the one closing line CI reads (a failed build counts as one failure): "N passed, N failed, N skipped". Exits 1 if anything failed or
nothing ran.

Usage: count-results.py [--build-failures N] [--result NAME=OK|FAIL]... TESTLOG.json...
(--result: a check that ran outside meson test, such as an install-tree check of a build without tests.)"""
import json
import sys

passed = failed = skipped = 0
args = sys.argv[1:]
if args[:1] == ["--build-failures"]:
    failed += int(args[1])  # a build that failed ran none of its tests: count it as one failure
    args = args[2:]
while args[:1] == ["--result"]:
    name, _, result = args[1].partition("=")
    if result == "OK":
        passed += 1
    else:
        print(f"count-results: {name}: {result or 'no result'}", file=sys.stderr)
        failed += 1
    args = args[2:]
for path in args:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result", "")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
