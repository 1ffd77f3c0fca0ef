"""The demo page's runs: the engine's own :func:`scratchlr.train.train` in a daemon thread of
the server, watched, paced and ended through its ``watch`` hook.

A :class:`Run` is one training. After each step its watch hook
- copies the parameters (host NumPy arrays, 31 KB) into the snapshot ``(step, W, b)``,
  replaced whole, which predictions and downloads read (exactly the paused weights when
  paused);
- judges divergence: W, b not all finite ("the weights overflowed"), or a history record's
  mean training loss not finite or over 10 ln C, ten times that of the zero weights every run
  starts from. The one-line message names the step and compares the learning rate with the
  stable limit at zero weights (:mod:`scratchlr.optim.curvature`, computed once per penalty);
- paces: ``speed`` steps a second (0: as fast as it goes), paused (``step`` lets exactly one
  more go), or ends the run when asked to stop or past a limit.
The too-large preset (``--learning-rate 50``) is judged diverged at step 5 with a mean loss
of 183.5 (measured: :mod:`scratchlr.serve.settings`).

A run taken to its end gives the weights, lines and model file of ``python -m scratchlr``
with the same flags, bit for bit: the same :func:`~scratchlr.train.train` on the same data
and config, under the one-thread BLAS that ``scratchlr/__main__.py`` sets for every command,
``serve`` among them (with more BLAS threads the sums' order, and so the last bits, can
differ).

:class:`Runs` is the registry: it checks a run's settings, creates it (at most ``max_runs``
hold a slot at once: a run holds one from its creation until it ends), finds it by id, and
reaps: a run with no events stream open for ``left_s`` seconds is ended and forgotten (ended
runs stay readable until then); a paused run with no action for ``idle_s`` is ended; a run
may train ``max_seconds`` wall seconds and ``max_steps`` steps.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any, Callable

import numpy as np

from .. import model
from ..backend import numpy_backend
from ..config import Config
from ..dataset.splits import Splits
from ..evaluation import evaluate
from ..files import modelfile
from ..files.history import Record
from ..objective import Objective
from ..optim import curvature
from ..train import Result, train
from . import api, settings

MAX_STEPS = 200_000  # steps a page's run may have
MAX_SECONDS = 1800.0  # wall seconds a page's run may last
LEFT_S = 10.0  # seconds a run may go without an events stream before it is ended and forgotten
IDLE_S = 600.0  # seconds a paused run may go without an action before it is ended
ALIVE_S = 5.0  # seconds between an events stream's ``: alive`` comments
MAX_SPEED = 1000  # steps per second the page may ask for (0: as fast as it goes)
STOP_WAIT_S = 10.0  # seconds a stop request waits for its run to end (its test score is made)
ENDED = ("finished", "diverged", "stopped")
POWER_ITERATIONS = 20  # for lambda_max: on MNIST 3.905470, as 50 give (to 7 digits)
LOSS_GROWTH = 10.0  # a record's mean training loss over this times the start's: diverged


class Busy(RuntimeError):
    """Every slot of ``max_runs`` holds a run. One-line message."""


class Conflict(RuntimeError):
    """An action that makes no sense in the run's state. One-line message."""


def finite_or_none(x: float | None) -> float | None:
    """x as a float, or None where it is None, nan or infinite (JSON has no nan)."""
    return float(x) if x is not None and math.isfinite(x) else None


def record_json(record: Record) -> dict[str, Any]:
    """A history record as the frames send it."""
    return {
        "step": record.step,
        "epoch": record.epoch,
        "loss": finite_or_none(record.loss),
        "accuracy": finite_or_none(record.accuracy),
        "val_loss": finite_or_none(record.val_loss),
        "val_accuracy": finite_or_none(record.val_accuracy),
        "lr": finite_or_none(record.lr),
    }


