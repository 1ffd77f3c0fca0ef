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

Where the time goes (MNIST's 55,000 images, lambda 1e-4, one BLAS thread, to f within 1e-6
of f*, measured): ~77 products, each reading all of X, are two thirds of it. Two settings cut
it, both on by default: the products' copy of X has its rows sorted by the column of their
first inked pixel (``sort_rows``, :func:`first_ink`), so that each block of 256 images
leaves the same leading and trailing pixels blank and the products read only the span
between (:func:`~scratchlr.objective.ink_spans`: 0.69 of the columns, a product 37 -> 29 ms);
and f and g are evaluated on that float32 copy while max|g| > 1e-5
(``low_precision_until``), in the objective's dtype after, so that the stopping rule always
sees the exact gradient (the passes for f and g take half as long: 1.3 s of the 4.6 s
before). Together 4.6 s -> 3.5 s (medians, old and new alternated in one process).
"""

from __future__ import annotations

from typing import Any, Callable

from ..backend import namespace_of
from ..model import softmax
from ..objective import ROWS, Objective, ink_spans
from .solver import Array, Point, Solver, grad_max, pack, unpack

MAXINNER = 200  # CG iterations at most per Newton step: scikit-learn's maxinner
PRECONDITIONERS = (None, "kronecker")
# M's lambda at least this. At lambda = 0, H is flat along the shift across classes and nearly
# flat along pixels almost never inked; with a floor of 1e-8, M^{-1} multiplied rounding's
# components along them by 1e8, and MNIST (float32, tol 1e-4) had not converged after 30
# iterations; with 1e-4 it converges in 10. Where lambda >= 1e-4, M is as before.
DAMPING_FLOOR = 1e-4


def forcing_tolerance(g: Array) -> float:
    """eta ||g||_1 with eta = min(0.5, sqrt(||g||_1)): scikit-learn's CG stopping level."""
    norm = float(namespace_of(g).abs(g).sum())
    return min(0.5, norm**0.5) * norm


def conjugate_gradient(
    hessian_product: Callable[[Array], Array],
    g: Array,
    tol: float,
    maxinner: int = MAXINNER,
    precondition: Callable[[Array], Array] | None = None,
) -> tuple[Array, int]:
    """d ~ -H^{-1} g by (preconditioned) conjugate gradients from d = 0 (Nocedal & Wright,
    Algorithm 5.3; M = I without ``precondition``) -> (d, products). Each iteration, with the
    residual r = -g - H d, s = M^{-1} r and u the search direction:

        alpha = r^T s / u^T H u,  d += alpha u,  r -= alpha H u,
        s' = M^{-1} r,  u = s' + (r'^T s' / r^T s) u

    Stops when ||r||_1 <= ``tol``, after ``maxinner`` products, or where u^T H u <= 0."""
    xp = namespace_of(g)
    d = xp.zeros_like(g)
    r = -g
    s = r if precondition is None else precondition(r)
    u = s.copy()
    rs = float(r @ s)
    for products in range(maxinner):
        if float(xp.abs(r).sum()) <= tol:
            return d, products
        Hu = hessian_product(u)
        curvature = float(u @ Hu)
        if curvature <= 0:
            return (d if products else -g), products + 1
        alpha = g.dtype.type(rs / curvature)
        d += alpha * u
        r -= alpha * Hu
        s = r if precondition is None else precondition(r)
        rs_next = float(r @ s)
        u = s + g.dtype.type(rs_next / rs) * u
        rs = rs_next
    return d, maxinner


def first_ink(X: Array) -> Array:
    """The column of each row's first nonzero entry (0 for an all-0 row). X (N, D) -> (N,)."""
    return (X != 0).argmax(axis=1)


def sorted_copy(X: Array, order: Array, dtype: Any, rows: int = 4096) -> Array:
    """X[order] in ``dtype``, gathered ``rows`` rows at a time (no full-size temporary in X's
    dtype). X (N, D) -> (N, D)."""
    xp = namespace_of(X)
    copy = xp.empty(X.shape, dtype)
    for start in range(0, X.shape[0], rows):
        copy[start : start + rows] = X[order[start : start + rows]]
    return copy


