#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run the fuzz targets under libFuzzer (with ASan and UBSan) for a number of CPU-minutes each.

Not a test and not part of CI: a fuzzing campaign, run by hand before a release or after a change to
a parser. It builds its own clang tree (-Dfuzz-engine=libfuzzer), copies each target's checked-in
corpus into a work folder, and runs the target in slices until its CPU time (user + system, measured
with getrusage, so a busy machine only makes the run longer, not shorter) reaches the budget. At the
end it prints one line per target: CPU-minutes, executions, corpus size before and after, and the
crashes, leaks or timeouts found, whose inputs stay in WORK/artifacts/TARGET/. A crasher, once fixed,
belongs in tests/fuzz/corpus/TARGET/ as a seed, so the replay tests keep it fixed.

usage: /usr/bin/python3 tests/fuzz/run-libfuzzer.py [--minutes 30] [--work DIR] [--jobs 1] [--timeout 20] [TARGET...]

Exit status: 0 when no target found anything, 1 otherwise, 2 on a usage or build error."""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
CORPUS = SOURCE / "tests" / "fuzz" / "corpus"
SLICE_SECONDS = 300  # wall time of one libFuzzer run; the CPU budget is checked between runs


def targets_in_build(build):
    text = (SOURCE / "tests" / "fuzz" / "meson.build").read_text()
    names = re.findall(r"\['(fuzz-[a-z0-9-]+)', 'corpus/([a-z0-9-]+)'\]", text)
    return [(n, c) for n, c in names if (build / "tests" / "fuzz" / n).exists()]


def build_tree(work):
    build = work / "build"
    if not (build / "build.ninja").exists():
        env = dict(os.environ, CC="clang")
        subprocess.run(["meson", "setup", str(build), str(SOURCE), "-Dfuzz-engine=libfuzzer",
                        "-Db_sanitize=address,undefined", "-Db_lundef=false", "-Dman=disabled",
                        "-Dbuildtype=debugoptimized"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", str(build)], check=True, stdout=subprocess.DEVNULL)
    return build


def cpu_of_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def slice_executions(text):
    """The inputs one libFuzzer run executed, from its output: the final stats of a plain run; with
    -fork the children's stats go to their own logs, and the parent's last "#N:" status line is the
    count over all of them."""
    done = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    if done:
        return sum(int(x) for x in done)
    status = re.findall(r"^#(\d+):", text, re.M)
    return max((int(x) for x in status), default=0)


def run_target(build, work, name, corpus_name, minutes, jobs, timeout):
    exe = build / "tests" / "fuzz" / name
    seeds = CORPUS / corpus_name
    corpus = work / "corpus" / name
    artifacts = work / "artifacts" / name
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = len(list(seeds.iterdir())) if seeds.is_dir() else 0
    env = dict(os.environ,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               UPKEEP_FUZZ_KEYRING=str(SOURCE / "tests" / "fuzz" / "keyring.pem"))
    budget = minutes * 60.0
    used = 0.0
    runs = 0
    log = work / f"{name}.log"
    with log.open("w") as out:
        while used < budget:
            start = cpu_of_children()
            slice_s = int(min(SLICE_SECONDS, max(10, (budget - used) / jobs)))
            cmd = [str(exe), f"-max_total_time={slice_s}", f"-timeout={timeout}", "-rss_limit_mb=2048",
                   "-max_len=1048576", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
                   str(corpus)]
            if seeds.is_dir():
                cmd.append(str(seeds))
            if jobs > 1:
                cmd[1:1] = [f"-fork={jobs}"]
            out.flush()
            offset = log.stat().st_size
            p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
            used += cpu_of_children() - start
            out.flush()
            with log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            runs += slice_executions(text)
            if p.returncode != 0:
                break
    found = sorted(x.name for x in artifacts.iterdir())
    after = len(list(corpus.iterdir()))
    print(f"{name}: {used / 60:.1f} CPU-min, {runs} executions, corpus {before} seeds -> {after} "
          f"inputs, {len(found)} findings{': ' + ', '.join(found) if found else ''}", flush=True)
    return not found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="CPU-minutes per target (default 30)")
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/upkeep-libfuzzer"),
                    help="build tree, work corpus, logs and findings (default /var/tmp/upkeep-libfuzzer)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel fuzzing processes per target")
    ap.add_argument("--timeout", type=int, default=20,
                    help="seconds (wall clock) one input may take before it counts as a finding (default 20); "
                         "raise it when the run is niced on a busy machine")
    ap.add_argument("targets", nargs="*", help="fuzz targets (default: all that were built)")
    a = ap.parse_args()
    if shutil.which("clang") is None:
        sys.exit("run-libfuzzer: clang is not installed (apt-get install clang)")
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        build = build_tree(a.work)
    except subprocess.CalledProcessError as e:
        print(f"run-libfuzzer: building the libFuzzer tree failed: {e}", file=sys.stderr)
        return 2
    known = dict(targets_in_build(build))
    wanted = a.targets or list(known)
    for t in wanted:
        if t not in known:
            print(f"run-libfuzzer: no fuzz target \"{t}\" (have: {', '.join(known)})", file=sys.stderr)
            return 2
    t0 = time.monotonic()
    ok = True
    for t in wanted:
        ok &= run_target(build, a.work, t, known[t], a.minutes, a.jobs, a.timeout)
    print(f"run-libfuzzer: {len(wanted)} targets in {(time.monotonic() - t0) / 60:.1f} min wall; "
          f"logs in {a.work}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
