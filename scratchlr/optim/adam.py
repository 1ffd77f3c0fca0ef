"""Adam and AdamW, by hand: steps scaled by running moments of the gradient.

Every function is one equation, for NumPy or CuPy arrays alike. ``theta`` is a parameter
(W (D, C) or b (C,)), ``g`` its gradient, ``m`` and ``v`` its first and second moments, all of
one shape and dtype; k = 1, 2, ... counts the steps. Hyper-parameters are rounded to theta's
dtype before use, as PyTorch does. :func:`adam_update` chains them in the order of
``torch.optim.Adam``'s single-tensor step (``_single_tensor_adam``):

    theta <- theta (1 - lr lambda)         (AdamW only: the decoupled weight decay, W only)
    m <- m + (1 - beta1) (g - m)           (m.lerp_(g, 1 - beta1): beta1 m + (1 - beta1) g)
    v <- beta2 v + (1 - beta2) g g
    d <- sqrt(v) / sqrt(1 - beta2^k) + eps
    theta <- theta - (lr / (1 - beta1^k)) m / d

The two divisions by 1 - beta^k are the bias correction: from m = v = 0, m_k and v_k are the
gradients' averages times 1 - beta^k (docs/math.md §7). Adam's weight decay is the objective's
lambda, already in g (as ``torch.optim.Adam(weight_decay=lambda)`` adds lambda theta to g);
AdamW's is decoupled, and its objective has no lambda (:attr:`scratchlr.config.Config.penalty`).

Each array function takes ``out=``: the reference step builds new arrays (``out=None``), the
fast step writes into the state's buffers and the parameters. Both make the same calls, so
their results are the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import namespace_of
from .optimizer import Array, Optimizer

DEFAULT_BETAS = (0.9, 0.999)  # torch.optim.Adam's
DEFAULT_EPS = 1e-8


def lerp(start: Array, end: Array, weight: float, out: Array | None = None) -> Array:
    """start + w (end - start), torch.lerp's form for w < 1/2; end - (1 - w)(end - start) for
    w >= 1/2. Each form is exact at its own end (w = 0 gives start, w = 1 gives end)."""
    xp = namespace_of(start)
    w = start.dtype.type(weight)
    difference = end - start
    if w < 0.5:
        return xp.add(start, w * difference, out=out)
    return xp.subtract(end, difference * (start.dtype.type(1) - w), out=out)


def first_moment(m: Array, g: Array, beta1: float, out: Array | None = None) -> Array:
    """m' = beta1 m + (1 - beta1) g, the gradients' exponential average, as torch computes it:
    m + (1 - beta1)(g - m) (``exp_avg.lerp_(grad, 1 - beta1)``)."""
    return lerp(m, g, 1 - beta1, out=out)


def second_moment(v: Array, g: Array, beta2: float, out: Array | None = None) -> Array:
    """v' = beta2 v + (1 - beta2) g g, the squared gradients' exponential average
    (``exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)``; RMSprop's square average
    with alpha for beta2)."""
    dtype = v.dtype.type
    return namespace_of(v).add(v * dtype(beta2), (g * dtype(1 - beta2)) * g, out=out)


def bias_correction(beta: float, k: int) -> float:
    """c_k = 1 - beta^k: from a zero start, an exponential average after k steps of a constant
    x is c_k x, so dividing by c_k undoes the start's pull towards 0."""
    return 1 - beta**k


def adam_denominator(v: Array, beta2: float, k: int, eps: float, out: Array | None = None) -> Array:
    """d = sqrt(v) / sqrt(1 - beta2^k) + eps = sqrt(v_hat) + eps, the bias-corrected root mean
    square (``(exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)``)."""
    xp = namespace_of(v)
    dtype = v.dtype.type
    root = xp.divide(xp.sqrt(v, out=out), dtype(bias_correction(beta2, k) ** 0.5), out=out)
    return xp.add(root, dtype(eps), out=out)


def adam_step(
    theta: Array,
    m: Array,
    d: Array,
    learning_rate: float,
    beta1: float,
    k: int,
    out: Array | None = None,
) -> Array:
    """theta' = theta - (lr / (1 - beta1^k)) m / d = theta - lr m_hat / d, the bias-corrected
    step (``param.addcdiv_(exp_avg, denom, value=-step_size)``: (-step_size m) / d is added)."""
    step_size = learning_rate / bias_correction(beta1, k)
    scaled = (m * theta.dtype.type(-step_size)) / d
    return namespace_of(theta).add(theta, scaled, out=out)


def decoupled_decay(
    theta: Array, learning_rate: float, weight_decay: float, out: Array | None = None
) -> Array:
    """theta' = (1 - lr lambda) theta: AdamW's weight decay, outside the gradient
    (``param.mul_(1 - lr * weight_decay)``; Loshchilov and Hutter's decoupled decay)."""
    return namespace_of(theta).multiply(
        theta, theta.dtype.type(1 - learning_rate * weight_decay), out=out
    )


