"""The full-batch loop (``--optimizer gd|lbfgs|newton-cg``): any solver of the API driven by
``train``, its lines, history, validation, stop and ending; the settings refused with a solver
and without; model files, ``evaluate``, ``predict``, ``plot`` and ``search`` of a solver's run."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import assert_one_line_error, in_process

from scratchlr import model, optim, train
from scratchlr.backend import numpy_backend
from scratchlr.config import FIELDS, MINI_BATCH, Config
from scratchlr.dataset.splits import Split, Splits
from scratchlr.evaluation import evaluate
from scratchlr.files import modelfile
from scratchlr.objective import Objective
from scratchlr.optim.solver import Iterate

STEP = 0.5  # the test solver's fixed step, below 2 / lambda_max = 0.51 at zero weights


class FixedStep:
    """A full-batch solver of the API in a few lines, written without the Solver base:
    theta <- theta - 0.5 g, stopping as the API says (``give_up_after``: a line search that
    fails then)."""

    fields: tuple[str, ...] = ()
    give_up_after: int | None = None

    def __init__(self, objective: Objective, tol: float, max_iter: int) -> None:
        self.objective = objective
        self.tol = tol
        self.max_iter = max_iter
        self.converged = False
        self.message = ""

    @classmethod
    def from_config(cls, objective: Objective, config: Config) -> FixedStep:
        return cls(objective, config.tol, config.max_iter)

    @classmethod
    def check(cls, config: Config) -> None:
        pass

    def iterations(self, W: np.ndarray, b: np.ndarray) -> Iterator[Iterate]:
        f = self.objective
        grad_W, grad_b = f.gradient(W, b)
        if max(np.abs(grad_W).max(), np.abs(grad_b).max()) <= self.tol:
            self.converged = True
            return
        for k in range(1, self.max_iter + 1):
            if k == self.give_up_after:
                self.message = f"line search failed at iteration {k}: no step decreases f"
                return
            W = W - W.dtype.type(STEP) * grad_W
            b = b - b.dtype.type(STEP) * grad_b
            z = f.logits(W, b)
            grad_W, grad_b = f.gradient(W, b, z)
            g_max = float(max(np.abs(grad_W).max(), np.abs(grad_b).max()))
            yield Iterate(
                iteration=k,
                W=W,
                b=b,
                value=float(f.value(W, b)),
                loss=float(f.data_loss(z)),
                accuracy=float(model.accuracy(z, f.y)),
                grad_max=g_max,
                grad_norm=math.sqrt(float((grad_W**2).sum() + (grad_b**2).sum())),
                step=STEP,
                evaluations=k + 1,
                hessian_products=0,
            )
            if g_max <= self.tol:
                self.converged = True
                return


class GivesUp(FixedStep):
    give_up_after = 3


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(optim.SOLVERS, "fixed", FixedStep)
    monkeypatch.setitem(optim.SOLVERS, "gives-up", GivesUp)


@pytest.fixture(scope="module")
def small(mnist_data: Splits) -> Splits:
    """1000 training, 300 validation and 300 test images of MNIST: a full-batch iteration in
    milliseconds."""

    def part(split: Split, n: int) -> Split:
        return Split(split.images[:n], split.labels[:n])

    return Splits(
        part(mnist_data.train, 1000),
        part(mnist_data.validation, 300),
        part(mnist_data.test, 300),
        mnist_data.dataset,
    )


class Bar:
    """A progress bar that remembers what it was told."""

    made: list[Bar] = []

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.closed = False
        Bar.made.append(self)

    def update(self, n: int = 1) -> None:
        self.done += n

    def close(self) -> None:
        self.closed = True


def run(data: Splits, config: Config, **kwargs: Any) -> train.Result:
    return train.train(data, config, numpy_backend(), emit=lambda line: None, **kwargs)


ITERATION = re.compile(
    r"Iteration: (\d{4})  objective= (\d+\.\d{9})  max\|g\|= (\S+)  \|\|g\|\|= (\S+)  "
    r"step= (\d\.\d{3})  "
    r"accuracy= (\d\.\d{4})$"
)


def test_any_solver_runs_through_train(fixed, small: Splits) -> None:
    """A solver registered by name is run by train() over the whole training split from zero:
    one line, one record and one validation per iteration, the bar moved each, then why it
    ended and the test line; the weights are the solver's rule applied by hand."""
    config = Config(optimizer="fixed", max_iter=4, validate=True)
    Bar.made.clear()
    result = run(small, config, progress=Bar)
    lines = result.lines
    assert len(lines) == 4 * 2 + 2, lines
    f = Objective(model.pixels(small.train.images, np.float32), small.train.labels)
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    for k in range(1, 5):
        grad_W, grad_b = f.gradient(W, b)
        W = W - np.float32(STEP) * grad_W
        b = b - np.float32(STEP) * grad_b
        record = result.history[k - 1]
        z = f.logits(W, b)
        g = f.gradient(W, b, z)
        match = ITERATION.match(lines[2 * k - 2])
        assert match, lines[2 * k - 2]
        assert int(match[1]) == k and float(match[2]) == pytest.approx(float(f.value(W, b)))
        assert float(match[3]) == pytest.approx(max(np.abs(g[0]).max(), np.abs(g[1]).max()), 0.1)
        norm = np.sqrt((g[0].astype(np.float64) ** 2).sum() + (g[1].astype(np.float64) ** 2).sum())
        assert float(match[4]) == pytest.approx(norm, 0.1)
        assert match[5] == "0.500"
        assert (record.step, record.epoch, record.lr) == (k, float(k), STEP)
        assert record.loss == float(f.data_loss(z))
        assert record.accuracy == float(model.accuracy(z, small.train.labels))
        assert (record.val_loss, record.val_accuracy) == evaluate(
            W, b, small.validation, numpy_backend()
        )
        assert lines[2 * k - 1] == train.validation_line(record, False, "iteration")
        assert lines[2 * k - 1].startswith(f"Validation: iteration {k:04d}  loss= ")
    assert np.array_equal(result.W, W) and np.array_equal(result.b, b)
    assert [r.seconds for r in result.history] == sorted(r.seconds for r in result.history)
    assert re.fullmatch(
        r"Not converged: --max-iter 4 reached with max\|g\| = \S+ > --tol 0.0001", lines[-2]
    )
    test_loss, test_accuracy = evaluate(W, b, small.test, numpy_backend())
    assert lines[-1] == f"Testset Accuracy: {test_accuracy:.4f}"
    assert (result.test_loss, result.test_accuracy) == (test_loss, test_accuracy)
    assert (result.steps, result.interrupted) == (4, False)
    (bar,) = Bar.made
    assert (bar.total, bar.done, bar.closed) == (4, 4, True)


