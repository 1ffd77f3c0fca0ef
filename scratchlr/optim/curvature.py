"""The curvature that sets the step: the Hessian's extreme eigenvalues, and the step sizes they
allow.

On a quadratic f(theta) = (1/2) theta^T H theta, gradient descent theta <- theta - lr H theta
shrinks each eigendirection by (1 - lr h): it converges iff lr < 2 / h for every eigenvalue h,
that is lr < 2 / lambda_max. Heavy ball (SGD's momentum, v <- mu v + g, theta <- theta - lr v)
converges iff lr < 2 (1 + mu) / lambda_max (0 <= mu < 1). Near a point of the softmax objective
the quadratic model is its second-order Taylor expansion, with H the Hessian there.

H is never formed: every eigenvalue comes from Hessian-vector products
(:meth:`scratchlr.objective.Objective.hessian_vector_product_at`, the softmax at the point
computed once) over the full direction (V, v),
V (D, C) for W and v (C,) for b, whose inner product is sum_ij V_ij V'_ij + sum_j v_j v'_j.
- lambda_max: power iteration, x <- H x / ||H x||, and the Rayleigh quotient x^T H x of the last
  x: a lower bound of lambda_max that converges as (lambda_2 / lambda_max)^(2k) (H is symmetric);
- lambda_min: power iteration on lambda_max I - H, whose largest eigenvalue is
  lambda_max - lambda_min, and the Rayleigh quotient x^T H x of its last x: an upper bound of
  lambda_min, which comes down slowly (as on a quadratic gradient descent comes down) where
  many eigenvalues sit near the smallest. On this objective lambda_min is 0 exactly: the
  direction (0, 1) (every bias up by one) changes no probability, so the loss is flat along it
  (and with lambda = 0, so are the W directions of pixels that are 0 in every image).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import model
from ..objective import Objective
from .optimizer import Array

Direction = tuple[Array, Array]  # (V (D, C), v (C,))


def inner(x: Direction, y: Direction) -> float:
    """<x, y> = sum_ij X_ij Y_ij + sum_j x_j y_j over the W and b parts, summed in float64."""
    return float((x[0] * y[0]).sum(dtype="float64") + (x[1] * y[1]).sum(dtype="float64"))


def scaled(x: Direction, c: float) -> Direction:
    """c x: both parts times c, in their dtype."""
    return x[0] * x[0].dtype.type(c), x[1] * x[1].dtype.type(c)


def normalised(x: Direction) -> Direction:
    """x / ||x||, ||x|| = sqrt(<x, x>)."""
    return scaled(x, 1.0 / math.sqrt(inner(x, x)))


def shifted(Hx: Direction, x: Direction, shift: float) -> Direction:
    """(shift I - H) x = shift x - H x, for H x given."""
    sx = scaled(x, shift)
    return sx[0] - Hx[0], sx[1] - Hx[1]


def random_direction(W: Array, b: Array, seed: int = 0) -> Direction:
    """A unit direction drawn from numpy.random.default_rng(seed), standard normal in each
    coordinate, in the parameters' dtype: the power iterations' start."""
    rng = np.random.default_rng(seed)
    V = rng.standard_normal(W.shape).astype(W.dtype)
    v = rng.standard_normal(b.shape).astype(b.dtype)
    return normalised((V, v))


def power_iteration(
    apply: Callable[[Direction], Direction],
    start: Direction,
    iterations: int,
    tick: Callable[[], Any] | None = None,
) -> tuple[float, Direction]:
    """(x^T A x, x) after ``iterations`` steps of x <- A x / ||A x|| from the unit ``start``:
    the Rayleigh quotient of A's (symmetric) dominant eigenvector's estimate. ``tick()`` is
    called after each product."""
    x = start
    Ax = apply(x)
    if tick is not None:
        tick()
    for _ in range(iterations - 1):
        x = normalised(Ax)
        Ax = apply(x)
        if tick is not None:
            tick()
    return inner(x, Ax), x


def largest_eigenvalue(
    objective: Objective,
    W: Array,
    b: Array,
    iterations: int = 50,
    tick: Callable[[], Any] | None = None,
) -> float:
    """lambda_max of f's Hessian at (W, b), by power iteration on the Hessian-vector product
    from a random start (seed 0): a lower bound that ``iterations`` bring up to it."""
    H = hessian_at(objective, W, b)
    estimate, _ = power_iteration(H, random_direction(W, b), iterations, tick)
    return estimate


def smallest_eigenvalue(
    objective: Objective,
    W: Array,
    b: Array,
    lam_max: float,
    iterations: int = 50,
    tick: Callable[[], Any] | None = None,
) -> float:
    """An estimate of lambda_min of f's Hessian at (W, b): power iteration on lambda_max I - H
    (``lam_max`` its shift), then the Rayleigh quotient x^T H x of its last x, an upper bound
    of lambda_min (a Rayleigh quotient lies in [lambda_min, lambda_max])."""

    H = hessian_at(objective, W, b)

    def flipped(x: Direction) -> Direction:
        return shifted(H(x), x, lam_max)

    _, x = power_iteration(flipped, random_direction(W, b, seed=1), iterations, tick)
    return inner(x, H(x))


def hessian_at(objective: Objective, W: Array, b: Array) -> Callable[[Direction], Direction]:
    """x -> H x at (W, b), the softmax p = softmax(X W + b) computed once for every product
    (:meth:`scratchlr.objective.Objective.hessian_vector_product_at`)."""
    p = model.softmax(objective.logits(W, b))

    def H(x: Direction) -> Direction:
        return objective.hessian_vector_product_at(p, *x)

    return H


def gd_stable_rate(lam_max: float) -> float:
    """2 / lambda_max: the learning rates below it make gradient descent converge on the
    quadratic model (each eigendirection shrinks by |1 - lr h| < 1)."""
    return 2.0 / lam_max


def heavy_ball_stable_rate(lam_max: float, mu: float) -> float:
    """2 (1 + mu) / lambda_max: heavy ball's limit with momentum mu in [0, 1) (the roots of
    r^2 - (1 + mu - lr h) r + mu lie inside the unit circle iff 0 < lr h < 2 (1 + mu))."""
    return 2.0 * (1.0 + mu) / lam_max


def nesterov_stable_rate(lam_max: float, mu: float) -> float:
    """2 (1 + mu) / ((1 + 2 mu) lambda_max): Nesterov's limit with momentum mu in [0, 1)
    (docs/math.md §7's Jury conditions with a = lr h), below heavy ball's by 1 + 2 mu."""
    return 2.0 * (1.0 + mu) / ((1.0 + 2.0 * mu) * lam_max)


def verdict(
    lam_max: float, learning_rate: float, momentum: float = 0.0, nesterov: bool = False
) -> str:
    """One line on whether ``learning_rate`` (with ``momentum``, Nesterov's or heavy ball's)
    is below the stable limit of the quadratic model with curvature ``lam_max``."""
    if momentum and nesterov:
        given = f"--learning-rate {learning_rate:g} with --momentum {momentum:g} --nesterov"
        limit = f"Nesterov's limit {nesterov_stable_rate(lam_max, momentum):.3g}"
        below = learning_rate < nesterov_stable_rate(lam_max, momentum)
    elif momentum:
        given = f"--learning-rate {learning_rate:g} with --momentum {momentum:g}"
        limit = f"heavy ball's limit {heavy_ball_stable_rate(lam_max, momentum):.3g}"
        below = learning_rate < heavy_ball_stable_rate(lam_max, momentum)
    else:
        given = f"--learning-rate {learning_rate:g}"
        limit = f"gradient descent's limit {gd_stable_rate(lam_max):.3g}"
        below = learning_rate < gd_stable_rate(lam_max)
    if below:
        return f"{given} is below {limit}: stable near here"
    return f"{given} is above {limit}: the quadratic model diverges here"
