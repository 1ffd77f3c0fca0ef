"""The shape every full-batch solver has, and what each of its iterations reports.

A solver minimises the whole split's objective f(W, b) = J + (lambda/2) ||W||^2
(:class:`scratchlr.objective.Objective`) to its optimum, as scikit-learn's
``LogisticRegression(solver=...)`` does. Every iteration k:

    d_k = direction(theta_k, g_k)          (a descent direction: g_k^T d_k < 0)
    t_k = backtracking Armijo from the solver's first trial step (:mod:`.line_search`)
    theta_{k+1} = theta_k + t_k d_k

and stops when max_i |g_i| <= tol (scikit-learn's rule, on W's and b's gradient together),
after ``max_iter`` iterations, or when the line search finds no step (``message`` says why).

The parameters are one flat vector theta = (vec W, b) of D C + C entries, so that the
solvers' algebra (inner products, L-BFGS's pairs, CG's vectors) reads as the textbooks';
:func:`pack` and :func:`unpack` move between theta and (W, b) (``unpack`` returns views).

How far each dtype goes (MNIST, lambda 1e-4, measured): in float64, Newton-CG reaches
max|g| ~ 1e-11 (f to its last bits) and L-BFGS 1e-8 and below. In float32, f is rounded to
6e-8 of itself, and near the optimum the decrease left is smaller than that: Newton-CG
still gets to max|g| ~ 3e-8 to 5e-8 (its CG then runs to ``maxinner`` every iteration, so a
float32 tol under 1e-6 is slow), L-BFGS stalls at ~ 4e-6 (its pairs y = g' - g lose their
digits), and gradient descent stops gaining once t ||g||^2 is below f's rounding. Where
Armijo's f + c1 t g^T d rounds to f, an accepted step may leave f unchanged; where no trial
passes, the run ends with ``message`` "line search failed".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from .. import model
from ..backend import namespace_of
from ..objective import Objective
from .line_search import backtracking

Array = Any  # numpy.ndarray or cupy.ndarray


@dataclass(frozen=True)
class Iterate:
    """What one iteration of a full-batch solver reports."""

    iteration: int  # k = 1, 2, ... (iterations done)
    W: Array  # the iterate after iteration k, (D, C)
    b: Array  # (C,)
    value: float  # f(W, b), the penalised objective (J + lambda/2 ||W||^2)
    loss: float  # J alone (the data's mean cross-entropy), as the loop logs it
    accuracy: float  # training accuracy at (W, b) (from the logits already computed)
    grad_max: float  # max_i |g_i| over W's and b's gradient: scikit-learn's stopping quantity
    grad_norm: float  # ||g||_2
    step: float  # the line search's accepted step size t
    evaluations: int  # objective evaluations so far (each line-search trial is one)
    hessian_products: int  # Hessian-vector products so far (0 but for Newton-CG)


@dataclass(frozen=True)
class Point:
    """theta with what the solver knows there: the logits z (N, C), f, J and, once asked for,
    the gradient g (flat, like theta)."""

    theta: Array
    z: Array
    value: float
    loss: float
    grad: Array = None  # (None until with_gradient)


def pack(W: Array, b: Array) -> Array:
    """theta = (vec W, b): W (D, C) row by row, then b (C,). -> (D C + C,)."""
    return namespace_of(W).concatenate([W.ravel(), b])


def unpack(theta: Array, num_classes: int) -> tuple[Array, Array]:
    """(W, b) from theta = (vec W, b), as views of theta. -> ((D, C), (C,))."""
    split = theta.shape[0] - num_classes
    return theta[:split].reshape(-1, num_classes), theta[split:]


def grad_max(g: Array) -> float:
    """max_i |g_i|: scikit-learn's stopping quantity (the infinity norm)."""
    return float(namespace_of(g).abs(g).max())


def converged(g: Array, tol: float) -> bool:
    """The stopping rule max_i |g_i| <= tol (scikit-learn's, ``tol`` = its ``tol``)."""
    return grad_max(g) <= tol


