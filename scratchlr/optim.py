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
(:func:`polyak_average`).
"""

from __future__ import annotations

import math
from typing import Any

from .backend import namespace_of

Array = Any  # numpy.ndarray or cupy.ndarray
SCHEDULES = ("constant", "step", "exponential", "cosine", "inverse")


def l2_penalty(W: Array, weight_decay: float) -> Array:
    """R = (lambda / 2) sum_ij W_ij^2: the L2 penalty whose gradient is lambda W. W (D, C) -> scalar.

    Not added to the logged loss, as in PyTorch, where ``weight_decay`` lives in the optimiser
    and the loss you print is the data's cross-entropy. :mod:`scratchlr.gradcheck` checks
    lambda W against central differences of the penalty's terms, and ``tests/test_gradcheck.py``
    against this function's.
    """
    return W.dtype.type(weight_decay / 2) * (W * W).sum()


def decayed_gradient(g: Array, theta: Array, weight_decay: float, out: Array | None = None) -> Array:
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


def descend(theta: Array, d: Array, learning_rate: float, out: Array | None = None,
            scratch: Array | None = None) -> Array:
    """theta' = theta - lr d: the SGD update, TF's ``ApplyGradientDescent`` (lr rounded to
    theta's dtype). ``scratch`` is where lr d may be written (the fast step passes the
    gradient's buffer, no longer needed)."""
    xp = namespace_of(theta)
    return xp.subtract(theta, xp.multiply(d, theta.dtype.type(learning_rate), out=scratch), out=out)


def sgd_step(
    theta: Array, g: Array, v: Array | None, learning_rate: float, momentum: float = 0.0,
    nesterov: bool = False, weight_decay: float = 0.0, in_place: bool = False,
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
    ``lr_scheduler.CosineAnnealingLR``, TF's ``CosineDecay`` with alpha = eta_min / lr."""
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def inverse_lr(lr: float, t: int, gamma: float) -> float:
    """lr_t = lr / (1 + gamma t): TF's ``InverseTimeDecay`` with decay_steps 1 (the decay
    under which SGD's iterates converge; PyTorch has it as a ``LambdaLR``)."""
    return lr / (1 + gamma * t)


def scheduled_lr(schedule: str, lr: float, t: int, step_size: int = 1, gamma: float = 0.1,
                 t_max: int = 1, eta_min: float = 0.0) -> float:
    """The learning rate of step t (counted from 0) under ``schedule``, one of SCHEDULES."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        return step_lr(lr, t, step_size, gamma)
    if schedule == "exponential":
        return exponential_lr(lr, t, gamma)
    if schedule == "cosine":
        return cosine_lr(lr, t, t_max, eta_min)
    if schedule == "inverse":
        return inverse_lr(lr, t, gamma)
    raise ValueError(f"unknown schedule {schedule!r}; one of {', '.join(SCHEDULES)}")


def stable_decay_limit(momentum: float, nesterov: bool) -> float:
    """The largest lr * lambda for which weight decay does not blow the weights up.

    With a = lr lambda and u = lr v, the decay term alone maps (theta, u) linearly:
    heavy ball: u' = mu u + a theta, theta' = theta - u', a matrix of trace 1 - a + mu and
    determinant mu; Nesterov: theta' = theta - a theta - mu u', trace 1 - a (1 + mu) + mu,
    determinant mu (1 - a). Both eigenvalues lie inside the unit circle (Jury's test:
    1 + trace + det > 0) exactly when a < 2 (1 + mu), or a < 2 (1 + mu) / (1 + 2 mu) with
    Nesterov; mu = 0 gives plain SGD's a < 2. The cross-entropy's gradient is bounded, so
    under this limit the weights stay finite at any learning rate.
    """
    return 2 * (1 + momentum) / (1 + 2 * momentum) if nesterov else 2 * (1 + momentum)
