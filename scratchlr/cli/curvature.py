"""``scratchlr curvature [MODEL.npz]``: the Hessian's largest eigenvalue (and an estimate of the
smallest) at zero weights or at a model's, the stable learning rates they give, and a verdict
on a learning rate and momentum (:mod:`scratchlr.optim.curvature`)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from .. import model
from ..backend import numpy_backend
from ..config import DTYPES, Config, flag
from ..dataset import download, splits
from ..dataset.records import DATASETS, DEFAULT_VALIDATION_SIZE
from ..files import modelfile
from ..objective import Objective
from ..optim import curvature
from ..progress import ProgressBar
from .args import add_data_args, fail, load_data, usage_error

BAR_DELAY = 2.0  # s: a measurement that ends sooner shows no progress bar


def add_parser(commands: Any) -> None:
    """The ``curvature`` command and its flags."""
    p = commands.add_parser(
        "curvature",
        help="the Hessian's extreme eigenvalues and the stable learning rates",
        description="The largest eigenvalue lambda_max of the objective's Hessian (power "
        "iteration on Hessian-vector products) and an estimate of the smallest (an upper bound: "
        "power iteration on lambda_max I - H), over the whole training split, at zero weights or "
        "at MODEL.npz's; gradient descent's stable rate 2/lambda_max, heavy ball's "
        "2(1+mu)/lambda_max, and a verdict on --learning-rate and --momentum. The data set, "
        "dtype, weight decay, rate and momentum are the model's unless given.",
    )
    p.add_argument(
        "model", metavar="MODEL.npz", nargs="?", help="a model written by --save (default: zeros)"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        metavar="LAMBDA",
        help="lambda (default: the model's objective's, or 0)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="the rate judged (default: an SGD model's, or 0.1 at zero weights)",
    )
    p.add_argument(
        "--momentum", type=float, metavar="MU", help="its momentum (default: an SGD model's, or 0)"
    )
    p.add_argument(
        "--nesterov",
        action="store_true",
        help="judge Nesterov's momentum, not heavy ball's (default: an SGD model's setting)",
    )
    p.add_argument(
        "--dtype", choices=DTYPES, help="float type of the math (default: the model's, or float32)"
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=50,
        metavar="K",
        help="power iterations for each eigenvalue (default: 50)",
    )
    add_data_args(p, dataset="model", quiet="no progress bars (download, iterations)")
    p.set_defaults(run=run)


def settings(args: argparse.Namespace, m: modelfile.ModelFile | None) -> dict[str, Any]:
    """The settings measured, by Config field: the flags given, else the model's, else the
    training defaults. The model's lambda is its objective's (none for AdamW's decoupled
    decay); its rate and momentum count only where SGD made it (a solver has no fixed rate,
    and Adam's or RMSprop's steps are not lr g)."""
    base = m.config if m is not None else Config()
    sgd = base.optimizer == "sgd"
    model_values = {
        "weight_decay": base.penalty,
        "learning_rate": base.learning_rate if sgd else None,
        "momentum": base.momentum if sgd else 0.0,
        "nesterov": base.nesterov if sgd else False,
        "dtype": base.dtype,
        "dataset": base.dataset,
    }
    given = {
        "weight_decay": args.weight_decay,
        "learning_rate": args.learning_rate,
        "momentum": args.momentum,
        "nesterov": args.nesterov or None,
        "dtype": args.dtype,
        "dataset": args.dataset,
    }
    return {name: model_values[name] if value is None else value for name, value in given.items()}


def check(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, if anything, in one line."""
    for name in ("weight_decay", "momentum"):
        value = getattr(args, name)
        if value is not None and not (np.isfinite(value) and value >= 0):
            return f"{flag(name)} must be zero or positive, got {value}"
    if args.momentum is not None and args.momentum >= 1:
        return f"--momentum must be below 1, got {args.momentum}"
    if args.learning_rate is not None and not (
        np.isfinite(args.learning_rate) and args.learning_rate > 0
    ):
        return f"--learning-rate must be positive, got {args.learning_rate}"
    if args.iterations < 1:
        return f"--iterations must be positive, got {args.iterations}"
    return None