def test_without_validate_no_validation(fixed, small: Splits) -> None:
    result = run(small, Config(optimizer="fixed", max_iter=2))
    assert [line[:10] for line in result.lines] == ["Iteration:"] * 2 + ["Not conver", "Testset Ac"]
    assert all(r.val_loss is None and r.val_accuracy is None for r in result.history)


def test_converged_says_so_and_stops(fixed, small: Splits) -> None:
    """With a tolerance the run meets, it stops at the first iteration whose max|g| is at most
    tol, and says so."""
    result = run(small, Config(optimizer="fixed", max_iter=50, tol=0.05))
    g_max = [float(ITERATION.match(line)[3]) for line in result.lines[:-2]]
    assert 1 < len(g_max) < 50
    assert g_max[-1] <= 0.05 and all(g > 0.05 for g in g_max[:-1])
    assert result.lines[-2] == (
        f"Converged after {len(g_max)} iterations: max|g| = {g_max[-1]:.1e} <= --tol 0.05"
    )
    assert result.steps == len(result.history) == len(g_max)


def test_a_start_that_meets_the_tolerance(fixed, small: Splits) -> None:
    """No iteration: the zero weights are kept, and the history has the start's record (the
    search reads one), with J = log C."""
    result = run(small, Config(optimizer="fixed", tol=10.0, validate=True))
    assert result.lines[0] == "Converged after 0 iterations: max|g| <= --tol 10"
    assert not result.W.any() and not result.b.any() and result.steps == 0
    (record,) = result.history
    assert record.step == 0 and record.loss == pytest.approx(math.log(10))
    assert record.val_loss == pytest.approx(math.log(10))


def test_a_solver_that_gives_up_says_why(fixed, small: Splits) -> None:
    result = run(small, Config(optimizer="gives-up", max_iter=10))
    assert result.steps == 2
    assert result.lines[-2] == (
        "Not converged after 2 iterations: line search failed at iteration 3: no step decreases f"
    )


