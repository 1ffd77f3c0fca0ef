"""The race: scratchlr's optimisers and scikit-learn's solvers, on one objective, to its optimum.

    python benchmarks/solvers.py --data-dir data/mnist [--only NAME,...] [--max-seconds 45] \
        [--results solvers.json] [--figure docs/solvers.png]
    python benchmarks/solvers.py --from solvers.json    # the table and figure again, no runs

**The objective.** MNIST's 55,000 training images (the first 5,000 are held out for
validation, as scratchlr splits them), pixels in [0, 1] in float64, and

    f(W, b) = (1/N) sum_n L_n(W, b) + (lambda/2) ||W||^2,    b not penalised,

L_n the cross-entropy of image n, lambda = ``--weight-decay`` (1e-4). It is scikit-learn's
``LogisticRegression(C=1/(lambda N))``, which minimises the mean loss plus ||W||^2 / (2 C N)
(``_logistic.py``: ``l2_reg_strength = 1/(C * sw_sum)``; sag's ``alpha = 1/C`` is divided
by N): each run checks that scratchlr's ``Objective.value`` at a scikit-learn fit's
``coef_.T`` and ``intercept_`` equals scikit-learn's own ``LinearModelLoss`` there.

**The contestants** (``--only`` picks some; those not installed are left out):

- ``scratchlr-newton-cg``, ``scratchlr-lbfgs``, ``scratchlr-gd``: the full-batch solvers
  (:data:`scratchlr.optim.SOLVERS`) with their defaults, on the float64 objective, from
  zeros; ``scratchlr-newton-cg-plain`` is Newton-CG as scikit-learn's (plain CG, float64
  Hessian products over the rows as they come). Their ``iterations`` stream gives one
  iterate per iteration; the clock runs only while the solver works (making it included),
  not while this script scores the iterate (f recomputed in float64, outside the timed
  region: Newton-CG reports a float32 f while far from the optimum).
- ``scratchlr-sgd`` and the other mini-batch optimisers (:data:`scratchlr.optim.OPTIMIZERS`):
  :func:`scratchlr.train.train` in float32, run afresh for 1, 2, 3, 4, 6, 8, ... 32 epochs
  (the same shuffles, so each run extends the last); the time is each run's
  ``train_seconds``. sgd uses the README's recipe but for its weight decay, which here is
  lambda; the others batches of 512, shuffled, and the best of three learning rates by f after
  4 epochs (adamw's decay is decoupled, so its fixed point is not f's optimum).
- ``sklearn-newton-cg``, ``sklearn-lbfgs``, ``sklearn-sag``, ``sklearn-saga``:
  ``LogisticRegression(C=1/(lambda N), solver=..., tol=1e-12)``, fitted afresh with
  ``max_iter`` = 1, 2, 4, 8, ... (benchopt's way), in float64, the fit alone timed.
  ``sklearn-newton-cholesky`` runs only when named: it forms the 7,850^2 Hessian, and one
  iteration took 78 s here.

The contestants run in this order. Each stops at ``--max-seconds`` (one fit's, or one
trajectory's), when it stops by itself (or its f stalls at float64's precision), or once its f
is within 1e-9 (relative) of the least f of those before it: it has arrived, and no threshold
of the table lies so close. scikit-learn's times (and the mini-batch runs') are those of whole
fits, so the table gives a range ``a–b``: the last fit short of the threshold took a seconds,
the first at or below it b. For 1e-6 that gap is then bisected by up to ``--refine`` more
fits, for each scikit-learn solver that may be its fastest. Everyone runs on one BLAS and
OpenMP thread (``threadpool_limits(1)``), once: no repeats.

**The measure.** f* is the least f that any contestant reached in this run (nothing
subtracted), and each point's relative suboptimality is (f - f*) / f*. f and the test
accuracy (10,000 images) of every point are computed in float64 outside the timed regions.
The table gives each contestant's seconds to 1e-2, 1e-4 and 1e-6 (its first point at or
below), and the ratio of scikit-learn's fastest to scratchlr's fastest at 1e-6 (b over
scratchlr's time; a over it too, where the fits are more than one iteration apart). The figure
(``--figure``) has two panels against seconds: suboptimality, and test accuracy. The raw
points go to ``--results`` (JSON), which ``--from`` reads back.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from scratchlr import model  # noqa: E402
from scratchlr.backend import numpy_backend  # noqa: E402
from scratchlr.config import Config  # noqa: E402
from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402
from scratchlr.objective import Objective  # noqa: E402
from scratchlr.optim import OPTIMIZERS  # noqa: E402
from scratchlr.train import train  # noqa: E402

THRESHOLDS = (1e-2, 1e-4, 1e-6)
FLOOR = 1e-10  # the figure's least suboptimality
COLOURS = {  # one colour an algorithm: scratchlr's solid, scikit-learn's dashed
    "newton-cg": "tab:blue",
    "newton-cg-plain": "tab:cyan",
    "lbfgs": "tab:green",
    "gd": "tab:red",
    "sgd": "tab:purple",
    "adam": "tab:brown",
    "adamw": "tab:pink",
    "rmsprop": "tab:gray",
    "adagrad": "tab:olive",
    "sag": "tab:orange",
    "saga": "goldenrod",
    "newton-cholesky": "black",
}
CLOSE = 1e-9  # a contestant within this of an earlier one's best f stops: it has arrived
SKLEARN_TOL = 1e-12  # so that max_iter, not tol, ends a fit
SOLVER_TOL = 1e-12
STALLED = 1e-15  # a solver whose f falls by less than this (relative) has reached float64's end
MAX_ITER = 100_000  # a full-batch solver's iterations: the clock ends it first
EPOCHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # the mini-batch runs' lengths
RECIPE = {  # the README's recipe as Config fields, but for its weight decay (lambda here)
    "shuffle": True,
    "batch_size": 512,
    "momentum": 0.93,
    "learning_rate": 1.1,
    "average": 80,
}
ADAPTIVE = {"shuffle": True, "batch_size": 512}  # and the learning rate, the best of three
SOLVERS = {  # contestant: (its key in scratchlr.optim.SOLVERS, its settings)
    "scratchlr-newton-cg": ("newton-cg", {}),
    "scratchlr-newton-cg-plain": (
        "newton-cg",
        {"preconditioner": None, "hessian_dtype": None, "sort_rows": False},
    ),
    "scratchlr-lbfgs": ("lbfgs", {}),
    "scratchlr-gd": ("gd", {}),
}
MINI_BATCH = {  # contestant: the Config fields of its runs (besides epochs and weight decay)
    "scratchlr-sgd": {"optimizer": "sgd", **RECIPE},
    "scratchlr-adam": {"optimizer": "adam", "learning_rate": 0.01, **ADAPTIVE},
    "scratchlr-adamw": {"optimizer": "adamw", "learning_rate": 0.01, **ADAPTIVE},
    "scratchlr-rmsprop": {"optimizer": "rmsprop", "learning_rate": 0.003, **ADAPTIVE},
    "scratchlr-adagrad": {"optimizer": "adagrad", "learning_rate": 0.1, **ADAPTIVE},
}
SKLEARN = ("newton-cg", "lbfgs", "sag", "saga", "newton-cholesky")
DEFAULT_LEFT_OUT = ("sklearn-newton-cholesky",)  # forms a 7850^2 Hessian: ask for it by name
CONTESTANTS = (*SOLVERS, *MINI_BATCH, *(f"sklearn-{name}" for name in SKLEARN))  # in race order
Point = tuple[float, float, float, int]  # (seconds, f, test accuracy, iterations or epochs)


@dataclass(frozen=True)
class Problem:
    """The race's objective on the training split (float64), and the test split to score."""

    objective: Objective
    X_test: np.ndarray
    y_test: np.ndarray
    data: splits.Splits  # the mini-batch runs train on its training split

    def value(self, W: np.ndarray, b: np.ndarray) -> float:
        """f at (W, b), in float64."""
        return float(self.objective.value(np.asarray(W, np.float64), np.asarray(b, np.float64)))

    def test_accuracy(self, W: np.ndarray, b: np.ndarray) -> float:
        """The accuracy of (W, b) on the test split, in float64."""
        z = model.logits(self.X_test, np.asarray(W, np.float64), np.asarray(b, np.float64))
        return float(model.accuracy(z, self.y_test))

    def zeros(self) -> tuple[np.ndarray, np.ndarray]:
        """The start every contestant shares: W = 0 (D, C), b = 0 (C,), float64."""
        X = self.objective.X
        classes = self.data.dataset.num_classes
        return np.zeros((X.shape[1], classes)), np.zeros(classes)


