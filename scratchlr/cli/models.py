"""The commands that use a saved model: ``evaluate``, ``predict`` and ``plot``.

Usage errors exit 2; a bad model file, image or data folder is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import model
from ..backend import numpy_backend
from ..dataset import download, splits
from ..dataset.records import DATASETS, Dataset
from ..evaluation import predict_split
from ..files import history, images, modelfile
from ..reports.evaluate import class_label, confusion_matrix, format_report, report, scores
from ..search import results
from .args import add_data_args, fail, load_data, usage_error


def add_parsers(commands: Any) -> None:
    """The ``evaluate``, ``predict`` and ``plot`` commands and their flags."""
    p = commands.add_parser(
        "evaluate",
        help="score a saved model on a split",
        description="Loss, accuracy, confusion matrix, per-class precision, recall and F1, and "
        "the most confused pairs of a saved model on one split of its data set.",
    )
    p.add_argument("model", metavar="MODEL.npz", help="a model written by --save")
    p.add_argument(
        "--split",
        choices=("test", "validation", "train"),
        default="test",
        help="which split (test)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_args(p, dataset="model")
    p.set_defaults(run=run_evaluate)

    p = commands.add_parser(
        "predict",
        help="classify images of your own",
        description="Classify images of one's own: PNG/JPEG (Pillow), .npy (28x28 or 784, uint8 "
        "or [0, 1]) or IDX image files. Pictures are made MNIST-like first "
        "(scratchlr/files/images.py says how).",
    )
    p.add_argument("model", metavar="MODEL.npz", help="a model written by --save")
    p.add_argument("files", metavar="FILE", nargs="+", help="images to classify")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(run=run_predict)

    p = commands.add_parser(
        "plot",
        help="draw a saved model's pictures, or a search's",
        description="Write the pictures of a saved model as PNG files: templates.png (the weight "
        "templates), confusion.png, most_wrong.png, explain.png (why one prediction) and, with "
        "--history, curves.png; with --search, a search's search_map.png (validation accuracy "
        "over its two busiest settings) and search_front.png (accuracy against time, and the "
        "Pareto front). Needs the [plot] extra (matplotlib).",
    )
    p.add_argument("model", metavar="MODEL.npz", nargs="?", help="a model written by --save")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write the PNGs into (made if missing)",
    )
    p.add_argument(
        "--history", metavar="FILE", help="a history CSV written by --history, for curves.png"
    )
    p.add_argument(
        "--search",
        metavar="FILE.csv",
        help="a search's --results, for search_map.png and search_front.png",
    )
    p.add_argument(
        "--explain", metavar="FILE", help="an image to explain (default: the first test image)"
    )
    add_data_args(p, dataset="model")
    p.set_defaults(run=run_plot)


def dataset_for(args: argparse.Namespace, m: modelfile.ModelFile) -> Dataset:
    """The data set a command reads for the model ``m``: ``--dataset`` where given, else the
    one that trained it. ``ModelFileError`` if its W does not fit that data set's images and
    classes."""
    dataset = DATASETS[args.dataset or m.config.dataset]

    def bad(problem: str) -> modelfile.ModelFileError:
        return modelfile.ModelFileError(f"{args.model}: {problem}")

    modelfile.check_shapes(m.W, m.b, dataset, bad)
    return dataset


def run_evaluate(args: argparse.Namespace) -> int:
    """``scratchlr evaluate``: the report of a saved model on a split."""
    try:
        m = modelfile.load(args.model)
        dataset = dataset_for(args, m)
        data = load_data(args, dataset, m.config.validation_size)  # split as it was trained
    except (modelfile.ModelFileError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    split = getattr(data, args.split)
    if not len(split.labels):
        return fail(
            f"{args.model}: trained with no validation images held out, so there is no "
            "validation split"
        )
    r = report(m.W, m.b, split, numpy_backend())
    title = f"{args.model}, {args.split} split"
    print(
        json.dumps({"model": str(args.model), "split": args.split, **r}, indent=1)
        if args.json
        else format_report(r, title, dataset.named_classes)
    )
    return 0


def predicted(m: modelfile.ModelFile, x: np.ndarray, label: str) -> dict[str, Any]:
    """What ``predict`` says of image x (784,): the class, the three most probable with their
    probabilities, and all ten probabilities and logits."""
    z, p = scores(m.W, m.b, x)
    top = [[int(c), float(p[c])] for c in np.argsort(-p, kind="stable")[:3]]
    return {
        "file": label,
        "prediction": top[0][0],
        "top3": top,
        "probabilities": [float(v) for v in p],
        "logits": [float(v) for v in z],
    }


def run_predict(args: argparse.Namespace) -> int:
    """``scratchlr predict``: each file's predicted class (named, where the model's data set
    names its classes) and top-3 probabilities; files that cannot be read get one line each
    on stderr, and the exit status 1."""
    try:
        m = modelfile.load(args.model)
    except modelfile.ModelFileError as exc:
        return fail(str(exc))
    names = m.dataset.named_classes
    failed = 0
    out = []
    for name in args.files:
        try:
            xs = images.read(name)
        except images.ImageError as exc:
            failed += 1
            fail(str(exc))
            continue
        for i, x in enumerate(xs):
            label = name if len(xs) == 1 else f"{name}[{i}]"
            out.append(predicted(m, x, label))
            if not args.json:
                top = out[-1]["top3"]
                said = class_label(top[0][0], names)
                shares = ", ".join(f"{c}: {p:.4f}" for c, p in top)
                print(f"{label}: {said}  ({shares})", flush=True)
    if args.json:
        print(json.dumps(out, indent=1))
    return 1 if failed else 0


def run_plot(args: argparse.Namespace) -> int:
    """``scratchlr plot``: the five pictures, as PNGs in ``--out``."""
    try:
        from ..reports import plots
    except ImportError:
        return fail("plot needs matplotlib: pip install 'scratchlr[plot]'")
    if args.model is None and (args.search is None or args.history or args.explain):
        return usage_error(
            "give a MODEL.npz (with --history or --explain if wanted), or --search FILE.csv, "
            "or both"
        )
    try:
        searched = search_figures(plots, Path(args.search)) if args.search else {}
        out = Path(args.out)
        if args.model is None:
            out.mkdir(parents=True, exist_ok=True)
            return write_figures(plots, searched, out)
        m = modelfile.load(args.model)
        records = history.read_csv(Path(args.history)) if args.history else None
        if records == []:
            return fail(f"{args.history}: the history has no records to draw")
        dataset = dataset_for(args, m)
        data = load_data(args, dataset, m.config.validation_size)
        if args.explain:
            x = images.read(args.explain)[0]
            title = Path(args.explain).name
        else:
            x = model.pixels(data.test.images[0], np.float32)
            title = f"test image 0 ({shown_class(data.test.labels[0], dataset)})"
        out.mkdir(parents=True, exist_ok=True)
    except (
        modelfile.ModelFileError,
        download.DownloadError,
        splits.DataError,
        images.ImageError,
        ValueError,
    ) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.filename or args.out}: {exc.strerror or exc}")
    yhat, _ = predict_split(m.W, m.b, data.test, numpy_backend())
    names = dataset.named_classes
    M = confusion_matrix(data.test.labels, yhat, dataset.num_classes)
    test_images = np.asarray(data.test.images)
    figures = {
        "templates.png": lambda: plots.weight_templates(m.W, names),
        "confusion.png": lambda: plots.confusion(M, names),
        "most_wrong.png": lambda: plots.most_wrong(
            m.W, m.b, test_images, data.test.labels, classes=names
        ),
        "explain.png": lambda: plots.explain(m.W, m.b, x, title, names),
        **(
            {"curves.png": lambda: plots.curves(records, averaged=m.config.average is not None)}
            if records
            else {}
        ),
        **searched,
    }
    return write_figures(plots, figures, out)


def shown_class(c: int, dataset: Dataset) -> str:
    """Class c in a title: "a 7" (a digit's number), else its name ("Ankle boot")."""
    names = dataset.named_classes
    return f"a {c}" if names is None else names[c]


def search_figures(plots: Any, path: Path) -> dict[str, Callable[[], Any]]:
    """The two pictures of a search's results file, to be drawn; ``ValueError`` if the file
    is not one, or has no trial, or no setting that varies."""
    names, table = results.read_table(path)
    if not table:
        raise ValueError(f"{path}: no trial has finished: there is nothing to draw")
    # drawn now: it refuses results where nothing varies, before any file is written
    mapped = plots.search_map(names, table)
    return {
        "search_map.png": lambda: mapped,
        "search_front.png": lambda: plots.search_front(names, table),
    }


def write_figures(plots: Any, figures: dict[str, Callable[[], Any]], out: Path) -> int:
    """Draw and save each figure as ``out/NAME``, printing each path; 0, or 1 if one cannot
    be written."""
    try:
        for name, make in figures.items():
            plots.save(make(), out / name)
            print(out / name, flush=True)
    except OSError as exc:
        return fail(f"cannot write in {out}: {exc.strerror or exc}")
    return 0