def stable_limit(config: Config, lam_max: float) -> tuple[float, str]:
    """(the stable learning rate at curvature ``lam_max``, what it is, in words) for the
    config's optimiser where :mod:`scratchlr.optim.curvature` has its limit (sgd: plain, heavy
    ball, Nesterov), else plain gradient descent's, named as such."""
    mu = config.momentum
    if config.optimizer == "sgd" and mu and config.nesterov:
        rate = curvature.nesterov_stable_rate(lam_max, mu)
        formula = "2(1+mu)/((1+2mu)lambda_max)"
        return rate, f"of Nesterov's momentum {mu:g} at zero weights ({formula})"
    if config.optimizer == "sgd" and mu:
        rate = curvature.heavy_ball_stable_rate(lam_max, mu)
        return rate, f"of heavy ball with momentum {mu:g} at zero weights (2(1+mu)/lambda_max)"
    rate = curvature.gd_stable_rate(lam_max)
    if config.optimizer == "sgd":
        return rate, "of plain gradient descent at zero weights (2/lambda_max)"
    return (
        rate,
        f"of plain gradient descent at zero weights (2/lambda_max), not {config.optimizer}'s",
    )


class Run:
    """One training of ``config`` on ``data`` in a daemon thread (:meth:`start`), its state
    (``paused``, ``running``, ``finished``, ``diverged``, ``stopped``), its lines, records
    and snapshot, read by the server's threads under one lock (``changed``, notified at each
    change; ``version`` counts them)."""

    def __init__(
        self,
        config: Config,
        data: Splits,
        speed: float,
        paused: bool,
        lam_max: Callable[[Config], float],
        idle_s: float = IDLE_S,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.config = config
        self.data = data
        self.lam_max = lam_max
        self.idle_s = idle_s
        self.max_seconds = max_seconds
        self.n = len(data.train.labels)
        self.total = config.total_steps(self.n)
        self.start_loss = math.log(data.dataset.num_classes)  # J at zero weights
        self.changed = threading.Condition()
        self.version = 0
        self.state = "paused" if paused else "running"
        self.speed = float(speed)
        self.budget = 0  # steps that may go while paused
        self.stopping = False
        self.message: str | None = None
        self.lines: list[str] = []
        self.records: list[dict[str, Any]] = []
        D = data.dataset.pixels
        C = data.dataset.num_classes
        zero = (np.zeros((D, C), config.dtype), np.zeros(C, config.dtype))
        self.snapshot: tuple[int, np.ndarray, np.ndarray] = (0, *zero)
        self.lr = config.learning_rate_at(0, self.total)
        self.test_accuracy: float | None = None
        self.model: bytes | None = None  # the model file of a run that ended (not diverged)
        self.ended = False  # the thread is done: the run's slot is free
        self.started = time.monotonic()
        self.finished_at: float | None = None
        self.due = self.started  # when the next step may go, at ``speed``
        self.acted = self.started  # the last action's time
        self.streams = 0  # events streams open
        self.alone_since = self.started  # since when no stream has been open
        self.thread = threading.Thread(target=self.training, name=f"run-{self.id[:6]}", daemon=True)

    def start(self) -> None:
        """Start the training's thread."""
        self.thread.start()

    # The training thread.

    def training(self) -> None:
        """The run: wait for the first step's turn, train with the watch hook, then end."""
        result = None
        try:
            if not self.gate():
                with np.errstate(all="ignore"):  # a diverging run's overflows are judged
                    result = train(
                        self.data, self.config, numpy_backend(), emit=self.say, watch=self.watch
                    )
        except Exception as exc:  # a run that fails ends with its reason, and the server goes on
            self.failed(exc)
        try:
            self.end(result)
        except Exception as exc:  # scoring or writing the model file failed
            self.failed(exc)
        finally:
            with self.changed:
                self.ended = True  # whatever happened: the slot is free
                self.bump()

    def failed(self, exc: Exception) -> None:
        """The run ends stopped, saying why it failed."""
        with self.changed:
            self.state = "stopped"
            self.message = f"the run failed: {type(exc).__name__}: {exc}"

    def say(self, line: str) -> None:
        """A log line of the run."""
        with self.changed:
            self.lines.append(line)
            self.bump()

    def watch(self, t: int, lr: float, params: list[Any], record: Record | None) -> bool:
        """After step t: the snapshot, the record, divergence, then the pace; True ends the
        run."""
        W = np.array(params[0], copy=True)
        b = np.array(params[1], copy=True)
        finite = bool(np.isfinite(W).all() and np.isfinite(b).all())
        problem = self.divergence(t, lr, finite, record)
        with self.changed:
            if finite:  # a diverged run keeps its last finite weights
                self.snapshot = (t, W, b)
            self.lr = lr
            if record is not None:
                self.records.append(record_json(record))
            if problem is not None:
                self.state = "diverged"
                self.message = problem
            self.bump()
        return problem is not None or (t < self.total and self.gate())  # none after the last

    def divergence(self, t: int, lr: float, finite: bool, record: Record | None) -> str | None:
        """The one line that says why the run diverged at step t (its weights not all
        ``finite``, or its record's loss too large), or None if it has not."""
        start = self.start_loss
        if not finite:
            why = "the weights overflowed"
        elif record is not None and not record.loss <= LOSS_GROWTH * start:
            why = f"the training loss {record.loss:.4g} is over {LOSS_GROWTH:g} x its start, "
            why += f"{start:.3f}"
        else:
            return None
        limit, what = stable_limit(self.config, self.lam_max(self.config))
        return (
            f"Diverged at step {t:04d}: {why}; the learning rate {lr:g} is {lr / limit:.2g} x "
            f"the stable limit {limit:.3g} {what}, as scratchlr curvature says. The page stops "
            "such a run; the command line has no such stop"
        )

    def gate(self) -> bool:
        """Wait until the next step may go (paused: until ``step`` or ``resume``; at
        ``speed``: its time); True if the run is to end instead (stop, or a limit)."""
        with self.changed:
            while True:
                now = time.monotonic()
                if self.stopping:
                    return True
                if now - self.started > self.max_seconds:
                    return self.give_up(f"a run may last {self.max_seconds:g} s")
                if self.state == "paused" and self.budget:
                    self.budget -= 1
                    return False
                if self.state == "paused" and now - self.acted > self.idle_s:
                    return self.give_up(f"paused with no action for {self.idle_s:g} s")
                if self.state == "running" and not self.speed:
                    return False
                if self.state == "running" and now >= self.due:
                    period = 1 / self.speed  # a late step does not earn a burst after it
                    self.due = max(self.due, now - period) + period
                    return False
                wake = self.due if self.state == "running" else self.acted + self.idle_s
                wait = min(wake, self.started + self.max_seconds) - now
                self.changed.wait(min(max(wait, 0.001), 1.0))

    def give_up(self, why: str) -> bool:
        """End the run at a limit (called with the lock held): True."""
        self.stopping = True
        self.message = f"Stopped at step {self.snapshot[0]:04d}: {why}"
        self.bump()
        return True

    def end(self, result: Result | None) -> None:
        """After the training: the final weights, the test accuracy, the model file (as the
        command line saves it; none for a diverged run), the state."""
        kept = None if self.state == "diverged" else result  # only this thread diverges it
        model = None
        if kept is not None:
            interrupted_at = kept.steps if kept.interrupted else None
            m = modelfile.of_run(
                kept.W, kept.b, self.config, self.data, kept.test_accuracy, interrupted_at
            )
            model = modelfile.to_bytes(m)
        with self.changed:
            if kept is not None:
                self.snapshot = (kept.steps, kept.W, kept.b)
                self.model = model
            if result is not None:
                self.test_accuracy = finite_or_none(result.test_accuracy)
            if self.state not in ("diverged", "stopped"):
                self.state = "stopped" if self.stopping or result is None else "finished"
            if self.state == "stopped" and self.message is None:
                self.message = f"Stopped at step {self.snapshot[0]:04d} (asked to stop)"
            if self.state == "finished" and result is not None:
                self.message = f"Finished: {result.steps} steps in {result.train_seconds:.1f} s"
            self.finished_at = time.monotonic()

    # What the server's threads ask.

    def bump(self) -> None:
        """Something changed (called with the lock held)."""
        self.version += 1
        self.changed.notify_all()

    def act(self, action: str | None, speed: float | None = None) -> str:
        """``pause``, ``resume``, ``step`` (exactly one more, then paused), ``stop``, or None,
        and a new ``speed`` if given; the state after. ``Conflict`` if it makes no sense."""
        with self.changed:
            if action is not None and self.state in ENDED:
                raise Conflict(f"the run has ended ({self.state}): it cannot {action}")
            if action is not None and self.stopping:
                raise Conflict(f"the run is stopping: it cannot {action}")
            if action == "pause" and self.state != "running":
                raise Conflict("the run is paused already")
            if action in ("resume", "step") and self.state != "paused":
                raise Conflict(f"the run is running: pause it before it can {action}")
            self.acted = time.monotonic()
            if speed is not None:
                self.speed = float(speed)
                self.due = self.acted
            if action == "pause":
                self.state = "paused"
            elif action == "resume":
                self.state = "running"
                self.due = self.acted
            elif action == "step":
                self.budget += 1
            elif action == "stop":
                self.stopping = True
            self.bump()
        if action == "stop":  # answered once the run has ended, so its slot is free
            self.thread.join(STOP_WAIT_S)
        return self.state

    def stop(self) -> None:
        """End the run at its next step (the page went away, or the server closes)."""
        with self.changed:
            self.stopping = True
            self.bump()

    def weights(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The snapshot: (step, W (D, C), b (C,)) as they are now."""
        with self.changed:
            return self.snapshot

    def model_file(self) -> tuple[int, bytes]:
        """(step, the model file's bytes) now: an ended run's as the command line saves it,
        else the snapshot's, tested now and marked stopped at its step. ``Conflict`` before
        step 1."""
        with self.changed:
            if self.model is not None:
                return self.snapshot[0], self.model
            step, W, b = self.snapshot
        if step == 0:
            raise Conflict("no step has been taken: the model is the zero start")
        accuracy = evaluate(W, b, self.data.test, numpy_backend())[1]
        m = modelfile.of_run(W, b, self.config, self.data, accuracy, step)
        return step, modelfile.to_bytes(m)

    def frame(self, lines_from: int, records_from: int) -> dict[str, Any]:
        """What the page shows now, with the lines and records from those indices on."""
        with self.changed:
            step, W, b = self.snapshot
            end = self.finished_at or time.monotonic()
            return {
                "step": step,
                "total": self.total,
                "epoch": round(self.config.epochs_done(step, self.n), 4),
                "lr": finite_or_none(self.lr),
                "state": self.state,
                "message": self.message,
                "lines_from": lines_from,
                "lines": self.lines[lines_from:],
                "records_from": records_from,
                "records": self.records[records_from:],
                **api.packed_weights(W, b),
                "test_accuracy": self.test_accuracy,
                "seconds": round(end - self.started, 3),
            }

    def wait_change(self, seen: int, timeout: float) -> int:
        """The version, once it differs from ``seen`` or after ``timeout`` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen, timeout)
            return self.version

    def opened(self, limit: int) -> bool:
        """An events stream opens, if fewer than ``limit`` are open: whether it may."""
        with self.changed:
            if self.streams >= limit:
                return False
            self.streams += 1
            return True

    def closed(self) -> None:
        """An events stream closed."""
        with self.changed:
            self.streams -= 1
            self.alone_since = time.monotonic()

    def left_for(self, now: float) -> float:
        """Seconds since the run last had an events stream (0 while one is open)."""
        with self.changed:
            return 0.0 if self.streams else now - self.alone_since


class Runs:
    """The server's runs on ``data``'s training split: at most ``max_runs`` hold a slot at
    once; the limits (module docstring) are arguments so that tests can shrink them."""

    def __init__(
        self,
        data: Splits,
        max_runs: int,
        left_s: float = LEFT_S,
        idle_s: float = IDLE_S,
        max_seconds: float = MAX_SECONDS,
        max_steps: int = MAX_STEPS,
        alive_s: float = ALIVE_S,
    ) -> None:
        self.data = data
        self.max_runs = max_runs
        self.left_s = left_s
        self.idle_s = idle_s
        self.max_seconds = max_seconds
        self.max_steps = max_steps
        self.alive_s = alive_s
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()
        self.curvatures: dict[tuple[str, float], float] = {}
        self.curvature_lock = threading.Lock()
        self.closing = threading.Event()
        self.reaper = threading.Thread(target=self.reap, name="runs-reaper", daemon=True)
        self.reaper.start()

    def config(self, texts: Any) -> Config:
        """The Config of the page's settings (:func:`scratchlr.serve.settings.config_of`);
        ``ValueError`` with one line if they are bad, the run would be too long, or its
        batches larger than the training split (the memory a run may take)."""
        if not isinstance(texts, dict):
            raise ValueError("settings must be an object of names and texts")
        config = settings.config_of(texts, self.data.dataset.name)
        total = self.total(config)
        if total > self.max_steps:
            raise ValueError(
                f"the run has {total:,} steps; a run on the page may have at most "
                f"{self.max_steps:,}"
            )
        n = len(self.data.train.labels)
        if config.batch_size > n:
            raise ValueError(
                f"--batch-size {config.batch_size:,}: a run on the page may take at most the "
                f"{n:,} training images a step"
            )
        return config

    def total(self, config: Config) -> int:
        """The steps of a run of ``config`` on the training split."""
        return config.total_steps(len(self.data.train.labels))

    def create(self, texts: Any, speed: Any = 0, paused: bool = False) -> Run:
        """A new run of the settings, started; ``ValueError`` (bad settings or speed) or
        :class:`Busy`."""
        config = self.config(texts)
        speed = check_speed(speed)
        if not isinstance(paused, bool):
            raise ValueError(f"paused must be true or false, got {paused!r}")
        with self.lock:
            running = sum(not run.ended for run in self.runs.values())
            if running >= self.max_runs:
                raise Busy(
                    f"busy: {running} runs are open, the most this server trains at once "
                    f"(--max-runs {self.max_runs}); try again when one ends"
                )
            run = Run(
                config,
                self.data,
                speed,
                paused,
                self.lam_max,
                idle_s=self.idle_s,
                max_seconds=self.max_seconds,
            )
            self.runs[run.id] = run
        run.start()
        return run

    def get(self, run_id: str) -> Run | None:
        """The run of that id, or None."""
        with self.lock:
            return self.runs.get(run_id)

    def lam_max(self, config: Config) -> float:
        """lambda_max at zero weights of the training split's objective with the config's
        penalty, in its dtype, by ``POWER_ITERATIONS``; cached."""
        key = (config.dtype, config.penalty)
        with self.curvature_lock:
            if key not in self.curvatures:
                X = model.pixels(self.data.train.images, config.dtype)
                objective = Objective(X, self.data.train.labels, config.penalty)
                W = np.zeros((X.shape[1], self.data.dataset.num_classes), config.dtype)
                b = np.zeros(self.data.dataset.num_classes, config.dtype)
                lam = curvature.largest_eigenvalue(objective, W, b, POWER_ITERATIONS)
                self.curvatures[key] = lam
            return self.curvatures[key]

    def reap(self) -> None:
        """Every so often: end and forget the runs that have had no stream for ``left_s``."""
        while not self.closing.wait(min(1.0, self.left_s / 4)):
            now = time.monotonic()
            with self.lock:
                gone = [r for r in self.runs.values() if r.left_for(now) > self.left_s]
                for run in gone:
                    if run.ended:  # forgotten once its thread is done, so no slot is uncounted
                        del self.runs[run.id]
            for run in gone:
                run.stop()

    def close(self) -> None:
        """Stop the reaper and every run."""
        self.closing.set()
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.stop()


def check_speed(speed: Any) -> float:
    """A speed in steps per second, 0 to ``MAX_SPEED`` (0: as fast as it goes); ``ValueError``
    otherwise."""
    ok = isinstance(speed, (int, float)) and not isinstance(speed, bool)
    if not ok or not 0 <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be a number of steps per second from 0 to {MAX_SPEED}")
    return float(speed)
