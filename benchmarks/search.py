"""How long a 16-point tuning grid takes: ``scratchlr search`` at ``--jobs 1`` and
``--jobs 2``, and scikit-learn's ``GridSearchCV`` over ``LogisticRegression(C=...)``.

    python benchmarks/search.py --data-dir data/mnist [--repeats 3] [--only scratchlr]
                                [--sklearn-jobs 2]

Both tune on the seed's split: train on the 55,000 training images, score on the 5,000
validation images (``PredefinedSplit``; ``refit=False``, so the test set is not touched
either). scratchlr's grid is :data:`GRID` (16 trials of 3 epochs), each ``--jobs`` setting run
``--repeats`` times in alternating order (ABBA), in a process of its own; its time is the
whole command's wall time, which is the time to its best validation accuracy (known once the
last trial ends). The ratio of the two settings is the median of the per-round ratios.
scikit-learn's grid is 16 values of C, log-spaced from 1e-3 to 1e2, with its defaults
(lbfgs, ``max_iter=100``), fitted once (minutes); it is left out where it is not installed.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402

GRID = (
    "--epochs 3 --shuffle --average 430 --learning-rate 0.1,0.3,0.5,1 --momentum 0,0.5,0.9,0.95"
).split()
CONTENDERS = ("scratchlr", "sklearn")


def scratchlr(data_dir: str, jobs: int) -> tuple[float, float]:
    """(wall seconds, best validation accuracy) of the grid at ``jobs``, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.csv"
        start = time.perf_counter()
        command = [sys.executable, "-m", "scratchlr", "search", "--data-dir", data_dir, *GRID]
        command += ["--jobs", str(jobs), "--results", str(out), "--quiet"]
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        seconds = time.perf_counter() - start
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
    assert len(rows) == 16, rows
    return seconds, max(float(r["val_accuracy"]) for r in rows)


def sklearn(data_dir: str, jobs: int) -> tuple[float, float, float] | None:
    """(wall seconds, best validation accuracy, its C) of GridSearchCV on the same split."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, PredefinedSplit
    except ImportError:
        return None
    data = splits.load(DATASETS["mnist"], data_dir)
    images = np.concatenate([data.train.images, data.validation.images])
    X = images.astype(np.float32) * np.float32(1 / 255)
    y = np.concatenate([data.train.labels, data.validation.labels])
    # Each example's fold: -1, train only; 0, the one validation fold.
    fold = np.r_[np.full(len(data.train.labels), -1), np.zeros(len(data.validation.labels), int)]
    grid = GridSearchCV(
        LogisticRegression(),
        {"C": np.logspace(-3, 2, 16)},
        cv=PredefinedSplit(fold),
        refit=False,
        n_jobs=jobs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning at max_iter=100
        start = time.perf_counter()
        grid.fit(X, y)
        seconds = time.perf_counter() - start
    return seconds, float(grid.best_score_), float(grid.best_params_["C"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--repeats", type=int, default=3, help="rounds of scratchlr's two settings (3)")
    p.add_argument("--only", help="comma-separated contenders (default: both)")
    p.add_argument("--sklearn-jobs", type=int, default=2, help="GridSearchCV's n_jobs (2)")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(CONTENDERS)
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown:
        print(
            f"search: error: unknown contender {unknown[0]!r}; one of {', '.join(CONTENDERS)}",
            file=sys.stderr,
        )
        return 2
    print(f"machine: {machine()}\n", flush=True)
    rows = []
    notes = []
    if "scratchlr" in names:
        runs: dict[int, list[float]] = {1: [], 2: []}
        best = 0.0
        for r in range(args.repeats):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            for jobs in order:
                seconds, best = scratchlr(args.data_dir, jobs)
                runs[jobs].append(seconds)
        for jobs, times in runs.items():
            median = statistics.median(times)
            rows.append(f"| scratchlr search, 16 trials | {jobs} | {median:.2f} | {best:.4f} |")
        ratios = [two / one for one, two in zip(runs[1], runs[2])]
        notes.append(
            f"--jobs 2 / --jobs 1, median of per-round ratios: {statistics.median(ratios):.3f} "
            f"({len(ratios)} rounds: {', '.join(f'{x:.3f}' for x in ratios)})"
        )
    if "sklearn" in names:
        found = sklearn(args.data_dir, args.sklearn_jobs)
        if found is None:
            print("search: scikit-learn is not installed; left out", file=sys.stderr)
        else:
            seconds, score, C = found
            rows.append(
                f"| GridSearchCV(LogisticRegression), 16 values of C (best: C = {C:.3g}) | "
                f"{args.sklearn_jobs} | {seconds:.2f} | {score:.4f} |"
            )
    print("| system | trials at once | wall s (median) | best validation accuracy |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows + [""] + notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
