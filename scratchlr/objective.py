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


def softmax_jacobian_diagonal(p: Array) -> Array:
    """a_nj = p_nj (1 - p_nj): the diagonal of each row's softmax Jacobian. (N, C) -> (N, C)."""
    return p * (1 - p)


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

    def hessian_vector_product_at(self, p: Array, V: Array, v: Array) -> tuple[Array, Array]:
        """H (V, v) at the point whose probabilities p = softmax(z) (N, C) are given: the
        Newton-CG inner loop's product, the softmax computed once per Newton point.

            dz = X V + v,  dG = (diag(p_n) - p_n p_n^T) dz_n / N  (:func:`softmax_jacobian_product`)
            H (V, v) = (X^T dG + lambda V, sum_n dG_n)

        The same as :meth:`hessian_vector_product` at that point. -> ((D, C), (C,))."""
        dG = softmax_jacobian_product(p, self.logits(V, v)) / self.X.shape[0]
        HV = model.grad_W(self.X, dG) + V.dtype.type(self.weight_decay) * V
        return HV, model.grad_b(dG)

    def hessian_diagonal_at(self, p: Array) -> tuple[Array, Array]:
        """diag H at the point whose probabilities are p (N, C): the Jacobi preconditioner.

            H_(dj,dj) = (1/N) sum_n x_nd^2 p_nj (1 - p_nj) + lambda,   H_(bj,bj) = (1/N) sum_n
            p_nj (1 - p_nj)    (:func:`softmax_jacobian_diagonal`) -> ((D, C), (C,))."""
        a = softmax_jacobian_diagonal(p) / self.X.shape[0]
        return model.grad_W(self.X * self.X, a) + self.X.dtype.type(self.weight_decay), a.sum(0)
