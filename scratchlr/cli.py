"""Command line: ``python -m scratchlr [train flags]``, ``python -m scratchlr gradcheck``.

Usage errors exit 2, data and runtime errors exit 1; each is one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from typing import Callable, NoReturn

from . import __version__, download, gradcheck, mnist
from .backend import DEVICES, BackendError, select
from .batches import BATCHINGS
from .train import DTYPES, STEPS, Config, train

PROG = "scratchlr"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` that must be finite and > 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def validation_size(text: str) -> int:
    """An argparse type: an int in [0, 60000)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 60000:
        raise argparse.ArgumentTypeError(f"must be in [0, 60000), got {value}")
    return value


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Flags saying where MNIST lives and where to fetch it from."""
    p.add_argument("--data-dir", help=f"MNIST directory (default: ${mnist.DATA_ENV} or ./data/mnist)")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help=f"fetch missing files from URL first (http(s)://, file:// or a folder; repeatable; "
                   f"default ${download.MIRROR_ENV}, then the public mirrors)")
    p.add_argument("--quiet", action="store_true", help="no download progress bars")


def train_parser() -> argparse.ArgumentParser:
    """The training command's flags (the seed's hyper-parameters are the defaults)."""
    p = Parser(
        prog=PROG,
        description="Train softmax regression on MNIST exactly like TensorFlow's eager example. "
        "Other commands: 'download', 'gradcheck' (python -m scratchlr COMMAND --help).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--learning-rate", type=positive(float), default=0.1, help="SGD step size (0.1)")
    p.add_argument("--batch-size", type=positive(int), default=128, help="examples per step (128)")
    p.add_argument("--num-steps", type=positive(int), default=1000, help="training steps (1000)")
    p.add_argument("--display-step", type=positive(int), default=100, help="log every N steps (100)")
    p.add_argument("--validation-size", type=validation_size, default=mnist.DEFAULT_VALIDATION_SIZE,
                   help="first N training images held out (5000)")
    p.add_argument("--batching", choices=BATCHINGS, default="repeat",
                   help="repeat: Dataset.repeat().batch(B); epoch: one pass at a time, last batch partial")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="float type of the math (float32)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="array backend (default: auto)")
    p.add_argument("--step", choices=STEPS, default="fast",
                   help="fast: preallocated, in place; reference: the readable math (same numbers)")
    add_data_args(p)
    return p


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
        "random problem and, when MNIST is present, on its first 32 examples. "
        f"Exits 1 if the max relative error exceeds {gradcheck.TOLERANCE:g}.",
    )
    p.add_argument("--data-dir", help=f"MNIST directory (default: ${mnist.DATA_ENV} or ./data/mnist)")
    return p


def fail(message: str, status: int = 1) -> int:
    """Print ``prog: error: message`` on stderr; return ``status``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def fetch(args: argparse.Namespace) -> list[str]:
    """Make sure the data directory holds verified MNIST, downloading what is missing."""
    settings = download.Settings(quiet=args.quiet)
    return download.ensure(mnist.data_dir(args.data_dir), download.mirrors(args.mirror), settings)


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
    config = Config(args.learning_rate, args.batch_size, args.num_steps, args.display_step,
                    args.batching, args.dtype, args.step)
    start = time.perf_counter()
    try:
        fetch(args)
        data = mnist.load(args.data_dir, args.validation_size)
    except (download.DownloadError, mnist.MNISTDataError) as exc:
        return fail(str(exc))
    load_s = time.perf_counter() - start
    result = train(data, config, backend, emit=lambda line: print(line, flush=True))
    us = 1e6 * result.train_seconds / config.num_steps
    print(f"{PROG}: load {load_s:.3f} s, train {result.train_seconds:.3f} s ({us:.1f} us/step), "
          f"test {result.test_seconds:.3f} s, backend {backend.name} ({backend.device_name})",
          file=sys.stderr)
    return 0


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


COMMANDS = {"download": run_download, "gradcheck": run_gradcheck}


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
