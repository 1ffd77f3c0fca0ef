"""Truncated Newton (Newton-CG): the Newton step H d = -g solved inexactly by conjugate gradients.

H is never formed: CG needs only Hessian-vector products H u
(:meth:`scratchlr.objective.Objective.hessian_vector_product_at`, the softmax computed once per
Newton point). CG starts at d = 0 and stops (as scikit-learn's ``_newton_cg``) when

    ||r||_1 <= eta ||g||_1,   eta = min(0.5, sqrt(||g||_1)),   r = -g - H d   (forcing term)

so far from the optimum a rough direction is enough and near it the solve tightens (the
outer iterations converge superlinearly), or after ``maxinner`` products (scikit-learn's 200),
or on a direction u with u^T H u <= 0 (negative-curvature guard: rounding only, since
lambda > 0 makes H positive definite; the d built so far is kept, or -g at the first
product). Every CG iterate from d = 0 is a descent direction (g^T d < 0). A line search
from t = 1, the Newton step, follows.
"""

from __future__ import annotations

from typing import Any, Callable

from ..backend import namespace_of
from ..model import softmax
from ..objective import Objective
from .solver import Array, Point, Solver, pack, unpack

MAXINNER = 200  # CG iterations at most per Newton step: scikit-learn's maxinner


def forcing_tolerance(g: Array) -> float:
    """eta ||g||_1 with eta = min(0.5, sqrt(||g||_1)): scikit-learn's CG stopping level."""
    norm = float(namespace_of(g).abs(g).sum())
    return min(0.5, norm**0.5) * norm


def conjugate_gradient(
    hessian_product: Callable[[Array], Array], g: Array, tol: float, maxinner: int = MAXINNER
) -> tuple[Array, int]:
    """d ~ -H^{-1} g by conjugate gradients from d = 0 (Nocedal & Wright, Algorithm 5.2) ->
    (d, products). Each iteration, with r = -g - H d and u the search direction:

        alpha = r^T r / u^T H u,  d += alpha u,  r -= alpha H u,
        u = r + (r'^T r' / r^T r) u

    Stops when ||r||_1 <= ``tol``, after ``maxinner`` products, or where u^T H u <= 0."""
    xp = namespace_of(g)
    d = xp.zeros_like(g)
    r = -g
    u = r.copy()
    rr = float(r @ r)
    for products in range(maxinner):
        if float(xp.abs(r).sum()) <= tol:
            return d, products
        Hu = hessian_product(u)
        curvature = float(u @ Hu)
        if curvature <= 0:
            return (d if products else -g), products + 1
        alpha = g.dtype.type(rr / curvature)
        d += alpha * u
        r -= alpha * Hu
        rr_next = float(r @ r)
        u = r + g.dtype.type(rr_next / rr) * u
        rr = rr_next
    return d, maxinner


class NewtonCG(Solver):
    """Truncated Newton: CG on H d = -g with the forcing term above, then Armijo from t = 1."""

    def __init__(
        self,
        objective: Objective,
        tol: float = 1e-4,
        max_iter: int = 100,
        maxinner: int = MAXINNER,
        **settings: Any,
    ) -> None:
        super().__init__(objective, tol, max_iter, **settings)
        if maxinner < 1:
            raise ValueError(f"maxinner must be at least 1, got {maxinner}")
        self.maxinner = maxinner

    def hessian_product(self, p: Array) -> Callable[[Array], Array]:
        """u -> H u (flat) at the point whose probabilities are p."""

        def product(u: Array) -> Array:
            V, v = unpack(u, self.num_classes)
            return pack(*self.objective.hessian_vector_product_at(p, V, v))

        return product

    def direction(self, point: Point) -> Array:
        """d from :func:`conjugate_gradient` on H d = -g, to :func:`forcing_tolerance`."""
        product = self.hessian_product(softmax(point.z))
        d, products = conjugate_gradient(
            product, point.grad, forcing_tolerance(point.grad), self.maxinner
        )
        self.hessian_products += products
        return d
