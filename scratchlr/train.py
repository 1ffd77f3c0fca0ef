"""The seed's training loop: zero init, SGD on mini-batches, the seed's log lines.

Batches come from :mod:`scratchlr.batches`. Each step's logged loss and accuracy are of
that batch before its update, as in the seed.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import model
from .backend import Backend
from .batches import BATCHINGS, Ranges, batch_ranges, take
from .fast import FastStep
from .helper import Helper, unusable
from .mnist import MNIST, Split
from .tally import LoggedSums

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
    helper: bool = True  # a helper process does half of each product, where one can

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
    helped: int | None = None  # steps a helper process did its half of in time (None: no helper)


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


class ReferenceStep:
    """:func:`reference_step`, with the same interface as :class:`scratchlr.fast.FastStep`:
    ``step(...)`` -> (W, b), and ``step.logged()`` -> the sums of the batches' losses
    and accuracies since its last call."""

    def __init__(self, xp: Any, dtype: Any) -> None:
        self.sums = LoggedSums(xp, dtype)

    def __call__(self, images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, lr: float) -> tuple[Any, Any]:
        """One :func:`reference_step`; its loss and accuracy go into the sums."""
        J, acc, W, b = reference_step(images, labels, ranges, W, b, lr)
        self.sums.add(J, acc)
        return W, b

    def logged(self) -> tuple[Any, Any]:
        """(sum of J, sum of acc) since the last call; see :class:`scratchlr.tally.LoggedSums`."""
        return self.sums.take()


def helped(step_fn: Any, images: Any, batches: Any, wanted: bool) -> AbstractContextManager:
    """The batches, with a helper process doing half of each step's products where one can
    (the fast step on NumPy with two cores: :func:`scratchlr.helper.unusable`; and a pixel
    split of its products, :meth:`FastStep.helper`), else as they are."""
    if wanted and isinstance(step_fn, FastStep) and unusable(step_fn.xp) is None:
        return step_fn.helper(images, batches)
    return nullcontext(batches)


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

    The data is uploaded once (uint8); each step adds its batch's loss and accuracy to
    sums kept on the device (:meth:`ReferenceStep.logged`, :meth:`FastStep.logged`), read
    back only at display steps, so a GPU run does not synchronise every step.
    """
    xp, dtype = backend.xp, np.dtype(config.dtype)
    images, labels = xp.asarray(data.train.images), xp.asarray(data.train.labels)
    W = xp.zeros((images.shape[1], 10), dtype=dtype)
    b = xp.zeros(10, dtype=dtype)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        emit(line)

    if config.step == "fast":
        step_fn: ReferenceStep | FastStep = FastStep(xp, config.batch_size, images.shape[1], 10, dtype)
    else:
        step_fn = ReferenceStep(xp, dtype)
    start = time.perf_counter()
    batches = batch_ranges(len(data.train.labels), config.batch_size, config.num_steps, config.batching)
    with helped(step_fn, images, batches, config.helper) as batches:
        helper = batches if isinstance(batches, Helper) else None
        for step, ranges in enumerate(batches):
            W, b = step_fn(images, labels, ranges, W, b, config.learning_rate)
            if (step + 1) % config.display_step == 0 or step == 0:
                loss_sum, acc_sum = step_fn.logged()  # the seed's average_loss, average_acc (summed)
                if step == 0:
                    say(format_loss_line(float(backend.to_numpy(loss_sum))))
                else:
                    loss_sum /= dtype.type(config.display_step)
                    acc_sum /= np.float32(config.display_step)
                say(format_step_line(step + 1, float(backend.to_numpy(loss_sum)), float(backend.to_numpy(acc_sum))))
    train_seconds = time.perf_counter() - start
    in_time = None if helper is None else helper.helped

    start = time.perf_counter()
    acc = test_accuracy(W, b, data.test, backend)
    say(format_test_line(acc))
    return Result(
        backend.to_numpy(W), backend.to_numpy(b), acc, lines, train_seconds, time.perf_counter() - start, in_time
    )
