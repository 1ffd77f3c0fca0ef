"""The measured figures of docs/math.md's sections 14 and 15, and section 15's two pictures.

    python docs/lessons.py --data-dir data/mnist [--out docs]

Section 14: how far the mini-batch gradient of dJ/dW strays from the full one, at the seed's
start (W = 0, b = 0) on the 55,000 training images: the mean of |g_B - g|^2 over one epoch's
batches (a permutation from ``default_rng(0)``), for B = 16, 64, 256 and 1024.

Section 15: the three-epoch recipe (docs/training.md) at weight decay lambda = 0, 1e-5,
1e-4, 1e-3, 1e-2 and 1e-1, through ``scratchlr search`` (validation accuracy only: a choice
made on the test set would be a choice fitted to it); then ``decay_accuracy.png``
(validation accuracy against lambda) and ``decay_templates.png`` (the templates at
lambda = 0, 1e-3 and 1e-2).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scratchlr import model, train  # noqa: E402
from scratchlr.backend import numpy_backend  # noqa: E402
from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402

SIZES = (16, 64, 256, 1024)
DECAYS = ("0", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1")
SHOWN = ("0", "1e-3", "1e-2")  # the templates drawn
RECIPE = dict(epochs=3, shuffle=True, momentum=0.9, learning_rate=0.5, average=430)


def gradient_spread(
    images: np.ndarray, labels: np.ndarray, sizes: tuple[int, ...] = SIZES
) -> dict[int, float]:
    """{B: mean over one epoch's batches of |g_B - g|^2}, g = dJ/dW at W = 0, b = 0 on all the
    images, g_B on each batch of B of a permutation from ``default_rng(0)`` (float64)."""
    X = model.pixels(np.asarray(images), np.float64)
    W = np.zeros((X.shape[1], DATASETS["mnist"].num_classes))
    b = np.zeros(DATASETS["mnist"].num_classes)

    def grad(rows: np.ndarray) -> np.ndarray:
        return model.grad_W(X[rows], model.grad_logits(model.logits(X[rows], W, b), labels[rows]))

    full = grad(np.arange(len(labels)))
    order = np.random.default_rng(0).permutation(len(labels))
    spread = {}
    for B in sizes:
        starts = range(0, len(order) - B + 1, B)  # the epoch's whole batches
        squares = [np.sum((grad(order[lo : lo + B]) - full) ** 2) for lo in starts]
        spread[B] = float(np.mean(squares))
    return spread


def decay_search(data_dir: str, results: Path) -> dict[str, float]:
    """{lambda as written: validation accuracy} of the recipe, by ``scratchlr search``."""
    flags = "--epochs 3 --shuffle --momentum 0.9 --learning-rate 0.5 --average 430".split()
    command = [sys.executable, "-m", "scratchlr", "search", *flags]
    command += ["--weight-decay", ",".join(DECAYS), "--jobs", "2", "--quiet"]
    command += ["--data-dir", data_dir, "--results", str(results)]
    subprocess.run(
        command,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    with open(results) as f:
        rows = list(csv.DictReader(f))
    found = {float(row["weight-decay"]): float(row["val_accuracy"]) for row in rows}
    return {text: found[float(text)] for text in DECAYS}


def figures(accuracy: dict[str, float], templates: dict[str, np.ndarray], out: Path) -> None:
    """decay_accuracy.png and decay_templates.png in ``out``."""
    from matplotlib.figure import Figure

    from scratchlr.reports.plots import DIVERGING, symmetric

    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    decayed = [(float(t), a) for t, a in accuracy.items() if float(t) > 0]
    ax.semilogx(*zip(*decayed), "o-", label="weight decay λ")
    ax.axhline(accuracy["0"], color="grey", linestyle="--", label=f"λ = 0 ({accuracy['0']:.4f})")
    ax.margins(y=0.15)
    for lam, acc in decayed:
        ax.annotate(
            f"{acc:.4f}",
            (lam, acc),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    ax.set_xlabel("λ (--weight-decay)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("The three-epoch recipe against weight decay")
    ax.legend(loc="lower left")
    fig.savefig(out / "decay_accuracy.png", dpi=110)

    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(len(templates), 10)
    for row, (text, W) in zip(axes, templates.items()):
        scale = symmetric(W)  # each λ on its own scale: the pattern, not the size, is the point
        for c, ax in enumerate(row):
            ax.imshow(W[:, c].reshape(28, 28), cmap=DIVERGING, **scale)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"λ = {text}", rotation=0, ha="right", va="center")
    fig.suptitle("Templates W[:, c] at three weight decays: smoother, and smaller, as λ grows")
    fig.savefig(out / "decay_templates.png", dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--out", default=str(ROOT / "docs"), help="folder for the two PNGs (docs/)")
    args = p.parse_args()
    data = splits.load(DATASETS["mnist"], args.data_dir)
    print("| B | mean \\|g_B - g\\|^2 | ratio to the next |\n|---:|---:|---:|")
    spread = gradient_spread(data.train.images, data.train.labels)
    for B, s in spread.items():
        ratio = f"{s / spread[4 * B]:.2f}" if 4 * B in spread else ""
        print(f"| {B} | {s:.3g} | {ratio} |")
    with tempfile.TemporaryDirectory() as tmp:
        accuracy = decay_search(args.data_dir, Path(tmp) / "decay.csv")
    print("\n| λ | validation accuracy |\n|---|---:|")
    for text, acc in accuracy.items():
        print(f"| {text} | {acc:.4f} |")
    templates = {}
    for text in SHOWN:
        run = train.train(
            data,
            train.Config(**RECIPE, weight_decay=float(text)),
            numpy_backend(),
            emit=lambda s: None,
        )
        templates[text] = run.W
        print(f"λ = {text}: |W| = {np.linalg.norm(run.W):.2f}")
    figures(accuracy, templates, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
