"""How a model does on a whole split: its predictions, its mean loss and its accuracy.

The training loop validates and tests with these, and ``scratchlr evaluate``'s report is
built on them, so a score means the same everywhere. The accuracy is the seed's
``accuracy_fn``: the count of correct predictions (an exact integer), then count / N in
float32, as ``tf.reduce_mean`` of the cast hits gives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import model
from .backend import Backend
from .dataset.splits import Split

CHUNK = 2048  # rows per forward pass, to bound memory


def predict_split(
    W: Any, b: Any, split: Split, backend: Backend, chunk: int = CHUNK
) -> tuple[Any, float]:
    """(yhat (N,) on the backend's device, mean cross-entropy) of W, b on a split, chunk by
    chunk; the loss is summed in float64."""
    xp = backend.xp
    images = split.images
    labels = split.labels
    predictions = []
    total = 0.0
    for lo in range(0, len(labels), chunk):
        X = model.pixels(xp.asarray(images[lo : lo + chunk]), W.dtype)
        z = model.logits(X, W, b)
        predictions.append(model.predictions(z))
        losses = model.cross_entropy(z, xp.asarray(labels[lo : lo + chunk]))
        total += float(losses.sum(dtype=xp.float64))
    return xp.concatenate(predictions), total / len(labels)


def accuracy(correct: int, n: int) -> float:
    """acc = correct / N, divided in float32 as the seed's ``accuracy_fn`` does."""
    return float(np.float32(correct) / np.float32(n))


def evaluate(W: Any, b: Any, split: Split, backend: Backend) -> tuple[float, float]:
    """(loss, accuracy) of W, b on a whole split."""
    yhat, loss = predict_split(W, b, split, backend)
    correct = int((yhat == backend.xp.asarray(split.labels)).sum())
    return loss, accuracy(correct, len(split.labels))
