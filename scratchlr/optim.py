"""SGD and its options, by hand: weight decay, momentum, Nesterov, schedules, averaging.

Every function is one equation, for NumPy or CuPy arrays alike. ``theta`` is a parameter
(W (D, C) or b (C,)), ``g`` its gradient and ``v`` its velocity, all of one shape and dtype.
Hyper-parameters are rounded to theta's dtype before use, as TF and PyTorch do.

Each array function takes ``out=``: the reference step builds new arrays (``out=None``), the
fast step writes into its buffers. Both make the same calls, so their results are the same
bits. :func:`sgd_step` chains them in the order ``torch.optim.SGD`` does (dampening 0):

    g <- g + lambda theta                 (weight decay, W only)
    v <- mu v + g                         (momentum; v starts at 0, so the first v is g)
    d <- g + mu v  (Nesterov)  or  d <- v
    theta <- theta - lr_t d

The learning rate lr_t follows a schedule of the step count t = 0, 1, ... (the functions
``*_lr``). Polyak-Ruppert averaging keeps the running mean of the iterates
(:func:`polyak_average`). :class:`SGD` holds what the update carries from one step to the
next (the velocities and the mean), as ``torch.optim.SGD`` does.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .backend import namespace_of

Array = Any  # numpy.ndarray or cupy.ndarray


class Parameter(NamedTuple):
    """A schedule's parameter: it must lie above ``low`` (or at it, with ``closed``) and at
    most at ``high`` (None: no bound; ``"lr"``: the learning rate). ``default`` None means
    the schedule needs it given; ``"steps"`` stands for the run's number of steps."""

    low: float
    high: float | str | None
    closed: bool
    default: float | str | None


#: Each schedule's parameters (PyTorch's ``lr_scheduler`` names), their ranges and defaults.
SCHEDULES: dict[str, dict[str, Parameter]] = {
    "constant": {},
    "step": {
        "step_size": Parameter(0, None, False, None),
        "gamma": Parameter(0, 1, False, 0.1),
    },  # StepLR's gamma
    "exponential": {"gamma": Parameter(0, 1, False, None)},
    "cosine": {
        "t_max": Parameter(0, None, False, "steps"),
        "eta_min": Parameter(0, "lr", True, 0.0),
    },
    "inverse": {"gamma": Parameter(0, None, False, None)},
}


def l2_penalty(W: Array, weight_decay: float) -> Array:
    """R_ij = (lambda / 2) W_ij^2: the terms of the L2 penalty R = sum_ij R_ij, whose gradient
    is lambda W (:func:`decayed_gradient`). W (D, C) -> (D, C).

    Not added to the logged loss, as in PyTorch, where ``weight_decay`` lives in the optimiser
    and the loss you print is the data's cross-entropy. :func:`scratchlr.gradcheck.check`
    differences these terms one by one to check lambda W.
    """
    return W.dtype.type(weight_decay / 2) * W * W


def decayed_gradient(
    g: Array, theta: Array, weight_decay: float, out: Array | None = None
) -> Array:
    """g + lambda theta: the gradient of J + (lambda / 2) ||theta||^2.

    ``torch.optim.SGD(weight_decay=lambda)``; in TF/Keras an L2 ``kernel_regularizer`` of
    lambda / 2. The trainer decays W only: b shifts every logit of a class alike, it does not
    fit noise, and shrinking it would bias the model against frequent classes (as in Keras's
    ``kernel_regularizer`` and scikit-learn's ``SGDClassifier``, which leave the intercept
    alone).
    """
    return namespace_of(g).add(g, theta * theta.dtype.type(weight_decay), out=out)


def momentum_buffer(v: Array, g: Array, momentum: float, out: Array | None = None) -> Array:
    """v' = mu v + g: the heavy-ball velocity.

    ``torch.optim.SGD(momentum=mu, dampening=0)``'s ``buf``, TF's ``MomentumOptimizer``
    accumulator. Starting from v = 0 the first v' is exactly g, as PyTorch's first step.
    """
    return namespace_of(g).add(v * v.dtype.type(momentum), g, out=out)


