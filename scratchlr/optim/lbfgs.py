"""L-BFGS: a quasi-Newton direction from the last m steps, by the two-loop recursion.

Each accepted step leaves a pair s_k = theta_{k+1} - theta_k, y_k = g_{k+1} - g_k; the
curvature along s_k is y_k ~ H s_k. From the last m pairs (``maxcor``, scipy's name for m;
torch calls it ``history_size``), the two-loop recursion (Nocedal & Wright, Algorithm 7.4)
computes r = H_k g, H_k the BFGS inverse-Hessian approximation built on H_0 = gamma I with

    gamma = s^T y / y^T y         (the newest pair: a step's own curvature scale, eq. 7.20)

and the direction is d = -r. A pair with s^T y <= eps y^T y (eps the dtype's machine epsilon)
is skipped: it would make H_k indefinite (with lambda > 0, f is strongly convex, so this only
happens when rounding has eaten the step). The line search starts from t = 1, the
quasi-Newton step; at the first iteration, with no pair yet, from t = 1 / ||g||_2 (scipy's
L-BFGS-B does the same), so the first trial moves theta by a unit length.
"""

from __future__ import annotations

from typing import Any

from ..backend import namespace_of
from ..objective import Objective
from .solver import Array, Point, Solver

MAXCOR = 10  # m, the pairs kept: scipy's default (torch's history_size is 100)


def initial_scaling(s: Array, y: Array) -> float:
    """gamma = s^T y / y^T y: H_0 = gamma I, the inverse curvature along the newest step."""
    return float(s @ y) / float(y @ y)


def curvature_pair_ok(s: Array, y: Array) -> bool:
    """s^T y > eps y^T y: the pair keeps the approximation positive definite."""
    return float(s @ y) > float(namespace_of(s).finfo(s.dtype).eps) * float(y @ y)


def two_loop(g: Array, pairs: list[tuple[Array, Array]], gamma: float) -> Array:
    """r = H_k g by the two-loop recursion over ``pairs`` [(s_i, y_i)], oldest first, with
    H_0 = gamma I and rho_i = 1 / y_i^T s_i:

        q = g;  for i newest..oldest: alpha_i = rho_i s_i^T q,  q -= alpha_i y_i
        r = gamma q;  for i oldest..newest: beta = rho_i y_i^T r,  r += (alpha_i - beta) s_i

    With no pairs, r = gamma g. -> same shape as g."""
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        alpha = float(s @ q) / float(y @ s)
        q -= q.dtype.type(alpha) * y
        alphas.append(alpha)
    r = q * q.dtype.type(gamma)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        beta = float(y @ r) / float(y @ s)
        r += r.dtype.type(alpha - beta) * s
    return r


class LBFGS(Solver):
    """L-BFGS with the last ``maxcor`` pairs and an Armijo line search from t = 1."""

    def __init__(
        self,
        objective: Objective,
        tol: float = 1e-4,
        max_iter: int = 100,
        maxcor: int = MAXCOR,
        **settings: Any,
    ) -> None:
        super().__init__(objective, tol, max_iter, **settings)
        if maxcor < 1:
            raise ValueError(f"maxcor must be at least 1, got {maxcor}")
        self.maxcor = maxcor
        self.pairs: list[tuple[Array, Array]] = []

    def restart(self) -> None:
        """Counts from 0, and no pairs."""
        super().restart()
        self.pairs = []

    def direction(self, point: Point) -> Array:
        """d = -H_k g (:func:`two_loop`), gamma from the newest pair (1 with none)."""
        gamma = initial_scaling(*self.pairs[-1]) if self.pairs else 1.0
        return -two_loop(point.grad, self.pairs, gamma)

    def first_step(self, point: Point, d: Array) -> float:
        """1, or 1 / ||g||_2 before the first pair."""
        if self.pairs:
            return 1.0
        return 1.0 / float(namespace_of(d).linalg.norm(d))

    def remember(self, old: Point, new: Point, step: float) -> None:
        """Keep (s, y) = (theta' - theta, g' - g) if :func:`curvature_pair_ok`; the oldest
        pair goes once there are ``maxcor``."""
        s = new.theta - old.theta
        y = new.grad - old.grad
        if curvature_pair_ok(s, y):
            self.pairs = [*self.pairs, (s, y)][-self.maxcor :]