def second_moments(X: Array, rows: int = ROWS, spans: list[slice] | None = None) -> Array:
    """S = [X 1]^T [X 1] / N: the second moments of the pixels with a constant 1 appended
    (b's "pixel"), summed over blocks of ``rows`` examples in X's dtype (each on its
    :func:`~scratchlr.objective.ink_spans` where ``spans`` are given), accumulated and
    returned in float64. X (N, D) -> (D + 1, D + 1)."""
    xp = namespace_of(X)
    n = X.shape[0]
    S = xp.zeros((X.shape[1] + 1, X.shape[1] + 1))
    pixels = S[:-1, :-1]  # a view: the X^T X / N part
    for block, start in enumerate(range(0, n, rows)):
        span = slice(None) if spans is None else spans[block]
        X_B = X[start : start + rows, span]
        pixels[span, span] += X_B.T @ X_B
    pixels /= n
    S[:-1, -1] = X.mean(axis=0, dtype="float64")
    S[-1, :-1] = S[:-1, -1]
    S[-1, -1] = 1.0
    return S


def mean_softmax_jacobian(p: Array) -> Array:
    """A = (1/N) sum_n (diag(p_n) - p_n p_n^T): the softmax Jacobian averaged over the
    examples, in float64. p (N, C) -> (C, C)."""
    xp = namespace_of(p)
    p64 = p.astype("float64")
    return xp.diag(p64.mean(axis=0)) - p64.T @ p64 / p.shape[0]


def kronecker_solve(
    S_eig: tuple[Array, Array], A_eig: tuple[Array, Array], damping: float, R: Array
) -> Array:
    """M^{-1} R for M = S (x) A + lambda I (lambda = ``damping``), which acts on R (D + 1, C)
    as M R = S R A + lambda R, from the eigendecompositions S = Q_S diag(s) Q_S^T and
    A = Q_A diag(a) Q_A^T:

        M^{-1} R = Q_S [(Q_S^T R Q_A) / (s_i a_j + lambda)] Q_A^T

    (eigenvalues below 0, rounding's, count as 0). -> (D + 1, C)."""
    xp = namespace_of(R)
    s = xp.maximum(S_eig[0], 0)
    a = xp.maximum(A_eig[0], 0)
    scaled = (S_eig[1].T @ R @ A_eig[1]) / (s[:, None] * a[None, :] + damping)
    return S_eig[1] @ scaled @ A_eig[1].T