def problem(data_dir: str, weight_decay: float, subset: int | None) -> Problem:
    """The objective on the training split (its first ``subset`` images, where given)."""
    data = splits.load(DATASETS["mnist"], data_dir)
    if subset:
        part = splits.Split(data.train.images[:subset], data.train.labels[:subset])
        data = splits.Splits(part, data.validation, data.test, data.dataset)
    X = model.pixels(np.asarray(data.train.images), "float64")
    objective = Objective(X, np.asarray(data.train.labels), weight_decay)
    X_test = model.pixels(np.asarray(data.test.images), "float64")
    return Problem(objective, X_test, np.asarray(data.test.labels), data)


def arrived(f: float, reference: float | None) -> bool:
    """Whether f is within CLOSE (relative) of ``reference``, the least f of the contestants
    that ran before (None: this one is the first)."""
    return reference is not None and (f - reference) / reference <= CLOSE


# scratchlr's full-batch solvers: one trajectory, timed between iterates.


def solver_value(problem: Problem, iterate: Any) -> float:
    """The iterate's f, computed here in float64 (the clock is stopped): a solver may report
    f in a lower precision, as Newton-CG does while far from the optimum."""
    return problem.value(iterate.W, iterate.b)


def solver_points(
    problem: Problem, name: str, max_seconds: float, reference: float | None
) -> tuple[list[Point], str]:
    """A solver's iterates from zeros, each with the solver's seconds so far (its making
    included, this scoring not), until it stops, arrives, or passes ``max_seconds``; and why
    it stopped."""
    from scratchlr.optim import SOLVERS as MEMBERS

    key, settings = SOLVERS[name]
    points: list[Point] = []
    seconds = 0.0
    start = time.perf_counter()
    solver = MEMBERS[key](problem.objective, tol=SOLVER_TOL, max_iter=MAX_ITER, **settings)
    for iterate in solver.iterations(*problem.zeros()):
        seconds += time.perf_counter() - start
        f = solver_value(problem, iterate)
        accuracy = problem.test_accuracy(iterate.W, iterate.b)
        points.append((seconds, f, accuracy, iterate.iteration))
        if arrived(f, reference):
            return points, f"within {CLOSE:g} of the best f before it"
        if len(points) > 1 and points[-2][1] - f <= STALLED * f:
            return points, f"f stalled at iteration {iterate.iteration} (float64's precision)"
        if seconds > max_seconds:
            return points, "stopped at --max-seconds"
        start = time.perf_counter()
    return points, solver.message


