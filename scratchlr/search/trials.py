"""Running trials: each an ordinary training run, scored on the validation split only.

A trial is :func:`scratchlr.train.train` with the trial's :class:`scratchlr.config.Config`
(``--validate`` on), on the NumPy backend, on MNIST's training files alone: the test files
are not even opened. It runs with one BLAS thread (``threadpoolctl``; two OpenBLAS threads
round the products' sums differently), and it is deterministic given its settings, so it
gives the same bits wherever it runs:
- :class:`InProcess`: in this process;
- :func:`pool`: ``concurrent.futures`` worker processes, each started with one BLAS thread;
- :func:`cluster`: a Dask cluster's workers, through ``dask.distributed``'s
  ``concurrent.futures`` executor.
A failed trial is raised as :class:`TrialError`, naming it.
Each process loads the training files once, verified as always, from its own data folder:
the one named, else its own ``$SCRATCHLR_DATA`` or ``./data/mnist``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ..backend import numpy_backend
from ..dataset import mnist
from ..files.history import Record
from ..train import Result, train
from . import space
from .results import Outcome

ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LOADED: dict[tuple[str | None, bool], dict[str, np.ndarray]] = {}  # this process's MNIST arrays


def data(data_dir: str | None, validation_size: int, test: bool = False) -> mnist.MNIST:
    """MNIST from ``data_dir`` (None: this process's default folder), split with
    ``validation_size`` held out; read once per process. Without ``test``, only the training
    files are read and the test split has no rows."""
    key = (data_dir, test)
    if key not in LOADED:
        LOADED[key] = mnist.load_arrays(mnist.data_dir(data_dir), tuple(mnist.FILES) if test else mnist.TRAIN_FILES)
    return mnist.split(LOADED[key], validation_size)


def kept(history: list[Record], early_stopping: int | None) -> Record:
    """The record of the model a run keeps: with early stopping, its best validation (the
    first of the highest accuracy), else its last, which always has a validation score."""
    validated = [r for r in history if r.val_accuracy is not None]
    if early_stopping is None:
        return validated[-1]
    return max(validated, key=lambda r: r.val_accuracy or 0.0)


def quiet(line: str) -> None:
    """A trial's log lines go nowhere."""


def run_trial(settings: space.Settings, data_dir: str | None) -> Outcome:
    """Train one trial, as ``python -m scratchlr FLAGS --validate`` trains, on the training
    files alone, with one BLAS thread; its outcome is the validation score of the model the
    run keeps."""
    config = space.config(settings)
    with threadpool_limits(1):
        result = train(data(data_dir, config.validation_size), config, numpy_backend(), emit=quiet)
    record = kept(result.history, config.early_stopping)
    assert record.val_loss is not None and record.val_accuracy is not None
    return Outcome(record.val_loss, record.val_accuracy, result.steps, result.train_seconds)


def run_tested(settings: space.Settings, data_dir: str | None) -> Result:
    """Train one trial as :func:`run_trial` does, then score its model on the test split
    (read here, once): the run of ``--test-best``."""
    config = space.config(settings)
    with threadpool_limits(1):
        return train(data(data_dir, config.validation_size, test=True), config, numpy_backend(), emit=quiet)


class InProcess(Executor):
    """An executor that runs each call in this process when it is submitted."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now; a done future of its result or its error."""
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def ignore_sigint() -> None:
    """A worker's initializer: Ctrl-C at the terminal reaches the whole process group, and
    it is the search that decides to stop (after the running trials), not its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` worker processes, started fresh (``spawn``) and all at once, each with one
    BLAS thread, never stopped by Ctrl-C (a Ctrl-C at the terminal reaches the whole process
    group, and it is the search that decides to stop). They start with SIGINT ignored, which a
    new process inherits, while this process holds it blocked: a Ctrl-C as they start arrives
    here once they have started. A second Ctrl-C ends the workers at once."""
    saved = {name: os.environ.get(name) for name in ONE_BLAS_THREAD}
    os.environ.update(ONE_BLAS_THREAD)  # read by each worker's BLAS as it starts
    masks = hasattr(signal, "pthread_sigmask")  # POSIX; a blocked signal waits, even an ignored one
    if masks:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=ignore_sigint)
        list(executor.map(abs, range(jobs)))  # a call each, so that every worker starts now
    finally:
        signal.signal(signal.SIGINT, handler)
        if masks:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C meanwhile arrives now
    try:
        yield executor
    except BaseException:  # a second Ctrl-C (the running trials are dropped), or a failed trial
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in multiprocessing.active_children():  # the workers: this process's children
            worker.terminate()
        raise
    finally:
        executor.shutdown()
        for name, v in saved.items():
            if v is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = v


class SchedulerError(RuntimeError):
    """No usable Dask cluster at the address given. One-line message."""


class TrialError(RuntimeError):
    """Trial ``index`` (of the plan) failed where it ran; the message is its error's, in one line."""

    def __init__(self, index: int, error: BaseException) -> None:
        what = "out of memory" if isinstance(error, MemoryError) else str(error) or type(error).__name__
        super().__init__(what.splitlines()[0] if what else what)
        self.index = index


@contextlib.contextmanager
def cluster(address: str, wait_s: float = 30.0) -> Iterator[tuple[Executor, int]]:
    """The Dask cluster at ``address``: its ``concurrent.futures`` executor, and how many
    trials it runs at once (its workers' threads). Needs the ``[dist]`` extra;
    :class:`SchedulerError` if no scheduler answers there, or no worker joins it within
    ``wait_s`` seconds."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # refused, timed out, or not an address
        raise SchedulerError(f"--scheduler {address}: no Dask scheduler answers there ({exc})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=wait_s)
        except (OSError, TimeoutError):
            raise SchedulerError(f"--scheduler {address}: no worker joined the cluster in {wait_s:g} s") from None
        yield client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
    finally:
        client.close()


def run_all(executor: Executor, width: int, plan: list[space.Settings], todo: list[int], data_dir: str | None,
            finished: Callable[[int, Outcome], None], stop: Callable[[], bool]) -> None:
    """Run the trials ``todo`` (indices into ``plan``), ``width`` at a time, handing each
    outcome to ``finished(index, outcome)`` as it comes. Once ``stop()`` says True, or a
    trial fails, no trial is started and the running ones finish; then the first failed
    trial is raised as :class:`TrialError`."""
    queue = list(todo)
    running: dict[Future, int] = {}  # each running trial's future, and its index
    errors: list[tuple[int, BaseException]] = []
    while queue or running:
        while queue and len(running) < width and not stop() and not errors:
            i = queue.pop(0)
            running[executor.submit(run_trial, plan[i], data_dir)] = i
        if not running:
            break
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=running.__getitem__):
            i, error = running.pop(future), future.exception()
            if error is None:
                finished(i, future.result())
            else:
                errors.append((i, error))
    if errors:
        raise TrialError(*errors[0]) from errors[0][1]
