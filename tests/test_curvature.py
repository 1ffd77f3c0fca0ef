"""The curvature: power iteration's eigenvalues against the Hessian formed explicitly (two ways),
the stable rates against heavy ball run on that Hessian, the verdict, and the command."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from scratchlr import model
from scratchlr.objective import Objective
from scratchlr.optim import curvature

N = 40
D = 6
C = 3
LAMBDA = 0.01


@pytest.fixture(scope="module")
def problem() -> tuple[Objective, np.ndarray, np.ndarray]:
    """A small objective in float64 (pixels in [0, 1], a third of them 0, as in MNIST's
    borders) and a point (W, b) away from zero."""
    rng = np.random.default_rng(28)
    X = rng.uniform(0, 1, (N, D)) * (rng.uniform(0, 1, (N, D)) > 0.3)
    y = rng.integers(0, C, N)
    W = rng.normal(0, 1, (D, C))
    b = rng.normal(0, 1, C)
    return Objective(X, y, LAMBDA), W, b


def hessian_from_products(objective: Objective, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H column by column: H e_i from the Hessian-vector product, theta = (vec W row by row, b)."""
    size = D * C + C
    columns = []
    for i in range(size):
        e = np.zeros(size)
        e[i] = 1.0
        HV, Hv = objective.hessian_vector_product(W, b, e[: D * C].reshape(D, C), e[D * C :])
        columns.append(np.concatenate([HV.ravel(), Hv]))
    return np.stack(columns, axis=1)


