"""The ``serve`` command: the demo page of a saved model (or of none: the page opens on its
training view, from zero weights), on a local HTTP server, training at most ``--max-runs``
runs at once for the page (:mod:`scratchlr.serve.runs`).

A bad model file, missing data, or an address it cannot bind (a port in use) is one line on
stderr and exit 1. Ctrl-C stops it: the server closes, and the command exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import download, splits
from ..dataset.records import DATASETS, DEFAULT_VALIDATION_SIZE, TEST_FILES, Dataset
from ..files import modelfile
from ..serve.runs import Runs
from ..serve.server import DemoServer
from .args import add_data_args, download_bars, fail, load_data, usage_error
from .models import dataset_for


def add_parser(commands: Any) -> None:
    """The ``serve`` command and its flags."""
    p = commands.add_parser(
        "serve",
        help="a page where you draw a digit and watch the model decide, or watch it learn",
        description="Serve a page (and its JSON API) where one draws a digit and sees what the "
        "model sees, its ten probabilities and logits, the pixels that push the two likeliest "
        "classes up or down, and the templates; or a random test image of the model's data "
        "set. Its training view trains a model from zero weights with the settings of "
        "python -m scratchlr, live, paced, with its loss, accuracy and templates as they form "
        "(the page opens there without MODEL.npz). Needs Pillow (the [serve] or [plot] "
        "extra). Ctrl-C stops it.",
    )
    p.add_argument(
        "model",
        metavar="MODEL.npz",
        nargs="?",
        help="a model written by --save (none: the page opens on its training view)",
    )
    p.add_argument(
        "--max-runs",
        type=count,
        default=os.cpu_count() or 1,
        metavar="N",
        help="trainings the page may run at once (default: the cores, "
        f"{os.cpu_count() or 1} here; 0: no training view)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--port", type=port, default=8000, help="port to listen on (8000; 0: any free port)"
    )
    add_data_args(p, quiet="no access log, and no download progress bar", dataset="model")
    p.set_defaults(run=run_serve)


def port(text: str) -> int:
    """A TCP port number, 0 to 65535 (argparse type)."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)


def count(text: str) -> int:
    """A count, 0 or more (argparse type)."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"a count is 0 or more, not {text!r}")
    return int(text)


def test_split(args: argparse.Namespace, dataset: Dataset) -> splits.Split:
    """The data set's test split alone (the drawing view's test images), fetched if missing."""
    download.fetch_missing(dataset, args.data_dir, args.mirror, download_bars(args), TEST_FILES)
    arrays = splits.load_arrays(dataset, splits.data_dir(dataset, args.data_dir), TEST_FILES)
    return splits.Split(
        arrays["test_images"].reshape(-1, dataset.pixels),
        arrays["test_labels"].astype(np.int64),
    )


def run_serve(args: argparse.Namespace) -> int:
    """``scratchlr serve``: load the model (if given) and the data (the test images; all
    splits where the page may train), bind, print the URL, serve until Ctrl-C."""
    if not args.model and not args.max_runs:
        return usage_error("--max-runs 0 trains nothing: give a MODEL.npz to serve, or runs")
    if importlib.util.find_spec("PIL") is None:
        return fail("serve reads the drawings with Pillow: pip install 'scratchlr[serve]'")
    runs = None
    try:
        m = modelfile.load(args.model) if args.model else None
        dataset = dataset_for(args, m) if m is not None else DATASETS[args.dataset or "mnist"]
        if args.max_runs:
            runs = Runs(load_data(args, dataset, DEFAULT_VALIDATION_SIZE), args.max_runs)
            test = runs.data.test
        else:
            test = test_split(args, dataset)
    except (modelfile.ModelFileError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    W = m.W if m is not None else None
    b = m.b if m is not None else None
    name = Path(args.model).name if args.model else None
    try:
        server = DemoServer(
            (args.host, args.port), W, b, test, args.quiet, runs=runs, model=name, dataset=dataset
        )
    except OSError as exc:
        if runs is not None:
            runs.close()
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    served = args.model or "the training view"
    print(f"Serving {served} on {server.url()} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
