"""SGD with momentum and Nesterov, by hand: the first member of the optimiser family.

Every function is one equation, for NumPy or CuPy arrays alike. ``theta`` is a parameter
(W (D, C) or b (C,)), ``g`` its gradient and ``v`` its velocity, all of one shape and dtype.
Hyper-parameters are rounded to theta's dtype before use, as TF and PyTorch do.

Each array function takes ``out=``: the reference step builds new arrays (``out=None``), the
fast step writes into its buffers. Both make the same calls, so their results are the same
bits. :func:`sgd_update` chains them in the order ``torch.optim.SGD`` does (dampening 0):

    v <- mu v + g                         (momentum; v starts at 0, so the first v is g)
    d <- g + mu v  (Nesterov)  or  d <- v
    theta <- theta - lr_t d

Weight decay is not here: it is part of the objective, whose gradient g already holds
lambda W (:mod:`scratchlr.objective`), which is what ``torch.optim.SGD(weight_decay=...)``
adds before its momentum.
"""

from __future__ import annotations

from typing import Any

from ..backend import namespace_of
from .optimizer import Array, Optimizer


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
    lr_d = xp.multiply(d, theta.dtype.type(learning_rate), out=scratch)
    return xp.subtract(theta, lr_d, out=out)


def sgd_update(
    theta: Array,
    g: Array,
    v: Array | None,
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    in_place: bool = False,
) -> tuple[Array, Array | None]:
    """One ``torch.optim.SGD`` update of one parameter -> (theta', v').

    ``v`` is the velocity (None without momentum). ``in_place``: g, v and theta are
    overwritten (the fast step's buffers); otherwise new arrays are returned.
    """
    g_out = g if in_place else None
    v_out = v if in_place else None
    theta_out = theta if in_place else None
    if momentum:
        v = momentum_buffer(v, g, momentum, out=v_out)
        g = nesterov_direction(g, v, momentum, out=g_out) if nesterov else v
    return descend(theta, g, learning_rate, out=theta_out, scratch=g_out), v


def stable_decay_limit(momentum: float, nesterov: bool) -> float:
    """The bound on a = lr * lambda below which the weight decay's own map is stable.

    With u = lr v, the decay term alone maps (theta, u) linearly; both eigenvalues lie inside
    the unit circle (Jury's conditions) if and only if a < 2 (1 + mu), or
    a < 2 (1 + mu) / (1 + 2 mu) with Nesterov; mu = 0 gives plain SGD's a < 2. Below it, W
    stays bounded, because the data's gradient is bounded: docs/math.md §7 has the working.
    """
    if nesterov:
        return 2 * (1 + momentum) / (1 + 2 * momentum)
    return 2 * (1 + momentum)


class SGD(Optimizer):
    """``torch.optim.SGD`` (dampening 0) over a list of parameters. With ``momentum``, each
    parameter has a velocity, ``state[i]["velocity"]``, zero at first."""

    fields = ("momentum", "nesterov")

    def __init__(
        self,
        params: list[Array],
        momentum: float = 0.0,
        nesterov: bool = False,
        in_place: bool = False,
    ) -> None:
        super().__init__(params, in_place)
        self.momentum = momentum
        self.nesterov = nesterov
        if momentum:
            for theta, state in zip(self.params, self.state):
                state["velocity"] = namespace_of(theta).zeros_like(theta)

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter (:func:`sgd_update`)."""
        for i, g in enumerate(grads):
            velocity = self.state[i].get("velocity")
            theta, velocity = sgd_update(
                self.params[i],
                g,
                velocity,
                learning_rate,
                momentum=self.momentum,
                nesterov=self.nesterov,
                in_place=self.in_place,
            )
            self.params[i] = theta
            if velocity is not None:
                self.state[i]["velocity"] = velocity

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> SGD:
        """SGD with the config's momentum and Nesterov."""
        return cls(params, config.momentum, config.nesterov, in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """Momentum in [0, 1), Nesterov only with it, and a weight decay whose own map is
        stable (:func:`stable_decay_limit`)."""
        if not 0 <= config.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {config.momentum}")
        if config.nesterov and not config.momentum:
            raise ValueError("--nesterov needs --momentum above 0")
        limit = stable_decay_limit(config.momentum, config.nesterov)
        product = config.learning_rate * config.weight_decay
        if product >= limit:
            settings = ""
            if config.momentum:
                nesterov = " --nesterov" if config.nesterov else ""
                settings = f" with --momentum {config.momentum:g}{nesterov}"
            raise ValueError(
                f"--learning-rate x --weight-decay is {product:g}; "
                f"at {limit:g} or more{settings} the weights diverge"
            )
