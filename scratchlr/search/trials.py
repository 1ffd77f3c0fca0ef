"""Running trials: each an ordinary training run, scored on the validation split only.

A trial is :func:`scratchlr.train.train` with the trial's :class:`scratchlr.config.Config`
(``--validate`` on), on the NumPy backend, on MNIST's training files alone: the test files
are not even opened. It is deterministic given its settings, so it gives the same bits
wherever it runs, provided BLAS has one thread there (two OpenBLAS threads round the
products' sums differently):
- :class:`InProcess`: in this process (``python -m scratchlr`` runs with one OpenBLAS thread
  unless ``OPENBLAS_NUM_THREADS`` says otherwise);
- :func:`pool`: ``concurrent.futures`` worker processes, each started with one BLAS thread;
- :func:`cluster`: a Dask cluster's workers, through ``dask.distributed``'s
  ``concurrent.futures`` executor (a worker process has one BLAS thread by Dask's default).
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
    files alone; its outcome is the validation score of the model the run keeps."""
    config = space.config(settings)
    result = train(data(data_dir, config.validation_size), config, numpy_backend(), emit=quiet)
    record = kept(result.history, config.early_stopping)
    assert record.val_loss is not None and record.val_accuracy is not None
    return Outcome(record.val_loss, record.val_accuracy, result.steps, result.train_seconds)


def run_tested(settings: space.Settings, data_dir: str | None) -> Result:
    """Train one trial as :func:`run_trial` does, then score its model on the test split
    (read here, once): the run of ``--test-best``."""
    config = space.config(settings)
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
    """``jobs`` worker processes, started fresh (``spawn``), each with one BLAS thread."""
    saved = {name: os.environ.get(name) for name in ONE_BLAS_THREAD}
    os.environ.update(ONE_BLAS_THREAD)  # read by each worker's BLAS as it starts (on demand)
    try:
        executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=ignore_sigint)
        try:
            yield executor
        except BaseException:  # a failed trial, a second Ctrl-C: queue no more
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown()
    finally:
        for name, v in saved.items():
            if v is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = v


@contextlib.contextmanager
def cluster(address: str) -> Iterator[tuple[Executor, int]]:
    """The Dask cluster at ``address``: its ``concurrent.futures`` executor, and how many
    trials it runs at once (its workers' threads). ``ImportError`` without the ``[dist]``
    extra; ``OSError`` if no scheduler answers there."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"--scheduler {address}: no Dask scheduler answers ({exc})") from None
    try:
        yield client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
    finally:
        client.close()


def run_all(executor: Executor, width: int, plan: list[space.Settings], todo: list[int], data_dir: str | None,
            finished: Callable[[int, Outcome], None], stop: Callable[[], bool]) -> None:
    """Run the trials ``todo`` (indices into ``plan``), ``width`` at a time, handing each
    outcome to ``finished(index, outcome)`` as it comes. Once ``stop()`` says True, or a
    trial fails, no trial is started and the running ones finish; then the first failed
    trial's error is raised."""
    queue, running, errors = list(todo), {}, []  # type: list[int], dict[Future, int], list[BaseException]
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
                errors.append(error)
    if errors:
        raise errors[0]
