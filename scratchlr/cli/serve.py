"""The ``serve`` command: the demo page of a saved model, on a local HTTP server.

A bad model file, missing data, or an address it cannot bind (a port in use) is one line on
stderr and exit 1. Ctrl-C stops it: the server closes, and the command exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

import numpy as np

from ..dataset import download, splits
from ..dataset.records import TEST_FILES
from ..files import modelfile
from ..serve.server import DemoServer
from .args import add_data_args, download_bars, fail
from .models import dataset_for


def add_parser(commands: Any) -> None:
    """The ``serve`` command and its flags."""
    p = commands.add_parser(
        "serve",
        help="a page where you draw a digit and watch the model decide",
        description="Serve a page (and its JSON API) where one draws a digit and sees what the "
        "model sees, its ten probabilities and logits, the pixels that push the two likeliest "
        "classes up or down, and the templates; or a random test image of the model's data "
        "set. Needs Pillow (the [serve] or [plot] extra). Ctrl-C stops it.",
    )
    p.add_argument("model", metavar="MODEL.npz", help="a model written by --save")
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


def run_serve(args: argparse.Namespace) -> int:
    """``scratchlr serve``: load the model and the test images, bind, print the URL, serve
    until Ctrl-C."""
    if importlib.util.find_spec("PIL") is None:
        return fail("serve reads the drawings with Pillow: pip install 'scratchlr[serve]'")
    try:
        m = modelfile.load(args.model)
        dataset = dataset_for(args, m)
        download.fetch_missing(dataset, args.data_dir, args.mirror, download_bars(args), TEST_FILES)
        arrays = splits.load_arrays(dataset, splits.data_dir(dataset, args.data_dir), TEST_FILES)
        test = splits.Split(
            arrays["test_images"].reshape(-1, dataset.pixels),
            arrays["test_labels"].astype(np.int64),
        )
    except (modelfile.ModelFileError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    try:
        server = DemoServer((args.host, args.port), m.W, m.b, test, args.quiet)
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    print(f"Serving {args.model} on {server.url()} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
