"""RMSprop, by hand: each coordinate's step divided by the root of its squared gradients'
running average.

Every function is one equation, for NumPy or CuPy arrays alike. ``theta`` is a parameter
(W (D, C) or b (C,)), ``g`` its gradient, ``v`` its square average, ``a`` its gradient average
(centered) and ``u`` its momentum buffer, all of one shape and dtype. Hyper-parameters are
rounded to theta's dtype before use, as PyTorch does. :func:`rmsprop_update` chains them in
the order of ``torch.optim.RMSprop``'s single-tensor step (``_single_tensor_rmsprop``):

    v <- alpha v + (1 - alpha) g g
    a <- a + (1 - alpha) (g - a)                      (centered only)
    d <- sqrt(v - a a) + eps  (centered)  or  sqrt(v) + eps
    u <- mu u + g / d;  theta <- theta - lr u         (momentum mu > 0: SGD's descend)
    theta <- theta - lr g / d                         (otherwise)

Weight decay is the objective's lambda, already in g (as ``torch.optim.RMSprop(weight_decay=
lambda)`` adds lambda theta to g). Each array function takes ``out=``: the reference step
builds new arrays (``out=None``), the fast step writes into the state's buffers and the
parameters, with the same calls, so both give the same bits.
"""

from __future__ import annotations

from typing import Any

from ..backend import namespace_of
from .adam import check_eps, lerp, second_moment
from .optimizer import Array, Optimizer
from .sgd import descend

DEFAULT_ALPHA = 0.99  # torch.optim.RMSprop's
DEFAULT_EPS = 1e-8


def rms_denominator(
    v: Array, eps: float, a: Array | None = None, out: Array | None = None
) -> Array:
    """d = sqrt(v) + eps, or, centered, d = sqrt(v - a a) + eps: the root of the gradients'
    mean square, or of their variance (v - a a, the mean square less the squared mean).
    (``square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()``, then ``.add_(eps)``.)"""
    xp = namespace_of(v)
    spread = v if a is None else xp.subtract(v, a * a)
    return xp.add(xp.sqrt(spread), v.dtype.type(eps), out=out)


def rms_momentum(u: Array, g: Array, d: Array, momentum: float, out: Array | None = None) -> Array:
    """u' = mu u + g / d: the momentum buffer of the scaled gradient
    (``buf.mul_(momentum).addcdiv_(grad, avg)``)."""
    return namespace_of(u).add(u * u.dtype.type(momentum), g / d, out=out)


def rms_step(
    theta: Array, g: Array, d: Array, learning_rate: float, out: Array | None = None
) -> Array:
    """theta' = theta - lr g / d, the scaled step (``param.addcdiv_(grad, avg, value=-lr)``:
    (-lr g) / d is added). With momentum, the step is SGD's along u
    (:func:`scratchlr.optim.sgd.descend`)."""
    scaled = (g * theta.dtype.type(-learning_rate)) / d
    return namespace_of(theta).add(theta, scaled, out=out)


def rmsprop_update(
    theta: Array,
    g: Array,
    state: dict[str, Array],
    learning_rate: float,
    alpha: float = DEFAULT_ALPHA,
    eps: float = DEFAULT_EPS,
    momentum: float = 0.0,
    in_place: bool = False,
) -> tuple[Array, dict[str, Array]]:
    """One ``torch.optim.RMSprop`` update of one parameter -> (theta', its new state).

    ``state`` holds, by PyTorch's names, the square average v (``square_avg``), the gradient
    average a if centered (``grad_avg``) and the momentum buffer u if there is momentum
    (``momentum_buffer``). ``in_place``: theta and the state's arrays are overwritten (the
    fast step's buffers); otherwise new arrays are returned.
    """
    theta_out = theta if in_place else None
    new = dict(state)
    v = state["square_avg"]
    v = second_moment(v, g, alpha, out=v if in_place else None)
    new["square_avg"] = v
    a = state.get("grad_avg")
    if a is not None:
        a = lerp(a, g, 1 - alpha, out=a if in_place else None)
        new["grad_avg"] = a
    d = rms_denominator(v, eps, a)  # a new array either way: g is still needed
    if momentum:
        u = state["momentum_buffer"]
        u = rms_momentum(u, g, d, momentum, out=u if in_place else None)
        new["momentum_buffer"] = u
        return descend(theta, u, learning_rate, out=theta_out), new
    return rms_step(theta, g, d, learning_rate, out=theta_out), new


class RMSprop(Optimizer):
    """``torch.optim.RMSprop`` over a list of parameters. Each parameter's state (PyTorch's
    names) is its ``square_avg``, with ``centered`` its ``grad_avg`` and with momentum its
    ``momentum_buffer``, each zero at first."""

    fields = ("alpha", "eps", "momentum", "centered")

    def __init__(
        self,
        params: list[Array],
        alpha: float = DEFAULT_ALPHA,
        eps: float = DEFAULT_EPS,
        momentum: float = 0.0,
        centered: bool = False,
        in_place: bool = False,
    ) -> None:
        super().__init__(params, in_place)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered
        for theta, state in zip(self.params, self.state):
            xp = namespace_of(theta)
            state["square_avg"] = xp.zeros_like(theta)
            if centered:
                state["grad_avg"] = xp.zeros_like(theta)
            if momentum:
                state["momentum_buffer"] = xp.zeros_like(theta)

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter (:func:`rmsprop_update`)."""
        for i, g in enumerate(grads):
            self.params[i], self.state[i] = rmsprop_update(
                self.params[i],
                g,
                self.state[i],
                learning_rate,
                self.alpha,
                self.eps,
                self.momentum,
                self.in_place,
            )

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> RMSprop:
        """RMSprop with the config's alpha, eps (torch's 1e-8 if unset), momentum and
        centering."""
        eps = DEFAULT_EPS if config.eps is None else config.eps
        return cls(params, config.alpha, eps, config.momentum, config.centered, in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """alpha in [0, 1), momentum in [0, 1) and eps above 0. ``torch.optim.RMSprop`` takes
        any alpha and momentum >= 0 and eps >= 0; at alpha >= 1 the average never takes in a
        gradient (or turns negative, and its root nan), at momentum >= 1 the buffer never
        forgets, and eps = 0 divides 0 by 0 where a gradient has always been 0."""
        if not 0 <= config.alpha < 1:
            raise ValueError(f"--alpha must be in [0, 1), got {config.alpha}")
        if not 0 <= config.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {config.momentum}")
        check_eps(config.eps, config.dtype)
