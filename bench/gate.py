"""``python -m bench.gate --base REV``: fail when an encoder got slower than at REV.

Both trees are measured in this job, alternating (base, candidate, base, ...), with the
candidate's ``tests/benchmarks`` run against each tree's ``models``. Each median is divided by
the GEMM calibration measured in the same run, so a machine that is slower overall slows both
alike; each tree keeps its best (lowest) normalised time over the rounds. An encoder fails
when candidate / base exceeds 1 + threshold. An encoder the base tree does not have is
reported as new (it has no baseline and cannot fail); any other benchmark the base cannot
measure is an error (exit 2), never a pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALIBRATION = "test_gemm_calibration"


class GateError(Exception):
    """The comparison cannot be made; the message says why."""


def run_benchmarks(tree: Path, tests: Path, out: Path, threads: int | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if threads:
        env["FXBENCH_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        "--benchmark-enable",
        f"--benchmark-json={out}",
        "-o",
        "addopts=",
    ]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise GateError(f"benchmarks failed in {tree}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def normalised(result: dict, tree: Path) -> dict[str, float]:
    """Benchmark name -> median time / GEMM calibration median, checking which models were timed."""
    by_name = {b["name"]: b for b in result["benchmarks"]}
    if CALIBRATION not in by_name:
        raise GateError(f"no {CALIBRATION} in the results of {tree}")
    for bench in by_name.values():
        where = bench["extra_info"].get("models_path", "")
        if not where.startswith(str(tree)):
            raise GateError(f"{bench['name']} timed models from {where}, not from {tree}")
    gemm = by_name[CALIBRATION]["stats"]["median"]
    return {name: b["stats"]["median"] / gemm for name, b in by_name.items() if name != CALIBRATION}


def new_benchmarks(result: dict, base_tree: Path) -> set[str]:
    """The benchmarks of encoders that ``base_tree`` does not have (no ``models/<encoder>.py``)."""
    return {
        b["name"]
        for b in result["benchmarks"]
        if "encoder" in b["extra_info"] and not (base_tree / "models" / f"{b['extra_info']['encoder']}.py").exists()
    }


def compare(
    base: dict[str, float], candidate: dict[str, float], threshold: float, new: set[str] = frozenset()
) -> tuple[list[dict], bool]:
    """Rows of (benchmark, base, candidate, ratio, verdict) and whether every one passed; the benchmarks in
    ``new`` (of encoders the base does not have) are rows with the verdict NEW."""
    missing = sorted(set(candidate) - set(base) - set(new))
    if missing:
        raise GateError(f"no baseline for {', '.join(missing)}: the base tree could not measure them")
    rows = []
    for name in sorted(candidate):
        if name not in base:
            rows.append(
                {"benchmark": name, "base": None, "candidate": candidate[name], "ratio": None, "verdict": "NEW"}
            )
            continue
        ratio = candidate[name] / base[name]
        rows.append(
            {
                "benchmark": name,
                "base": base[name],
                "candidate": candidate[name],
                "ratio": ratio,
                "verdict": "SLOWER" if ratio > 1 + threshold else "ok",
            }
        )
    return rows, all(r["verdict"] in ("ok", "NEW") for r in rows)


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: min(run[name] for run in runs if name in run) for name in set().union(*runs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against, e.g. origin/main")
    parser.add_argument("--threshold", type=float, default=0.15, help="allowed slowdown (0.15 = 15%%)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurements of each tree")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fxbench-gate-"))
    base_tree = tmp / "base"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--verify", f"{args.base}^{{commit}}"], cwd=REPO, capture_output=True, text=True
        )
        if rev.returncode:
            raise GateError(f"base revision {args.base!r} does not exist here (fetch it, e.g. git fetch origin)")
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base_tree), rev.stdout.strip()],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        tests = REPO / "tests" / "benchmarks"
        runs: dict[str, list] = {"base": [], "candidate": []}
        new: set[str] = set()
        for r in range(args.rounds):
            for label, tree in (("base", base_tree), ("candidate", REPO)):
                print(f"round {r + 1}/{args.rounds}: measuring {label} ({tree})", flush=True)
                result = run_benchmarks(tree, tests, tmp / f"{label}-{r}.json", args.threads)
                runs[label].append(normalised(result, tree))
                if label == "candidate":
                    new |= new_benchmarks(result, base_tree)
        rows, passed = compare(best(runs["base"]), best(runs["candidate"]), args.threshold, new)
    except GateError as err:
        print(f"fxbench gate: ERROR: {err}", file=sys.stderr)
        return 2
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r["benchmark"]) for r in rows)
    print(f"{'benchmark':<{width}}  candidate/base  (threshold {1 + args.threshold:.2f}, base {args.base})")
    for r in rows:
        ratio = "  new" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(
            f"{r['benchmark']:<{width}}  {ratio}  {r['verdict']}"
            + ("  (a new encoder: no baseline to compare)" if r["ratio"] is None else "")
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "passed": passed, "base": args.base}, indent=1))
    print("PASS" if passed else "FAIL: an encoder slowed down beyond the threshold")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
