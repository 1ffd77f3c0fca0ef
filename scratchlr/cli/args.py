"""The pieces the commands share: one-line usage errors, the training flags taken from
:class:`scratchlr.config.Config`, the data flags, a checked output path.

Usage errors exit 2, data and file errors exit 1; each is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import Field
from pathlib import Path
from typing import Any, NoReturn

from ..config import FIELDS, Config, flag, value_type
from ..dataset import download, splits
from ..dataset.records import DATASETS, Dataset
from ..files.atomic import temporary
from ..progress import ProgressBar

PROG = "scratchlr"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(message: str, status: int = 1) -> int:
    """Print ``scratchlr: error: message`` on stderr; return ``status``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def usage_error(message: str) -> int:
    """A usage error found after parsing (a bad setting, an unusable device): one line, as
    :class:`Parser` says it; returns 2."""
    return fail(f"{message} (see --help)", 2)


def config_fields(p: argparse.ArgumentParser) -> Iterator[tuple[Field[Any], Any]]:
    """Each field of :class:`Config`, with where its flag goes: ``p``, or the argument group its
    metadata names (made once, when its first field comes). The one walk over the fields that
    the training's flags and the search's are both made from."""
    groups: dict[str, Any] = {}
    for f in FIELDS.values():
        group = f.metadata.get("group")
        if group and group not in groups:
            groups[group] = p.add_argument_group(group)
        yield f, groups[group] if group else p


def option_strings(f: Field[Any]) -> list[str]:
    """A field's flags: ``--name``, then the other names its metadata's ``aliases`` keep working
    (``"aliases": ("--step",)``)."""
    return [flag(f.name), *f.metadata.get("aliases", ())]


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`Config`, named after it, with its default and help."""
    for f, where in config_fields(p):
        options = dict(f.metadata)
        text = options.pop("help")
        options.pop("group", None)
        options.pop("aliases", None)
        kind = value_type(f)
        if kind is bool:
            where.add_argument(*option_strings(f), dest=f.name, action="store_true", help=text)
            continue
        options["type"] = kind
        if "choices" in options:  # shown in the help; Config itself refuses any other value
            options["metavar"] = "{" + ",".join(options.pop("choices")) + "}"
        given = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        shown = "" if f.default is None else f" (default: {given})"
        where.add_argument(
            *option_strings(f), dest=f.name, default=f.default, help=text + shown, **options
        )


def config_from(args: argparse.Namespace) -> Config:
    """The :class:`Config` of the parsed flags (``ValueError`` naming the flag if one is bad)."""
    return Config(**{name: getattr(args, name) for name in FIELDS})


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
        raise argparse.ArgumentTypeError(
            f"cannot write in {path.parent}: {exc.strerror or exc}"
        ) from None
    return path


def mirror(text: str) -> str:
    """An argparse type: a mirror of a supported scheme
    (:func:`scratchlr.dataset.download.check_mirror`)."""
    try:
        return download.check_mirror(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_data_args(
    p: argparse.ArgumentParser,
    fetches: bool = True,
    quiet: str = "no progress bars (download, training)",
    dataset: str = "flag",
) -> None:
    """Flags saying which data set, where it lives and (if the command ``fetches`` it) where
    to fetch it from, and ``--quiet``, with the help ``quiet``. ``dataset`` says where
    ``--dataset`` comes from: ``flag``, a flag here (default mnist); ``model``, a flag here
    whose default is the model file's data set (``args.dataset`` None); ``config``, the
    :class:`Config` field's flag, made elsewhere."""
    if dataset != "config":
        p.add_argument(
            "--dataset",
            choices=tuple(DATASETS),
            default="mnist" if dataset == "flag" else None,
            help="the data set (default: "
            + ("mnist)" if dataset == "flag" else "the one that trained the model)"),
        )
    folders = "; ".join(f"{r.name}: ${r.env} or ./{r.folder}" for r in DATASETS.values())
    p.add_argument("--data-dir", help=f"the data set's folder (default {folders})")
    if fetches:
        p.add_argument(
            "--mirror",
            action="append",
            metavar="URL",
            type=mirror,
            help="fetch missing files from URL first (http(s)://, file:// or a folder; "
            f"repeatable; default ${download.MIRROR_ENV}, then the data set's public mirrors)",
        )
        p.add_argument("--quiet", action="store_true", help=quiet)


def download_bars(args: argparse.Namespace) -> type[ProgressBar] | None:
    """The downloader's bar of each file's bytes, unless ``--quiet``."""
    return None if args.quiet else ProgressBar


def load_data(args: argparse.Namespace, dataset: Dataset, validation_size: int) -> splits.Splits:
    """``dataset`` from the folder the flags name, fetched first where files are missing,
    split with ``validation_size`` held out. Raises ``DownloadError`` or ``DataError``."""
    download.fetch_missing(dataset, args.data_dir, args.mirror, download_bars(args))
    return splits.load(dataset, args.data_dir, validation_size)
