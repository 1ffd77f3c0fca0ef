"""The full-batch solvers (scratchlr.optim.solver and its members): they reach scikit-learn's
optimum, keep their line search's promise, stop by their rule, and their pieces (the
two-loop recursion, conjugate gradients, the Kronecker preconditioner, the blocked
Hessian-vector product) compute what their equations say.

Tolerances, measured on the golden problem (5,000 MNIST images, lambda 1e-4; see
tests/data/make_sklearn_optimum.py), in float64:
- Newton-CG at tol 1e-8 ends at max|g| ~ 6e-11 and matches scikit-learn's W and centred b
  to a relative 1e-7 (asserted: 1e-6) and f to 2e-15; without the preconditioner and in
  float64 products, at tol 1e-7 (max|g| 4e-8), W to 4e-5 and f to 1e-9 (asserted: 1e-4, 1e-8).
- L-BFGS is linear in the end: at tol 1e-7 (475 iterations, 4 s) W is within 5e-5 and b
  within 2e-4 (asserted: 2e-4 and 1e-3). The error in W is up to max|g| / lambda, so b,
  which the gradient pins less well, is the looser.
- float32: the value's rounding (6e-8 relative) stops the line search well before float64
  does; Newton-CG reaches max|g| 1e-6 (and in fact ~3e-8), L-BFGS ~3e-6. Asserted at tol
  1e-6 and 1e-5: W within 1e-3 and 1e-2 of the float64 optimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

from scratchlr import model
from scratchlr.objective import Objective, ink_spans
from scratchlr.optim import SOLVERS, line_search
from scratchlr.optim.lbfgs import two_loop
from scratchlr.optim.newton_cg import (
    conjugate_gradient,
    first_ink,
    kronecker_solve,
    mean_softmax_jacobian,
    second_moments,
    sorted_copy,
)
from scratchlr.optim.solver import pack, unpack


@pytest.fixture(scope="module")
def golden(mnist_data) -> dict:
    """scikit-learn's optimum and the problem it solves (X float64, y)."""
    with np.load(DATA / "sklearn_optimum.npz") as f:
        found = dict(f)
    first = int(found["first"]) - 5000  # the file counts from the train file's start
    rows = slice(first, first + int(found["n"]))
    found["X"] = model.pixels(mnist_data.train.images[rows], np.float64)
    found["y"] = mnist_data.train.labels[rows]
    return found


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def solve(name: str, problem: dict, dtype: str, tol: float, max_iter: int = 100, **settings):
    """Run solver ``name`` from zero on ``problem``'s X, y -> (its iterates, the solver)."""
    objective = Objective(problem["X"].astype(dtype), problem["y"], float(problem["weight_decay"]))
    solver = SOLVERS[name](objective, tol=tol, max_iter=max_iter, **settings)
    D = problem["X"].shape[1]
    iterates = list(solver.iterations(np.zeros((D, 10), dtype), np.zeros(10, dtype)))
    return iterates, solver


def small_problem(seed: int = 0, n: int = 300, d: int = 15, c: int = 4) -> dict:
    """A random problem, solved in milliseconds."""
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(n, d)), "y": rng.integers(0, c, n), "weight_decay": 1e-3}


@pytest.mark.parametrize(
    "name, settings, tol, bound, value_bound",
    [
        ("newton-cg", {}, 1e-8, 1e-6, 1e-13),
        ("newton-cg", {"sort_rows": False, "low_precision_until": None}, 1e-8, 1e-6, 1e-13),
        ("newton-cg", {"preconditioner": None, "hessian_dtype": None}, 1e-7, 1e-4, 1e-8),
        ("lbfgs", {}, 1e-7, 2e-4, 1e-8),
    ],
)
def test_the_solvers_reach_scikit_learns_optimum(
    golden, name, settings, tol, bound, value_bound
) -> None:
    """W within ``bound`` and centred b within 5 x ``bound`` of scikit-learn's (relative), f
    within ``value_bound`` (relative)."""
    iterates, solver = solve(name, golden, "float64", tol, 1000, **settings)
    last = iterates[-1]
    assert solver.converged and last.grad_max <= tol, solver.message
    assert relative(last.W, golden["W"]) <= bound
    assert relative(last.b - last.b.mean(), golden["b"]) <= 5 * bound
    assert abs(last.value - golden["value"]) <= value_bound * golden["value"]
    assert float(Objective(golden["X"], golden["y"], 1e-4).value(last.W, last.b)) == last.value


