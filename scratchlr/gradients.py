"""One batch's loss, accuracy and gradients, twice: readable, and in place.

:func:`reference_gradients` calls the objective of :mod:`scratchlr.objective`, built on the
functions of :mod:`scratchlr.model`: one forward pass makes the logits z, and the loss, the
accuracy and the gradient each shift and exponentiate z again (three softmaxes, one per
use), in fresh temporaries. :class:`FastGradients` makes the same array operations once
each, writing into buffers it made when it was built:

==================================  =======================================
model.py, objective.py              FastGradients
==================================  =======================================
``pixels``: x = u8 * (1/255)        uint8 copied into X, then X *= 1/255
``logits``: z = X W + b             matmul(X, W, out=z); z += b
``shifted_logits``: s = z - max z   max into row; subtract(z, row, out=s)
``logsumexp_shifted``               exp(s) into e; its row sums; their log
``cross_entropy``: L = lse - s_y    L -= s at each row's label
``softmax``: p = e / sum e          e /= row sums
``accuracy``: mean [argmax p == y]  argmax into pred; compare; sum / N
``loss``: J = mean L (float64)      L.sum(dtype=float64) / N, rounded once
``grad_logits``: G = (p - Y) / N    p -= 1 at the labels; G = p * (1/N)
``grad_W``: X^T G                   matmul(X.T, G, out=grad_W)
``decayed``: + lambda W             add(grad_W, W * lambda, out=grad_W)
``grad_b``: sum_n G_n               G.sum(axis=0, out=grad_b)
==================================  =======================================

The optimiser's update follows; for the fast step it runs in place, writing into these
gradient buffers and the parameters, with the same calls.

Why the results are bit-identical to the reference at any one BLAS kernel and thread count:
every call above is the reference's own call, on operands of the same shapes, dtypes and
memory layouts (the first n rows of a C-ordered buffer are a C-ordered (n, ...) array), so
BLAS and NumPy's reductions sum in the same order, and exp and log take the same loops.
(Another thread count splits the products differently, for both alike: the CLI fixes one
thread.) The operations that differ in form give the same bits all the same: p - Y subtracts
1 at the labels in both (the same rounded subtraction) and 0 elsewhere, which is exact; and
max, argmax and counting hits are exact in any form. ``tests/test_fast.py`` checks the bits.

Images stay uint8 until the step: a batch's rows are converted straight into X, range by
range, so a batch that wraps around the end of the data needs no gathered copy. J and acc
come back as device scalars (nothing is read back to the host). NumPy and CuPy alike.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import model
from .dataset.batches import Ranges, fill_pixels, rows, take, take_into
from .objective import Objective, decayed


class BatchGradients(NamedTuple):
    """What one batch gives: its loss J and accuracy (device scalars, before the update) and
    the objective's gradients df/dW (D, C) and df/db (C,)."""

    loss: Any
    accuracy: Any
    grad_W: Any
    grad_b: Any


def reference_gradients(
    images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, weight_decay: float = 0.0
) -> BatchGradients:
    """The batch's loss, accuracy and gradients, in the readable math of the objective.

    Returns (J, acc, df/dW, df/db) on the rows ``ranges`` of ``images`` (uint8) and
    ``labels``, at W (D, C), b (C,): J is the data's mean cross-entropy (what is logged), the
    gradients are those of f = J + (lambda/2) ||W||^2, lambda = ``weight_decay``. One forward
    pass (the logits) serves the loss, the accuracy and the gradient.
    """
    X = model.pixels(take(images, ranges), W.dtype)
    y = take(labels, ranges)
    objective = Objective(X, y, weight_decay)
    z = objective.logits(W, b)
    grad_W, grad_b = objective.gradient(W, b, z)
    return BatchGradients(objective.data_loss(z), model.accuracy(z, y), grad_W, grad_b)


