"""Numerical gradient check: the objective's df/dW, df/db against central differences.

The objective (:class:`scratchlr.objective.Objective`) is the mean cross-entropy plus, with
weight decay lambda, the L2 penalty (lambda / 2) ||W||^2; b is not decayed.

    dJ/dθ_i ≈ [8 (J(θ+h e_i) - J(θ-h e_i)) - (J(θ+2h e_i) - J(θ-2h e_i))] / 12h
    relative error = |a - n| / max(|a| + |n|, tiny)

The Hessian-vector product H u (u = (V, v), penalty included) is checked the same way, as
the directional derivative of the analytic gradient g = (df/dW, df/db) along u:

    H u ≈ [8 (g(θ+h u) - g(θ-h u)) - (g(θ+2h u) - g(θ-2h u))] / 12h

The five-point central difference has error O(h⁴) (the two-point one, O(h²), leaves up
to ~1e-4 on MNIST where gradients nearly cancel). Run in float64, h = 1e-3. Differences are
taken example by example before summing, so an example that does not touch θ_i (a black
pixel) contributes exactly 0 rather than the rounding noise of two nearly equal totals.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import model
from .objective import Objective, penalty_terms

TOLERANCE = 1e-7


def relative_error(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a| + |n|, tiny), elementwise (0 where both are exactly 0)."""
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), np.finfo(np.float64).tiny)


def numerical_gradient(
    per_example_loss: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    h: float = 1e-3,
    points: int = 5,
) -> np.ndarray:
    """dJ/dθ by five-point central differences (``points=2``: two-point ones), J = mean of
    ``per_example_loss(θ)`` (N,). θ any shape -> gradient of the same shape. ``theta`` is
    restored afterwards."""
    grad = np.zeros_like(theta)
    flat = theta.reshape(-1)  # views
    gflat = grad.reshape(-1)

    def at(i: int, value: float) -> np.ndarray:
        flat[i] = value
        return per_example_loss(theta)

    for i in range(flat.size):
        old = flat[i]
        d1 = at(i, old + h) - at(i, old - h)  # J(θ + h e_i) - J(θ - h e_i), example by example
        if points == 2:
            gflat[i] = np.sum(d1) / (2 * h * d1.size)
        else:
            d2 = at(i, old + 2 * h) - at(i, old - 2 * h)
            gflat[i] = np.sum(8 * d1 - d2) / (12 * h * d1.size)
        flat[i] = old
    return grad


def numerical_gradients(
    X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, h: float = 1e-3, points: int = 5
) -> dict[str, np.ndarray]:
    """{"W": dJ/dW, "b": dJ/db} of the mean :func:`model.cross_entropy` at (W, b), by
    :func:`numerical_gradient` with step h and ``points``."""
    return {
        "W": numerical_gradient(
            lambda W_: model.cross_entropy(model.logits(X, W_, b), y), W, h, points
        ),
        "b": numerical_gradient(
            lambda b_: model.cross_entropy(model.logits(X, W, b_), y), b, h, points
        ),
    }


def check(
    X: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    weight_decay: float = 0.0,
    points: int = 5,
) -> dict[str, float]:
    """Max relative error of the analytic gradients against central differences (five-point,
    or ``points=2``), in float64.

    Analytic: :meth:`Objective.gradient`. Numerical: of :func:`model.cross_entropy` at
    (W, b), plus that of the penalty's terms (:func:`scratchlr.objective.penalty_terms`), each
    differenced on its own, like the examples (a difference of the whole sum would drown a
    small lambda w_ij in the sum's rounding).
    """
    X = np.array(X, dtype=np.float64)
    W = np.array(W, dtype=np.float64)
    b = np.array(b, dtype=np.float64)
    grad_W, grad_b = Objective(X, y, weight_decay).gradient(W, b)
    analytic = {"W": grad_W, "b": grad_b}
    numeric = numerical_gradients(X, y, W, b, points=points)
    numeric["W"] += W.size * numerical_gradient(  # W.size times the mean's
        lambda W_: penalty_terms(W_, weight_decay).ravel(), W, points=points
    )
    return {k: float(relative_error(analytic[k], numeric[k]).max()) for k in analytic}


def numerical_hessian_vector_product(
    gradient: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    W: np.ndarray,
    b: np.ndarray,
    V: np.ndarray,
    v: np.ndarray,
    h: float = 1e-3,
) -> dict[str, np.ndarray]:
    """{"W": ..., "b": ...}: H (V, v) as the five-point central difference of ``gradient``
    (W, b) -> (df/dW, df/db) along the direction (V, v)."""

    def along(t: float) -> tuple[np.ndarray, np.ndarray]:
        return gradient(W + t * V, b + t * v)

    plus_W, plus_b = along(h)
    minus_W, minus_b = along(-h)
    plus2_W, plus2_b = along(2 * h)
    minus2_W, minus2_b = along(-2 * h)
    return {
        "W": (8 * (plus_W - minus_W) - (plus2_W - minus2_W)) / (12 * h),
        "b": (8 * (plus_b - minus_b) - (plus2_b - minus2_b)) / (12 * h),
    }