# scratchlr's mini-batch optimisers: fresh runs of growing length.


def mini_batch_points(
    problem: Problem, name: str, max_seconds: float, reference: float | None
) -> tuple[list[Point], str]:
    """Runs of 1, 2, 3, 4, 6, ... epochs (those that average skip runs too short to start),
    each scored at its end, until one takes ``max_seconds`` (or arrives)."""
    settings = MINI_BATCH[name]
    n = len(problem.data.train.labels)
    points: list[Point] = []
    for epochs in EPOCHS:
        steps = epochs * -(-n // settings["batch_size"])
        if settings.get("average") is not None and settings["average"] >= steps:
            continue  # averaging has not started yet
        config = Config(epochs=epochs, weight_decay=problem.objective.weight_decay, **settings)
        result = train(problem.data, config, numpy_backend(), emit=lambda line: None)
        f = problem.value(result.W, result.b)
        points.append((result.train_seconds, f, problem.test_accuracy(result.W, result.b), epochs))
        if arrived(f, reference):
            return points, f"within {CLOSE:g} of the best f before it"
        if result.train_seconds > max_seconds:
            return points, "stopped at --max-seconds"
    return points, f"ran the longest run, {EPOCHS[-1]} epochs"


# scikit-learn: fresh fits of growing max_iter.


def sklearn_classifier(problem: Problem, solver: str, max_iter: int) -> Any:
    """``LogisticRegression`` on the race's objective: C = 1 / (lambda N)."""
    from sklearn.linear_model import LogisticRegression

    n = len(problem.objective.y)
    C = 1.0 / (problem.objective.weight_decay * n)
    return LogisticRegression(C=C, solver=solver, max_iter=max_iter, tol=SKLEARN_TOL)


def fit(problem: Problem, solver: str, max_iter: int) -> tuple[Any, float]:
    """A fresh fit and its seconds (the fit alone)."""
    classifier = sklearn_classifier(problem, solver, max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter ends fits here
        start = time.perf_counter()
        classifier.fit(problem.objective.X, problem.objective.y)
        seconds = time.perf_counter() - start
    return classifier, seconds


def sklearn_point(problem: Problem, solver: str, max_iter: int) -> Point:
    """A fresh fit of at most ``max_iter`` iterations, scored: its iterations are those done."""
    classifier, seconds = fit(problem, solver, max_iter)
    W = classifier.coef_.T
    b = classifier.intercept_
    done = int(np.max(classifier.n_iter_))
    return (seconds, problem.value(W, b), problem.test_accuracy(W, b), done)


def next_max_iter(k: int, seconds: float, max_seconds: float) -> int:
    """Twice k, or fewer where that would pass ``max_seconds`` (at the last fit's seconds per
    iteration); under 1.5 k means: stop (a fit hardly longer than the last shows little)."""
    return min(2 * k, int(k * max_seconds / max(seconds, 1e-9)))


def sklearn_points(
    problem: Problem, name: str, max_seconds: float, reference: float | None
) -> tuple[list[Point], str]:
    """Fits with max_iter 1, 2, 4, ... each scored, until one stops before its max_iter
    (converged), arrives, gains nothing on the last, or the next would pass ``max_seconds``."""
    solver = name.removeprefix("sklearn-")
    points: list[Point] = []
    k = 1
    while True:
        point = sklearn_point(problem, solver, k)
        points.append(point)
        if point[3] < k:
            return points, f"stopped by itself after {point[3]} iterations"
        if arrived(point[1], reference):
            return points, f"within {CLOSE:g} of the best f before it"
        if len(points) > 1 and point[1] >= points[-2][1]:
            return points, f"no lower f at max_iter {k} than at {points[-2][3]}"
        following = next_max_iter(k, point[0], max_seconds)
        if following < 1.5 * k:
            return points, "stopped at --max-seconds"
        k = following


def bracket(points: list[Point], best: float, threshold: float) -> tuple[Point, Point] | None:
    """The last point short of ``threshold`` before the first at or below it, and that one;
    None where no point reached it or the first did."""
    first = next((i for i, p in enumerate(points) if suboptimality(p[1], best) <= threshold), 0)
    return (points[first - 1], points[first]) if first else None


def refine(problem: Problem, results: dict[str, Any], fits: int) -> None:
    """Narrow scikit-learn's times to 1e-6 where they may be its fastest: bisect max_iter
    between a contestant's last fit short of it and its first at or below, at most ``fits``
    fits each, until the gap is an eighth of the iterations (or one). Its points gain them."""
    best = f_star(results)
    threshold = THRESHOLDS[-1]
    entries = {n: e for n, e in results["contestants"].items() if n.startswith("sklearn-")}
    found = {n: bracket(e["points"], best, threshold) for n, e in entries.items()}
    for name in sorted((n for n in found if found[n]), key=lambda n: found[n][0][0]):
        low, high = found[name]
        spent = 0
        while high[3] - low[3] > max(1, low[3] // 8) and spent < fits:
            fastest_time = min(
                seconds_to(e["points"], best, threshold) or math.inf for e in entries.values()
            )
            if low[0] >= fastest_time:
                break  # another reached it sooner than this one's last fit short of it
            point = sklearn_point(problem, name.removeprefix("sklearn-"), (low[3] + high[3]) // 2)
            spent += 1
            entries[name]["points"] = sorted([*entries[name]["points"], point], key=lambda p: p[3])
            if suboptimality(point[1], best) <= threshold:
                high = point
            else:
                low = point
        if spent:
            entries[name]["stopped"] += f"; {spent} more fits bisected its time to {threshold:g}"


def objective_check(problem: Problem) -> str:
    """scratchlr's f and scikit-learn's own objective at a 5-iteration lbfgs fit: one line."""
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    classifier, _ = fit(problem, "lbfgs", 5)
    coef = np.hstack([classifier.coef_, classifier.intercept_[:, None]])  # (C, D + 1)
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=coef.shape[0]), fit_intercept=True)
    n = len(problem.objective.y)
    theirs = loss.loss(
        coef,
        problem.objective.X,
        problem.objective.y.astype(np.float64),
        l2_reg_strength=1.0 / (classifier.C * n),
    )
    ours = float(problem.objective.value(classifier.coef_.T, classifier.intercept_))
    return (
        f"objective check at a 5-iteration lbfgs fit: scratchlr Objective.value {ours!r}, "
        f"scikit-learn LinearModelLoss {float(theirs)!r}, relative difference "
        f"{abs(ours - theirs) / theirs:.1e}"
    )


# The measure, the table and the figure.


def f_star(results: dict[str, Any]) -> float:
    """The least f any contestant reached."""
    return min(p[1] for entry in results["contestants"].values() for p in entry["points"])


def suboptimality(f: float, best: float) -> float:
    """(f - f*) / f*."""
    return (f - best) / best


def seconds_to(points: list[Point], best: float, threshold: float) -> float | None:
    """The seconds of the first point at or below ``threshold``'s suboptimality, or None."""
    return next((p[0] for p in points if suboptimality(p[1], best) <= threshold), None)


def cell(points: list[Point], reruns: bool, best: float, threshold: float) -> str:
    """Seconds to ``threshold``, two decimals, or a dash where it was not reached; for fresh
    runs (``reruns``), ``a–b`` where one short of it took a seconds, the next b."""
    seconds = seconds_to(points, best, threshold)
    if seconds is None:
        return "—"
    short = bracket(points, best, threshold)
    if reruns and short is not None:
        return f"{short[0][0]:.2f}–{seconds:.2f}"
    return f"{seconds:.2f}"


def table(results: dict[str, Any]) -> str:
    """The Markdown table: each contestant's seconds to each threshold, and where it ended."""
    best = f_star(results)
    head = " | ".join(f"s to {t:.0e}" for t in THRESHOLDS)
    lines = [
        f"| contestant | {head} | least (f - f*)/f* | last test accuracy | last s | points |",
        "|---|" + "---:|" * (len(THRESHOLDS) + 4),
    ]
    for name, entry in results["contestants"].items():
        points = entry["points"]
        reruns = entry.get("reruns", name not in SOLVERS)
        times = " | ".join(cell(points, reruns, best, t) for t in THRESHOLDS)
        least = min(suboptimality(p[1], best) for p in points)
        lines.append(
            f"| {name} | {times} | {least:.1e} | {points[-1][2]:.4f} | {points[-1][0]:.2f} | "
            f"{len(points)} |"
        )
    return "\n".join(lines)


def fastest(results: dict[str, Any], prefix: str, threshold: float) -> tuple[str, float] | None:
    """The contestant named ``prefix...`` first at ``threshold``, and its seconds; or None."""
    best = f_star(results)
    reached = [
        (seconds_to(entry["points"], best, threshold), name)
        for name, entry in results["contestants"].items()
        if name.startswith(prefix)
    ]
    found = sorted((s, name) for s, name in reached if s is not None)
    return (found[0][1], found[0][0]) if found else None


def ratio_line(results: dict[str, Any]) -> str:
    """scikit-learn's fastest to 1e-6 over scratchlr's fastest, in one line."""
    threshold = THRESHOLDS[-1]
    theirs = fastest(results, "sklearn-", threshold)
    ours = fastest(results, "scratchlr-", threshold)
    if theirs is None or ours is None:
        missing = "scikit-learn" if theirs is None else "scratchlr"
        return f"ratio at {threshold:.0e}: none of {missing}'s contestants reached it"
    line = (
        f"ratio at {threshold:.0e}: scikit-learn's fastest ({theirs[0]}, {theirs[1]:.2f} s) / "
        f"scratchlr's fastest ({ours[0]}, {ours[1]:.2f} s) = {theirs[1] / ours[1]:.2f}"
    )
    short = bracket(results["contestants"][theirs[0]]["points"], f_star(results), threshold)
    if short is None:
        return line
    if short[1][3] - short[0][3] == 1:
        return f"{line} (to the iteration: its fit of {short[0][3]} iterations was short of it)"
    return (
        f"{line}; its last fit short of it ({short[0][3]} iterations) took "
        f"{short[0][0]:.2f} s (ratio {short[0][0] / ours[1]:.2f})"
    )


def draw(results: dict[str, Any], path: Path) -> None:
    """Two panels against seconds (log): suboptimality (log), and test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = f_star(results)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 6.2))
    for name, entry in results["contestants"].items():
        points = np.array(entry["points"])  # rows: seconds, f, test accuracy, count
        seconds = points[:, 0]
        gap = suboptimality(points[:, 1], best)
        accuracy = points[:, 2]
        algorithm = name.split("-", 1)[1]
        style = {
            "color": COLOURS.get(algorithm, "black"),
            "linestyle": "--" if name.startswith("sklearn") else "-",
            "marker": "o" if len(seconds) < 40 else None,
            "markersize": 3,
            "label": name,
        }
        shown = gap > 0  # f* itself has no place on a log scale
        left.plot(seconds[shown], gap[shown], **style)
        right.plot(seconds, accuracy, **style)
    for threshold in THRESHOLDS:
        left.axhline(threshold, color="grey", linewidth=0.6, linestyle=":")
    left.set_ylim(bottom=FLOOR)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="seconds (one thread)",
        ylabel="(f - f*) / f*",
        title="relative suboptimality",
    )
    right.set(
        xscale="log",
        xlabel="seconds (one thread)",
        ylabel="test accuracy",
        title="test accuracy (10,000 images)",
    )
    top = max(p[2] for entry in results["contestants"].values() for p in entry["points"])
    right.set_ylim(top - 0.03, top + 0.003)
    for axes in (left, right):
        axes.grid(True, which="major", alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=9)
    figure.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.21, wspace=0.17)
    objective = results["objective"]
    figure.suptitle(
        f"MNIST, {objective['n']:,} training images, mean cross-entropy + "
        f"({objective['weight_decay']:g}/2)||W||², float64; f* = {best:.12f}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Running the race.


Runner = Callable[[Problem, str, float, "float | None"], tuple[list[Point], str]]


def runner(name: str) -> Runner | None:
    """The function that runs a contestant, or None where its library (or member) is missing."""
    if name in SOLVERS:
        try:
            from scratchlr.optim import SOLVERS as MEMBERS
        except ImportError:
            return None
        return solver_points if SOLVERS[name][0] in MEMBERS else None
    if name in MINI_BATCH:
        return mini_batch_points if MINI_BATCH[name]["optimizer"] in OPTIMIZERS else None
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    return sklearn_points


def race(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Each contestant's points, with the objective and the machine, as the JSON keeps them."""
    race_problem = problem(args.data_dir, args.weight_decay, args.subset)
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "commit": commit(),
        "objective": {
            "n": len(race_problem.objective.y),
            "weight_decay": args.weight_decay,
            "max_seconds": args.max_seconds,
        },
        "contestants": {},
    }
    with threadpool_limits(1):
        if runner("sklearn-lbfgs") is not None:
            results["check"] = objective_check(race_problem)
            print(results["check"], file=sys.stderr)
        for name in names:
            run = runner(name)
            if run is None:
                print(f"solvers: {name} is not installed; left out", file=sys.stderr)
                continue
            start = time.perf_counter()
            before = [p[1] for e in results["contestants"].values() for p in e["points"]]
            reference = min(before, default=None)
            points, why = run(race_problem, name, args.max_seconds, reference)
            wall = time.perf_counter() - start
            results["contestants"][name] = {
                "points": points,
                "stopped": why,
                "wall": wall,
                "reruns": name not in SOLVERS,  # fresh runs of growing length, not one trajectory
            }
            print(
                f"solvers: {name}: {why} ({len(points)} points, {wall:.0f} s wall)",
                file=sys.stderr,
                flush=True,
            )
        if runner("sklearn-lbfgs") is not None and args.refine:
            refine(race_problem, results, args.refine)
    return results


def commit() -> str:
    """The checkout's commit (with ``+`` where files differ from it), or ``unknown``."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return "unknown"
    changed = subprocess.run(
        [*git, "status", "--porcelain", "-uno"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+" if changed.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Python's, NumPy's and, where installed, scikit-learn's and SciPy's versions."""
    found = {"python": platform.python_version(), "numpy": np.__version__}
    for module in ("sklearn", "scipy"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def report(results: dict[str, Any], figure: Path | None) -> None:
    """Print the table and the ratio; draw the figure where asked (and matplotlib is there)."""
    print(f"machine: {results['machine']}")
    print(f"versions: {results['versions']}, commit {results.get('commit', 'unknown')}")
    if "check" in results:
        print(results["check"])
    print(f"f* = {f_star(results)!r} (the least f reached)\n")
    print(table(results))
    print(f"\n{ratio_line(results)}")
    if figure is None:
        return
    try:
        draw(results, figure)
    except ImportError:
        print("solvers: matplotlib is not installed; no figure", file=sys.stderr)


def dumped(results: dict[str, Any]) -> str:
    """The results as JSON, indented, each point on one line."""
    text = json.dumps(results, indent=1)
    return re.sub(r"\[\s+([^][]+?)\s+\]", lambda m: f"[{' '.join(m.group(1).split())}]", text)


def usage(message: str) -> int:
    """A usage error: one line on stderr, exit status 2."""
    print(f"solvers: error: {message}", file=sys.stderr)
    return 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="lambda (1e-4)")
    p.add_argument(
        "--only",
        help=f"comma-separated contestants (default: all but "
        f"{', '.join(DEFAULT_LEFT_OUT)}): {', '.join(CONTESTANTS)}",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=45.0,
        help="the most seconds of one contestant's trajectory or fit (45)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=3,
        help="fits that may bisect each scikit-learn solver's time to 1e-6 (3; 0: none)",
    )
    p.add_argument("--subset", type=int, help="the first N training images only (a quick run)")
    p.add_argument("--results", type=Path, help="write the raw points here (JSON)")
    p.add_argument("--figure", type=Path, help="draw the two panels here (PNG)")
    p.add_argument(
        "--from", dest="source", type=Path, help="read the points from this JSON instead of running"
    )
    args = p.parse_args()
    if args.source is not None:
        if not args.source.is_file():
            return usage(f"--from {args.source}: no such file")
        report(json.loads(args.source.read_text()), args.figure)
        return 0
    names = (
        args.only.split(",")
        if args.only
        else [name for name in CONTESTANTS if name not in DEFAULT_LEFT_OUT]
    )
    unknown = [name for name in names if name not in CONTESTANTS]
    if unknown:
        return usage(f"--only: unknown contestant {unknown[0]} (one of {', '.join(CONTESTANTS)})")
    names = sorted(set(names), key=CONTESTANTS.index)  # the race's order (see ``arrived``)
    if not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        return usage(f"--max-seconds must be positive, got {args.max_seconds}")
    if args.refine < 0:
        return usage(f"--refine must be zero or positive, got {args.refine}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay > 0):
        return usage(f"--weight-decay must be positive (C = 1/(lambda N)), got {args.weight_decay}")
    if args.subset is not None and args.subset < 1:
        return usage(f"--subset must be positive, got {args.subset}")
    results = race(args, names)
    if not results["contestants"]:
        return usage("none of the contestants asked for is installed")
    if args.results is not None:
        args.results.write_text(dumped(results))
    report(results, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
