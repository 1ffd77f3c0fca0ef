"""Polyak-Ruppert averaging, around any member of the optimiser family.

After ``start`` steps, :class:`Averaged` keeps the running mean of the iterates its
optimiser makes, as ``torch.optim.swa_utils.AveragedModel`` (its default ``avg_fn``) and
``SGDClassifier(average=...)`` do; the mean is what the run ends with.
"""

from __future__ import annotations

from ..backend import namespace_of
from .optimizer import Array, Optimizer


def polyak_average(mean: Array, theta: Array, k: int, out: Array | None = None) -> Array:
    """mean_k = mean_{k-1} + (theta_k - mean_{k-1}) / k: the running mean of k iterates.
    With k = 1 the mean is theta itself."""
    return namespace_of(mean).add(mean, (theta - mean) / theta.dtype.type(k), out=out)


class Averaged:
    """``optimizer``, whose iterates after step ``start`` are averaged. It takes the member's
    place in the training loop (``params``, ``step``, ``final_params``); the means are its
    state."""

    def __init__(self, optimizer: Optimizer, start: int) -> None:
        self.optimizer = optimizer
        self.start = start
        self.steps = 0  # steps taken
        self.averaged = 0  # iterates in the mean
        self.means = [namespace_of(p).zeros_like(p) for p in optimizer.params]

    @property
    def params(self) -> list[Array]:
        """The optimiser's parameters: the current iterates."""
        return self.optimizer.params

    def step(self, grads: list[Array], learning_rate: float) -> None:
        """The optimiser's step, then, past ``start``, the mean's."""
        self.optimizer.step(grads, learning_rate)
        self.steps += 1
        if self.steps <= self.start:
            return
        self.averaged += 1
        for i, theta in enumerate(self.params):
            out = self.means[i] if self.optimizer.in_place else None
            self.means[i] = polyak_average(self.means[i], theta, self.averaged, out=out)

    def final_params(self) -> list[Array]:
        """The running mean once averaging has begun, else the iterates."""
        return self.means if self.averaged else self.params
