"""Command line: ``python -m scratchlr [train flags]``, and its other commands.

Usage errors exit 2, data and runtime errors exit 1; each is one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__, gradcheck
from ..backend import DEVICES, BackendError, numpy_backend, select
from ..config import DTYPES, STEPS, Config
from ..dataset import download, mnist
from ..dataset.batches import BATCHINGS
from ..files import history
from ..files import modelfile as checkpoint
from ..optim import SCHEDULES
from ..train import Result, evaluate, train
from . import models as commands
from .args import PROG, Parser, add_data_args, fail, fetch, number, positive, validation_size, writable_file
from .progress import ProgressBar, say


def train_parser() -> argparse.ArgumentParser:
    """The training command's flags (the seed's hyper-parameters are the defaults)."""
    p = Parser(
        prog=PROG,
        description="Train softmax regression on MNIST exactly like TensorFlow's eager example. "
        "Other commands: 'evaluate', 'predict', 'plot', 'download', 'gradcheck' "
        "(python -m scratchlr COMMAND --help).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--learning-rate", type=positive(float), default=0.1, help="SGD step size (0.1)")
    p.add_argument("--batch-size", type=positive(int), default=128, help="examples per step (128)")
    p.add_argument("--num-steps", type=positive(int), help="training steps (1000; or give --epochs)")
    p.add_argument("--epochs", type=positive(int), help="passes over the training set, the last batch of each partial")
    p.add_argument("--display-step", type=positive(int), default=100, help="log every N steps (100)")
    p.add_argument("--validation-size", type=validation_size, default=mnist.DEFAULT_VALIDATION_SIZE,
                   help="first N training images held out (5000)")
    p.add_argument("--batching", choices=BATCHINGS,
                   help="repeat (default): Dataset.repeat().batch(B); epoch (the only one with --epochs): one pass "
                   "at a time, last batch partial")
    p.add_argument("--shuffle", action="store_true", help="a fresh permutation of the training set each epoch")
    p.add_argument("--seed", type=number(int), help="seed of the shuffling's numpy.random.default_rng (0)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="float type of the math (float32)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="array backend (default: auto)")
    p.add_argument("--step", choices=STEPS, default="fast",
                   help="fast: preallocated, in place; reference: the readable math (same numbers)")
    g = p.add_argument_group("optimiser (torch.optim.SGD and lr_scheduler semantics)")
    g.add_argument("--momentum", type=number(float), default=0.0, help="mu in [0, 1): v = mu v + g (0)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum: step along g + mu v")
    g.add_argument("--weight-decay", type=number(float), default=0.0,
                   help="lambda: the gradient of W gains lambda W (b is not decayed; 0)")
    g.add_argument("--lr-schedule", choices=SCHEDULES, default="constant",
                   help="learning rate per step t: step: lr gamma^(t // step-size); exponential: lr gamma^t; "
                   "cosine: eta-min + (lr - eta-min)(1 + cos(pi t / t-max)) / 2; inverse: lr / (1 + gamma t)")
    g.add_argument("--step-size", type=positive(int), help="steps between decays of the step schedule")
    g.add_argument("--gamma", type=number(float), help="decay factor (step: 0.1; exponential, inverse: needed)")
    g.add_argument("--t-max", type=positive(int),
                   help="steps of the cosine schedule's way down to eta-min (half its period; the run's steps)")
    g.add_argument("--eta-min", type=number(float), help="the cosine schedule's least learning rate (0)")
    g.add_argument("--average", type=number(int), nargs="?", const=0, metavar="START",
                   help="Polyak-Ruppert averaging of the iterates after START steps (0); the average is what is "
                   "evaluated and kept")
    g = p.add_argument_group("validation and history")
    g.add_argument("--validate", action="store_true",
                   help="validation loss and accuracy at each display step (each epoch with --epochs)")
    g.add_argument("--early-stopping", type=positive(int), metavar="PATIENCE",
                   help="stop after PATIENCE validations without a better accuracy; keep the best (implies --validate)")
    g.add_argument("--history", metavar="FILE", type=writable_file, help="write the run's history as CSV")
    p.add_argument("--save", metavar="MODEL.npz", type=writable_file,
                   help="write the trained model (W, b and how they were made) to MODEL.npz")
    add_data_args(p)
    return p


CONFIG_FLAGS = ("learning_rate", "batch_size", "num_steps", "display_step", "batching", "dtype", "step", "epochs",
                "shuffle", "seed", "momentum", "nesterov", "weight_decay", "lr_schedule", "step_size", "gamma",
                "t_max", "eta_min", "average", "validate", "early_stopping")


def download_parser() -> argparse.ArgumentParser:
    """The ``download`` command's flags."""
    p = Parser(prog=f"{PROG} download",
               description="Fetch, verify (MD5 of the decompressed data) and cache the four MNIST files. "
               "Files already verified are not fetched again.")
    add_data_args(p)
    return p


