"""Where one fast step's time goes, on the seed's shapes (batch 128, 784 pixels, 10 classes).

    python benchmarks/breakdown.py --data-dir data/mnist [--repeats 7]

Times, in this process, the whole step and its three big parts with the step's own
buffers: the uint8 -> float conversion of the batch, the forward product ``X W`` and the
gradient product ``X^T G``; the rest (softmax, loss, accuracy, bias gradient, updates and
Python) is the whole minus those. Prints a Markdown table of medians over ``--repeats``
rounds of 1,000 calls each. Like ``python -m scratchlr``, it runs OpenBLAS on one thread
unless ``OPENBLAS_NUM_THREADS`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.batches import batch_ranges, fill_pixels  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402
from scratchlr.gradients import FastGradients  # noqa: E402
from scratchlr.optim.sgd import sgd_update  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    data = splits.load(DATASETS["mnist"], args.data_dir)
    images = data.train.images
    labels = data.train.labels
    gradients = FastGradients(np, 128, 784, 10, np.float32)
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)

    def step(ranges):  # the seed's fast step, as the loop makes it
        batch = gradients(images, labels, ranges, W, b)
        sgd_update(W, batch.grad_W, None, 0.1, in_place=True)
        sgd_update(b, batch.grad_b, None, 0.1, in_place=True)

    batches = list(batch_ranges(len(labels), 128, 1000, "repeat"))
    for ranges in batches:  # train first, so the products see real weights and gradients
        step(ranges)
    X = gradients.X
    z = gradients.z
    G = gradients.z  # G is written where z was
    it = iter(batches * 1000)
    parts = {
        "whole step": lambda: step(next(it)),
        "conversion (uint8 -> X)": lambda: fill_pixels(X, images, next(it), gradients.scale),
        "forward product X W": lambda: np.matmul(X, W, out=z),
        "gradient product X^T G": lambda: np.matmul(X.T, G, out=gradients.grad_W),
    }
    us = {name: [] for name in parts}
    for _ in range(args.repeats):  # rounds interleaved, so a drift of the machine hits all alike
        for name, f in parts.items():
            us[name].append(1e3 * timeit.timeit(f, number=1000))
    med = {name: statistics.median(v) for name, v in us.items()}
    med["the rest"] = med["whole step"] - sum(v for k, v in med.items() if k != "whole step")
    print("| part | median us | share |\n|---|---:|---:|")
    for name in (
        "conversion (uint8 -> X)",
        "forward product X W",
        "gradient product X^T G",
        "the rest",
        "whole step",
    ):
        print(f"| {name} | {med[name]:.0f} | {100 * med[name] / med['whole step']:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
