"""Benchmark scratchlr against a tutorial NumPy loop and whatever peers are installed.

    python benchmarks/bench.py --data-dir data/mnist [--repeats 5] [--steps 1000] [--scaling]
                               [--only scratchlr,torch-eager] [--baseline ../older-checkout]

Each run is its own process, on identical data and settings (the seed's); the repeats
go round the contenders in turn, each round in the opposite order of the one before (ABBA),
so a machine that slows down mid-run slows all alike. Prints a Markdown table: median and
min us/step of the training loop, the ratio of medians to scratchlr's, the process's peak
RSS, its load time and test accuracy. With ``--baseline``, also the median over rounds of
each round's ratio scratchlr / baseline: the two builds measured side by side.
``scratchlr-reference`` is scratchlr with ``--implementation reference`` (the readable math).
``--scaling`` also runs scratchlr for 1,000 / 10,000 / 100,000 steps to show time linear
and memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PEERS = [
    "scratchlr-reference",
    "numpy-tutorial",
    "numpy-tutorial-1thread",
    "torch-eager",
    "torch-compile",
    "jax-jit",
    "tf-eager",
]
SUMMARY = re.compile(r"load (?P<load>\S+) s, train (?P<train>\S+) s \(\S+ us/step\)")


class Run(NamedTuple):
    """A finished process: its exit status, its stdout and stderr, its peak RSS in MB."""

    status: int
    out: str
    err: str
    rss: float


def once(name: str, data_dir: str, steps: int) -> dict | None:
    """One process of contender ``name``: its numbers, or None if not installed.
    ``scratchlr@DIR`` is the scratchlr of another checkout (``--baseline DIR``);
    ``scratchlr-reference`` is scratchlr with ``--implementation reference``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cwd = ROOT
    if name.startswith("scratchlr@"):  # run from there: `-m` looks in the working directory first
        cwd = Path(name.split("@", 1)[1]).resolve()
        env["PYTHONPATH"] = str(cwd)
        name = "scratchlr"
    if name.startswith("scratchlr"):
        cmd = [
            sys.executable,
            "-m",
            "scratchlr",
            "--data-dir",
            data_dir,
            "--num-steps",
            str(steps),
            "--display-step",
            "100",
            "--quiet",
            *(["--implementation", "reference"] if name.endswith("-reference") else []),
        ]
        name = "scratchlr"
    else:
        if name.endswith("-1thread"):
            name = name.removesuffix("-1thread")
            env["OPENBLAS_NUM_THREADS"] = "1"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), name, data_dir, str(steps)]
    run = run_with_rusage(cmd, env, cwd)
    if run.status == 3:
        return None
    if run.status != 0:
        raise SystemExit(f"bench: {name} failed: {run.err.strip().splitlines()[-1:]}")
    if name == "scratchlr":
        summary = SUMMARY.search(run.err)
        acc = float(run.out.strip().splitlines()[-1].split()[-1])
        return {
            "load_s": float(summary["load"]),
            "train_s": float(summary["train"]),
            "steps": steps,
            "test_accuracy": acc,
            "rss": run.rss,
        }
    return {**json.loads(run.out), "rss": run.rss}


def run_with_rusage(cmd: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run ``cmd``, reaping the child with ``wait4`` to read its own peak RSS."""
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return Run(p.returncode, out, err, usage.ru_maxrss / 1024)


def table(results: dict[str, list[dict]]) -> str:
    """The Markdown table of per-contender medians."""
    base = statistics.median(r["train_s"] / r["steps"] for r in results["scratchlr"])
    rows = [
        "| contender | median us/step | min us/step | x scratchlr | peak RSS MB | load s "
        "| test acc |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        per = [1e6 * r["train_s"] / r["steps"] for r in runs]
        rows.append(
            f"| {name} | {statistics.median(per):.0f} | {min(per):.0f} | "
            f"{statistics.median(per) / 1e6 / base:.2f} | {max(r['rss'] for r in runs):.0f} | "
            f"{statistics.median(r['load_s'] for r in runs):.3f} | {runs[0]['test_accuracy']:.4f} |"
        )
    return "\n".join(rows)


def round_ratios(ours: list[dict], theirs: list[dict], name: str) -> str:
    """One line: the median over rounds of each round's us/step ratio, ours / theirs."""
    ratios = [
        (a["train_s"] / a["steps"]) / (b["train_s"] / b["steps"]) for a, b in zip(ours, theirs)
    ]
    return (
        f"scratchlr / {name}, median of per-round ratios: {statistics.median(ratios):.3f} "
        f"({len(ratios)} rounds: {', '.join(f'{x:.3f}' for x in ratios)})"
    )


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else the platform's word for it; "" off Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return ""
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> str:
    """One line describing this machine."""
    import numpy

    return (
        f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {numpy.__version__}, {platform.system()} {platform.release()}"
    )


def usage(message: str) -> int:
    """A usage error: one line on stderr, exit status 2."""
    print(f"bench: error: {message}", file=sys.stderr)
    return 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument(
        "--only",
        help="comma-separated contenders (default: all); scratchlr always runs, "
        "the ratios are to it",
    )
    p.add_argument(
        "--scaling", action="store_true", help="also run scratchlr at 1e3, 1e4, 1e5 steps"
    )
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="DIR",
        help="also run the scratchlr of this checkout (e.g. a git worktree of an older commit)",
    )
    args = p.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())  # contenders run in other directories
    names = ["scratchlr", *PEERS] if not args.only else args.only.split(",")
    unknown = [n for n in names if n not in ("scratchlr", *PEERS)]
    if unknown:
        return usage(
            f"--only: unknown contender {', '.join(unknown)} (one of scratchlr, {', '.join(PEERS)})"
        )
    for d in args.baseline:
        if not (Path(d) / "scratchlr" / "__main__.py").is_file():
            return usage(
                f"--baseline {d}: not a checkout of scratchlr (no scratchlr/__main__.py there)"
            )
    names = [
        "scratchlr",
        *(f"scratchlr@{d}" for d in args.baseline),
        *(n for n in names if n != "scratchlr"),
    ]
    print(f"machine: {machine()}\n")
    results: dict[str, list[dict]] = {}
    for name in names:  # round 1, dropping whatever is not installed
        first = once(name, args.data_dir, args.steps)
        if first is None:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        results[name] = [first]
    for r in range(1, args.repeats):  # rounds interleaved, every other one reversed (ABBA)
        order = list(results)
        if r % 2:
            order.reverse()
        for name in order:
            results[name].append(once(name, args.data_dir, args.steps))
    print(table(results))
    for name in results:
        if name.startswith("scratchlr@"):
            print("\n" + round_ratios(results["scratchlr"], results[name], name))
    if args.scaling:
        print("\n| steps | train s | us/step | peak RSS MB |\n|---:|---:|---:|---:|")
        for steps in (1_000, 10_000, 100_000):
            r = once("scratchlr", args.data_dir, steps)
            us_per_step = 1e6 * r["train_s"] / steps
            print(f"| {steps} | {r['train_s']:.2f} | {us_per_step:.0f} | {r['rss']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
