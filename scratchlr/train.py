"""The training loop: zero init, an optimiser on mini-batches, the seed's log lines, and the
options that train to convergence (epochs, shuffling, the optimiser's options, validation,
history).

:func:`train` reads top to bottom. Batches come from :mod:`scratchlr.dataset.batches`; each
step's loss, accuracy and gradients from :mod:`scratchlr.gradients` (the readable form or
its in-place twin); the update from the optimiser the config names
(:data:`scratchlr.optim.OPTIMIZERS`), averaged with ``--average``. Each step's logged loss
and accuracy are of that batch before its update, as in the seed, and are added to two
:class:`Meter` s kept on the device (read back only when shown, so a GPU run does not wait
every step):
- the seed's running averages, printed at step 1 and every display step;
- the history's, recorded at each display step, each epoch's end and the last step. With
  ``validate``, a record has the validation loss and accuracy (with epochs, only at each
  epoch's end and the last step), which :class:`EarlyStopping` judges.
A ``stop()`` that says True (the command line's first Ctrl-C) makes the step just taken the
last: it is recorded and validated, and the run ends as at its end. A ``watch`` (the demo
page's runs) sees each step's end, and may pause there or end the run as a Ctrl-C would.
The parameters returned and tested are the best ones with early stopping, else the averaged
ones with averaging, else the last.

With a full-batch solver (``--optimizer gd|lbfgs|newton-cg``, :data:`scratchlr.optim.SOLVERS`),
:func:`train` hands the run to :func:`solve`: the solver minimises the whole training split's
objective from zero weights, and each iteration is logged, recorded (and validated) as it comes.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import model
from .backend import Backend, namespace_of
from .config import Config
from .dataset.batches import batches
from .dataset.splits import Split, Splits
from .evaluation import evaluate
from .files.history import Record
from .gradients import BatchGradients, FastGradients, reference_gradients
from .objective import Objective
from .optim import OPTIMIZERS, SOLVERS, Averaged, Iterate, Optimizer, Solver

__all__ = ["Config", "Record", "Result", "train"]

FLOAT32_TOL = 1e-5  # below it, float32 runs stall or crawl (optim/solver.py's docstring)


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
        self.xp = xp
        self.loss_dtype = np.dtype(dtypes[0])
        self.accuracy_dtype = np.dtype(dtypes[1])
        self.reset()

    def reset(self) -> None:
        """Back to no batches."""
        self.loss = self.xp.zeros((), self.loss_dtype)
        self.acc = self.xp.zeros((), self.accuracy_dtype)
        self.count = 0

    def add(self, J: Any, acc: Any) -> None:
        """Add one batch's J and acc (device scalars), as new sums (faster than +=)."""
        self.loss = self.loss + J
        self.acc = self.acc + acc
        self.count += 1

    def read(self, backend: Backend, divisor: int | None = None) -> tuple[float, float]:
        """(loss, accuracy): the sums divided, each in its dtype, by ``divisor`` (default: the
        number of batches added), as host floats; then :meth:`reset`."""
        k = divisor or self.count
        loss = float(backend.to_numpy(self.loss / self.loss_dtype.type(k)))
        acc = float(backend.to_numpy(self.acc / self.accuracy_dtype.type(k)))
        self.reset()
        return loss, acc