def nesterov_direction(g: Array, v: Array, momentum: float, out: Array | None = None) -> Array:
    """d = g + mu v', with v' the new velocity: Nesterov's look-ahead, in PyTorch's form
    (``torch.optim.SGD(nesterov=True)``; TF ``MomentumOptimizer(use_nesterov=True)``)."""
    return namespace_of(g).add(g, v * v.dtype.type(momentum), out=out)


def descend(
    theta: Array,
    d: Array,
    learning_rate: float,
    out: Array | None = None,
    scratch: Array | None = None,
) -> Array:
    """theta' = theta - lr d: the SGD update, TF's ``ApplyGradientDescent`` (lr rounded to
    theta's dtype). ``scratch`` is where lr d may be written (the fast step passes the
    gradient's buffer, no longer needed)."""
    xp = namespace_of(theta)
    return xp.subtract(theta, xp.multiply(d, theta.dtype.type(learning_rate), out=scratch), out=out)


def sgd_step(
    theta: Array,
    g: Array,
    v: Array | None,
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    in_place: bool = False,
) -> tuple[Array, Array | None]:
    """One ``torch.optim.SGD`` update of one parameter -> (theta', v').

    ``v`` is the velocity (None without momentum). ``in_place``: g, v and theta are
    overwritten (the fast step's buffers); otherwise new arrays are returned.
    """
    g_out, v_out, theta_out = (g, v, theta) if in_place else (None, None, None)
    if weight_decay:
        g = decayed_gradient(g, theta, weight_decay, out=g_out)
    if momentum:
        v = momentum_buffer(v, g, momentum, out=v_out)
        g = nesterov_direction(g, v, momentum, out=g_out) if nesterov else v
    return descend(theta, g, learning_rate, out=theta_out, scratch=g_out), v


def polyak_average(mean: Array, theta: Array, k: int, out: Array | None = None) -> Array:
    """mean_k = mean_{k-1} + (theta_k - mean_{k-1}) / k: the running mean of k iterates.

    Polyak-Ruppert averaging, as ``SGDClassifier(average=...)`` and
    ``torch.optim.swa_utils.AveragedModel`` (its default ``avg_fn``) compute it. With k = 1
    the mean is theta itself.
    """
    return namespace_of(mean).add(mean, (theta - mean) / theta.dtype.type(k), out=out)