@pytest.mark.parametrize("name, tol, bound", [("newton-cg", 1e-6, 1e-3), ("lbfgs", 1e-5, 1e-2)])
def test_float32_converges_near_the_optimum(golden, name, tol, bound) -> None:
    iterates, solver = solve(name, golden, "float32", tol, 1000)
    last = iterates[-1]
    assert solver.converged and last.grad_max <= tol, solver.message
    assert last.W.dtype == np.float32 and last.b.dtype == np.float32
    assert relative(last.W.astype(np.float64), golden["W"]) <= bound


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_descent_decreases_f_by_armijos_rule(dtype: str) -> None:
    """On pixels in [0, 1) (ill-conditioned like MNIST's, so 50 steps stay far from the
    rounding floor, where f + c1 t g^T d rounds to f and a step may leave f unchanged)."""
    problem = small_problem()
    problem["X"] = np.random.default_rng(0).random((300, 15))
    objective = Objective(problem["X"].astype(dtype), problem["y"], problem["weight_decay"])
    W = np.zeros((15, 4), dtype)
    b = np.zeros(4, dtype)
    value = float(objective.value(W, b))
    g = pack(*objective.gradient(W, b))
    solver = SOLVERS["gd"](objective, tol=1e-12, max_iter=50)
    iterates = list(solver.iterations(W, b))
    assert len(iterates) == 50
    for it in iterates:
        slope = -float(g @ g)  # d = -g
        assert it.value < value
        assert line_search.armijo(it.value, value, it.step, slope)
        value = it.value
        g = pack(*objective.gradient(it.W, it.b))
        assert it.grad_max == float(np.abs(g).max())
        assert it.grad_norm == pytest.approx(float(np.linalg.norm(g)))


@pytest.mark.parametrize("name, tol", [("gd", 1e-4), ("lbfgs", 1e-6), ("newton-cg", 1e-6)])
def test_the_stopping_rule_and_max_iter(name: str, tol: float) -> None:
    problem = small_problem()
    iterates, solver = solve(name, problem, "float64", tol, 5000)
    assert solver.converged and "converged" in solver.message
    assert iterates[-1].grad_max <= tol < min(it.grad_max for it in iterates[:-1])
    assert [it.iteration for it in iterates] == list(range(1, len(iterates) + 1))
    few, solver = solve(name, problem, "float64", 1e-6, 2)
    assert len(few) == 2 and not solver.converged and "max_iter" in solver.message
    assert few[-1].evaluations >= 3  # the start and a trial each iteration at least
    assert (few[-1].hessian_products > 0) == (name == "newton-cg")


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_a_second_run_starts_afresh(name: str) -> None:
    """iterations() twice from the same start: the same iterates and counts (L-BFGS's pairs
    and GD's step size are not carried over)."""
    problem = small_problem()
    objective = Objective(problem["X"], problem["y"], problem["weight_decay"])
    solver = SOLVERS[name](objective, tol=1e-6, max_iter=8)
    runs = [list(solver.iterations(np.zeros((15, 4)), np.zeros(4))) for _ in range(2)]
    assert [it.value for it in runs[0]] == [it.value for it in runs[1]]
    assert runs[0][-1].evaluations == runs[1][-1].evaluations


def test_a_converged_start_yields_nothing() -> None:
    problem = small_problem()
    iterates, _ = solve("newton-cg", problem, "float64", 1e-9)
    objective = Objective(problem["X"], problem["y"], problem["weight_decay"])
    solver = SOLVERS["lbfgs"](objective, tol=1e-6)
    assert list(solver.iterations(iterates[-1].W, iterates[-1].b)) == []
    assert solver.converged and "at the start" in solver.message


def test_each_iterate_reports_its_point() -> None:
    problem = small_problem()
    objective = Objective(problem["X"], problem["y"], problem["weight_decay"])
    for it in solve("lbfgs", problem, "float64", 1e-6)[0][:5]:
        z = objective.logits(it.W, it.b)
        assert it.loss == float(objective.data_loss(z))
        assert it.value == float(objective.data_loss(z) + objective.penalty(it.W))
        assert it.accuracy == float(model.accuracy(z, problem["y"]))


def test_a_setting_a_solver_lacks_is_refused() -> None:
    problem = small_problem()
    objective = Objective(problem["X"], problem["y"], problem["weight_decay"])
    with pytest.raises(TypeError, match="maxinner"):
        SOLVERS["lbfgs"](objective, maxinner=3)
    with pytest.raises(ValueError, match="preconditioner"):
        SOLVERS["newton-cg"](objective, preconditioner="jacobi")