def adam_update(
    theta: Array,
    g: Array,
    m: Array,
    v: Array,
    k: int,
    learning_rate: float,
    betas: tuple[float, float] = DEFAULT_BETAS,
    eps: float = DEFAULT_EPS,
    weight_decay: float = 0.0,
    in_place: bool = False,
) -> tuple[Array, Array, Array]:
    """Step k (from 1) of ``torch.optim.Adam`` on one parameter -> (theta', m', v'); with a
    ``weight_decay``, AdamW's decoupled decay first. ``in_place``: theta, m and v are
    overwritten (the fast step's buffers), and g serves as the denominator's; otherwise new
    arrays are returned."""
    beta1, beta2 = betas
    theta_out = theta if in_place else None
    if weight_decay:
        theta = decoupled_decay(theta, learning_rate, weight_decay, out=theta_out)
    m = first_moment(m, g, beta1, out=m if in_place else None)
    v = second_moment(v, g, beta2, out=v if in_place else None)
    d = adam_denominator(v, beta2, k, eps, out=g if in_place else None)
    return adam_step(theta, m, d, learning_rate, beta1, k, out=theta_out), m, v


class Adam(Optimizer):
    """``torch.optim.Adam`` over a list of parameters. Each parameter's state is its step
    count ``step`` and its moments ``exp_avg`` and ``exp_avg_sq``, zero at first (PyTorch's
    names). ``decays`` says which parameters a decoupled weight decay shrinks."""

    fields = ("betas", "eps")
    weight_decay = 0.0  # decoupled: none for Adam, whose lambda is the objective's

    def __init__(
        self,
        params: list[Array],
        betas: tuple[float, float] = DEFAULT_BETAS,
        eps: float = DEFAULT_EPS,
        in_place: bool = False,
    ) -> None:
        super().__init__(params, in_place)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        for theta, state in zip(self.params, self.state):
            xp = namespace_of(theta)
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(theta)
            state["exp_avg_sq"] = xp.zeros_like(theta)

    def decays(self, theta: Array) -> bool:
        """Whether the decoupled decay shrinks ``theta``: matrices (W), not biases (b), as the
        objective's penalty decays W only."""
        return theta.ndim >= 2

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter (:func:`adam_update`)."""
        for i, g in enumerate(grads):
            state = self.state[i]
            state["step"] += 1
            theta = self.params[i]
            theta, state["exp_avg"], state["exp_avg_sq"] = adam_update(
                theta,
                g,
                state["exp_avg"],
                state["exp_avg_sq"],
                state["step"],
                learning_rate,
                self.betas,
                self.eps,
                self.weight_decay if self.decays(theta) else 0.0,
                self.in_place,
            )
            self.params[i] = theta

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> Adam:
        """Adam with the config's betas and eps (torch's 1e-8 if unset)."""
        eps = DEFAULT_EPS if config.eps is None else config.eps
        return cls(params, tuple(config.betas), eps, in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """Each beta in [0, 1) and eps above 0, as ``torch.optim.Adam`` checks them (it allows
        eps = 0, which divides 0 by 0 where a gradient has always been 0: MNIST's border)."""
        check_betas(config.betas)
        check_eps(config.eps, config.dtype)


def check_betas(betas: tuple[float, float]) -> None:
    """``ValueError`` unless both betas lie in [0, 1)."""
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
        raise ValueError(f"--betas must be two numbers in [0, 1), got {list(betas)}")


def check_eps(eps: float | None, dtype: str = "float64") -> None:
    """``ValueError`` unless eps (if given) is finite and above 0, and stays above 0 in the
    run's ``dtype`` (an eps that rounds to 0 gives the 0/0 it is there to prevent)."""
    if eps is not None and not 0 < eps < float("inf"):
        raise ValueError(f"--eps must be positive, got {eps}")
    if eps is not None and np.dtype(dtype).type(eps) == 0:
        raise ValueError(f"--eps {eps:g} rounds to 0 in {dtype}")


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam, with the weight decay lambda decoupled from the gradient,
    theta <- (1 - lr lambda) theta before each step, on W only. Its objective has no penalty
    (:attr:`scratchlr.config.Config.penalty` is 0)."""

    decoupled = True  # the weight decay is this member's, not the objective's

    def __init__(
        self,
        params: list[Array],
        betas: tuple[float, float] = DEFAULT_BETAS,
        eps: float = DEFAULT_EPS,
        weight_decay: float = 0.0,
        in_place: bool = False,
    ) -> None:
        super().__init__(params, betas, eps, in_place)
        self.weight_decay = weight_decay

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> AdamW:
        """AdamW with the config's betas, eps (torch's 1e-8 if unset) and weight decay."""
        eps = DEFAULT_EPS if config.eps is None else config.eps
        return cls(params, tuple(config.betas), eps, config.weight_decay, in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """Adam's checks, and a decay factor 1 - lr lambda above -1: at lr lambda >= 2 the
        decay alone makes W grow."""
        super().check(config)
        product = config.learning_rate * config.weight_decay
        if product >= 2:
            raise ValueError(
                f"--learning-rate x --weight-decay is {product:g}; at 2 or more AdamW's "
                "decay makes the weights grow"
            )
