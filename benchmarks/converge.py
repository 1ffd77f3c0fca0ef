"""How fast each system trains softmax regression on MNIST to 0.920 and 0.925 test accuracy.

    python benchmarks/converge.py --data-dir data/mnist [--repeats 5] [--only scratchlr,torch-sgd]

Every contender trains on the same 55,000 images (the seed's training split) and is scored
on the 10,000 test images; the times are of training only (scoring excluded). Contenders
that are not installed are left out:

- ``scratchlr``: the README's recipe, ``python -m scratchlr`` in a process of its own,
  ``--repeats`` times; the time is its summary line's ``train`` seconds (median). It is
  scored once, at the end, so its time to a threshold is the whole run's (an upper bound).
- ``sklearn-lbfgs``: ``LogisticRegression()`` (lbfgs, ``max_iter=100``), fitted afresh with
  ``max_iter`` = 10, 20, 40, 70 and 100; the time to a threshold is that of the first fit to
  reach it. ``sklearn-lbfgs-converged``: ``max_iter=2000``, run until lbfgs stops.
- ``sklearn-sgd``: ``SGDClassifier(loss="log_loss")`` with its defaults.
- ``torch-sgd``: a hand-written PyTorch loop, lr 0.5, batch 128, 10 shuffled epochs (a
  ``DataLoader``-free loop over a permutation), scored after each epoch; its time to a
  threshold is the training time to the first epoch that reaches it.

Prints a Markdown table: seconds to 0.920, to 0.925 ("never" if not reached), the final
test accuracy and the total training seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402

RECIPE = (  # the README's
    "--shuffle --batching epoch --batch-size 512 --num-steps 300 --momentum 0.93 "
    "--learning-rate 1.1 --average 80 --weight-decay 1e-5"
).split()
THRESHOLDS = (0.920, 0.925)
CONTENDERS = ("scratchlr", "sklearn-lbfgs", "sklearn-lbfgs-converged", "sklearn-sgd", "torch-sgd")
TRAIN = re.compile(r"train (\S+) s")
Checkpoints = list[tuple[float, float]]  # (training seconds so far, test accuracy there)


def scratchlr(data_dir: str, repeats: int) -> Checkpoints:
    """The recipe, ``repeats`` times: one checkpoint at the median training time."""
    times = []
    acc = 0.0
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-m", "scratchlr", "--data-dir", data_dir, "--quiet", *RECIPE],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        times.append(float(TRAIN.search(proc.stderr).group(1)))
        acc = float(proc.stdout.strip().splitlines()[-1].split()[-1])
    print(f"scratchlr: train seconds {', '.join(f'{t:.3f}' for t in times)}", file=sys.stderr)
    return [(statistics.median(times), acc)]


def arrays(split: splits.Split) -> tuple[np.ndarray, np.ndarray]:
    """A split's pixels scaled to [0, 1] in float32, and its labels."""
    pixels = np.asarray(split.images, np.float32) * np.float32(1 / 255)
    return pixels, np.asarray(split.labels)


def fits(make: Callable[[int], object], iterations: list[int], data: splits.Splits) -> Checkpoints:
    """A fresh fit of ``make(max_iter)`` per entry of ``iterations``: (fit seconds, accuracy)."""
    X, y = arrays(data.train)
    Xt, yt = arrays(data.test)
    out = []
    for k in iterations:
        clf = make(k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning at small max_iter
            start = time.perf_counter()
            clf.fit(X, y)
            seconds = time.perf_counter() - start
        out.append((seconds, float((clf.predict(Xt) == yt).mean())))
    return out


def sklearn(name: str, data: splits.Splits) -> Checkpoints | None:
    try:
        from sklearn.linear_model import LogisticRegression, SGDClassifier
    except ImportError:
        return None
    if name == "sklearn-lbfgs":
        return fits(lambda k: LogisticRegression(max_iter=k), [10, 20, 40, 70, 100], data)
    if name == "sklearn-lbfgs-converged":
        return fits(lambda k: LogisticRegression(max_iter=k), [2000], data)
    return fits(lambda k: SGDClassifier(loss="log_loss", random_state=0), [1000], data)


def torch_sgd(data: splits.Splits) -> Checkpoints | None:
    """lr 0.5, batch 128, 10 shuffled epochs of plain SGD; scored after each epoch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    X, y = (torch.from_numpy(a) for a in arrays(data.train))
    Xt, yt = (torch.from_numpy(a) for a in arrays(data.test))
    y = y.long()
    W = torch.zeros((784, 10), requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.SGD([W, b], lr=0.5)
    generator = torch.Generator().manual_seed(0)
    out = []
    seconds = 0.0
    for _ in range(10):
        start = time.perf_counter()
        for rows in torch.randperm(len(y), generator=generator).split(128):
            loss = F.cross_entropy(X[rows] @ W + b, y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - start
        with torch.no_grad():
            out.append((seconds, float(((Xt @ W + b).argmax(1) == yt).float().mean())))
    return out


def reached(checkpoints: Checkpoints, threshold: float) -> str:
    """Seconds to the first checkpoint at or above ``threshold``, or ``never``."""
    return next((f"{s:.2f}" for s, acc in checkpoints if acc >= threshold), "never")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--repeats", type=int, default=5, help="runs of scratchlr's recipe (5)")
    p.add_argument("--only", help="comma-separated contenders (default: all installed)")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(CONTENDERS)
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown:
        raise SystemExit(
            f"converge: unknown contender {unknown[0]!r}; one of {', '.join(CONTENDERS)}"
        )
    data = splits.load(DATASETS["mnist"], args.data_dir)
    print(f"machine: {machine()}\n")
    print("| system | s to 0.920 | s to 0.925 | final test accuracy | training s |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        if name == "scratchlr":
            checkpoints = scratchlr(args.data_dir, args.repeats)
        elif name.startswith("sklearn"):
            checkpoints = sklearn(name, data)
        else:
            checkpoints = torch_sgd(data)
        if checkpoints is None:
            print(f"converge: {name} is not installed; left out", file=sys.stderr)
            continue
        print(
            f"| {name} | {reached(checkpoints, 0.920)} | {reached(checkpoints, 0.925)} | "
            f"{checkpoints[-1][1]:.4f} | {checkpoints[-1][0]:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
