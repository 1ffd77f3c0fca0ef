"""The objective that training minimises, in one home: f(W, b) = J(W, b) + (lambda/2) ||W||^2.

J is the mean cross-entropy of :mod:`scratchlr.model` over examples (X, y): a batch, or a
whole split. The L2 penalty decays W only; b is not penalised, as in scikit-learn and Keras
(docs/math.md §7). The value, the gradient and the Hessian-vector product all include
lambda, and the readable training step, the gradient check and the convexity tests call them
(scikit-learn's ``LinearModelLoss`` and CS231n's ``softmax_loss_vectorized(W, X, y, reg)``
are the same idea). What training logs is J alone, as PyTorch prints its loss without the
``weight_decay`` term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import model
from .backend import namespace_of

Array = Any  # numpy.ndarray or cupy.ndarray

ROWS = 256  # examples per block of Objective.hessian_vector_product_at (measured: 256 to 1024)


def penalty_terms(W: Array, weight_decay: float) -> Array:
    """R_ij = (lambda / 2) W_ij^2, the terms of the penalty R = sum_ij R_ij. (D, C) -> (D, C)."""
    return W.dtype.type(weight_decay / 2) * W * W


def decayed(grad_W: Array, W: Array, weight_decay: float, out: Array | None = None) -> Array:
    """dJ/dW + lambda W: the penalty's gradient added to the data's. (D, C) -> (D, C).

    ``torch.optim.SGD(weight_decay=lambda)`` adds the same term to the gradient; in Keras it is
    an L2 ``kernel_regularizer`` of lambda / 2. ``out``: where to write it (the fast step's
    buffer).
    """
    return namespace_of(grad_W).add(grad_W, W * W.dtype.type(weight_decay), out=out)


def softmax_jacobian_product(p: Array, dz: Array) -> Array:
    """dp_n = (diag(p_n) - p_n p_n^T) dz_n = p_n * dz_n - p_n (p_n . dz_n): how each row's
    probabilities move when its logits move by dz_n. p, dz (N, C) -> (N, C)."""
    return p * dz - p * (p * dz).sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Objective:
    """f(W, b) = J(W, b) + (lambda / 2) ||W||^2 on the examples X (N, D) (pixels, in the
    parameters' dtype) with labels y (N,), lambda = ``weight_decay``."""

    X: Array
    y: Array
    weight_decay: float = 0.0

    def logits(self, W: Array, b: Array) -> Array:
        """z = X W + b. -> (N, C)."""
        return model.logits(self.X, W, b)

    def data_loss(self, z: Array) -> Array:
        """J, the mean cross-entropy at the logits z (:func:`scratchlr.model.loss`). -> scalar."""
        return model.loss(z, self.y)

    def penalty(self, W: Array) -> Array:
        """R = (lambda / 2) ||W||^2, summed in float64 and rounded once to W's dtype. -> scalar."""
        return penalty_terms(W, self.weight_decay).sum(dtype="float64").astype(W.dtype)

    def value(self, W: Array, b: Array) -> Array:
        """f = J + R. -> scalar."""
        return self.data_loss(self.logits(W, b)) + self.penalty(W)

    def gradient(self, W: Array, b: Array, z: Array | None = None) -> tuple[Array, Array]:
        """(df/dW, df/db) = (X^T G + lambda W, sum_n G_n), G = dJ/dz. ``z``: the logits at
        (W, b), where the caller has them already. -> ((D, C), (C,))."""
        if z is None:
            z = self.logits(W, b)
        G = model.grad_logits(z, self.y)
        grad_W = model.grad_W(self.X, G)
        if self.weight_decay:
            grad_W = decayed(grad_W, W, self.weight_decay)
        return grad_W, model.grad_b(G)

    def hessian_vector_product(self, W: Array, b: Array, V: Array, v: Array) -> tuple[Array, Array]:
        """H (V, v) for the direction V (D, C), v (C,): J's Hessian times it
        (:func:`scratchlr.model.hessian_vector_product`), plus lambda V, the penalty's
        (which has no b part). -> ((D, C), (C,))."""
        HV, Hv = model.hessian_vector_product(self.X, W, b, V, v)
        return HV + W.dtype.type(self.weight_decay) * V, Hv

    def hessian_vector_product_at(
        self, p: Array, V: Array, v: Array, rows: int = ROWS
    ) -> tuple[Array, Array]:
        """H (V, v) at the point whose probabilities p = softmax(z) (N, C) are given: the
        Newton-CG inner loop's product, the softmax computed once per Newton point. Over each
        block B of ``rows`` examples (a block of X stays in cache for both of its products):

            dz_B = X_B V + v,  dG_B = (diag(p_n) - p_n p_n^T) dz_n, n in B
                                                   (:func:`softmax_jacobian_product`)
            H (V, v) = ((1/N) sum_B X_B^T dG_B + lambda V, (1/N) sum_n dG_n)

        :meth:`hessian_vector_product` at that point, to rounding. -> ((D, C), (C,))."""
        xp = namespace_of(V)
        HV = xp.zeros_like(V)
        Hv = xp.zeros_like(v)
        for start in range(0, self.X.shape[0], rows):
            X_B = self.X[start : start + rows]
            dG_B = softmax_jacobian_product(p[start : start + rows], model.logits(X_B, V, v))
            HV += model.grad_W(X_B, dG_B)
            Hv += model.grad_b(dG_B)
        scale = V.dtype.type(1 / self.X.shape[0])
        return HV * scale + V.dtype.type(self.weight_decay) * V, Hv * scale
