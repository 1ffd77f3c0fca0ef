"""The pictures a learner looks at. Each function returns a ``matplotlib.figure.Figure``.

They are made without pyplot, so they work headless (the ``plot`` command saves them as PNG)
and show inline in a notebook. Needs the ``[plot]`` extra (matplotlib).

- :func:`weight_templates`: each class's weight column W[:, c] as a 28x28 image, its "template";
- :func:`curves`: training and validation loss and accuracy from a run's history;
- :func:`confusion`: the confusion matrix, annotated with its counts;
- :func:`most_wrong`: the test images the model is most confidently wrong about;
- :func:`explain`: why one prediction: logit_c = sum_i x_i W_ic + b_c, drawn pixel by pixel;
- :func:`search_map`: a search's validation accuracy over its two busiest settings;
- :func:`search_front`: a search's validation accuracy against training time, and its Pareto front.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

from .. import model
from ..files.atomic import atomic_write
from ..files.history import Record
from ..files.images import SIDE
from .contributions import largest, top_two
from .evaluate import class_label, scores

DIVERGING = "RdBu_r"  # red positive, blue negative, white at 0


def symmetric(*arrays: np.ndarray) -> dict[str, float]:
    """imshow's vmin/vmax for one colour scale centred at 0 across ``arrays``."""
    top = largest(*arrays)
    return {"vmin": -top, "vmax": top}


def weight_templates(W: np.ndarray, classes: Sequence[str] | None = None) -> Figure:
    """W (784, 10): ten panels, W[:, c] as 28x28, on one diverging scale centred at 0, each
    titled with its class (and its name, where ``classes`` gives names).

    Red pixels raise class c's logit where the image has ink, blue ones lower it.
    """
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(2, 5)
    scale = symmetric(W)
    for c, ax in enumerate(axes.flat):
        im = ax.imshow(W[:, c].reshape(SIDE, SIDE), cmap=DIVERGING, **scale)
        ax.set_title(f"class {class_label(c, classes)}")
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
    labels = (
        "train: its batches, current weights",
        "validation: averaged weights" if averaged else "validation: current weights",
    )
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.plot(
            [r.step for r in history],
            [getattr(r, name) for r in history],
            marker=".",
            label=labels[0],
        )
        val = [
            (r.step, getattr(r, f"val_{name}"))
            for r in history
            if getattr(r, f"val_{name}") is not None
        ]
        if val:
            ax.plot(*zip(*val), marker="o", label=labels[1])
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("cross-entropy")
    ax_acc.set_title("accuracy")
    return fig


def confusion(M: np.ndarray, classes: Sequence[str] | None = None) -> Figure:
    """The confusion matrix M (C, C), rows true and columns predicted, each cell's count written
    in it, the classes named where ``classes`` gives names. The colour grows as count^0.3, so
    that the mistakes show beside the diagonal."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    norm = PowerNorm(gamma=0.3, vmin=0, vmax=max(int(M.max()), 1))
    im = ax.imshow(M, cmap="Blues", norm=norm)
    for i in range(len(M)):
        for j in range(len(M)):
            ax.text(
                j,
                i,
                str(int(M[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm(M[i, j]) > 0.6 else "black",
            )
    ticks = [class_label(c, classes) for c in range(len(M))]
    ax.set_xticks(range(len(M)), ticks, rotation=90 if classes else 0)
    ax.set_yticks(range(len(M)), ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: {int(np.trace(M))} of {int(M.sum())} right")
    fig.colorbar(im, ax=ax, label="examples (colour scale: count^0.3)")
    return fig


def most_wrong(
    W: np.ndarray,
    b: np.ndarray,
    images_u8: np.ndarray,
    labels: np.ndarray,
    k: int = 25,
    classes: Sequence[str] | None = None,
) -> Figure:
    """The k images whose wrong-class probability is highest, with true and predicted labels
    (named where ``classes`` gives names)."""
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
        said = wrong[n].argmax()
        p_said = f"p = {wrong[n].max():.3f}"
        if classes is None:
            title = f"true {labels[n]}, said {said}\n({p_said})"
        else:  # names are longer: one line each
            title = f"true {classes[labels[n]]}\nsaid {classes[said]} ({p_said})"
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"The {k} test images it is most sure of, and wrong")
    return fig


def explain(
    W: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    title: str = "",
    classes: Sequence[str] | None = None,
) -> Figure:
    """One image x (784,) in [0, 1]: the image, then x * W[:, c] for the predicted class and
    the runner-up (named from ``classes`` where given). Each panel's pixels sum, plus b_c, to
    that class's logit."""
    z, p = scores(W, b, x)
    top = top_two(W, x, z)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(x.reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(title or "the image")
    scale = symmetric(*(part for _, part in top))
    for ax, (c, part) in zip(axes[1:], top):
        im = ax.imshow(part.reshape(SIDE, SIDE), cmap=DIVERGING, **scale)
        sign = "+" if b[c] >= 0 else "\u2212"
        ax.set_title(
            f"class {class_label(c, classes)}: pixels {part.sum():.2f} {sign} b {abs(b[c]):.2f} "
            f"= logit {z[c]:.2f}\n"
            f"(p = {p[c]:.3f})",
            fontsize=10,
        )
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[1:], shrink=0.9, label="x_i W[i, c]: each pixel's share of the logit")
    fig.suptitle("Why this prediction: pixel contributions to the two highest logits")
    return fig


