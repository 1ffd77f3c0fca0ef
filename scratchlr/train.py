"""The training loop: zero init, SGD on mini-batches, the seed's log lines, and the options
that train to convergence (epochs, shuffling, the optimiser's options, validation, history).

Batches come from :mod:`scratchlr.batches`, each step's loss, accuracy and gradients from
:func:`reference_gradients` or its in-place twin :class:`scratchlr.fast.FastGradients`, the
update from :mod:`scratchlr.optim`. Each step's logged loss and accuracy are of that batch
before its update, as in the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from . import model, optim
from .backend import Backend
from .config import Config
from .dataset.batches import Ranges, batch_ranges, shuffled_batches, take
from .dataset.mnist import MNIST, Split
from .files.history import Record
from .reports.evaluate import predict_split
from .step import FastGradients

__all__ = ["Config", "Record", "Result", "evaluate", "reference_gradients", "train"]


@dataclass
class Result:
    """What a run produced: parameters (host arrays: the averaged or best ones where the run
    averaged or stopped early), test accuracy and loss, the printed lines, the history, the
    steps run, and wall-clock seconds per phase."""

    W: np.ndarray
    b: np.ndarray
    test_accuracy: float
    test_loss: float = 0.0
    lines: list[str] = field(default_factory=list)
    history: list[Record] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    test_seconds: float = 0.0


class Best(NamedTuple):
    """The best validation accuracy so far, its step, and copies of its parameters."""

    accuracy: float
    step: int
    W: Any
    b: Any


def reference_gradients(images: Any, labels: Any, ranges: Ranges, W: Any, b: Any) -> tuple[Any, ...]:
    """The batch's loss, accuracy and gradients, in the readable math of :mod:`scratchlr.model`.

    Returns (J, acc, dJ/dW, dJ/db) on the rows ``ranges`` at W (D, C), b (C,). One forward
    pass serves the loss, the accuracy and the gradient.
    """
    X = model.pixels(take(images, ranges), W.dtype)
    y = take(labels, ranges)
    z = model.logits(X, W, b)
    G = model.grad_logits(z, y)
    return model.loss(z, y), model.accuracy(z, y), model.grad_W(X, G), model.grad_b(G)


def evaluate(W: Any, b: Any, split: Split, backend: Backend, chunk: int = 2048) -> tuple[float, float]:
    """(loss, accuracy) of W, b on a whole split, in chunks of rows to bound memory.

    The predictions and the loss are :func:`scratchlr.evaluate.predict_split`'s. The
    accuracy is the seed's ``accuracy_fn``, exactly: the count of correct predictions, an
    integer, then count / N in float32.
    """
    yhat, loss = predict_split(W, b, split, backend, chunk)
    correct = int((yhat == backend.xp.asarray(split.labels)).sum())
    return loss, float(np.float32(correct) / np.float32(len(split.labels)))


def format_loss_line(loss: float) -> str:
    """The seed's ``Initial loss= {:.9f}`` line."""
    return f"Initial loss= {loss:.9f}"


def format_step_line(step: int, loss: float, acc: float) -> str:
    """The seed's ``Step: 0100  loss= ...  accuracy= ...`` line."""
    return f"Step: {step:04d}  loss= {loss:.9f}  accuracy= {acc:.4f}"


def format_validation_line(record: Record, per_epoch: bool) -> str:
    """``Validation: step 0100  loss= ...  accuracy= ...`` (``epoch 3`` with epochs)."""
    at = f"epoch {record.epoch:g}" if per_epoch else f"step {record.step:04d}"
    return f"Validation: {at}  loss= {record.val_loss:.9f}  accuracy= {record.val_accuracy:.4f}"


def format_test_line(acc: float) -> str:
    """The seed's ``Testset Accuracy: ...`` line."""
    return f"Testset Accuracy: {acc:.4f}"