class FastGradients:
    """``gradients(images, labels, ranges, W, b)`` -> (J, acc, df/dW, df/db), as
    :func:`reference_gradients`, in place.

    For batches of up to ``batch_size`` rows of ``dim`` pixels and ``num_classes`` classes,
    in ``dtype``, with the penalty's ``weight_decay``. The gradients are this object's
    buffers, overwritten by the next call. Unlike the reference, it does not check the labels
    at every step (on a GPU each check is a wait for the device): the caller checks them once,
    as :func:`scratchlr.train.train` does.
    """

    def __init__(
        self,
        xp: Any,
        batch_size: int,
        dim: int,
        num_classes: int,
        dtype: Any,
        weight_decay: float = 0.0,
    ) -> None:
        B = batch_size
        D = dim
        C = num_classes
        self.xp = xp
        self.dtype = xp.dtype(dtype)
        self.weight_decay = weight_decay
        self.scale = self.dtype.type(1.0 / 255.0)  # 1/255, rounded to dtype, as model.pixels
        self.X = xp.empty((B, D), self.dtype)  # pixels of the batch
        self.y = xp.empty(B, xp.int64)  # labels of a batch that spans two ranges
        self.z = xp.empty((B, C), self.dtype)  # logits z, then e = exp(s), then p, then G
        self.s = xp.empty((B, C), self.dtype)  # shifted logits
        self.row = xp.empty((B, 1), self.dtype)  # max_j z_nj, then sum_j exp(s_nj)
        self.L = xp.empty(B, self.dtype)  # per-example cross-entropy
        self.pred = xp.empty(B, xp.int64)  # predicted class
        self.hit = xp.empty(B, xp.float32)  # 1.0 where pred == y, else 0.0
        self.at_row = xp.arange(B) * C  # flat index of row n's first class
        self.grad_W = xp.empty((D, C), self.dtype)
        self.grad_b = xp.empty(C, self.dtype)

    def __call__(self, images: Any, labels: Any, ranges: Ranges, W: Any, b: Any) -> BatchGradients:
        """The batch's loss, accuracy and gradients, on the rows ``ranges`` of ``images``
        (uint8) and ``labels``, at the parameters W, b.

        Returns (J, acc, df/dW, df/db): J and acc as device scalars, the gradients in buffers.
        """
        xp = self.xp
        n = rows(ranges)
        if n > len(self.X):
            raise ValueError(f"a batch of {n} rows does not fit a step made for {len(self.X)}")
        X = self.X[:n]  # the first n rows of each buffer: C-ordered, as the reference's arrays
        z = self.z[:n]
        s = self.s[:n]
        row = self.row[:n]
        L = self.L[:n]
        hit = self.hit[:n]
        if len(ranges) == 1:
            y = labels[ranges[0][0] : ranges[0][1]]  # a view
        else:
            y = take_into(self.y[:n], labels, ranges)
        at_label = self.at_row[:n] + y  # flat index of (n, y_n)

        fill_pixels(X, images, ranges, self.scale)  # x = u8 * (1/255)
        xp.matmul(X, W, out=z)  # z = X W
        z += b  # z = X W + b
        z.max(axis=1, keepdims=True, out=row)  # max_j z_nj
        xp.subtract(z, row, out=s)  # s = z - max z
        e = xp.exp(s, out=z)  # e = exp(s)
        e.sum(axis=1, keepdims=True, out=row)  # sum_j e_nj
        xp.log(row[:, 0], out=L)  # log sum_j exp(s_nj)
        L -= s.ravel().take(at_label)  # L_n = log sum_j exp(s_nj) - s_n,y_n
        p = xp.divide(e, row, out=e)  # p = softmax(z)
        xp.equal(p.argmax(axis=1, out=self.pred[:n]), y, out=hit)  # [argmax p == y]
        acc = hit.sum() / xp.float32(n)  # acc = (1/N) sum_n [yhat_n == y_n]
        J = (L.sum(dtype=xp.float64) / n).astype(self.dtype)  # J = (1/N) sum_n L_n, rounded once

        p.ravel()[at_label] -= 1  # p - Y
        G = xp.multiply(p, self.dtype.type(1.0 / n), out=p)  # G = (p - Y) * (1/N)
        grad_W = xp.matmul(X.T, G, out=self.grad_W)  # dJ/dW = X^T G
        if self.weight_decay:
            decayed(grad_W, W, self.weight_decay, out=grad_W)  # df/dW = X^T G + lambda W
        grad_b = G.sum(axis=0, out=self.grad_b)  # dJ/db = sum_n G_n
        return BatchGradients(J, acc, grad_W, grad_b)
