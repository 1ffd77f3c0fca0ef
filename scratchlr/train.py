"""The training loop: zero init, SGD on mini-batches, the seed's log lines, and the options
that train to convergence (epochs, shuffling, the optimiser's options, validation, history).

:func:`train` reads top to bottom. Batches come from :mod:`scratchlr.dataset.batches`; each
step's loss, accuracy and gradients from :mod:`scratchlr.step` (the readable step or its
in-place twin); the update from :class:`scratchlr.optim.SGD`. Each step's logged loss and
accuracy are of that batch before its update, as in the seed, and are added to two
:class:`Meter` s kept on the device (read back only when shown, so a GPU run does not wait
every step):
- the seed's running averages, printed at step 1 and every display step;
- the history's, recorded at each display step, each epoch's end and the last step. With
  ``validate``, a record has the validation loss and accuracy (with epochs, only at each
  epoch's end and the last step), which :class:`EarlyStopping` judges.
A ``stop()`` that says True (the command line's first Ctrl-C) makes the step just taken the
last: it is recorded and validated, and the run ends as at its end. The parameters returned
and tested are the best ones with early stopping, else the averaged ones with averaging,
else the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import model, optim
from .backend import Backend, namespace_of
from .config import Config
from .dataset.batches import batches
from .dataset.splits import Split, Splits
from .files.history import Record
from .step import FastGradients, reference_gradients

__all__ = ["Config", "Record", "Result", "evaluate", "train"]
# Until make_step and make_optimizer read data.dataset.num_classes (the lead's, issue 27):
CLASSES = 10


@dataclass
class Result:
    """What a run produced: parameters (host arrays: the averaged or best ones where the run
    averaged or stopped early), test accuracy and loss (nan if the data has no test split),
    the printed lines, the history, the steps run, wall-clock seconds per phase, and whether
    ``stop()`` ended it."""

    W: np.ndarray
    b: np.ndarray
    test_accuracy: float
    test_loss: float = 0.0
    lines: list[str] = field(default_factory=list)
    history: list[Record] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    test_seconds: float = 0.0
    interrupted: bool = False


class Meter:
    """Running sums of the batches' loss and accuracy, kept on the device in ``dtypes``
    (loss, accuracy) and read back only when asked, so a GPU run does not wait every step."""

    def __init__(self, xp: Any, dtypes: tuple[Any, Any]) -> None:
        self.xp, self.dtypes = xp, tuple(np.dtype(d) for d in dtypes)
        self.reset()

    def reset(self) -> None:
        """Back to no batches."""
        self.loss, self.acc, self.count = (
            self.xp.zeros((), self.dtypes[0]),
            self.xp.zeros((), self.dtypes[1]),
            0,
        )

    def add(self, J: Any, acc: Any) -> None:
        """Add one batch's J and acc (device scalars)."""
        self.loss, self.acc, self.count = (
            self.loss + J,
            self.acc + acc,
            self.count + 1,
        )  # new sums: faster than +=

    def read(self, backend: Backend, divisor: int | None = None) -> tuple[float, float]:
        """(loss, accuracy): the sums divided, each in its dtype, by ``divisor`` (default: the
        number of batches added), as host floats; then :meth:`reset`."""
        k = divisor or self.count
        loss, acc = (
            float(backend.to_numpy(s / d.type(k)))
            for s, d in zip((self.loss, self.acc), self.dtypes)
        )
        self.reset()
        return loss, acc


class EarlyStopping:
    """Stop after ``patience`` validations without a better accuracy, and keep a copy of the
    best parameters (Keras's ``EarlyStopping(restore_best_weights=True)``). With ``patience``
    None it never stops and keeps nothing."""

    def __init__(self, patience: int | None) -> None:
        self.patience, self.waited, self.best_step, self.best_accuracy = patience, 0, 0, -math.inf
        self.best_params: list[Any] = []

    def stops(self, record: Record, params: list[Any]) -> bool:
        """Judge the record's validation accuracy (of ``params``), if it has one: True when it
        is time to stop."""
        if self.patience is None or record.val_accuracy is None:
            return False
        if record.val_accuracy > self.best_accuracy:
            self.best_step, self.best_accuracy, self.waited = record.step, record.val_accuracy, 0
            self.best_params = [namespace_of(p).array(p, copy=True) for p in params]
        else:
            self.waited += 1
        return self.waited >= self.patience

    def message(self) -> str:
        """Why the run stopped, and what it keeps."""
        return (
            f"no better validation accuracy in {self.waited} evaluations; keeping step {self.best_step:04d} "
            f"(validation accuracy {self.best_accuracy:.4f})"
        )