class SGD:
    """``torch.optim.SGD`` over a list of parameters, with the state it keeps between steps.

    ``params``: the parameters (for the trainer, [W, b]); ``weight_decay``: each one's lambda
    (PyTorch's parameter groups: W is decayed, b is not). With ``momentum``, each has a
    velocity, zero at first. With ``average`` = k, the running mean of the iterates after
    step k is kept as well (``torch.optim.swa_utils.AveragedModel``). ``in_place``: the
    gradients, velocities, parameters and means are overwritten rather than rebuilt (the fast
    step's buffers); both ways make the same calls, so the same bits.
    """

    def __init__(
        self,
        params: list[Array],
        weight_decay: list[float],
        momentum: float = 0.0,
        nesterov: bool = False,
        average: int | None = None,
        in_place: bool = False,
    ) -> None:
        self.params, self.weight_decay = list(params), list(weight_decay)
        self.momentum, self.nesterov, self.average, self.in_place = (
            momentum,
            nesterov,
            average,
            in_place,
        )
        self.velocities = [namespace_of(p).zeros_like(p) if momentum else None for p in self.params]
        self.means = [namespace_of(p).zeros_like(p) for p in self.params]
        self.steps = self.averaged = 0  # steps taken; iterates in the mean

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter (:func:`sgd_step`), then of the running mean."""
        for i, (theta, g, v, decay) in enumerate(
            zip(self.params, grads, self.velocities, self.weight_decay)
        ):
            self.params[i], self.velocities[i] = sgd_step(
                theta, g, v, learning_rate, self.momentum, self.nesterov, decay, self.in_place
            )
        self.steps += 1
        if self.average is not None and self.steps > self.average:
            self.averaged += 1
            self.means = [
                polyak_average(mean, theta, self.averaged, out=mean if self.in_place else None)
                for mean, theta in zip(self.means, self.params)
            ]

    def final_params(self) -> list[Array]:
        """The parameters a run ends with: the running mean once averaging has begun, else the iterates."""
        return self.means if self.averaged else self.params


def step_lr(lr: float, t: int, step_size: int, gamma: float) -> float:
    """lr_t = lr gamma^floor(t / step_size): ``lr_scheduler.StepLR``, TF's staircase
    ``ExponentialDecay``."""
    return lr * gamma ** (t // step_size)


def exponential_lr(lr: float, t: int, gamma: float) -> float:
    """lr_t = lr gamma^t: ``lr_scheduler.ExponentialLR``, TF's ``ExponentialDecay`` with
    decay_steps 1."""
    return lr * gamma**t


def cosine_lr(lr: float, t: int, t_max: int, eta_min: float) -> float:
    """lr_t = eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2: the closed form of
    ``lr_scheduler.CosineAnnealingLR`` (which rises again after T_max). TF's ``CosineDecay``
    with alpha = eta_min / lr is the same for t <= T_max only: it holds t at T_max after."""
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def inverse_lr(lr: float, t: int, gamma: float) -> float:
    """lr_t = lr / (1 + gamma t): TF's ``InverseTimeDecay`` with decay_steps 1 (the decay
    under which SGD's iterates converge; PyTorch has it as a ``LambdaLR``)."""
    return lr / (1 + gamma * t)


def scheduled_lr(
    schedule: str, lr: float, t: int, total: int | None = None, **given: float | None
) -> float:
    """The learning rate of step t (counted from 0) of a run of ``total`` steps under
    ``schedule``, a key of :data:`SCHEDULES`, with its parameters as ``given`` (a missing or
    None one takes the table's default)."""
    if schedule == "constant":
        return lr
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; one of {', '.join(SCHEDULES)}")
    p: dict[str, Any] = {
        name: total if spec.default == "steps" else spec.default
        for name, spec in SCHEDULES[schedule].items()
    }
    p.update((name, value) for name, value in given.items() if value is not None)
    if schedule == "step":
        return step_lr(lr, t, p["step_size"], p["gamma"])
    if schedule == "exponential":
        return exponential_lr(lr, t, p["gamma"])
    if schedule == "cosine":
        return cosine_lr(lr, t, p["t_max"], p["eta_min"])
    return inverse_lr(lr, t, p["gamma"])


def stable_decay_limit(momentum: float, nesterov: bool) -> float:
    """The bound on a = lr * lambda below which the weight decay's own map is stable.

    With u = lr v, the decay term alone maps (theta, u) linearly: heavy ball: u' = mu u + a
    theta, theta' = theta - u', of trace T = 1 - a + mu and determinant D = mu; Nesterov:
    theta' = theta - a theta - mu u', T = 1 - a (1 + mu) + mu, D = mu (1 - a). Both
    eigenvalues lie inside the unit circle if and only if Jury's three conditions hold:
    |D| < 1, 1 - T + D > 0 (here it is a > 0) and 1 + T + D > 0, which is a < 2 (1 + mu), or
    a < 2 (1 + mu) / (1 + 2 mu) with Nesterov (and then |D| < 1 follows); mu = 0 gives
    plain SGD's a < 2. Below it, W stays bounded, because the data's gradient is bounded
    (|dJ/dW_ij| <= 1 for pixels in [0, 1]): docs/math.md section 7 has the working.
    """
    return 2 * (1 + momentum) / (1 + 2 * momentum) if nesterov else 2 * (1 + momentum)
