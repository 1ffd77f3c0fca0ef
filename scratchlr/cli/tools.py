"""The commands that need no model: ``download`` and ``gradcheck``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import gradcheck
from ..dataset import download, splits
from ..dataset.records import DATASETS
from .args import PROG, add_data_args, download_bars, fail


def add_parsers(commands: Any) -> None:
    """The ``download`` and ``gradcheck`` commands and their flags."""
    p = commands.add_parser(
        "download",
        help="fetch and verify a data set (--dataset; MNIST by default)",
        description="Fetch, verify (by the MD5s its record publishes) and cache the four files "
        "of a data set. Files already verified are not fetched again.",
    )
    add_data_args(p)
    p.set_defaults(run=run_download)

    p = commands.add_parser(
        "gradcheck",
        help="check the gradient and the Hessian-vector product against finite differences",
        description="Compare the analytic gradient with central differences (float64) on a "
        "random problem (with and without weight decay) and, when the data set is present, on "
        "its first 32 examples, and the Hessian-vector product (with weight decay) with central "
        "differences of the gradient on both. Exits 1 if the max relative error exceeds "
        f"{gradcheck.TOLERANCE:g}.",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="print the two- and five-point differences' errors at h = 1e-1 ... 1e-5 on the "
        "random problem, and both on the data set's first 32 examples (docs/math.md section 9); "
        "check nothing",
    )
    add_data_args(p, fetches=False)
    p.set_defaults(run=run_gradcheck)


def run_download(args: argparse.Namespace) -> int:
    """``scratchlr download``: fetch and verify; say what was fetched."""
    dataset = DATASETS[args.dataset]
    try:
        fetched = download.fetch_missing(dataset, args.data_dir, args.mirror, download_bars(args))
    except (download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    directory = splits.data_dir(dataset, args.data_dir)
    print(
        f"fetched {', '.join(fetched)} into {directory}"
        if fetched
        else f"{dataset.title} already verified in {directory}"
    )
    return 0


def run_gradcheck(args: argparse.Namespace) -> int:
    """``scratchlr gradcheck``: exit 0 if the analytic gradient passes, 1 if not (``--sweep``:
    the table of step sizes, exit 0)."""
    dataset = DATASETS[args.dataset]
    directory = splits.data_dir(dataset, args.data_dir)
    arrays = None
    try:
        data = splits.load(dataset, args.data_dir)
        arrays = (data.train.images, data.train.labels)
    except splits.DataError as exc:
        present = directory.is_dir() and any(
            splits.find(directory, f) for f in dataset.files.values()
        )
        if present or directory.is_file():
            return fail(str(exc))  # a file, or files present but broken: say so rather than skip
        print(
            f"{PROG}: {dataset.title} not found in {directory}; checking the random problem only",
            file=sys.stderr,
        )
    if args.sweep:
        gradcheck.run_sweep(arrays)
        return 0
    worst = gradcheck.run(arrays)
    verdict = "OK" if worst <= gradcheck.TOLERANCE else "FAILED"
    print(
        f"gradcheck {verdict}: max relative error {worst:.3e} (tolerance {gradcheck.TOLERANCE:g})"
    )
    return 0 if worst <= gradcheck.TOLERANCE else 1
