"""The README's recipe against the three-epoch recipe it replaced: training time, measured
in one process in alternating order (ABBA), and test accuracy over shuffling seeds 0, 1, 2.

    python benchmarks/recipe.py --data-dir data/mnist [--rounds 16]

Each round trains both (``scratchlr.train.train``, one BLAS thread, as ``python -m
scratchlr`` does), the order flipped every round; the ratio is the median of the rounds'
ratios, its spread the quartiles. Then each recipe is scored on the test split once per
seed. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine  # noqa: E402

from scratchlr import train  # noqa: E402
from scratchlr.backend import numpy_backend  # noqa: E402
from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402

# The README's recipe, and the recipe before it.
RECIPE = dict(
    shuffle=True,
    batching="epoch",
    batch_size=512,
    num_steps=300,
    momentum=0.93,
    learning_rate=1.1,
    average=80,
    weight_decay=1e-5,
)
PREVIOUS = dict(epochs=3, shuffle=True, momentum=0.9, learning_rate=0.5, average=430)
SETTINGS = {"recipe": RECIPE, "previous": PREVIOUS}
LABELS = {"recipe": "README's", "previous": "previous"}  # their rows in the table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--rounds", type=int, default=16)
    args = p.parse_args()
    data = splits.load(DATASETS["mnist"], args.data_dir)
    backend = numpy_backend()

    def run(settings: dict, seed: int | None = None) -> train.Result:
        return train.train(
            data, train.Config(**settings, seed=seed), backend, emit=lambda line: None
        )

    run(RECIPE)  # warm up
    run(PREVIOUS)
    seconds: dict[str, list[float]] = {"recipe": [], "previous": []}
    ratios = []
    for r in range(args.rounds):
        order = ("recipe", "previous") if r % 2 == 0 else ("previous", "recipe")
        for name in order:
            seconds[name].append(run(SETTINGS[name]).train_seconds)
        ratios.append(seconds["recipe"][-1] / seconds["previous"][-1])
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    print(f"machine: {machine()}\n")
    print(
        f"time ratio, README's recipe / previous: median {median:.3f} "
        f"(quartiles {q1:.3f}, {q3:.3f}) over {args.rounds} rounds\n"
    )
    print("| recipe | training s (median) | test accuracy, seeds 0, 1, 2 |\n|---|---:|---|")
    for name, settings in SETTINGS.items():
        accuracies = [run(settings, seed).test_accuracy for seed in (0, 1, 2)]
        listed = ", ".join(f"{a:.4f}" for a in accuracies)
        print(f"| {LABELS[name]} | {statistics.median(seconds[name]):.3f} | {listed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