def test_pack_and_unpack_are_inverse_views() -> None:
    W = np.arange(12.0).reshape(4, 3)
    b = np.array([-1.0, -2.0, -3.0])
    theta = pack(W, b)
    assert theta.tolist() == [*range(12), -1.0, -2.0, -3.0]
    W2, b2 = unpack(theta, 3)
    assert np.array_equal(W2, W) and np.array_equal(b2, b)
    assert np.shares_memory(W2, theta) and np.shares_memory(b2, theta)


def test_backtracking_halves_until_armijo_holds() -> None:
    class Trial:
        def __init__(self, t: float) -> None:
            self.value = (1 - t) ** 2  # phi(t) along d = 1 from x = 0 of f(x) = (1 - x)^2

    class Uphill:
        def __init__(self, t: float) -> None:
            self.value = 1 + t  # d is no descent direction: no step passes

    found = line_search.backtracking(Trial, 1.0, -2.0, step=8.0)
    assert found is not None and found[0] == 1.0 and found[2] == 4  # 8, 4, 2 fail; 1 passes
    assert line_search.backtracking(Uphill, 1.0, 1.0, step=1.0, max_trials=5) is None


def conjugate_pairs(A: np.ndarray, rng: np.random.Generator) -> list[tuple]:
    """Steps s_i that are A-conjugate (Gram-Schmidt in A's inner product), with y_i = A s_i."""
    steps: list[np.ndarray] = []
    for _ in range(A.shape[0]):
        s = rng.normal(size=A.shape[0])
        for t in steps:
            s = s - (t @ A @ s) / (t @ A @ t) * t
        steps.append(s)
    return [(s, A @ s) for s in steps]


def test_the_two_loop_recursion_is_the_inverse_hessian_on_a_quadratic() -> None:
    """On f = x^T A x / 2, BFGS from n A-conjugate pairs gives H = A^{-1} whatever H_0."""
    rng = np.random.default_rng(1)
    B = rng.normal(size=(6, 6))
    A = B @ B.T + 0.5 * np.eye(6)
    g = rng.normal(size=6)
    pairs = conjugate_pairs(A, rng)
    for gamma in (0.1, 1.0, 7.0):
        assert np.allclose(two_loop(g, pairs, gamma), np.linalg.solve(A, g), rtol=1e-9)
    s, y = pairs[-1]
    assert np.allclose(two_loop(y, pairs[:2] + [pairs[-1]], 3.0), s)  # the secant condition
    assert np.array_equal(two_loop(g, [], 2.0), 2.0 * g)


@pytest.mark.parametrize("preconditioned", [False, True])
def test_conjugate_gradient_solves_a_small_system(preconditioned: bool) -> None:
    rng = np.random.default_rng(2)
    B = rng.normal(size=(20, 20))
    A = B @ B.T + np.diag(rng.random(20) * 50)
    g = rng.normal(size=20)
    diagonal = np.diag(A).copy()
    d, products = conjugate_gradient(
        lambda u: A @ u, g, 1e-12, 200, (lambda r: r / diagonal) if preconditioned else None
    )
    assert np.allclose(d, -np.linalg.solve(A, g), rtol=1e-8)
    assert 0 < products <= 60
    rough, few = conjugate_gradient(lambda u: A @ u, g, 1e-12, 3)
    assert few == 3 and rough @ g < 0  # cut short: still a descent direction


def test_conjugate_gradient_stops_at_negative_curvature() -> None:
    A = np.diag([1.0, -1.0])
    d, products = conjugate_gradient(lambda u: A @ u, np.array([0.0, 1.0]), 1e-12, 10)
    assert products == 1 and np.array_equal(d, [0.0, -1.0])  # -g at the first product


def test_kronecker_solve_inverts_the_kronecker_product() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((50, 4))
    p = model.softmax(rng.normal(size=(50, 3)))
    S = second_moments(X)
    A = mean_softmax_jacobian(p)
    X1 = np.hstack([X, np.ones((50, 1))])
    assert np.allclose(S, X1.T @ X1 / 50)
    jacobians = [np.diag(q) - np.outer(q, q) for q in p]
    assert np.allclose(A, np.mean(jacobians, axis=0))
    R = rng.normal(size=(5, 3))
    M = np.kron(S, A) + 0.1 * np.eye(15)  # on row-major vec(R): vec(S R A) = (S (x) A) vec(R)
    found = kronecker_solve(np.linalg.eigh(S), np.linalg.eigh(A), 0.1, R)
    assert np.allclose(found.ravel(), np.linalg.solve(M, R.ravel()))