def train(
    data: MNIST,
    config: Config,
    backend: Backend,
    emit: Callable[[str], None] = print,
    progress: Callable[[int], Any] | None = None,
) -> Result:
    """Train on ``backend`` as ``config`` says; ``emit`` each log line as it is produced.

    Each step: the batch's loss, accuracy and gradients (either step), then the update of
    :func:`scratchlr.optim.sgd_step`, then the running mean of the iterates if averaging.
    The data is uploaded once, as uint8. Each step's loss and accuracy are added to sums
    kept on the device (the seed's ``average_loss`` and ``average_acc``, and the history's),
    read back only at display steps and records, so a GPU run does not synchronise every
    step. ``progress(total)``, if given, makes a progress bar (``update(n)``, ``close()``),
    moved every 1 % of steps. The parameters returned and tested are the best ones with
    early stopping, else the averaged ones with averaging, else the last.
    """
    xp, dtype = backend.xp, np.dtype(config.dtype)
    n = len(data.train.labels)
    config.check_data(n, len(data.validation.labels))
    images, labels = xp.asarray(data.train.images), xp.asarray(data.train.labels)
    model.check_labels(labels, 10)  # once, for the fast step, which does not check per batch
    total, per_epoch = config.total_steps(n), config.steps_per_epoch(n)
    in_place = config.step == "fast"
    gradients = FastGradients(xp, config.batch_size, images.shape[1], 10, dtype) if in_place else reference_gradients
    W, b = xp.zeros((images.shape[1], 10), dtype=dtype), xp.zeros(10, dtype=dtype)
    v_W, v_b = (xp.zeros_like(W), xp.zeros_like(b)) if config.momentum else (None, None)
    mean_W, mean_b, averaged = xp.zeros_like(W), xp.zeros_like(b), 0  # Polyak-Ruppert means
    best: Best | None = None  # for early stopping
    waited = 0
    loss_sum, acc_sum = xp.zeros((), dtype), xp.zeros((), xp.float32)  # the seed's average_loss, average_acc
    record_loss, record_acc, recorded = xp.zeros((), xp.float64), xp.zeros((), xp.float64), 0  # since the last record
    lines: list[str] = []
    history: list[Record] = []
    bar, every = (progress(total) if progress else None), max(1, total // 100)

    def say(line: str) -> None:
        lines.append(line)
        emit(line)

    def params() -> tuple[Any, Any]:
        return (mean_W, mean_b) if averaged else (W, b)

    start = time.perf_counter()
    batches = batch_ranges(n, config.batch_size, total, config.batching)
    steps = (shuffled_batches(images, labels, batches, np.random.default_rng(config.seed or 0)) if config.shuffle
             else ((images, labels, ranges) for ranges in batches))
    step = -1
    for step, (X_u8, y, ranges) in enumerate(steps):
        lr = config.learning_rate_at(step, total)  # the schedule's lr_t
        J, acc, grad_W, grad_b = gradients(X_u8, y, ranges, W, b)  # forward and backward pass, before the update
        W, v_W = optim.sgd_step(W, grad_W, v_W, lr, config.momentum, config.nesterov, config.weight_decay, in_place)
        b, v_b = optim.sgd_step(b, grad_b, v_b, lr, config.momentum, config.nesterov, 0.0, in_place)  # b: no decay
        if config.average is not None and step >= config.average:
            averaged += 1
            mean_W = optim.polyak_average(mean_W, W, averaged, out=mean_W if in_place else None)
            mean_b = optim.polyak_average(mean_b, b, averaged, out=mean_b if in_place else None)
        loss_sum, acc_sum = loss_sum + J, acc_sum + acc  # new sums, not +=: NumPy adds scalars faster
        record_loss, record_acc = record_loss + J, record_acc + acc
        if bar is not None and (step + 1) % every == 0:
            bar.update(every)

        shown = (step + 1) % config.display_step == 0 or step == 0
        if shown:
            if step == 0:
                say(format_loss_line(float(backend.to_numpy(loss_sum))))
            else:
                loss_sum /= dtype.type(config.display_step)
                acc_sum /= np.float32(config.display_step)
            say(format_step_line(step + 1, float(backend.to_numpy(loss_sum)), float(backend.to_numpy(acc_sum))))
            loss_sum, acc_sum = xp.zeros((), dtype), xp.zeros((), xp.float32)

        # A record (and a validation) at each epoch's end with epochs, else at each display
        # step; and at the last step, so that no trained step goes unseen.
        recorded += 1
        record_now = (step + 1) % per_epoch == 0 if config.epochs else shown or step + 1 == total
        if not record_now:
            continue
        val_loss, val_acc = evaluate(*params(), data.validation, backend) if config.validate else (None, None)
        record = Record(step + 1, round(config.epochs_done(step + 1, n), 4),
                        float(backend.to_numpy(record_loss)) / recorded, float(backend.to_numpy(record_acc)) / recorded,
                        val_loss, val_acc, lr, time.perf_counter() - start)
        history.append(record)
        record_loss, record_acc, recorded = xp.zeros((), xp.float64), xp.zeros((), xp.float64), 0
        if config.validate:
            say(format_validation_line(record, bool(config.epochs)))
        if config.early_stopping is not None:
            if best is None or val_acc > best.accuracy:
                best, waited = Best(val_acc, step + 1, *(xp.array(p, copy=True) for p in params())), 0
            else:
                waited += 1
            if waited >= config.early_stopping:
                say(f"Early stopping at step {step + 1:04d}: no better validation accuracy in {waited} "
                    f"evaluations; keeping step {best.step:04d} (validation accuracy {best.accuracy:.4f})")
                break
    train_seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()

    final_W, final_b = (best.W, best.b) if best is not None else params()
    start = time.perf_counter()
    test_loss, acc = evaluate(final_W, final_b, data.test, backend)
    say(format_test_line(acc))
    return Result(backend.to_numpy(final_W), backend.to_numpy(final_b), acc, test_loss, lines, history, step + 1,
                  train_seconds, time.perf_counter() - start)