def check_hessian(
    X: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    weight_decay: float,
    seed: int = 0,
) -> dict[str, float]:
    """Max relative error of :meth:`Objective.hessian_vector_product` (lambda included) in a
    random unit direction (V, v) against :func:`numerical_hessian_vector_product` of
    :meth:`Objective.gradient`, in float64: {"W", "b"}. A unit direction keeps the step h u
    as small in the logits as the gradient check's h (a direction of norm sqrt(D C) moves
    them by ~h sqrt(D) and leaves truncation errors of ~1e-3 on MNIST's sizes)."""
    X = np.array(X, dtype=np.float64)
    W = np.array(W, dtype=np.float64)
    b = np.array(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    V = rng.normal(size=W.shape)
    v = rng.normal(size=b.shape)
    norm = np.sqrt(np.sum(V * V) + np.sum(v * v))
    V = V / norm
    v = v / norm
    f = Objective(X, y, weight_decay)
    HV, Hv = f.hessian_vector_product(W, b, V, v)
    numeric = numerical_hessian_vector_product(f.gradient, W, b, V, v)
    return {
        "W": float(relative_error(HV, numeric["W"]).max()),
        "b": float(relative_error(Hv, numeric["b"]).max()),
    }


class Problem(NamedTuple):
    """A gradient check's problem: examples X (N, D), labels y (N,), and the point W, b."""

    X: np.ndarray
    y: np.ndarray
    W: np.ndarray
    b: np.ndarray


SWEEP_H = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)  # the step sizes of :func:`sweep`


def sweep(
    problem: Problem, hs: tuple[float, ...] = SWEEP_H
) -> dict[tuple[int, float], dict[str, float]]:
    """The largest absolute error of the two- and five-point differences against the analytic
    gradient of the cross-entropy, for W and b, at each step h: {(points, h): {"W", "b"}}.
    Truncation error shrinks with h (as h^2 or h^4), rounding error grows as 1/h."""
    X = np.array(problem.X, dtype=np.float64)
    W = np.array(problem.W, dtype=np.float64)
    b = np.array(problem.b, dtype=np.float64)
    y = problem.y
    grad_W, grad_b = Objective(X, y).gradient(W, b)
    analytic = {"W": grad_W, "b": grad_b}
    out = {}
    for points in (2, 5):
        for h in hs:
            numeric = numerical_gradients(X, y, W, b, h, points)
            out[points, h] = {k: float(np.abs(analytic[k] - numeric[k]).max()) for k in analytic}
    return out


def random_problem(seed: int = 0, n: int = 16, d: int = 12, c: int = 5) -> Problem:
    """A small random problem (X, y, W, b) whose logits are O(1) (W scaled by 1/sqrt(d))."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, c)) / np.sqrt(d)
    return Problem(rng.normal(size=(n, d)), rng.integers(0, c, n), W, rng.normal(size=c))


def mnist_problem(
    images_u8: np.ndarray, labels: np.ndarray, n: int = 32, seed: int = 0, c: int = 10
) -> Problem:
    """The first ``n`` MNIST examples (scaled like TF) with small random W, b of ``c``
    classes."""
    rng = np.random.default_rng(seed)
    X = model.pixels(np.asarray(images_u8[:n]), np.float64)
    return Problem(
        X,
        np.asarray(labels[:n]),
        0.01 * rng.normal(size=(X.shape[1], c)),
        0.01 * rng.normal(size=c),
    )


def run_sweep(mnist_arrays: Any | None = None, emit: Callable[[str], None] = print) -> None:
    """Print :func:`sweep` of :func:`random_problem` (seed 0) and, if given (images, labels),
    the two- and five-point :func:`check` of the MNIST slice: the figures of docs/math.md §9."""
    emit("random 16x12, 5 classes (seed 0): largest absolute error against the analytic gradient")
    emit("points        h       W          b")
    for (points, h), errors in sweep(random_problem()).items():
        emit(f"{points:6d}  {h:7.0e}  {errors['W']:.2e}  {errors['b']:.2e}")
    if mnist_arrays is not None:
        for points in (2, 5):
            errors = check(*mnist_problem(*mnist_arrays), points=points)
            emit(
                f"MNIST first 32 examples, {points}-point, h 1e-03: "
                f"max relative error W {errors['W']:.1e}, b {errors['b']:.1e}"
            )


def run(mnist_arrays: Any | None = None, emit: Callable[[str], None] = print) -> float:
    """Check the gradient on the random problem and, if given (images, labels), an MNIST
    slice, and the Hessian-vector product with lambda > 0 on both; print each max relative
    error and return the largest."""
    problems = {
        "random 16x12, 5 classes": (random_problem(), 0.0),
        "random 16x12, 5 classes, weight decay 0.1": (random_problem(1), 0.1),
    }
    if mnist_arrays is not None:
        problems["MNIST first 32 examples"] = (mnist_problem(*mnist_arrays), 0.0)
    worst = 0.0
    for name, (problem, weight_decay) in problems.items():
        errors = check(*problem, weight_decay=weight_decay)
        worst = max(worst, *errors.values())
        emit(f"{name}: max relative error W {errors['W']:.3e}, b {errors['b']:.3e}")
    curvature = {"random 16x12, 5 classes, weight decay 0.1": (random_problem(1), 0.1)}
    if mnist_arrays is not None:
        curvature["MNIST first 32 examples, weight decay 1e-4"] = (
            mnist_problem(*mnist_arrays),
            1e-4,
        )
    for name, (problem, weight_decay) in curvature.items():
        errors = check_hessian(*problem, weight_decay=weight_decay)
        worst = max(worst, *errors.values())
        emit(
            f"{name}: Hessian-vector product, max relative error "
            f"W {errors['W']:.3e}, b {errors['b']:.3e}"
        )
    return worst