class Solver:
    """Base of the full-batch solvers. A member overrides :meth:`direction` (and, where it
    needs them, :meth:`first_step`, :meth:`remember`, :meth:`restart`, and Newton-CG's
    :meth:`evaluated` and :meth:`sharpen` for its float32 first phase); ``fields`` names
    the Config fields it reads besides max_iter and tol, as an
    :class:`~scratchlr.optim.optimizer.Optimizer` does.

    :meth:`iterations` yields one :class:`Iterate` per iteration; afterwards ``converged``
    says whether max|g| <= tol was reached and ``message`` says, in one line, why it stopped.
    A start that already meets the rule yields nothing (``converged`` True). An Iterate's W
    and b are views of the solver's iterate, which later iterations never overwrite.
    """

    fields: ClassVar[tuple[str, ...]] = ()  # the Config fields this solver reads

    def __init__(
        self, objective: Objective, tol: float = 1e-4, max_iter: int = 100, **settings: Any
    ) -> None:
        if settings:
            raise TypeError(f"{type(self).__name__} has no setting {sorted(settings)[0]!r}")
        self.objective = objective
        self.tol = tol
        self.max_iter = max_iter
        self.converged = False
        self.message = ""
        self.evaluations = 0
        self.hessian_products = 0
        self.num_classes = 0

    def evaluated(self) -> Objective:
        """The objective whose f and g the iterations use: ``objective`` (Newton-CG's may be a
        lower-precision copy while far from the optimum)."""
        return self.objective

    def point(self, theta: Array) -> Point:
        """f and J at theta, from one logits pass (the gradient comes later, from its z), in
        the dtype of :meth:`evaluated` (theta itself stays in its own)."""
        f = self.evaluated()
        W, b = unpack(theta.astype(f.X.dtype, copy=False), self.num_classes)
        z = f.logits(W, b)
        loss = f.data_loss(z)
        self.evaluations += 1
        return Point(theta, z, float(loss + f.penalty(W)), float(loss))

    def with_gradient(self, point: Point) -> Point:
        """The point with its gradient g = (vec df/dW, df/db) in theta's dtype, from the
        logits it holds."""
        f = self.evaluated()
        W, b = unpack(point.theta.astype(f.X.dtype, copy=False), self.num_classes)
        g = pack(*f.gradient(W, b, z=point.z)).astype(point.theta.dtype, copy=False)
        return Point(point.theta, point.z, point.value, point.loss, g)

    def along(self, theta: Array, d: Array) -> Callable[[float], Point]:
        """phi(t) = the point theta + t d (t rounded to theta's dtype), for the line search."""
        return lambda t: self.point(theta + theta.dtype.type(t) * d)

    def direction(self, point: Point) -> Array:
        """The search direction d at the point (g known), with g^T d < 0."""
        raise NotImplementedError

    def search(self, point: Point) -> tuple[float, Point, int] | None:
        """The direction at the point and the line search along it (:func:`backtracking`):
        (t, the point there, trials), or None where no trial passes Armijo's test."""
        d = self.direction(point)
        slope = float(point.grad @ d)
        if slope >= 0:  # rounding made d no descent direction: steepest descent this once
            d = -point.grad
            slope = float(point.grad @ d)
        phi = self.along(point.theta, d)
        return backtracking(phi, point.value, slope, self.first_step(point, d))

    def sharpen(self) -> bool:
        """Where f and g are evaluated in a lower precision than the objective's (Newton-CG's
        first phase), switch to the objective's and return True, so that a failed line
        search is tried again there; else False."""
        return False

    def first_step(self, point: Point, d: Array) -> float:
        """The line search's first trial step (1: Newton's and quasi-Newton's natural step)."""
        return 1.0

    def remember(self, old: Point, new: Point, step: float) -> None:
        """What the solver keeps from an accepted step (L-BFGS's pair, GD's step size)."""

    def restart(self) -> None:
        """Forget what an earlier run kept (L-BFGS's pairs, GD's step size): each call of
        :meth:`iterations` starts afresh, its counts from 0."""
        self.converged = False
        self.message = ""
        self.evaluations = 0
        self.hessian_products = 0

    def iterations(self, W: Array, b: Array) -> Iterator[Iterate]:
        """Yields one :class:`Iterate` per iteration from the start (W, b); returns when
        max|g| <= tol (``converged`` True), after ``max_iter`` iterations, or when the line
        search fails (``message`` says why in one line)."""
        self.num_classes = b.shape[0]
        self.restart()
        here = self.with_gradient(self.point(pack(W, b)))
        if converged(here.grad, self.tol):
            self.converged = True
            self.message = f"converged: max|g| <= tol {self.tol:g} at the start"
            return
        xp = namespace_of(here.theta)
        for k in range(1, self.max_iter + 1):
            found = self.search(here)
            if found is None and self.sharpen():
                here = self.with_gradient(self.point(here.theta))
                found = self.search(here)
            if found is None:
                self.message = (
                    f"line search failed at iteration {k}: no step decreases f "
                    f"(max|g| {grad_max(here.grad):.3g} > tol {self.tol:g})"
                )
                return
            step = found[0]
            there = self.with_gradient(found[1])
            self.remember(here, there, step)
            here = there
            W_k, b_k = unpack(here.theta, self.num_classes)
            yield Iterate(
                iteration=k,
                W=W_k,
                b=b_k,
                value=here.value,
                loss=here.loss,
                accuracy=float(model.accuracy(here.z, self.evaluated().y)),
                grad_max=grad_max(here.grad),
                grad_norm=float(xp.linalg.norm(here.grad)),
                step=step,
                evaluations=self.evaluations,
                hessian_products=self.hessian_products,
            )
            if converged(here.grad, self.tol):
                self.converged = True
                self.message = f"converged: max|g| <= tol {self.tol:g} after {k} iterations"
                return
        self.message = f"stopped after max_iter {self.max_iter} iterations, not converged"

    @classmethod
    def from_config(cls, objective: Objective, config: Any) -> Solver:
        """The solver over ``objective`` with the config's max_iter and tol."""
        return cls(objective, tol=config.tol, max_iter=config.max_iter)

    @classmethod
    def check(cls, config: Any) -> None:
        """``ValueError`` (one line naming the flag) if ``config`` is no setting for this
        solver; max_iter and tol are checked by the Config itself."""