def test_a_float32_run_below_its_reach_is_told_to_try_float64(fixed, small: Splits) -> None:
    """Not converged at a tol float32 seldom reaches: the ending line says what to try; at a
    tol it reaches, or in float64, it does not."""
    tight = run(small, Config(optimizer="fixed", max_iter=2, tol=1e-7))
    assert tight.lines[-2].endswith("(float32 seldom gets max|g| below 1e-05: try --dtype float64)")
    for config in (
        Config(optimizer="fixed", max_iter=2, tol=1e-5),
        Config(optimizer="fixed", max_iter=2, tol=1e-7, dtype="float64"),
    ):
        assert "try --dtype" not in run(small, config).lines[-2]


def test_stop_ends_the_run_after_the_iteration(fixed, small: Splits) -> None:
    """stop() is asked after each iteration; when it says True that iteration is the last,
    recorded, validated and tested, and the result says it was interrupted."""
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) == 2

    result = run(small, Config(optimizer="fixed", max_iter=10, validate=True), stop=stop)
    assert len(asked) == 2 and result.steps == 2 and result.interrupted
    assert [r.step for r in result.history] == [1, 2]
    assert result.history[-1].val_accuracy is not None
    assert result.lines[-2].startswith("Stopped after 2 iterations (asked to stop): max|g| = ")
    assert result.lines[-1].startswith("Testset Accuracy: ")


@pytest.mark.parametrize("name, tol", [("gd", 5e-3), ("lbfgs", 1e-5), ("newton-cg", 1e-5)])
def test_each_solver_reaches_its_tolerance_through_train(
    small: Splits, name: str, tol: float
) -> None:
    """gd, lbfgs and newton-cg each end where the gradient of the whole split's objective,
    computed here, meets the tolerance (gradient descent's a looser one: it is slow)."""
    assert set(optim.SOLVERS) >= {"gd", "lbfgs", "newton-cg"}
    config = Config(optimizer=name, dtype="float64", weight_decay=1e-2, tol=tol, max_iter=500)
    result = run(small, config)
    assert result.lines[-2].startswith("Converged after "), result.lines[-2]
    f = Objective(model.pixels(small.train.images, np.float64), small.train.labels, 1e-2)
    z = f.logits(result.W, result.b)
    grad_W, grad_b = f.gradient(result.W, result.b, z)
    assert max(np.abs(grad_W).max(), np.abs(grad_b).max()) <= tol
    assert result.history[-1].loss == pytest.approx(float(f.data_loss(z)), rel=1e-12)


NOT_DEFAULT = {
    "learning_rate": 0.5,
    "batch_size": 64,
    "num_steps": 10,
    "epochs": 2,
    "display_step": 10,
    "batching": "epoch",
    "shuffle": True,
    "seed": 3,
    "implementation": "reference",
    "lr_schedule": "exponential",
    "step_size": 5,
    "gamma": 0.5,
    "t_max": 5,
    "eta_min": 0.01,
    "average": 0,
    "early_stopping": 3,
    "momentum": 0.9,
    "nesterov": True,
}


@pytest.mark.parametrize("name", NOT_DEFAULT)
def test_a_solver_refuses_the_mini_batch_settings(name: str) -> None:
    """Every mini-batch setting (and SGD's own) left at its default with a solver, or one
    line naming it."""
    assert set(MINI_BATCH) <= set(NOT_DEFAULT)
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ValueError, match=f"^{flag} is not used by --optimizer lbfgs$"):
        Config(optimizer="lbfgs", **{name: NOT_DEFAULT[name]})