def predict_split(
    W: Any, b: Any, split: Split, backend: Backend, chunk: int = 2048
) -> tuple[Any, float]:
    """(yhat (N,) on the backend's device, mean cross-entropy) of W, b on a split, in chunks
    of rows to bound memory; the loss is summed in float64."""
    xp, preds, total = backend.xp, [], 0.0
    for lo in range(0, len(split.labels), chunk):
        z = model.logits(model.pixels(xp.asarray(split.images[lo : lo + chunk]), W.dtype), W, b)
        preds.append(model.predictions(z))
        total += float(
            model.cross_entropy(z, xp.asarray(split.labels[lo : lo + chunk])).sum(dtype=xp.float64)
        )
    return xp.concatenate(preds), total / len(split.labels)


def evaluate(W: Any, b: Any, split: Split, backend: Backend) -> tuple[float, float]:
    """(loss, accuracy) of W, b on a whole split. The accuracy is the seed's ``accuracy_fn``,
    exactly: the count of correct predictions, an integer, then count / N in float32."""
    yhat, loss = predict_split(W, b, split, backend)
    correct = int((yhat == backend.xp.asarray(split.labels)).sum())
    return loss, float(np.float32(correct) / np.float32(len(split.labels)))


def test_scores(W: Any, b: Any, split: Split, backend: Backend, log: Log) -> tuple[float, float]:
    """(loss, accuracy) of W, b on the test split, and the seed's ``Testset Accuracy`` line;
    (nan, nan) and no line if the split has no rows (the data was loaded without it)."""
    if not len(split.labels):
        return math.nan, math.nan
    loss, acc = evaluate(W, b, split, backend)
    log.say(f"Testset Accuracy: {acc:.4f}")
    return loss, acc


def validation_scores(
    wanted: bool, params: list[Any], split: Split, backend: Backend
) -> tuple[Any, Any]:
    """(loss, accuracy) of ``params`` = [W, b] on the validation split if ``wanted``, else (None, None)."""
    if not wanted:
        return None, None
    W, b = params
    return evaluate(W, b, split, backend)


def step_lines(t: int, loss: float, acc: float) -> list[str]:
    """The seed's lines at step t: ``Initial loss= ...`` first, then ``Step: 0100  loss= ...  accuracy= ...``."""
    return ([f"Initial loss= {loss:.9f}"] if t == 1 else []) + [
        f"Step: {t:04d}  loss= {loss:.9f}  accuracy= {acc:.4f}"
    ]


def validation_line(record: Record, per_epoch: bool) -> str:
    """``Validation: step 0100  loss= ...  accuracy= ...`` (``epoch 3`` with epochs)."""
    at = f"epoch {record.epoch:g}" if per_epoch else f"step {record.step:04d}"
    return f"Validation: {at}  loss= {record.val_loss:.9f}  accuracy= {record.val_accuracy:.4f}"


