"""Batch throughput: `gap-ls check` over a large real tree, cold and warm cache, side by side
with `ruff check` and `pylint` restricted to the rules of the same families.

The tree defaults to the standard library of the running Python (nothing third-party needed);
`--tree` points elsewhere (an installed package such as Django). Reports lines per second and
the ratios, then one JSON line. Every time is the median of ``--repeat`` runs (each cold run
starts from an empty cache).

    python benchmarks/throughput.py [--tree PATH] [--jobs N] [--repeat N] [--skip-pylint]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

# The swallowed-error family as the other tools know it: bare/broad except, try-except-pass and
# -continue, unobserved tasks, return/break in finally. (Race and idempotency families have no
# counterpart in either tool.)
RUFF_RULES = "E722,BLE001,S110,S112,RUF006,B012,SIM105"
PYLINT_RULES = "bare-except,broad-exception-caught,lost-exception,return-in-finally,broad-exception-raised"
EXCLUDED = {"test", "tests", "idlelib", "lib2to3", "site-packages", "__pycache__", "turtledemo"}


def python_files(tree: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED and not d.startswith("."))
        files.extend(Path(folder) / n for n in sorted(names) if n.endswith(".py"))
    return files


def count_lines(files: list[Path]) -> int:
    return sum(path.read_bytes().count(b"\n") for path in files)


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode not in (0, 1) and b"Traceback" in completed.stderr:
        raise SystemExit(f"{command[:3]} failed:\n{completed.stderr.decode()[-2000:]}")
    return elapsed


def median_time(command: list[str], cwd: Path, repeat: int) -> float:
    return statistics.median(timed(command, cwd) for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-pylint", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tree = work / "tree"
        shutil.copytree(args.tree, tree, ignore=shutil.ignore_patterns(*EXCLUDED, "*.pyc"))
        files = python_files(tree)
        lines = count_lines(files)
        relative = [str(f.relative_to(work)) for f in files]
        listing = work / "files.txt"
        listing.write_text("\n".join(relative))
        # The comparison with ruff and pylint uses the family all three check (swallowed errors);
        # "all families" adds the race and idempotency rules, which neither has.
        gap = [sys.executable, "-m", "gap_ls", "check", "--exit-zero", "--select", "swallowed-error", "--jobs",
               str(args.jobs), "tree"]
        every = [sys.executable, "-m", "gap_ls", "check", "--exit-zero", "--no-cache", "--jobs", str(args.jobs), "tree"]
        results = {"files": len(files), "lines": lines}
        cold, warm = [], []
        for _ in range(args.repeat):
            shutil.rmtree(work / ".gap_ls_cache", ignore_errors=True)
            cold.append(timed(gap, work))  # empty cache: every file analysed (and cached)
            warm.append(timed(gap, work))  # every file from the cache
        results["gap-ls cold"] = statistics.median(cold)
        results["gap-ls warm"] = statistics.median(warm)
        results["gap-ls cold, 1 job"] = median_time([*gap[:-1], "--no-cache", "--jobs", "1", "tree"], work, args.repeat)
        results["gap-ls cold, all families"] = median_time(every, work, args.repeat)
        ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", RUFF_RULES, "--exit-zero", "tree"]
        results["ruff"] = median_time(ruff, work, args.repeat)
        if not args.skip_pylint:
            pylint = [sys.executable, "-m", "pylint", "--disable=all", f"--enable={PYLINT_RULES}", f"--jobs={args.jobs}",
                      "--exit-zero", "tree"]
            results["pylint"] = median_time(pylint, work, args.repeat)

    print(f"{len(files)} files, {lines} lines (from {args.tree})")
    print(f"{'tool':<26} {'seconds':>8} {'lines/s':>10}")
    for name in ("gap-ls cold", "gap-ls warm", "gap-ls cold, 1 job", "gap-ls cold, all families", "ruff", "pylint"):
        if name in results:
            print(f"{name:<26} {results[name]:>8.2f} {lines / results[name]:>10.0f}")
    ratios = {"warm_speedup": results["gap-ls cold"] / results["gap-ls warm"]}
    if "pylint" in results:
        ratios["cold_vs_pylint"] = results["pylint"] / results["gap-ls cold"]
    ratios["ruff_vs_cold"] = results["gap-ls cold"] / results["ruff"]
    print(f"warm re-run is {ratios['warm_speedup']:.1f}x faster than cold")
    if "cold_vs_pylint" in ratios:
        print(f"gap-ls cold is {ratios['cold_vs_pylint']:.1f}x pylint's throughput")
    print(f"ruff is {ratios['ruff_vs_cold']:.1f}x gap-ls cold")
    print(json.dumps({**results, **ratios}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
