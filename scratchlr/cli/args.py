"""The pieces the commands share: one-line usage errors, checked flag types, the data flags.

Usage errors exit 2, data and file errors exit 1; each is one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, NoReturn

from ..dataset import download, mnist
from ..files.atomic import temporary

PROG = "scratchlr"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def number(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``kind(text)``, finite (its range is checked by :class:`Config`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` that must be finite and > 0."""
    finite = number(kind)

    def parse(text: str) -> float:
        value = finite(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def writable_file(text: str) -> Path:
    """An argparse type: a file path that can be written, checked before any work is done:
    not a folder, and a temporary file can be made beside it (as the atomic write will)."""
    path = Path(text)
    if not text or path.is_dir():
        raise argparse.ArgumentTypeError(f"not a file name: {text!r}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {path.parent}")
    try:
        with temporary(path):  # the atomic write's own temporary file, made and removed
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write in {path.parent}: {exc.strerror or exc}") from None
    return path


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
    p.add_argument("--quiet", action="store_true", help="no progress bars (download, training)")


def fail(message: str, status: int = 1) -> int:
    """Print ``prog: error: message`` on stderr; return ``status``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def fetch(args: argparse.Namespace) -> list[str]:
    """Make sure the data directory holds verified MNIST, downloading what is missing."""
    settings = download.Settings(quiet=args.quiet)
    return download.ensure(mnist.data_dir(args.data_dir), download.mirrors(args.mirror), settings)
