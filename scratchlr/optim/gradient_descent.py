"""Gradient descent with a backtracking Armijo line search: the simplest full-batch solver.

    d_k = -g_k
    t_k = the first of t0, t0/2, t0/4, ... with f(theta + t d) <= f + c1 t g^T d

The first trial step t0 is 1 at the first iteration, then twice the step accepted last
(a step that worked is tried a little longer: most iterations then need one or two trials,
and the step can grow back where the curvature drops). GD needs many iterations on MNIST
(its condition number is large); it is here as the baseline the others are measured against.
"""

from __future__ import annotations

from typing import Any

from ..objective import Objective
from .solver import Array, Point, Solver

GROWTH = 2.0  # the first trial step is this times the previous accepted step


def steepest_descent(g: Array) -> Array:
    """d = -g: the direction in which f decreases fastest (in the Euclidean norm)."""
    return -g


class GradientDescent(Solver):
    """Gradient descent, d = -g, with an Armijo line search from twice the last step."""

    def __init__(
        self, objective: Objective, tol: float = 1e-4, max_iter: int = 100, **settings: Any
    ) -> None:
        super().__init__(objective, tol, max_iter, **settings)
        self.last_step = 1 / GROWTH  # so that the first trial is 1

    def restart(self) -> None:
        """Counts from 0, and the first trial step 1 again."""
        super().restart()
        self.last_step = 1 / GROWTH

    def direction(self, point: Point) -> Array:
        """d = -g (:func:`steepest_descent`)."""
        return steepest_descent(point.grad)

    def first_step(self, point: Point, d: Array) -> float:
        """t0 = 2 x the last accepted step (1 at the first iteration)."""
        return GROWTH * self.last_step

    def remember(self, old: Point, new: Point, step: float) -> None:
        """Keep the accepted step for the next first trial."""
        self.last_step = step
