"""How good a model is: loss, accuracy, the confusion matrix, per-class precision, recall, F1.

Notation: C classes, ``M (C, C)`` the confusion matrix, M_ij = the number of examples of
true class i predicted as j (scikit-learn's ``confusion_matrix`` convention). Counts are
exact integers; the rates are computed from them in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import model
from ..backend import Backend
from ..dataset.splits import Split
from ..evaluation import accuracy, predict_split


def scores(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, p): the logits and the probabilities of one image, one forward pass of
    :mod:`scratchlr.model`.  W (D, C), b (C,), x (D,) -> z (C,), p (C,) in W's dtype."""
    z = model.logits(x[None, :].astype(W.dtype), W, b)
    return z[0], model.softmax(z)[0]


def confusion_matrix(y: np.ndarray, yhat: np.ndarray, num_classes: int) -> np.ndarray:
    """M_ij = #{n : y_n = i, yhat_n = j}.  y, yhat (N,) ints in [0, C) -> M (C, C) int64."""
    return np.bincount(
        num_classes * np.asarray(y) + np.asarray(yhat), minlength=num_classes**2
    ).reshape(num_classes, num_classes)


def precision_recall_f1(M: np.ndarray) -> dict[str, np.ndarray]:
    """Per class c: precision M_cc / sum_i M_ic, recall M_cc / sum_j M_cj,
    F1 = 2 P R / (P + R), support sum_j M_cj. (C, C) -> each (C,).

    A class never predicted has precision 0, and one with P = R = 0 has F1 0, as
    scikit-learn's ``precision_recall_fscore_support`` gives (its ``zero_division`` default).
    """
    hits = np.diag(M).astype(np.float64)
    predicted = M.sum(axis=0)
    support = M.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def most_confused(M: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal counts, as (true, predicted, count), largest first
    (ties: the lower true class, then the lower predicted class, first)."""
    off = [(int(M[i, j]), i, j) for i in range(len(M)) for j in range(len(M)) if i != j and M[i, j]]
    return [(i, j, count) for count, i, j in sorted(off, key=lambda t: (-t[0], t[1], t[2]))[:k]]


def report(W: Any, b: Any, split: Split, backend: Backend) -> dict[str, Any]:
    """Everything ``scratchlr evaluate`` prints, as plain Python values (JSON-ready)."""
    yhat, loss = predict_split(W, b, split, backend)
    M = confusion_matrix(split.labels, backend.to_numpy(yhat), W.shape[1])
    scores = precision_recall_f1(M)
    return {
        "examples": int(M.sum()),
        "loss": loss,
        "accuracy": accuracy(int(np.trace(M)), int(M.sum())),  # as training scores it
        "confusion_matrix": M.tolist(),
        "per_class": {name: values.tolist() for name, values in scores.items()},
        "macro_avg": {name: float(scores[name].mean()) for name in ("precision", "recall", "f1")},
        "most_confused": [{"true": i, "predicted": j, "count": c} for i, j, c in most_confused(M)],
    }


def class_label(c: int, classes: Sequence[str] | None) -> str:
    """Class c as a report or a picture names it: its number, and its name where ``classes``
    gives names (None: the number says it all, as MNIST's digits do)."""
    return str(c) if classes is None else f"{c} {classes[c]}"


def format_report(r: dict[str, Any], title: str, classes: Sequence[str] | None = None) -> str:
    """The report as text: the numbers, the matrix (rows true, columns predicted), the table.
    ``classes``, the class names (None: the numbers say it all, as MNIST's digits do), are
    written beside the numbers in the table and the most confused pairs."""
    M = np.array(r["confusion_matrix"])
    per = r["per_class"]

    lines = [
        f"{title}: {r['examples']} examples, loss {r['loss']:.6f}, accuracy {r['accuracy']:.4f}",
        "",
        "confusion matrix (rows: true class, columns: predicted)",
        "      " + "".join(f"{j:>6d}" for j in range(len(M))),
    ]
    lines += [f"{i:>6d}" + "".join(f"{c:>6d}" for c in row) for i, row in enumerate(M)]
    lines += ["", "class  precision  recall      f1  support" + ("  name" if classes else "")]
    lines += [
        f"{c:>5d}  {per['precision'][c]:9.4f}  {per['recall'][c]:6.4f}  {per['f1'][c]:6.4f}  "
        f"{per['support'][c]:7d}" + (f"  {classes[c]}" if classes else "")
        for c in range(len(M))
    ]
    avg = r["macro_avg"]
    pairs = [
        f"{class_label(p['true'], classes)} as {class_label(p['predicted'], classes)} "
        f"({p['count']})"
        for p in r["most_confused"]
    ]
    lines += [
        f"macro  {avg['precision']:9.4f}  {avg['recall']:6.4f}  {avg['f1']:6.4f}  "
        f"{r['examples']:7d}",
        "",
        "most confused: " + ", ".join(pairs),
    ]
    return "\n".join(lines)
