"""Running trials: each an ordinary training run, scored on the validation split only.

A trial is :func:`scratchlr.train.train` with the trial's :class:`scratchlr.config.Config`
(``--validate`` on), on the NumPy backend, on its data set's training files alone: the test
files are not even opened. It runs with one BLAS thread (``threadpoolctl``; two OpenBLAS threads
round the products' sums differently), and it is deterministic given its settings, so it
gives the same bits wherever it runs:
- :class:`InProcess`: in this process;
- :func:`pool`: ``concurrent.futures`` worker processes, each started with one BLAS thread;
- :func:`cluster`: a Dask cluster's workers, through ``dask.distributed``'s
  ``concurrent.futures`` executor.
A failed trial is raised as :class:`TrialError`, naming it; a place that cannot run them, as
:class:`RunnerError`.
Each trial loads its data set's training files, verified as always (memory-mapped from the
``.npy`` cache, about 1 ms), from its process's data folder: the one named, else the data
set's own (``$SCRATCHLR_DATA`` or ``./data/mnist`` for MNIST).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from multiprocessing import resource_tracker
from typing import Any, Callable

from threadpoolctl import threadpool_limits

from ..backend import numpy_backend
from ..dataset import splits
from ..dataset.records import ALL_FILES, DATASETS, TRAIN_FILES, Dataset
from ..files.history import Record
from ..train import Result, train
from . import space
from .results import Outcome

ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def data(
    dataset: Dataset, data_dir: str | None, validation_size: int, test: bool = False
) -> splits.Splits:
    """``dataset`` from ``data_dir`` (None: its default folder in this process), split with
    ``validation_size`` held out, read at each call (a map of the ``.npy`` cache: no copy is
    kept between trials, docs/benchmarks.md measures why). Without ``test``, only the training
    files are read and the test split has no rows."""
    directory = splits.data_dir(dataset, data_dir)
    arrays = splits.load_arrays(dataset, directory, ALL_FILES if test else TRAIN_FILES)
    return splits.split(arrays, dataset, validation_size)


def datasets(plan: list[space.Settings]) -> list[Dataset]:
    """The data sets the trials of ``plan`` read, each once, in the order they first come."""
    names = dict.fromkeys(space.config(settings).dataset for settings in plan)
    return [DATASETS[name] for name in names]


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
    trained_on = data(DATASETS[config.dataset], data_dir, config.validation_size)
    with threadpool_limits(1):
        result = train(trained_on, config, numpy_backend(), emit=quiet)
    record = kept(result.history, config.early_stopping)
    assert record.val_loss is not None and record.val_accuracy is not None
    return Outcome(record.val_loss, record.val_accuracy, result.steps, result.train_seconds)


def run_tested(settings: space.Settings, data_dir: str | None) -> Result:
    """Train one trial as :func:`run_trial` does, then score its model on the test split
    (read here, once): the run of ``--test-best``."""
    config = space.config(settings)
    tested_on = data(DATASETS[config.dataset], data_dir, config.validation_size, test=True)
    with threadpool_limits(1):
        return train(tested_on, config, numpy_backend(), emit=quiet)


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
    BLAS thread, never stopped by Ctrl-C: a Ctrl-C at the terminal reaches the whole process
    group, and it is the search that decides to stop. The workers start with SIGINT ignored,
    which a new process inherits, while this thread holds it blocked, so a Ctrl-C as they
    start arrives here once they have started (make the pool before any other thread, which
    could take the signal meanwhile). A second Ctrl-C ends the workers at once.
    :class:`RunnerError` if they cannot be started."""
    saved = {name: os.environ.get(name) for name in ONE_BLAS_THREAD}
    children = set(multiprocessing.active_children())  # whatever else this process started
    os.environ.update(ONE_BLAS_THREAD)  # read by each worker's BLAS as it starts
    masks = hasattr(signal, "pthread_sigmask")  # POSIX: a blocked signal waits, even an ignored one
    if masks:
        resource_tracker.ensure_running()  # now: starting it later would unblock SIGINT
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            executor = ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_sigint
            )
            list(executor.map(abs, range(jobs)))  # a call each, so that every worker starts now
        finally:
            signal.signal(signal.SIGINT, handler)
    except OSError as exc:
        raise RunnerError(
            f"--jobs {jobs}: cannot start the worker processes ({exc.strerror or exc})"
        ) from None
    finally:
        if masks:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C meanwhile arrives now
    try:
        yield executor
    except BaseException:  # a second Ctrl-C (the running trials are dropped), or a failed trial
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in set(multiprocessing.active_children()) - children:  # the pool's workers
            worker.terminate()
        raise
    finally:
        executor.shutdown()
        for name, v in saved.items():
            if v is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = v


class RunnerError(RuntimeError):
    """The trials cannot run where they were sent: no worker processes, no Dask scheduler or
    worker, or a cluster lost on the way. One-line message."""


class TrialError(RuntimeError):
    """Trial ``index`` (of the plan) failed where it ran; the message is its error's, in one
    line."""

    def __init__(self, index: int, error: BaseException) -> None:
        text = (str(error).strip().splitlines() or [""])[0]
        if isinstance(error, MemoryError):
            text = "out of memory"
        elif not type(error).__module__.startswith("scratchlr"):  # our errors say what they are
            text = f"{type(error).__name__}: {text}" if text else type(error).__name__
        super().__init__(text)
        self.index = index


@contextlib.contextmanager
def cluster(
    address: str, stop: Callable[[], bool], wait_s: float = 30.0
) -> Iterator[tuple[Executor, int]]:
    """The Dask cluster at ``address``: its ``concurrent.futures`` executor, and how many
    trials it runs at once (its workers' threads). Needs the ``[dist]`` extra;
    :class:`RunnerError` if no scheduler answers there, or no worker joins it within
    ``wait_s`` seconds (waiting stops early if ``stop()`` says so)."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # refused, timed out, or not an address
        raise RunnerError(
            f"--scheduler {address}: no Dask scheduler answers there ({exc})"
        ) from None
    try:
        waited = 0.0
        while not client.nthreads() and not stop():
            if waited >= wait_s:
                raise RunnerError(
                    f"--scheduler {address}: no worker joined the cluster in {wait_s:g} s"
                )
            time.sleep(0.2)
            waited += 0.2
        yield client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
    finally:
        client.close()


def run_all(
    executor: Executor,
    width: int,
    plan: list[space.Settings],
    todo: list[int],
    data_dir: str | None,
    finished: Callable[[int, Outcome], None],
    stop: Callable[[], bool],
) -> None:
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
            i = running.pop(future)
            error = (
                CancelledError("cancelled: the cluster lost it (its scheduler or worker went away)")
                if future.cancelled()
                else future.exception()
            )
            if error is None:
                finished(i, future.result())
            else:
                errors.append((i, error))
    if errors:
        raise TrialError(*errors[0]) from errors[0][1]