def gradcheck_parser() -> argparse.ArgumentParser:
    """The ``gradcheck`` command's flags."""
    p = Parser(
        prog=f"{PROG} gradcheck",
        description="Compare the analytic gradient with central differences (float64) on a "
        "random problem (with and without weight decay) and, when MNIST is present, on its first 32 examples. "
        f"Exits 1 if the max relative error exceeds {gradcheck.TOLERANCE:g}.",
    )
    p.add_argument("--data-dir", help=f"MNIST directory (default: ${mnist.DATA_ENV} or ./data/mnist)")
    return p


def run_download(argv: Sequence[str]) -> int:
    """``scratchlr download``: fetch and verify; say what was fetched."""
    args = download_parser().parse_args(argv)
    try:
        fetched = fetch(args)
    except download.DownloadError as exc:
        return fail(str(exc))
    directory = mnist.data_dir(args.data_dir)
    print(f"fetched {', '.join(fetched)} into {directory}" if fetched else f"MNIST already verified in {directory}")
    return 0


def run_train(argv: Sequence[str]) -> int:
    """Train with the seed's loop; stdout gets the seed's lines, stderr one summary line."""
    parser = train_parser()
    args = parser.parse_args(argv)
    try:
        backend = select(args.device)
    except BackendError as exc:
        parser.error(f"--device {args.device}: {exc}")
    try:
        config = Config(**{name: getattr(args, name) for name in CONFIG_FLAGS})
        n_train = mnist.FILES["train_labels"].shape[0] - args.validation_size
        config.check_data(n_train, args.validation_size)
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    try:
        fetch(args)
        data = mnist.load(args.data_dir, args.validation_size)
    except (download.DownloadError, mnist.MNISTDataError) as exc:
        return fail(str(exc))
    load_s = time.perf_counter() - start
    try:
        result = train(data, config, backend, emit=say, progress=None if args.quiet else ProgressBar)
    except MemoryError:
        return fail(f"out of memory (batches of {config.batch_size} rows need "
                    f"{config.batch_size * 784 * np.dtype(config.dtype).itemsize / 2**20:.0f} MiB each buffer)")
    try:
        if args.history:
            history.write_csv(args.history, result.history)
        if args.save:
            save_model(args.save, result, config, data)
    except OSError as exc:
        return fail(f"cannot write {exc.filename or args.save or args.history}: {exc.strerror or exc}")
    us = 1e6 * result.train_seconds / max(result.steps, 1)
    print(f"{PROG}: load {load_s:.3f} s, train {result.train_seconds:.3f} s ({us:.1f} us/step), "
          f"test {result.test_seconds:.3f} s, backend {backend.name} ({backend.device_name})",
          file=sys.stderr)
    return 0


def save_model(path: Path, result: Result, config: Config, data: mnist.MNIST) -> None:
    """Write the run's model with its metadata: config, data checksums, accuracies. (The
    result's W and b are host arrays, so the validation score is NumPy's on any backend.)"""
    validation = evaluate(result.W, result.b, data.validation, numpy_backend())[1] if len(data.validation.labels) \
        else None
    checkpoint.save(path, result.W, result.b, {
        "config": dataclasses.asdict(config),
        "data": {"name": "MNIST", "validation_size": len(data.validation.labels),
                 "md5": {f.name: f.md5 for f in mnist.FILES.values()}},
        "validation_accuracy": validation,
        "test_accuracy": result.test_accuracy,
    })


def run_gradcheck(argv: Sequence[str]) -> int:
    """``scratchlr gradcheck``: exit 0 if the analytic gradient passes, 1 if not."""
    args = gradcheck_parser().parse_args(argv)
    arrays = None
    directory = mnist.data_dir(args.data_dir)
    try:
        data = mnist.load(args.data_dir)
        arrays = (data.train.images, data.train.labels)
    except mnist.MNISTDataError as exc:
        if any(mnist.find(directory, f) for f in mnist.FILES.values()):
            return fail(str(exc))  # present but broken: say so rather than skip
        print(f"{PROG}: MNIST not found in {directory}; checking the random problem only",
              file=sys.stderr)
    worst = gradcheck.run(arrays)
    verdict = "OK" if worst <= gradcheck.TOLERANCE else "FAILED"
    print(f"gradcheck {verdict}: max relative error {worst:.3e} (tolerance {gradcheck.TOLERANCE:g})")
    return 0 if worst <= gradcheck.TOLERANCE else 1


COMMANDS = {"download": run_download, "gradcheck": run_gradcheck, "evaluate": commands.run_evaluate,
            "predict": commands.run_predict, "plot": commands.run_plot}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scratchlr`` and the ``scratchlr`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return run_train(argv)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return 1