class EarlyStopping:
    """Stop after ``patience`` validations without a better accuracy, and keep a copy of the
    best parameters (Keras's ``EarlyStopping(restore_best_weights=True)``). With ``patience``
    None it never stops and keeps nothing."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.waited = 0  # validations since the best
        self.best_step = 0
        self.best_accuracy = -math.inf
        self.best_params: list[Any] = []

    def stops(self, record: Record, params: list[Any]) -> bool:
        """Judge the record's validation accuracy (of ``params``), if it has one: True when it
        is time to stop."""
        if self.patience is None or record.val_accuracy is None:
            return False
        if record.val_accuracy > self.best_accuracy:
            self.best_step = record.step
            self.best_accuracy = record.val_accuracy
            self.waited = 0
            self.best_params = [namespace_of(p).array(p, copy=True) for p in params]
        else:
            self.waited += 1
        return self.waited >= self.patience

    def message(self) -> str:
        """Why the run stopped, and what it keeps."""
        return (
            f"no better validation accuracy in {self.waited} evaluations; "
            f"keeping step {self.best_step:04d} (validation accuracy {self.best_accuracy:.4f})"
        )


def test_scores(W: Any, b: Any, split: Split, backend: Backend, log: Log) -> tuple[float, float]:
    """(loss, accuracy) of W, b on the test split, and the seed's ``Testset Accuracy`` line;
    (nan, nan) and no line if the split has no rows (the data was loaded without it)."""
    if not len(split.labels):
        return math.nan, math.nan
    loss, acc = evaluate(W, b, split, backend)
    log.say(f"Testset Accuracy: {acc:.4f}")
    return loss, acc


def step_lines(t: int, loss: float, acc: float) -> list[str]:
    """The seed's lines at step t: ``Initial loss= ...`` first, then
    ``Step: 0100  loss= ...  accuracy= ...``."""
    step = f"Step: {t:04d}  loss= {loss:.9f}  accuracy= {acc:.4f}"
    if t == 1:
        return [f"Initial loss= {loss:.9f}", step]
    return [step]


def validation_line(record: Record, per_epoch: bool, unit: str = "step") -> str:
    """``Validation: step 0100  loss= ...  accuracy= ...`` (``epoch 3`` with epochs,
    ``iteration 0003`` with a solver's ``unit``)."""
    at = f"epoch {record.epoch:g}" if per_epoch else f"{unit} {record.step:04d}"
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


def gradient_function(
    config: Config, images: Any, num_classes: int
) -> Callable[..., BatchGradients]:
    """The function that gives each step's loss, accuracy and gradients,
    ``gradients(images, labels, ranges, W, b)``: in place (its buffers, and lambda, fixed when
    it is made), or the readable form with lambda bound. lambda is the objective's
    (``config.penalty``: none where the optimiser decouples the decay)."""
    if config.implementation == "fast":
        xp = namespace_of(images)
        dim = images.shape[1]
        return FastGradients(xp, config.batch_size, dim, num_classes, config.dtype, config.penalty)
    return functools.partial(reference_gradients, weight_decay=config.penalty)


def make_optimizer(config: Config, images: Any, num_classes: int) -> Optimizer | Averaged:
    """The config's optimiser over W (D, C) and b (C,), both zero at first, averaged after
    ``config.average`` steps where that is set."""
    xp = namespace_of(images)
    W = xp.zeros((images.shape[1], num_classes), config.dtype)
    b = xp.zeros(num_classes, config.dtype)
    member = OPTIMIZERS[config.optimizer]
    optimizer = member.from_config([W, b], config, in_place=config.implementation == "fast")
    if config.average is None:
        return optimizer
    return Averaged(optimizer, config.average)


def history_record(
    t: int,
    lr: float,
    training: tuple[float, float],
    validated: bool,
    params: list[Any],
    data: Splits,
    config: Config,
    backend: Backend,
    start: float,
) -> Record:
    """The history's record after step t: the ``training`` batches' mean loss and accuracy
    since the last one, and, where it is ``validated``, the validation loss and accuracy of
    ``params``; its seconds count from ``start`` to the record's end."""
    val_loss = None
    val_accuracy = None
    if validated:
        W, b = params
        val_loss, val_accuracy = evaluate(W, b, data.validation, backend)
    epoch = round(config.epochs_done(t, len(data.train.labels)), 4)
    seconds = time.perf_counter() - start
    loss, accuracy = training
    return Record(t, epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds)


def train(
    data: Splits,
    config: Config,
    backend: Backend,
    emit: Callable[[str], None] = print,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
    watch: Callable[[int, float, list[Any], Record | None], bool] | None = None,
) -> Result:
    """Train on ``backend`` as ``config`` says, ``emit``-ting each log line as it is made
    (what happens when: the module's docstring). ``progress(total)`` makes a bar, moved one
    step at a time. ``stop()``, asked after each step, ends the run there when it says True
    (a Ctrl-C), and the run finishes as at its end. ``watch(t, lr, params, record)`` is
    called at the end of each step t (mini-batch runs only), after its log lines and its
    history record (``record``, None if the step made none); ``params`` are the optimiser's
    final parameters, live (copy to keep). It may block; if it says True the run ends there
    as after a Ctrl-C (though step t's record, made before, was not validated as a last
    one's). A full-batch solver's run: :func:`solve`."""
    if config.solves:
        return solve(data, config, backend, emit, progress, stop)
    n = len(data.train.labels)
    log = Log(emit)
    history: list[Record] = []
    images, labels = upload(data, config, backend)
    total = config.total_steps(n)
    num_classes = data.dataset.num_classes
    gradients = gradient_function(config, images, num_classes)
    optimizer = make_optimizer(config, images, num_classes)
    shuffle_seed = config.seed or 0
    steps = batches(
        images, labels, config.batch_size, total, config.batches, config.shuffle, shuffle_seed
    )
    shown = Meter(backend.xp, (config.dtype, "float32"))  # the seed's running means
    recorded = Meter(backend.xp, ("float64", "float64"))  # the history's
    stopper = EarlyStopping(config.early_stopping)
    bar = progress(total) if progress else None
    t = 0  # the steps done
    last = False  # whether step t is the run's last
    start = time.perf_counter()
    for t, (X_u8, y, ranges) in enumerate(steps, start=1):
        lr = config.learning_rate_at(t - 1, total)  # the schedule's lr_t, of the step from 0
        batch = gradients(X_u8, y, ranges, *optimizer.params)  # forward and backward pass
        optimizer.step([batch.grad_W, batch.grad_b], lr)  # one update of W and b
        shown.add(batch.loss, batch.accuracy)
        recorded.add(batch.loss, batch.accuracy)
        if bar is not None:
            bar.update(1)
        last = stop is not None and stop()  # asked to stop (Ctrl-C): this step is the last
        if config.displays_at(t):
            divisor = 1 if t == 1 else config.display_step
            log.say(*step_lines(t, *shown.read(backend, divisor)))
        record = None  # step t's history record, if it makes one
        if config.records_at(t, n) or last:
            params = optimizer.final_params()
            record = history_record(
                t,
                lr,
                training=recorded.read(backend),
                validated=config.validates_at(t, n, last),
                params=params,
                data=data,
                config=config,
                backend=backend,
                start=start,
            )
            history.append(record)
            if record.val_accuracy is not None:
                log.say(validation_line(record, bool(config.epochs)))
            if stopper.stops(record, params):
                log.say(f"Early stopping at step {t:04d}: {stopper.message()}")
                break
        if last:
            break
        if watch is not None and watch(t, lr, optimizer.final_params(), record):
            last = True  # asked to end (the page's stop): this step is the last
            break
    train_seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    W, b = stopper.best_params or optimizer.final_params()
    return finish(W, b, data, backend, log, history, t, train_seconds, last)


def finish(
    W: Any,
    b: Any,
    data: Splits,
    backend: Backend,
    log: Log,
    history: list[Record],
    steps: int,
    train_seconds: float,
    interrupted: bool,
) -> Result:
    """A run's Result, with the parameters it keeps, (W, b), scored on the test split (and the
    seed's ``Testset Accuracy`` line said); the test's seconds count from here."""
    test_start = time.perf_counter()
    test_loss, test_accuracy = test_scores(W, b, data.test, backend, log)
    return Result(
        W=backend.to_numpy(W),
        b=backend.to_numpy(b),
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        lines=list(log),
        history=history,
        steps=steps,
        train_seconds=train_seconds,
        test_seconds=time.perf_counter() - test_start,
        interrupted=interrupted,
    )


# The full-batch solvers' loop.


def iteration_line(it: Iterate) -> str:
    """``Iteration: 0003  objective= ...  max|g|= ...  ||g||= ...  step= ...  accuracy= ...``:
    f (with the penalty), the stopping quantity max_i |g_i|, the gradient's norm ||g||_2, the
    line search's step t, and the training accuracy, after iteration k."""
    return (
        f"Iteration: {it.iteration:04d}  objective= {it.value:.9f}  max|g|= {it.grad_max:.1e}  "
        f"||g||= {it.grad_norm:.1e}  step= {it.step:.3f}  accuracy= {it.accuracy:.4f}"
    )


def iteration_record(
    it: Iterate, validated: bool, data: Splits, backend: Backend, start: float
) -> Record:
    """The history's record of iteration k: J and the training accuracy at the iterate, the
    step size t as its ``lr``, one epoch per iteration (each sees the whole split), and the
    validation loss and accuracy where ``validated``; seconds count from ``start``."""
    val_loss = None
    val_accuracy = None
    if validated:
        val_loss, val_accuracy = evaluate(it.W, it.b, data.validation, backend)
    seconds = time.perf_counter() - start
    k = it.iteration
    return Record(k, float(k), it.loss, it.accuracy, val_loss, val_accuracy, it.step, seconds)


def ending_line(solver: Solver, last: Iterate | None, config: Config, stopped: bool) -> str:
    """Why the run ended, in one line: the solver converged (max|g| <= tol), ran its
    iterations, was stopped (Ctrl-C), or says why it stopped (a line search that failed)."""
    k = last.iteration if last is not None else 0
    g = f"max|g| = {last.grad_max:.1e}" if last is not None else "max|g|"
    if stopped:
        return f"Stopped after {k} iterations (asked to stop): {g}"
    if solver.converged:
        return f"Converged after {k} iterations: {g} <= --tol {config.tol:g}"
    if k >= config.max_iter:
        return (
            f"Not converged: --max-iter {config.max_iter} reached with {g} > --tol {config.tol:g}"
            + float32_hint(config)
        )
    return f"Not converged after {k} iterations: {solver.message}" + float32_hint(config)


def float32_hint(config: Config) -> str:
    """What to try where a float32 run asked for a tol that float32 seldom reaches."""
    if config.dtype == "float32" and config.tol < FLOAT32_TOL:
        return f" (float32 seldom gets max|g| below {FLOAT32_TOL:g}: try --dtype float64)"
    return ""


def solve(
    data: Splits,
    config: Config,
    backend: Backend,
    emit: Callable[[str], None] = print,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Result:
    """Minimise f = J + (lambda/2) ||W||^2 over the whole training split with the config's
    full-batch solver, from zero weights, ``emit``-ting one line per iteration (and its
    validation line with ``validate``), then why it ended and the test line. ``progress``
    makes a bar of ``max_iter`` iterations; ``stop()``, asked after each iteration, ends the
    run there. The Result's ``steps`` are the iterations done."""
    log = Log(emit)
    history: list[Record] = []
    images, labels = upload(data, config, backend)
    xp = backend.xp
    X = model.pixels(images, config.dtype)
    objective = Objective(X, labels, config.weight_decay)
    solver = SOLVERS[config.optimizer].from_config(objective, config)
    W = xp.zeros((X.shape[1], data.dataset.num_classes), config.dtype)
    b = xp.zeros(data.dataset.num_classes, config.dtype)
    bar = progress(config.max_iter) if progress else None
    last: Iterate | None = None  # the last iterate
    stopped = False  # whether stop() ended the run
    start = time.perf_counter()
    for it in solver.iterations(W, b):
        last = it
        log.say(iteration_line(it))
        record = iteration_record(it, config.validates, data, backend, start)
        history.append(record)
        if record.val_accuracy is not None:
            log.say(validation_line(record, False, "iteration"))
        if bar is not None:
            bar.update(1)
        stopped = stop is not None and stop()
        if stopped:
            break
    train_seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    log.say(ending_line(solver, last, config, stopped))
    if last is None:  # the start met the tolerance: its record, for the search reads one
        history.append(start_record(W, b, data, config, backend))
        return finish(W, b, data, backend, log, history, 0, train_seconds, stopped)
    steps = last.iteration
    return finish(last.W, last.b, data, backend, log, history, steps, train_seconds, stopped)


def start_record(W: Any, b: Any, data: Splits, config: Config, backend: Backend) -> Record:
    """The history's record of iteration 0, the zero start (for a run with no iteration):
    J and accuracy of the training split, validated where the config says."""
    loss, accuracy = evaluate(W, b, data.train, backend)
    val_loss = None
    val_accuracy = None
    if config.validates:
        val_loss, val_accuracy = evaluate(W, b, data.validation, backend)
    return Record(0, 0.0, loss, accuracy, val_loss, val_accuracy, 0.0, 0.0)