class NewtonCG(Solver):
    """Truncated Newton: CG on H d = -g with the forcing term above, then Armijo from t = 1.

    ``preconditioner``: ``"kronecker"`` (the default) preconditions CG with
    M = S (x) A + lambda I (:func:`kronecker_solve`): H = (1/N) sum_n A_n (x) x~_n x~_n^T + lambda
    (x~_n = (x_n, 1), A_n = diag(p_n) - p_n p_n^T) with the A_n replaced by their mean A
    (:func:`mean_softmax_jacobian`, each Newton point) and S the pixels' second moments
    (:func:`second_moments`, once): the Kronecker factorisation of K-FAC (Martens & Grosse,
    2015). It captures how the pixels correlate, which the diagonal (Jacobi) does not: on
    MNIST it needs a third of plain CG's products. ``None``: plain CG, as scikit-learn.
    ``hessian_dtype``: the dtype of the Hessian-vector products (default float32: half the
    memory traffic of float64; a product rounded to float32 only makes CG's direction less
    exact, and the line search and the gradient, in the objective's dtype, keep the iterates
    and the stopping rule exact). None: the objective's dtype.
    ``low_precision_until``: f and g are evaluated on the products' copy of X (in
    ``hessian_dtype``) until its max|g| <= max(``low_precision_until``, tol), then in the
    objective's dtype (the point evaluated afresh), so every stopping decision and the last
    iterate are exact; an Iterate before reports f rounded to ``hessian_dtype``. A line
    search that fails in the first phase ends it and is tried again. None: the objective's
    dtype throughout (as when ``hessian_dtype`` is the objective's).
    ``sort_rows``: the products' copy has its rows in :func:`first_ink` order and each block
    of rows is multiplied on its :func:`~scratchlr.objective.ink_spans` only (the same sums,
    to rounding). False: the rows in X's order, all columns.
    """

    def __init__(
        self,
        objective: Objective,
        tol: float = 1e-4,
        max_iter: int = 100,
        maxinner: int = MAXINNER,
        preconditioner: str | None = "kronecker",
        hessian_dtype: str | None = "float32",
        low_precision_until: float | None = 1e-5,
        sort_rows: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(objective, tol, max_iter, **settings)
        if maxinner < 1:
            raise ValueError(f"maxinner must be at least 1, got {maxinner}")
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be None or 'kronecker', got {preconditioner!r}")
        self.maxinner = maxinner
        self.preconditioner = preconditioner
        self.hessian_dtype = hessian_dtype or objective.X.dtype
        self.curvature: Objective | None = None  # the products' objective, made when first needed
        self.S_eig: tuple[Array, Array] | None = None  # S's eigendecomposition, likewise
        self.low_precision_until = low_precision_until
        self.low_precision = False  # whether f and g are now evaluated in hessian_dtype
        self.sort_rows = sort_rows
        self.order: Array | None = None  # the products' rows, as rows of X (sort_rows)
        self.spans: list[slice] | None = None  # their blocks' ink_spans (sort_rows)

    def restart(self) -> None:
        """As :meth:`Solver.restart`, and back to the low-precision phase where there is one."""
        super().restart()
        self.low_precision = (
            self.low_precision_until is not None
            and self.objective.X.dtype != self.products_objective().X.dtype
        )

    def evaluated(self) -> Objective:
        """The products' objective (X in ``hessian_dtype``) in the low-precision phase, else
        the objective."""
        return self.products_objective() if self.low_precision else self.objective

    def sharpen(self) -> bool:
        """Ends the low-precision phase, if on (a line search failed in it)."""
        was = self.low_precision
        self.low_precision = False
        return was

    def with_gradient(self, point: Point) -> Point:
        """As :meth:`Solver.with_gradient`; in the low-precision phase, once max|g| <=
        max(``low_precision_until``, tol), the phase ends and the point is evaluated afresh
        in the objective's dtype, so that the stopping rule always sees that gradient."""
        there = super().with_gradient(point)
        until = max(self.low_precision_until or 0.0, self.tol)
        if self.low_precision and grad_max(there.grad) <= until:
            self.low_precision = False
            there = super().with_gradient(self.point(point.theta))
        return there

    def products_objective(self) -> Objective:
        """The objective with X in ``hessian_dtype`` (a copy, made at the first call, so that
        its time counts in the iterations'); with ``sort_rows``, its rows sorted by
        :func:`first_ink` and each block's :func:`~scratchlr.objective.ink_spans` kept."""
        if self.curvature is None:
            f = self.objective
            if self.sort_rows:
                self.order = namespace_of(f.X).argsort(first_ink(f.X), kind="stable")
                X = sorted_copy(f.X, self.order, self.hessian_dtype)
                self.spans = ink_spans(X)
                self.curvature = Objective(X, f.y[self.order], f.weight_decay)
            else:
                X = f.X.astype(self.hessian_dtype, copy=False)
                self.curvature = Objective(X, f.y, f.weight_decay)
        return self.curvature

    def probabilities(self, point: Point) -> Array:
        """p = softmax(z) at the point, in the products' row order (a point of the
        low-precision phase has its z in that order already)."""
        p = softmax(point.z)
        if self.order is None or self.low_precision:
            return p
        return p[self.order]

    def hessian_product(self, p: Array) -> Callable[[Array], Array]:
        """u -> H u (flat, in u's dtype) at the point whose probabilities are p, computed in
        ``hessian_dtype``."""
        curvature = self.products_objective()
        dtype = curvature.X.dtype
        p = p.astype(dtype, copy=False)

        def product(u: Array) -> Array:
            V, v = unpack(u.astype(dtype, copy=False), self.num_classes)
            HV, Hv = curvature.hessian_vector_product_at(p, V, v, spans=self.spans)
            return pack(HV, Hv).astype(u.dtype)

        return product

    def kronecker_preconditioner(self, p: Array) -> Callable[[Array], Array]:
        """r -> M^{-1} r (flat) with M from the probabilities p (:func:`kronecker_solve`);
        S's eigendecomposition is computed at the first call and kept."""
        xp = namespace_of(p)
        if self.S_eig is None:
            X = self.products_objective().X
            self.S_eig = xp.linalg.eigh(second_moments(X, spans=self.spans))
        S_eig = self.S_eig
        A_eig = xp.linalg.eigh(mean_softmax_jacobian(p))
        damping = max(self.objective.weight_decay, DAMPING_FLOOR)
        columns = self.num_classes

        def precondition(r: Array) -> Array:
            R = r.reshape(-1, columns).astype("float64")
            return kronecker_solve(S_eig, A_eig, damping, R).ravel().astype(r.dtype)

        return precondition

    def direction(self, point: Point) -> Array:
        """d from :func:`conjugate_gradient` on H d = -g, to :func:`forcing_tolerance`."""
        p = self.probabilities(point)
        precondition = None
        if self.preconditioner == "kronecker":
            precondition = self.kronecker_preconditioner(p)
        g = point.grad
        d, products = conjugate_gradient(
            self.hessian_product(p), g, forcing_tolerance(g), self.maxinner, precondition
        )
        self.hessian_products += products
        return d