class Log(list):
    """The lines a run prints, kept in order as each is handed to ``emit``."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self.emit = emit

    def say(self, *lines: str) -> None:
        """Keep and emit each line."""
        for line in lines:
            self.append(line)
            self.emit(line)


class Ticks:
    """A progress bar, ``progress(total)`` if given (it has ``update(n)`` and ``close()``),
    moved every 1 % of the steps."""

    def __init__(self, progress: Callable[[int], Any] | None, total: int) -> None:
        self.bar, self.every = progress(total) if progress else None, max(1, total // 100)

    def update(self, t: int) -> None:
        """Step t is done."""
        if self.bar is not None and t % self.every == 0:
            self.bar.update(self.every)

    def close(self) -> None:
        """The run is over."""
        if self.bar is not None:
            self.bar.close()


def upload(data: Splits, config: Config, backend: Backend) -> tuple[Any, Any]:
    """The training images (uint8) and labels on the backend's device, sent once. The labels
    are checked once (against the data set's classes), for the fast step, which does not check
    them per batch, and the config against this data (Config checked it against its data
    set's whole split)."""
    images = backend.xp.asarray(data.train.images)
    labels = backend.xp.asarray(data.train.labels)
    model.check_labels(labels, data.dataset.num_classes)
    config.check_run(len(labels), len(data.validation.labels))
    return images, labels


def make_step(config: Config, images: Any) -> Callable[..., tuple[Any, ...]]:
    """The step's gradients, ``gradients(images, labels, ranges, W, b)``: in place or readable."""
    xp = namespace_of(images)
    return (
        FastGradients(xp, config.batch_size, images.shape[1], CLASSES, config.dtype)
        if config.step == "fast"
        else reference_gradients
    )


def make_optimizer(config: Config, images: Any) -> optim.SGD:
    """SGD on W (D, C) and b (C,), both zero at first; W is decayed, b is not."""
    xp, dim = namespace_of(images), images.shape[1]
    W, b = xp.zeros((dim, CLASSES), config.dtype), xp.zeros(CLASSES, config.dtype)
    return optim.SGD(
        [W, b],
        [config.weight_decay, 0.0],
        config.momentum,
        config.nesterov,
        config.average,
        in_place=config.step == "fast",
    )


def train(
    data: Splits,
    config: Config,
    backend: Backend,
    emit: Callable[[str], None] = print,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Result:
    """Train on ``backend`` as ``config`` says, ``emit``-ting each log line as it is made (what happens
    when: the module's docstring). ``progress(total)`` makes a bar. ``stop()``, asked after each step,
    ends the run there when it says True (a Ctrl-C), and the run finishes as at its end."""
    xp, n, log, history, t, last = backend.xp, len(data.train.labels), Log(emit), [], 0, False
    images, labels = upload(data, config, backend)
    total, gradients, optimizer = (
        config.total_steps(n),
        make_step(config, images),
        make_optimizer(config, images),
    )
    steps = batches(
        images, labels, config.batch_size, total, config.batches, config.shuffle, config.seed or 0
    )
    shown, recorded = (
        Meter(xp, (config.dtype, "float32")),
        Meter(xp, ("float64", "float64")),
    )  # seed's; history's
    stopper, ticks, start = (
        EarlyStopping(config.early_stopping),
        Ticks(progress, total),
        time.perf_counter(),
    )
    for t, (X_u8, y, ranges) in enumerate(steps, start=1):  # t: the steps done
        lr = config.learning_rate_at(
            t - 1, total
        )  # the schedule's lr_t, of the step counted from 0
        J, acc, grad_W, grad_b = gradients(
            X_u8, y, ranges, *optimizer.params
        )  # forward and backward pass
        optimizer.step([grad_W, grad_b], lr)  # theta <- theta - lr_t d, for W and b
        shown.add(J, acc)
        recorded.add(J, acc)
        ticks.update(t)
        last = stop is not None and stop()  # asked to stop (Ctrl-C): this step is the run's last
        if config.displays_at(t):
            log.say(*step_lines(t, *shown.read(backend, 1 if t == 1 else config.display_step)))
        if config.records_at(t, n) or last:
            scores = validation_scores(
                config.validates_at(t, n, last), optimizer.final_params(), data.validation, backend
            )
            history.append(
                Record(
                    t,
                    round(config.epochs_done(t, n), 4),
                    *recorded.read(backend),
                    *scores,
                    lr,
                    time.perf_counter() - start,
                )
            )
            if history[-1].val_accuracy is not None:
                log.say(validation_line(history[-1], bool(config.epochs)))
            if stopper.stops(history[-1], optimizer.final_params()):
                log.say(f"Early stopping at step {t:04d}: {stopper.message()}")
                break
        if last:
            break
    train_seconds, test_start = time.perf_counter() - start, time.perf_counter()
    ticks.close()
    W, b = stopper.best_params or optimizer.final_params()
    test_loss, test_acc = test_scores(W, b, data.test, backend, log)
    return Result(
        backend.to_numpy(W),
        backend.to_numpy(b),
        test_acc,
        test_loss,
        list(log),
        history,
        t,
        train_seconds,
        time.perf_counter() - test_start,
        last,
    )