def run(args: argparse.Namespace) -> int:
    """``scratchlr curvature``: print lambda_max, the lambda_min estimate, the two limits and
    the verdict."""
    problem = check(args)
    if problem:
        return usage_error(problem)
    try:
        m = modelfile.load(args.model) if args.model else None
    except modelfile.ModelFileError as exc:
        return fail(str(exc))
    chosen = settings(args, m)
    dataset = DATASETS[chosen["dataset"]]
    dtype = chosen["dtype"]
    weight_decay = chosen["weight_decay"]

    def bad(problem: str) -> modelfile.ModelFileError:
        return modelfile.ModelFileError(f"{args.model}: {problem}")

    validation_size = m.config.validation_size if m is not None else DEFAULT_VALIDATION_SIZE
    try:
        if m is not None:
            modelfile.check_shapes(m.W, m.b, dataset, bad)
        data = load_data(args, dataset, validation_size)
    except (modelfile.ModelFileError, download.DownloadError, splits.DataError) as exc:
        return fail(str(exc))
    xp = numpy_backend().xp
    X = model.pixels(xp.asarray(data.train.images), dtype)
    objective = Objective(X, xp.asarray(data.train.labels), weight_decay)
    if m is None:
        W = xp.zeros((dataset.pixels, dataset.num_classes), dtype)
        b = xp.zeros(dataset.num_classes, dtype)
    else:
        W = xp.asarray(m.W, dtype)
        b = xp.asarray(m.b, dtype)
    bar = None if args.quiet else ProgressBar(2 * args.iterations, "curvature", delay=BAR_DELAY)
    tick = bar.update if bar is not None else None
    lam_max = curvature.largest_eigenvalue(objective, W, b, args.iterations, tick)
    lam_min = curvature.smallest_eigenvalue(objective, W, b, lam_max, args.iterations, tick)
    if bar is not None:
        bar.close()
    at = f"at {args.model}'s weights" if m is not None else "at zero weights"
    rows = len(data.train.labels)
    print(
        f"Hessian of f = J + (lambda/2)||W||^2 {at}, lambda = {weight_decay:g}, "
        f"{dataset.title}'s {rows} training images, {dtype}"
    )
    print(f"lambda_max = {lam_max:.4f}  (power iteration, {args.iterations} products)")
    print("lambda_min = 0 along a common shift of every bias (it changes no probability)")
    print(
        f"lambda_min over W = lambda = {weight_decay:g}: adding one vector to every column of W "
        "changes no probability, so only the penalty curves f there"
    )
    print(
        f"  (a check: power iteration on lambda_max I - H reaches {lam_min:.3g} "
        f"in {args.iterations} products: it converges slowly)"
    )
    print(f"gradient descent's stable rate 2/lambda_max = {curvature.gd_stable_rate(lam_max):.4f}")
    mu = chosen["momentum"]
    nesterov = chosen["nesterov"]
    if mu and nesterov:
        limit = curvature.nesterov_stable_rate(lam_max, mu)
        print(f"Nesterov's stable rate 2(1+mu)/((1+2mu) lambda_max) = {limit:.4f} (mu = {mu:g})")
    elif mu:
        limit = curvature.heavy_ball_stable_rate(lam_max, mu)
        print(f"heavy ball's stable rate 2(1+mu)/lambda_max = {limit:.4f} (mu = {mu:g})")
    if chosen["learning_rate"] is None:
        print(
            f"no verdict: --optimizer {m.config.optimizer if m else 'sgd'} has no rate that "
            "these limits judge; give --learning-rate to judge one"
        )
    else:
        print(curvature.verdict(lam_max, chosen["learning_rate"], mu, nesterov))
    return 0