def hessian_by_formula(objective: Objective, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H written out: with x~_n = (x_n, 1) (b is W's last row), theta = vec [W; b] row by row,
    H = (1/N) sum_n (x~_n x~_n^T) kron (diag(p_n) - p_n p_n^T) + lambda diag(1 on W, 0 on b)."""
    X = np.asarray(objective.X)
    p = model.softmax(X @ W + b)
    H = np.zeros((D * C + C, D * C + C))
    for x, pn in zip(X, p):
        xt = np.append(x, 1.0)
        H += np.kron(np.outer(xt, xt), np.diag(pn) - np.outer(pn, pn)) / len(X)
    return H + np.diag(np.r_[np.full(D * C, objective.weight_decay), np.zeros(C)])


def test_the_hessian_two_ways(problem) -> None:
    """The products' Hessian is the formula's, symmetric, and flat along (0, 1): every bias up
    by one changes no probability, so lambda_min is 0."""
    H = hessian_from_products(*problem)
    np.testing.assert_allclose(H, hessian_by_formula(*problem), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(H, H.T, atol=1e-15)
    assert abs(np.linalg.eigvalsh(H)[0]) < 1e-12


def test_lambda_is_the_bottom_of_w(problem) -> None:
    """Over W alone the smallest eigenvalue is lambda exactly: adding one vector to every column
    of W moves every logit of a row alike (what the command prints)."""
    objective, W, b = problem
    H_WW = hessian_by_formula(objective, W, b)[: D * C, : D * C]
    assert np.linalg.eigvalsh(H_WW)[0] == pytest.approx(LAMBDA, rel=1e-10)


def test_power_iteration_finds_lambda_max(problem) -> None:
    """lambda_max from products is numpy.linalg.eigvalsh's largest, from below; the lambda_min
    estimate is an upper bound of the smallest that iterations bring down towards it."""
    objective, W, b = problem
    eigenvalues = np.linalg.eigvalsh(hessian_by_formula(objective, W, b))
    lam_max = curvature.largest_eigenvalue(objective, W, b, iterations=300)
    assert lam_max == pytest.approx(eigenvalues[-1], rel=1e-10)
    assert lam_max <= eigenvalues[-1] * (1 + 1e-12)
    few = curvature.smallest_eigenvalue(objective, W, b, eigenvalues[-1], iterations=5)
    many = curvature.smallest_eigenvalue(objective, W, b, eigenvalues[-1], iterations=500)
    assert eigenvalues[0] - 1e-12 <= many < few
    assert many < 1e-3 * eigenvalues[-1]


def test_float32_agrees(problem) -> None:
    """In float32 (the default dtype) lambda_max is float64's to float32's precision."""
    objective, W, b = problem
    single = Objective(objective.X.astype(np.float32), objective.y, LAMBDA)
    lam32 = curvature.largest_eigenvalue(single, W.astype(np.float32), b.astype(np.float32), 300)
    lam64 = curvature.largest_eigenvalue(objective, W, b, 300)
    assert lam32 == pytest.approx(lam64, rel=1e-5)


def heavy_ball_norm(
    H: np.ndarray, lr: float, mu: float, steps: int = 3000, nesterov: bool = False
) -> float:
    """||theta|| after heavy ball (v <- mu v + H theta, theta <- theta - lr v), or Nesterov's
    form (theta <- theta - lr (H theta + mu v), v the new velocity), on the quadratic
    (1/2) theta^T H theta from theta = 1."""
    theta = np.ones(len(H))
    v = np.zeros(len(H))
    with np.errstate(over="ignore", invalid="ignore"):  # above the limit it may overflow
        for _ in range(steps):
            g = H @ theta
            v = mu * v + g
            theta = theta - lr * (g + mu * v if nesterov else v)
        return float(np.linalg.norm(theta))


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.93])
def test_the_limits_are_where_heavy_ball_turns(problem, mu: float) -> None:
    """On the quadratic of the explicit Hessian, heavy ball settles just below
    2 (1 + mu) / lambda_max and blows up just above it (mu = 0: gradient descent's
    2 / lambda_max)."""
    H = hessian_by_formula(*problem)
    lam_max = np.linalg.eigvalsh(H)[-1]
    limit = curvature.heavy_ball_stable_rate(lam_max, mu)
    if mu == 0:
        assert limit == curvature.gd_stable_rate(lam_max) == 2 / lam_max
    start = np.sqrt(len(H))
    assert heavy_ball_norm(H, 0.98 * limit, mu) < start
    assert not heavy_ball_norm(H, 1.02 * limit, mu) < 1e3 * start  # large, inf or nan


@pytest.mark.parametrize("mu", [0.5, 0.93])
def test_nesterovs_limit_is_where_nesterov_turns(problem, mu: float) -> None:
    """Nesterov's momentum settles just below 2 (1 + mu) / ((1 + 2 mu) lambda_max) and blows up
    just above it: a third of heavy ball's limit at mu = 0.93."""
    H = hessian_by_formula(*problem)
    lam_max = np.linalg.eigvalsh(H)[-1]
    limit = curvature.nesterov_stable_rate(lam_max, mu)
    start = np.sqrt(len(H))
    assert heavy_ball_norm(H, 0.98 * limit, mu, nesterov=True) < start
    assert not heavy_ball_norm(H, 1.02 * limit, mu, nesterov=True) < 1e3 * start
    assert "above Nesterov's limit" in curvature.verdict(lam_max, 1.02 * limit, mu, True)


def test_the_verdict() -> None:
    assert curvature.gd_stable_rate(4.0) == 0.5
    assert curvature.heavy_ball_stable_rate(4.0, 0.5) == 0.75
    assert curvature.verdict(3.9, 1.1, 0.93) == (
        "--learning-rate 1.1 with --momentum 0.93 is above heavy ball's limit 0.99: "
        "the quadratic model diverges here"
    )
    assert curvature.verdict(0.64, 1.1, 0.93) == (
        "--learning-rate 1.1 with --momentum 0.93 is below heavy ball's limit 6.03: "
        "stable near here"
    )
    assert curvature.verdict(4.0, 0.4) == (
        "--learning-rate 0.4 is below gradient descent's limit 0.5: stable near here"
    )
    assert "above gradient descent's limit 0.5" in curvature.verdict(4.0, 0.5)


def lambda_max_printed(stdout: str) -> float:
    return float(re.search(r"^lambda_max = (\S+)", stdout, re.M).group(1))


def test_the_command_at_zero_and_at_a_model(mnist_dir: Path, saved: Path) -> None:
    """At zero weights MNIST's lambda_max is 3.9 (the review's number); at a trained model the
    curvature is lower, with the model's settings unless flags say otherwise."""
    zero = run_cli(
        "curvature", "--data-dir", str(mnist_dir), "--iterations", "10", "--quiet",
        "--learning-rate", "1.1", "--momentum", "0.93",
    )  # fmt: skip
    assert zero.returncode == 0, zero.stderr
    lines = zero.stdout.splitlines()
    assert len(lines) == 8, lines
    assert "at zero weights, lambda = 0, MNIST's 55000 training images, float32" in lines[0]
    assert lambda_max_printed(zero.stdout) == pytest.approx(3.9055, abs=1e-3)
    assert lines[-1].startswith("--learning-rate 1.1 with --momentum 0.93 is above heavy ball's")
    trained = run_cli(
        "curvature", str(saved), "--data-dir", str(mnist_dir), "--iterations", "10",
        "--quiet", "--weight-decay", "1e-4", "--dtype", "float64",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "m.npz's weights, lambda = 0.0001" in trained.stdout
    assert "float64" in trained.stdout
    assert lambda_max_printed(trained.stdout) < 0.75 * lambda_max_printed(zero.stdout)
    assert trained.stdout.splitlines()[-1].startswith("--learning-rate 0.1 is below")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--momentum", "1"], "--momentum must be below 1, got 1.0"),
        (["--learning-rate", "0"], "--learning-rate must be positive, got 0.0"),
        (["--weight-decay", "-1"], "--weight-decay must be zero or positive, got -1.0"),
        (["--iterations", "0"], "--iterations must be positive, got 0"),
        (["--iterations", "two"], "argument --iterations: invalid int value: 'two'"),
    ],
)
def test_a_bad_flag_is_one_line_exit_2(flags: list[str], message: str) -> None:
    proc = run_cli("curvature", *flags, "--data-dir", "/nonexistent")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not proc.stdout


def test_a_bad_model_file_is_one_line_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    for path, problem in ((bad, "not a zip archive"), (tmp_path / "none.npz", "no such file")):
        proc = run_cli("curvature", str(path), "--data-dir", str(tmp_path))
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"scratchlr: error: {path}: "), proc.stderr
        assert proc.stderr.count("\n") == 1 and problem in proc.stderr, proc.stderr


def test_a_solvers_model_gets_no_verdict_without_a_rate(mnist_dir: Path, tmp_path: Path) -> None:
    """A model made by a full-batch solver has no rate to judge: no verdict unless
    --learning-rate is given; with mu 0 no heavy-ball line."""
    saved = tmp_path / "gd.npz"
    made = run_cli(
        "--optimizer", "gd", "--max-iter", "2", "--data-dir", str(mnist_dir), "--save", str(saved)
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    plain = run_cli("curvature", str(saved), "--data-dir", str(mnist_dir), "--iterations", "5")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[-1].startswith("no verdict: --optimizer gd has no rate")
    assert "heavy ball" not in plain.stdout
    judged = run_cli(
        "curvature", str(saved), "--data-dir", str(mnist_dir), "--iterations", "5",
        "--learning-rate", "100",
    )  # fmt: skip
    assert judged.stdout.splitlines()[-1].startswith("--learning-rate 100 is above")
