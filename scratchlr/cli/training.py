"""``scratchlr train`` (and a bare ``scratchlr``): the seed's run, and every option past it.

Standard output gets the seed's lines, standard error one summary line of timings. A first
Ctrl-C during training ends the run after the step it is in; the run then finishes as at its
end (test line, ``--history``, ``--save``), says where it stopped, and exits 130. A second
Ctrl-C aborts at once, and nothing is written.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from .. import __version__
from ..backend import DEVICES, BackendError, select
from ..config import Config
from ..dataset import download, splits
from ..dataset.records import DATASETS
from ..files import history, modelfile
from ..progress import ProgressBar, say
from ..train import Result, train
from .args import (
    PROG,
    add_config_args,
    add_data_args,
    config_from,
    fail,
    load_data,
    usage_error,
    writable_file,
)


def add_parser(commands: Any) -> None:
    """The ``train`` command and its flags: one per :class:`scratchlr.config.Config` field (the
    seed's hyper-parameters are the defaults), then the device, the files it writes and the data."""
    p = commands.add_parser(
        "train",
        help="train softmax regression (the default command)",
        description="Train softmax regression on MNIST (or another --dataset) exactly like "
        "TensorFlow's eager example, "
        "or past it with the options below. 'scratchlr [FLAGS]' is 'scratchlr train [FLAGS]'.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_config_args(p)
    p.add_argument(
        "--device", default="auto", choices=DEVICES, help="array backend (default: auto)"
    )
    p.add_argument(
        "--history", metavar="FILE", type=writable_file, help="write the run's history as CSV"
    )
    p.add_argument(
        "--save",
        metavar="MODEL.npz",
        type=writable_file,
        help="write the trained model (W, b and how they were made) to MODEL.npz",
    )
    add_data_args(p, dataset="config")
    p.set_defaults(run=run)


BAR_DELAY = 2.0  # s: a run that ends sooner shows no progress bar


def training_bar(total: int) -> ProgressBar:
    """The bar of a run of ``total`` steps, drawn once the run has taken :data:`BAR_DELAY` s."""
    return ProgressBar(total, "train", unit="step", delay=BAR_DELAY)


class Interrupt:
    """While in effect (``with Interrupt() as interrupted``), Ctrl-C no longer stops the process:
    the first sets the flag that ``interrupted()`` reads; a second raises ``KeyboardInterrupt``.
    Where SIGINT is ignored (a job started with ``nohup`` or ``&``), it stays ignored."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self) -> bool:
        """Whether Ctrl-C was pressed."""
        return self.pressed

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT's handler: remember the first, abort on the second."""
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __enter__(self) -> Interrupt:
        self.previous = signal.getsignal(signal.SIGINT)
        if self.previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        signal.signal(signal.SIGINT, self.previous)


def run(args: argparse.Namespace) -> int:
    """Train as the flags say; write the history and the model if asked."""
    try:
        backend = select(args.device)
    except BackendError as exc:
        return usage_error(f"--device {args.device}: {exc}")
    try:
        config = config_from(args)
    except ValueError as exc:
        return usage_error(str(exc))
    start = time.perf_counter()
    try:
        data = load_data(args, DATASETS[config.dataset], config.validation_size)
    except (download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    load_s = time.perf_counter() - start
    try:
        with Interrupt() as interrupted:
            result = train(
                data,
                config,
                backend,
                emit=say,
                progress=None if args.quiet else training_bar,
                stop=interrupted,
            )
    except MemoryError:
        itemsize = np.dtype(config.dtype).itemsize
        if config.solves:  # the whole training split's pixels, in the config's dtype
            whole = len(data.train.labels) * data.dataset.pixels * itemsize
            return fail(f"out of memory (the training split's pixels need {whole / 2**20:.0f} MiB)")
        buffer = config.batch_size * data.dataset.pixels * itemsize
        return fail(
            f"out of memory (batches of {config.batch_size} rows need "
            f"{buffer / 2**20:.0f} MiB each buffer)"
        )
    try:
        if args.history:
            history.write_csv(args.history, result.history)
        if args.save:  # the result's W and b are host arrays
            interrupted_at = result.steps if result.interrupted else None
            m = modelfile.of_run(
                result.W, result.b, config, data, result.test_accuracy, interrupted_at
            )
            modelfile.save(args.save, m)
    except OSError as exc:
        return fail(
            f"cannot write {exc.filename or args.save or args.history}: {exc.strerror or exc}"
        )
    if result.interrupted:
        print(
            f"{PROG}: interrupted at {done(config, result, len(data.train.labels))}",
            file=sys.stderr,
        )
    print(
        f"{PROG}: load {load_s:.3f} s, train {result.train_seconds:.3f} s "
        f"({per_step(config, result)}), test {result.test_seconds:.3f} s, "
        f"backend {backend.name} ({backend.device_name})",
        file=sys.stderr,
    )
    return 130 if result.interrupted else 0


def done(config: Config, result: Result, n: int) -> str:
    """Where an interrupted run stopped: ``step 120 of 1000``, or a solver's
    ``iteration 12 of at most 100``."""
    if config.solves:
        return f"iteration {result.steps} of at most {config.max_iter}"
    return f"step {result.steps} of {config.total_steps(n)}"


def per_step(config: Config, result: Result) -> str:
    """The training time per step (``812.3 us/step``), or per solver iteration
    (``95.1 ms/iteration``)."""
    if config.solves:
        return f"{1e3 * result.train_seconds / max(result.steps, 1):.1f} ms/iteration"
    return f"{1e6 * result.train_seconds / max(result.steps, 1):.1f} us/step"
