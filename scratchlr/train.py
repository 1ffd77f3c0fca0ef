"""The seed's training loop: zero init, SGD on mini-batches, the seed's log lines.

Batches come from :mod:`scratchlr.batches`. Each step's logged loss and accuracy are of
that batch before its update, as in the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import model
from .backend import Backend
from .batches import BATCHINGS, Ranges, batch_ranges, take
from .fast import FastStep
from .mnist import MNIST, Split

DTYPES = ("float32", "float64")
STEPS = ("fast", "reference")


@dataclass(frozen=True)
class Config:
    """The seed's hyper-parameters (its defaults) and how batches are drawn."""

    learning_rate: float = 0.1
    batch_size: int = 128
    num_steps: int = 1000
    display_step: int = 100
    batching: str = "repeat"
    dtype: str = "float32"
    step: str = "fast"

    def __post_init__(self) -> None:
        for name in ("learning_rate", "batch_size", "num_steps", "display_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, got {self.batching!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}, got {self.step!r}")


@dataclass
class Result:
    """What a run produced: parameters (host arrays), test accuracy, the printed lines,
    and wall-clock seconds per phase."""

    W: np.ndarray
    b: np.ndarray
    test_accuracy: float
    lines: list[str] = field(default_factory=list)
    train_seconds: float = 0.0
    test_seconds: float = 0.0


def reference_step(images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, lr: float) -> tuple[Any, ...]:
    """One SGD step on the rows ``ranges``, written with the readable math of :mod:`scratchlr.model`.

    Returns (J, acc, W', b'): the batch's loss and accuracy before the update, and the
    updated parameters. One forward pass serves the loss, the accuracy and the gradient.
    """
    X = model.pixels(take(images, ranges), W.dtype)
    y = take(labels, ranges)
    z = model.logits(X, W, b)
    G = model.grad_logits(z, y)
    return (
        model.loss(z, y),
        model.accuracy(z, y),
        model.sgd(W, model.grad_W(X, G), lr),
        model.sgd(b, model.grad_b(G), lr),
    )


def test_accuracy(W: Any, b: Any, split: Split, backend: Backend, chunk: int = 2048) -> float:
    """The seed's ``accuracy_fn`` on a whole split, in chunks of rows to bound memory.

    Exact: the count of correct predictions is an integer, then count / N in float32.
    """
    xp = backend.xp
    correct = 0
    for lo in range(0, len(split.labels), chunk):
        X = model.pixels(xp.asarray(split.images[lo : lo + chunk]), W.dtype)
        y = xp.asarray(split.labels[lo : lo + chunk])
        correct += int((model.predictions(model.logits(X, W, b)) == y).sum())
    return float(np.float32(correct) / np.float32(len(split.labels)))


def format_loss_line(loss: float) -> str:
    """The seed's ``Initial loss= {:.9f}`` line."""
    return f"Initial loss= {loss:.9f}"


def format_step_line(step: int, loss: float, acc: float) -> str:
    """The seed's ``Step: 0100  loss= ...  accuracy= ...`` line."""
    return f"Step: {step:04d}  loss= {loss:.9f}  accuracy= {acc:.4f}"


def format_test_line(acc: float) -> str:
    """The seed's ``Testset Accuracy: ...`` line."""
    return f"Testset Accuracy: {acc:.4f}"


def train(
    data: MNIST,
    config: Config,
    backend: Backend,
    emit: Callable[[str], None] = print,
) -> Result:
    """Run the seed's loop on ``backend``; ``emit`` each log line as it is produced.

    The data is uploaded once, as uint8. Each step's loss and accuracy are added to sums
    kept on the device (the seed's ``average_loss`` and ``average_acc``), read back only
    at display steps, so a GPU run does not synchronise every step.
    """
    xp, dtype = backend.xp, np.dtype(config.dtype)
    images, labels = xp.asarray(data.train.images), xp.asarray(data.train.labels)
    model.check_labels(labels, 10)  # once, for the fast step, which does not check per batch
    W = xp.zeros((images.shape[1], 10), dtype=dtype)
    b = xp.zeros(10, dtype=dtype)
    step_fn = FastStep(xp, config.batch_size, images.shape[1], 10, dtype) if config.step == "fast" else reference_step
    loss_sum, acc_sum = xp.zeros((), dtype), xp.zeros((), xp.float32)  # the seed's average_loss, average_acc
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        emit(line)

    start = time.perf_counter()
    batches = batch_ranges(len(data.train.labels), config.batch_size, config.num_steps, config.batching)
    for step, ranges in enumerate(batches):
        J, acc, W, b = step_fn(images, labels, ranges, W, b, config.learning_rate)
        loss_sum, acc_sum = loss_sum + J, acc_sum + acc  # new sums, not +=: NumPy adds scalars faster
        if (step + 1) % config.display_step == 0 or step == 0:
            if step == 0:
                say(format_loss_line(float(backend.to_numpy(loss_sum))))
            else:
                loss_sum /= dtype.type(config.display_step)
                acc_sum /= np.float32(config.display_step)
            say(format_step_line(step + 1, float(backend.to_numpy(loss_sum)), float(backend.to_numpy(acc_sum))))
            loss_sum, acc_sum = xp.zeros((), dtype), xp.zeros((), xp.float32)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    acc = test_accuracy(W, b, data.test, backend)
    say(format_test_line(acc))
    return Result(backend.to_numpy(W), backend.to_numpy(b), acc, lines, train_seconds, time.perf_counter() - start)
