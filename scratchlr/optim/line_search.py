"""Backtracking line search with Armijo's sufficient-decrease condition, by hand.

Along a descent direction d from theta (slope phi'(0) = g^T d < 0), phi(t) = f(theta + t d).
Trial steps t0, t0 rho, t0 rho^2, ... (rho = 0.5) until

    phi(t) <= phi(0) + c1 t phi'(0)          (Armijo, c1 = 1e-4)

(Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 3.1; c1 = 1e-4 is their and
scikit-learn's value). At most ``max_trials`` trials; none accepted is a failure (None), which
near the optimum means the rounding of f is as large as the decrease still to be had.
"""

from __future__ import annotations

from typing import Any, Callable

C1 = 1e-4  # sufficient-decrease constant
SHRINK = 0.5  # rho: each failed trial halves the step
MAX_TRIALS = 30  # 0.5^30 ~ 1e-9: a smaller step changes nothing the rounding would show


def armijo(value: float, value0: float, step: float, slope: float, c1: float = C1) -> bool:
    """phi(t) <= phi(0) + c1 t phi'(0): the trial's value decreases at least c1 times what the
    tangent at 0 promises. ``slope`` = phi'(0) = g^T d < 0."""
    return value <= value0 + c1 * step * slope


def backtracking(
    phi: Callable[[float], Any],
    value0: float,
    slope: float,
    step: float = 1.0,
    c1: float = C1,
    shrink: float = SHRINK,
    max_trials: int = MAX_TRIALS,
) -> tuple[float, Any, int] | None:
    """The first of t = step, step rho, step rho^2, ... that satisfies :func:`armijo` ->
    (t, phi(t), trials), or None after ``max_trials`` failed trials.

    ``phi(t)`` returns what the caller keeps of the trial point (an object with a ``value``):
    the accepted one comes back, so its logits need not be computed again.
    """
    for trial in range(1, max_trials + 1):
        point = phi(step)
        if armijo(point.value, value0, step, slope, c1):
            return step, point, trial
        step = step * shrink
    return None