@pytest.mark.parametrize("name, value", [("max_iter", 5), ("tol", 1e-6)])
def test_mini_batch_training_refuses_the_solver_settings(name: str, value: Any) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ValueError, match=f"^{flag} is not used by --optimizer sgd$"):
        Config(**{name: value})
    assert getattr(Config(optimizer="newton-cg", **{name: value}), name) == value


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("max_iter", 0, "--max-iter must be positive, got 0"),
        ("tol", 0.0, "--tol must be positive, got 0.0"),
        ("tol", -1e-4, "--tol must be positive, got -0.0001"),
        ("tol", math.nan, "--tol must be positive, got nan"),
    ],
)
def test_the_solver_settings_are_positive(name: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Config(optimizer="gd", **{name: value})


def test_the_defaults_and_help_state_the_rule() -> None:
    assert (FIELDS["max_iter"].default, FIELDS["tol"].default) == (100, 1e-4)
    assert "max_i |g_i| <= tol" in FIELDS["tol"].metadata["help"]


def test_refusals_on_the_command_line_are_one_line_exit_2(capsys) -> None:
    for args, words in (
        (["--optimizer", "lbfgs", "--momentum", "0.9"], ["--momentum is not used by"]),
        (["--optimizer", "gd", "--num-steps", "10"], ["--num-steps is not used by"]),
        (["--max-iter", "10"], ["--max-iter is not used by --optimizer sgd"]),
        (["--optimizer", "newton-cg", "--tol", "0"], ["--tol must be positive"]),
        (["--optimizer", "bfgs"], ["--optimizer must be one of", "lbfgs, newton-cg"]),
    ):
        proc = in_process(capsys, *args, "--data-dir", "/nonexistent")
        assert_one_line_error(proc, 2, *words)


def test_a_solvers_model_file_reads_back(tmp_path: Path) -> None:
    config = Config(optimizer="newton-cg", max_iter=7, tol=1e-6, dtype="float64")
    W = np.arange(7840, dtype=np.float64).reshape(784, 10) / 7840
    b = np.arange(10, dtype=np.float64)
    modelfile.save(tmp_path / "m.npz", modelfile.ModelFile(W, b, config, 0.9, 0.91, 3))
    m = modelfile.load(tmp_path / "m.npz")
    assert m.config == config and m.interrupted_at == 3
    assert np.array_equal(m.W, W) and np.array_equal(m.b, b)


def test_the_command_line_end_to_end(
    mnist_dir: Path, mnist_data: Splits, tmp_path: Path, capsys
) -> None:
    """``--optimizer lbfgs`` on the command line: its lines, the summary per iteration, and a
    model file and history that evaluate, predict and plot read."""
    data = ["--data-dir", str(mnist_dir)]
    model_path = tmp_path / "m.npz"
    history_path = tmp_path / "h.csv"
    proc = in_process(
        capsys, "--optimizer", "lbfgs", "--max-iter", "3", "--validate", "--quiet",
        "--save", str(model_path), "--history", str(history_path), *data,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Iteration", "Validation"] * 3 + [
        "Not converged",
        "Testset Accuracy",
    ]
    assert re.search(r"train \S+ s \(\S+ ms/iteration\)", proc.stderr), proc.stderr
    with open(history_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["step"] for row in rows] == ["1", "2", "3"] and rows[-1]["val_accuracy"]
    m = modelfile.load(model_path)
    assert m.config.optimizer == "lbfgs" and m.config.max_iter == 3
    assert lines[-1] == f"Testset Accuracy: {m.test_accuracy:.4f}"
    report = in_process(capsys, "evaluate", str(model_path), *data)
    assert report.returncode == 0 and f"accuracy {m.test_accuracy:.4f}" in report.stdout
    image = tmp_path / "x.npy"
    np.save(image, mnist_data.test.images[0])  # a 7
    said = in_process(capsys, "predict", str(model_path), str(image))
    assert said.returncode == 0 and said.stdout.startswith(f"{image}: 7  (7: 0."), said.stdout
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    drawn = in_process(
        capsys, "plot", str(model_path), "--history", str(history_path), "--out", str(out), *data
    )
    assert drawn.returncode == 0, drawn.stderr
    assert (out / "curves.png").is_file()


def test_a_search_of_a_solver(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    """``search`` varies a solver's settings: each trial's row is its last iteration's
    validation, and its steps the iterations it ran."""
    results_path = tmp_path / "r.csv"
    proc = in_process(
        capsys, "search", "--optimizer", "gd", "--max-iter", "2,3", "--weight-decay", "0,0.1",
        "--results", str(results_path), "--data-dir", str(mnist_dir), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(results_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["max-iter"], r["weight-decay"], r["steps"]) for r in rows] == [
        ("2", "0.0", "2"),
        ("2", "0.1", "2"),
        ("3", "0.0", "3"),
        ("3", "0.1", "3"),
    ]
    assert "--optimizer gd --max-iter" in proc.stdout


def test_the_summary_counts_iterations() -> None:
    """A solver's interrupted run and its time are told per iteration, SGD's per step."""
    from scratchlr.cli.training import done, per_step

    result = train.Result(np.zeros(1), np.zeros(1), 0.9, steps=4, train_seconds=0.5)
    solver = Config(optimizer="lbfgs", max_iter=20)
    assert done(solver, result, 55000) == "iteration 4 of at most 20"
    assert per_step(solver, result) == "125.0 ms/iteration"
    assert done(Config(), result, 55000) == "step 4 of 1000"
    assert per_step(Config(), result) == "125000.0 us/step"
