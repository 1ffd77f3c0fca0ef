"""Adagrad, by hand: each coordinate's step divided by the root of its squared gradients' sum.

Every function is one equation, for NumPy or CuPy arrays alike. ``theta`` is a parameter
(W (D, C) or b (C,)), ``g`` its gradient and ``s`` its sum of squared gradients, all of one
shape and dtype; k = 1, 2, ... counts the steps. Hyper-parameters are rounded to theta's
dtype before use, as PyTorch does. :func:`adagrad_update` chains them in the order of
``torch.optim.Adagrad``'s single-tensor step (``_single_tensor_adagrad``):

    lr_k <- lr / (1 + (k - 1) lr_decay)
    s <- s + g g                              (s starts at initial_accumulator_value)
    theta <- theta - lr_k g / (sqrt(s) + eps)

Weight decay is the objective's lambda, already in g (as ``torch.optim.Adagrad(weight_decay=
lambda)`` adds lambda theta to g). Each array function takes ``out=``: the reference step
builds new arrays (``out=None``), the fast step writes into the state's buffer and the
parameters, with the same calls, so both give the same bits.
"""

from __future__ import annotations

from typing import Any

from ..backend import namespace_of
from .adam import check_eps
from .optimizer import Array, Optimizer
from .rmsprop import rms_denominator, rms_step

DEFAULT_EPS = 1e-10  # torch.optim.Adagrad's


def decayed_lr(learning_rate: float, k: int, lr_decay: float) -> float:
    """lr_k = lr / (1 + (k - 1) lr_decay): Adagrad's own decay of step k (from 1), on top of
    any schedule's lr (``clr`` in PyTorch)."""
    return learning_rate / (1 + (k - 1) * lr_decay)


def squared_sum(s: Array, g: Array, out: Array | None = None) -> Array:
    """s' = s + g g: the running sum of squared gradients (``state_sum.addcmul_(grad, grad,
    value=1)``)."""
    return namespace_of(s).add(s, g * g, out=out)


def adagrad_update(
    theta: Array,
    g: Array,
    s: Array,
    k: int,
    learning_rate: float,
    lr_decay: float = 0.0,
    eps: float = DEFAULT_EPS,
    in_place: bool = False,
) -> tuple[Array, Array]:
    """Step k (from 1) of ``torch.optim.Adagrad`` on one parameter -> (theta', s'). The
    denominator sqrt(s) + eps is RMSprop's (:func:`scratchlr.optim.rmsprop.rms_denominator`)
    and so is the step (:func:`scratchlr.optim.rmsprop.rms_step`). ``in_place``: theta and s
    are overwritten (the fast step's buffers); otherwise new arrays are returned."""
    s = squared_sum(s, g, out=s if in_place else None)
    d = rms_denominator(s, eps)
    lr_k = decayed_lr(learning_rate, k, lr_decay)
    return rms_step(theta, g, d, lr_k, out=theta if in_place else None), s


class Adagrad(Optimizer):
    """``torch.optim.Adagrad`` over a list of parameters. Each parameter's state is its step
    count ``step`` and its ``sum`` of squared gradients, at ``initial_accumulator_value`` at
    first (PyTorch's names)."""

    fields = ("lr_decay", "initial_accumulator_value", "eps")

    def __init__(
        self,
        params: list[Array],
        lr_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = DEFAULT_EPS,
        in_place: bool = False,
    ) -> None:
        super().__init__(params, in_place)
        self.lr_decay = lr_decay
        self.eps = eps
        for theta, state in zip(self.params, self.state):
            state["step"] = 0
            state["sum"] = namespace_of(theta).full_like(theta, initial_accumulator_value)

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """One update of every parameter (:func:`adagrad_update`)."""
        for i, g in enumerate(grads):
            state = self.state[i]
            state["step"] += 1
            self.params[i], state["sum"] = adagrad_update(
                self.params[i],
                g,
                state["sum"],
                state["step"],
                learning_rate,
                self.lr_decay,
                self.eps,
                self.in_place,
            )

    @classmethod
    def from_config(cls, params: list[Array], config: Any, in_place: bool) -> Adagrad:
        """Adagrad with the config's lr decay, initial accumulator and eps (torch's 1e-10 if
        unset)."""
        eps = DEFAULT_EPS if config.eps is None else config.eps
        return cls(params, config.lr_decay, config.initial_accumulator_value, eps, in_place)

    @classmethod
    def check(cls, config: Any) -> None:
        """lr decay and initial accumulator zero or positive, as ``torch.optim.Adagrad`` checks
        them, and eps above 0 (torch allows 0, which divides 0 by 0 where a gradient has always
        been 0, unless the accumulator starts above 0)."""
        for name in ("lr_decay", "initial_accumulator_value"):
            value = getattr(config, name)
            if not 0 <= value < float("inf"):
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be zero or positive, got {value}")
        check_eps(config.eps, config.dtype)