#: A search's rows, column -> value (:func:`scratchlr.search.results.read_table`).
Table = list[dict[str, Any]]
BINS = 8  # cells along an axis of sampled values; a grid's axis has a cell per value


def numeric(values: list[Any]) -> bool:
    """Whether every value is a number (a bool is not; an unset setting, an empty cell, is not)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def logarithmic(values: list[Any]) -> bool:
    """Whether an axis reads best in log: numbers, all positive, spanning a factor of 10 or more."""
    return numeric(values) and min(values) > 0 and max(values) >= 10 * min(values)


def in_order(values: list[Any]) -> list[Any]:
    """The distinct values: numbers in numeric order, then the rest (none, names) in text order."""
    return sorted(set(values), key=lambda v: (0, v, "") if numeric([v]) else (1, 0, shown(v)))


def shown(v: Any) -> str:
    """A setting as a label: a number in short form, an unset one (an empty cell) as none."""
    return "none" if v in ("", None) else f"{v:g}" if numeric([v]) else str(v)


def cells(values: list[Any]) -> tuple[np.ndarray, Any, str]:
    """An axis of a heat map: the edges of its cells, the cell of a value, and how the axis
    is drawn: ``log``, ``linear``, or ``even`` (a cell per value, evenly spaced).
    Numbers get a cell per distinct value (edges halfway between, in log where the axis is),
    or, when sampled (more than 12 distinct), BINS even cells. Anything else, and a grid that
    starts at 0 and then spans decades (``--weight-decay 0,1e-5,1e-4``), gets evenly spaced
    cells."""
    distinct = in_order(values)
    positive = [v for v in distinct if numeric([v]) and v > 0]
    if not numeric(distinct) or (
        len(distinct) <= 12 and not logarithmic(distinct) and logarithmic(positive)
    ):
        return np.arange(len(distinct) + 1) - 0.5, distinct.index, "even"
    log = logarithmic(distinct)
    kind = "log" if log else "linear"
    warp = np.log if log else np.asarray  # where the cells are even, and back
    unwarp = np.exp if log else np.asarray
    points = warp(np.asarray(distinct, float))  # at least two: an axis that varies
    if len(distinct) > 12:
        edges = np.linspace(points[0], points[-1], BINS + 1)
        return (
            unwarp(edges),
            lambda v: min(int(np.searchsorted(edges, warp(float(v)), "right")) - 1, BINS - 1),
            kind,
        )
    half = np.diff(points) / 2
    edges = np.concatenate([[points[0] - half[0]], points[:-1] + half, [points[-1] + half[-1]]])
    return unwarp(edges), distinct.index, kind


def search_map(names: list[str], table: Table) -> Figure:
    """Validation accuracy over the two settings with the most values: each cell is the best
    trial in it (over the other settings), annotated; log axes where the values span a decade."""
    busy = sorted(
        (n for n in names if len({row[n] for row in table}) > 1),
        key=lambda n: -len({row[n] for row in table}),
    )[:2]
    if not busy:
        raise ValueError("no setting varies in these results: there is nothing to map")
    x_edges, x_cell, x_kind = cells([row[busy[0]] for row in table])
    y_edges, y_cell, y_kind = (
        cells([row[busy[1]] for row in table])
        if len(busy) == 2
        else (np.array([0.0, 1.0]), lambda v: 0, "even")
    )  # one setting: a strip of cells
    best = np.full((len(y_edges) - 1, len(x_edges) - 1), np.nan)
    for row in table:
        i = y_cell(row[busy[-1]])
        j = x_cell(row[busy[0]])
        best[i, j] = np.fmax(best[i, j], row["val_accuracy"])
    fig = Figure(figsize=(8, 6 if len(busy) == 2 else 2.8), layout="constrained")
    ax = fig.subplots()
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(best), cmap="viridis")
    ax.set_facecolor("0.9")  # no trial there
    x_mid, y_mid = (
        np.sqrt(e[:-1] * e[1:]) if kind == "log" else (e[:-1] + e[1:]) / 2
        for e, kind in ((x_edges, x_kind), (y_edges, y_kind))
    )
    low = np.nanmin(best)
    high = np.nanmax(best)
    for (i, j), acc in np.ndenumerate(best):
        if np.isfinite(acc) and best.size <= 144:
            ax.text(
                x_mid[j],
                y_mid[i],
                f"{acc:.4f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if high > low and (acc - low) / (high - low) > 0.6 else "white",
            )
    label(ax.xaxis, busy[0], [row[busy[0]] for row in table], x_kind)
    if len(busy) == 2:
        label(ax.yaxis, busy[1], [row[busy[1]] for row in table], y_kind)
    else:
        ax.set_yticks([])
    fig.colorbar(mesh, ax=ax, label="validation accuracy (best trial in the cell)")
    others = [n for n in names if n not in busy and len({row[n] for row in table}) > 1]
    ax.set_title(
        f"Validation accuracy, {len(table)} trials"
        + (f" (over {', '.join(others)} too)" if others else "")
    )
    return fig


def label(axis: Any, name: str, values: list[Any], kind: str) -> None:
    """Name a heat map's axis, set its scale, and tick a grid's values (a sampled axis keeps
    matplotlib's ticks, written plainly)."""
    distinct = in_order(values)
    axis.set_label_text(name + (" (log scale)" if kind == "log" else ""))
    getattr(axis.axes, f"set_{axis.axis_name}scale")("log" if kind == "log" else "linear")
    if len(distinct) <= 12 or kind == "even":
        axis.set_ticks(
            range(len(distinct)) if kind == "even" else distinct, [shown(v) for v in distinct]
        )
        axis.set_minor_locator(NullLocator())
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def front(table: Table) -> list[dict[str, Any]]:
    """The Pareto front of (training seconds, validation accuracy): the trials no other is
    both faster than and at least as accurate as, fastest first."""
    out: list[dict[str, Any]] = []
    for row in sorted(table, key=lambda r: (r["seconds"], -r["val_accuracy"])):
        if not out or row["val_accuracy"] > out[-1]["val_accuracy"]:
            out.append(row)
    return out


def search_front(names: list[str], table: Table) -> Figure:
    """Validation accuracy against training seconds, one point per trial, and the Pareto front
    marked and labelled with its settings: "fast enough and good enough" is a point on it."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    ax.scatter(
        [r["seconds"] for r in table],
        [r["val_accuracy"] for r in table],
        s=14,
        alpha=0.5,
        label="a trial",
    )
    best = front(table)
    ax.step(
        [r["seconds"] for r in best],
        [r["val_accuracy"] for r in best],
        where="post",
        color="C3",
        marker="o",
        label="the Pareto front: nothing is both faster and more accurate",
    )
    for r in best:
        ax.annotate(
            " ".join(f"{n}={shown(r[n])}" for n in names),
            (r["seconds"], r["val_accuracy"]),
            xytext=(5, -11),
            textcoords="offset points",
            fontsize=7,
        )
    seconds = [r["seconds"] for r in table]
    if logarithmic(seconds):
        ax.set_xscale("log")
    top = max(r["val_accuracy"] for r in table)
    floor = max(min(r["val_accuracy"] for r in table), top - 0.05) - 0.002  # the interesting band
    ax.set_ylim(floor, top + 0.003)
    hidden = sum(r["val_accuracy"] < floor for r in table)
    ax.set_xlabel("training seconds" + (" (log scale)" if logarithmic(seconds) else ""))
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(
        f"Validation accuracy against training time, {len(table)} trials"
        + (f" ({hidden} far below, off the chart)" if hidden else "")
    )
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG (Agg, no display needed), atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write(Path(path), buffer.getvalue())
