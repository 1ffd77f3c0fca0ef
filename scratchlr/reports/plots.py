"""The pictures a learner looks at. Each function returns a ``matplotlib.figure.Figure``.

They are made without pyplot, so they work headless (the ``plot`` command saves them as PNG)
and show inline in a notebook. Needs the ``[plot]`` extra (matplotlib).

- :func:`weight_templates`: each class's weight column W[:, c] as a 28x28 image, its "template";
- :func:`curves`: training and validation loss and accuracy from a run's history;
- :func:`confusion`: the confusion matrix, annotated with its counts;
- :func:`most_wrong`: the test images the model is most confidently wrong about;
- :func:`explain`: why one prediction: logit_c = sum_i x_i W_ic + b_c, drawn pixel by pixel.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from .. import model
from ..dataset.mnist import SIDE
from ..files.atomic import atomic_write
from ..files.history import Record

DIVERGING = "RdBu_r"  # red positive, blue negative, white at 0


def symmetric(*arrays: np.ndarray) -> dict[str, float]:
    """imshow's vmin/vmax for one colour scale centred at 0 across ``arrays``."""
    top = max(float(np.abs(a).max()) for a in arrays) or 1.0
    return {"vmin": -top, "vmax": top}


def weight_templates(W: np.ndarray) -> Figure:
    """W (784, 10): ten panels, W[:, c] as 28x28, on one diverging scale centred at 0.

    Red pixels raise class c's logit where the image has ink, blue ones lower it.
    """
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(2, 5)
    scale = symmetric(W)
    for c, ax in enumerate(axes.flat):
        im = ax.imshow(W[:, c].reshape(SIDE, SIDE), cmap=DIVERGING, **scale)
        ax.set_title(f"class {c}")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label="weight W[pixel, class]")
    fig.suptitle("Weight templates: what each class's logit looks for")
    return fig


def curves(history: list[Record], averaged: bool = False) -> Figure:
    """Loss and accuracy against the step: training at every record, validation where measured,
    each series at its own steps. The training curve is of the batches, each measured before
    its update with the weights of that moment; the validation curve is of the weights the run
    keeps, the running mean when ``averaged`` (``--average``), which is why it can lie below."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    labels = ("train: its batches, current weights",
              "validation: averaged weights" if averaged else "validation: current weights")
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.plot([r.step for r in history], [getattr(r, name) for r in history], marker=".", label=labels[0])
        val = [(r.step, getattr(r, f"val_{name}")) for r in history if getattr(r, f"val_{name}") is not None]
        if val:
            ax.plot(*zip(*val), marker="o", label=labels[1])
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("cross-entropy")
    ax_acc.set_title("accuracy")
    return fig


def confusion(M: np.ndarray) -> Figure:
    """The confusion matrix M (C, C), rows true and columns predicted, each cell's count written
    in it. The colour grows as count^0.3, so that the mistakes show beside the diagonal."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    norm = PowerNorm(gamma=0.3, vmin=0, vmax=max(int(M.max()), 1))
    im = ax.imshow(M, cmap="Blues", norm=norm)
    for i in range(len(M)):
        for j in range(len(M)):
            ax.text(j, i, str(int(M[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if norm(M[i, j]) > 0.6 else "black")
    ax.set_xticks(range(len(M)))
    ax.set_yticks(range(len(M)))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: {int(np.trace(M))} of {int(M.sum())} right")
    fig.colorbar(im, ax=ax, label="examples (colour scale: count^0.3)")
    return fig


def most_wrong(W: np.ndarray, b: np.ndarray, images_u8: np.ndarray, labels: np.ndarray, k: int = 25) -> Figure:
    """The k images whose wrong-class probability is highest, with true and predicted labels."""
    p = model.softmax(model.logits(model.pixels(images_u8, W.dtype), W, b))
    wrong = p.copy()
    wrong[np.arange(len(labels)), labels] = -1  # the best wrong class of each image
    worst = np.argsort(-wrong.max(axis=1), kind="stable")[:k]
    side = int(np.ceil(np.sqrt(k)))
    fig = Figure(figsize=(2 * side, 2.2 * side), layout="constrained")
    for ax in fig.subplots(side, side).flat:
        ax.set_axis_off()
    for ax, n in zip(fig.axes, worst):
        ax.imshow(images_u8[n].reshape(SIDE, SIDE), cmap="gray_r")
        ax.set_title(f"true {labels[n]}, said {wrong[n].argmax()}\n(p = {wrong[n].max():.3f})", fontsize=9)
    fig.suptitle(f"The {k} test images it is most sure of, and wrong")
    return fig


def explain(W: np.ndarray, b: np.ndarray, x: np.ndarray, title: str = "") -> Figure:
    """One image x (784,) in [0, 1]: the image, then x * W[:, c] for the predicted class and
    the runner-up. Each panel's pixels sum, plus b_c, to that class's logit."""
    z = model.logits(x[None, :].astype(W.dtype), W, b)[0]
    first, second = np.argsort(-z, kind="stable")[:2]
    parts = [x * W[:, c] for c in (first, second)]
    p = model.softmax(z[None, :])[0]
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(x.reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(title or "the image")
    scale = symmetric(*parts)
    for ax, c, part in zip(axes[1:], (first, second), parts):
        im = ax.imshow(part.reshape(SIDE, SIDE), cmap=DIVERGING, **scale)
        sign = "+" if b[c] >= 0 else "\u2212"
        ax.set_title(f"class {c}: pixels {part.sum():.2f} {sign} b {abs(b[c]):.2f} = logit {z[c]:.2f}\n"
                     f"(p = {p[c]:.3f})", fontsize=10)
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[1:], shrink=0.9, label="x_i W[i, c]: each pixel's share of the logit")
    fig.suptitle("Why this prediction: pixel contributions to the two highest logits")
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG (Agg, no display needed), atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write(Path(path), buffer.getvalue())
