"""The commands that use a saved model: ``evaluate`` and ``predict``.

Usage errors exit 2; a bad model file, image or data folder is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from . import checkpoint, download, images, mnist, model
from .args import PROG, Parser, add_data_args, fail, fetch
from .backend import numpy_backend
from .evaluate import format_report, report


def evaluate_parser() -> argparse.ArgumentParser:
    """The ``evaluate`` command's flags."""
    p = Parser(prog=f"{PROG} evaluate",
               description="Loss, accuracy, confusion matrix, per-class precision, recall and F1, and the most "
               "confused pairs of a saved model on one split of MNIST.")
    p.add_argument("model", metavar="MODEL.npz", help="a model written by --save")
    p.add_argument("--split", choices=("test", "validation", "train"), default="test", help="which split (test)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_args(p)
    return p


def run_evaluate(argv: Sequence[str]) -> int:
    """``scratchlr evaluate``: the report of a saved model on a split."""
    parser = evaluate_parser()
    args = parser.parse_args(argv)
    try:
        m = checkpoint.load(args.model)
        fetch(args)
        data = mnist.load(args.data_dir, m.meta.get("data", {}).get("validation_size", mnist.DEFAULT_VALIDATION_SIZE))
    except (checkpoint.ModelFileError, download.DownloadError, mnist.MNISTDataError) as exc:
        return fail(str(exc))
    split = getattr(data, args.split)
    if not len(split.labels):
        parser.error(f"--split {args.split}: the model was trained with no validation images held out")
    r = report(m.W, m.b, split, numpy_backend())
    print(json.dumps({"model": str(args.model), "split": args.split, **r}, indent=1) if args.json
          else format_report(r, f"{args.model}, {args.split} split"))
    return 0


def predict_parser() -> argparse.ArgumentParser:
    """The ``predict`` command's flags."""
    p = Parser(prog=f"{PROG} predict",
               description="Classify images of one's own: PNG/JPEG (Pillow), .npy (28x28 or 784, uint8 or [0, 1]) "
               "or IDX image files. Pictures are made MNIST-like first (scratchlr/images.py says how).")
    p.add_argument("model", metavar="MODEL.npz", help="a model written by --save")
    p.add_argument("files", metavar="FILE", nargs="+", help="images to classify")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    return p


def top_classes(m: checkpoint.Model, x: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most probable classes of image x (784,), with their probabilities."""
    p = model.softmax(model.logits(x[None, :].astype(m.W.dtype), m.W, m.b))[0]
    return [(int(c), float(p[c])) for c in np.argsort(-p, kind="stable")[:k]]


def run_predict(argv: Sequence[str]) -> int:
    """``scratchlr predict``: each file's predicted class and top-3 probabilities; files
    that cannot be read get one line each on stderr, and the exit status 1."""
    args = predict_parser().parse_args(argv)
    try:
        m = checkpoint.load(args.model)
    except checkpoint.ModelFileError as exc:
        return fail(str(exc))
    failed, out = 0, []
    for name in args.files:
        try:
            xs = images.read(name)
        except images.ImageError as exc:
            failed += 1
            fail(str(exc))
            continue
        for i, x in enumerate(xs):
            label = name if len(xs) == 1 else f"{name}[{i}]"
            top = top_classes(m, x)
            out.append({"file": label, "prediction": top[0][0], "top3": [[c, p] for c, p in top]})
            if not args.json:
                print(f"{label}: {top[0][0]}  ({', '.join(f'{c}: {p:.4f}' for c, p in top)})", flush=True)
    if args.json:
        print(json.dumps(out, indent=1))
    return 1 if failed else 0