@pytest.mark.parametrize("rows", [7, 256])
def test_the_blocked_hessian_product_is_the_hessian_product(rows: int) -> None:
    rng = np.random.default_rng(4)
    X = rng.random((40, 6))
    objective = Objective(X, rng.integers(0, 3, 40), 0.01)
    W = rng.normal(size=(6, 3))
    b = rng.normal(size=3)
    V = rng.normal(size=(6, 3))
    v = rng.normal(size=3)
    p = model.softmax(objective.logits(W, b))
    blocked = objective.hessian_vector_product_at(p, V, v, rows=rows)
    whole = objective.hessian_vector_product(W, b, V, v)
    assert np.allclose(blocked[0], whole[0], rtol=1e-12) and np.allclose(blocked[1], whole[1])


def test_the_products_on_ink_spans_are_the_products() -> None:
    """Rows sorted by first_ink, each block multiplied on its ink span: the same H (V, v)."""
    rng = np.random.default_rng(5)
    X = rng.random((90, 12)) * (rng.random((90, 12)) < 0.4)
    X[:, :2] = 0  # blank leading and trailing columns, as MNIST's borders
    X[:30, -3:] = 0
    X = X[np.argsort(first_ink(X), kind="stable")]
    spans = ink_spans(X, rows=16)
    assert all(not X[16 * k : 16 * k + 16, : span.start].any() for k, span in enumerate(spans))
    assert all(not X[16 * k : 16 * k + 16, span.stop :].any() for k, span in enumerate(spans))
    assert any(span.stop - span.start < 12 for span in spans)
    objective = Objective(X, rng.integers(0, 3, 90), 0.01)
    p = model.softmax(rng.normal(size=(90, 3)))
    V = rng.normal(size=(12, 3))
    v = rng.normal(size=3)
    spanned = objective.hessian_vector_product_at(p, V, v, rows=16, spans=spans)
    whole = objective.hessian_vector_product_at(p, V, v, rows=16)
    assert np.allclose(spanned[0], whole[0], rtol=1e-12) and np.allclose(spanned[1], whole[1])
    assert np.allclose(second_moments(X, 16, spans), second_moments(X), rtol=1e-12)
    order = rng.permutation(90)
    assert np.array_equal(sorted_copy(X, order, np.float32, rows=7), X[order].astype(np.float32))


def test_newton_cg_evaluates_in_float32_far_from_the_optimum_and_ends_in_float64() -> None:
    """The low-precision phase: its iterates' f is float32's; from max|g| <= 1e-5 on, and
    at the last iterate, f is the float64 objective's to the bit; without the phase the same
    optimum (this random problem's f is flat to 1e-10 near it)."""
    problem = small_problem()
    objective = Objective(problem["X"], problem["y"], problem["weight_decay"])
    iterates, solver = solve("newton-cg", problem, "float64", 1e-9)
    assert solver.converged
    exact = [it.value == float(objective.value(it.W, it.b)) for it in iterates]
    assert not exact[0] and exact[-1]
    assert all(exact[k] for k, it in enumerate(iterates) if it.grad_max <= 1e-5)
    other, _ = solve("newton-cg", problem, "float64", 1e-9, low_precision_until=None)
    assert all(it.value == float(objective.value(it.W, it.b)) for it in other)
    assert other[-1].value == pytest.approx(iterates[-1].value, rel=1e-9)


def test_newton_cg_without_weight_decay_converges_promptly(mnist_data) -> None:
    """At lambda = 0 the Kronecker preconditioner's damping floor keeps rounding along H's flat
    directions from being amplified: on 10,000 MNIST images Newton-CG (float32, tol 1e-4)
    converges in 12 iterations (with the old floor 1e-8 it took 33)."""
    X = model.pixels(mnist_data.train.images[:10_000], "float32")
    solver = SOLVERS["newton-cg"](Objective(X, mnist_data.train.labels[:10_000]), max_iter=40)
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    iterates = list(solver.iterations(W, b))
    assert solver.converged and len(iterates) <= 16
    assert all(later.value <= earlier.value for earlier, later in zip(iterates, iterates[1:]))
