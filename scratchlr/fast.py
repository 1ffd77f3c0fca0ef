"""The fast training step: the same arithmetic as :func:`scratchlr.train.reference_step`,
without its temporaries.

One forward pass per step serves the loss, the accuracy and the gradient. Every buffer
is allocated once and each operation writes into one (``out=`` or in place). Images go
from uint8 straight into the batch buffer, range by range, so a batch that wraps around
the end of the data needs no gathered copy. Each float operation below is the one the
readable math in :mod:`scratchlr.model` performs, on the same operands, in the same
order, so the results are bit-identical to the reference (``tests/test_fast.py``).
Three choices that change speed, not values:

- ``dJ/dW`` is produced transposed, as ``G^T X`` into a C-ordered ``(C, D)`` buffer, in
  two calls of half the pixels each: each element is still the same dot product over the
  batch that ``X^T G`` computes (the test checks bit-identity), and this way round BLAS
  is ~30% faster for these shapes. The update then reads it through ``.T``.
- z is kept transposed, ``(C, N)``, so the row maximum is a fast reduction along its
  rows (max is exact in any order).
- accuracy counts the hits (an exact integer) and divides once, as ``mean`` of 0/1 does.

Works on NumPy and CuPy alike, and never reads a value back to the host.
"""

from __future__ import annotations

from typing import Any

from .batches import Ranges


class FastStep:
    """A reusable SGD step for batches of up to ``batch_size`` rows of ``dim`` pixels.

    ``step(images, labels, ranges, W, b, lr)`` -> (J, acc, W, b), updating W and b in place.
    """

    def __init__(self, xp: Any, batch_size: int, dim: int, num_classes: int, dtype: Any) -> None:
        self.xp, self.dtype = xp, xp.dtype(dtype)
        self.scale = self.dtype.type(1.0 / 255.0)
        B, D, C = batch_size, dim, num_classes
        self.X = xp.empty((B, D), self.dtype)  # pixels of the batch
        self.y = xp.empty(B, xp.int64)  # labels, where a batch spans several ranges
        self.z = xp.empty((B, C), self.dtype)  # z, then exp(s), p, and finally G
        self.zT = xp.empty((C, B), self.dtype)  # z transposed: the row max runs along rows
        self.s = xp.empty((B, C), self.dtype)  # shifted logits
        self.row = xp.empty((B, 1), self.dtype)  # per-row max, then per-row sum of exp
        self.offsets = xp.arange(B) * C  # flat index of row n's first class
        self.gWT = xp.empty((C, D), self.dtype)
        self.halves = (slice(0, D // 2), slice(D // 2, D))
        self.gb = xp.empty(C, self.dtype)

    def batch(self, images: Any, labels: Any, ranges: Ranges) -> tuple[Any, Any]:
        """X = pixels of the batch (written into the buffer), y = its labels."""
        if len(ranges) == 1:
            lo, hi = ranges[0]
            X, y = self.X[: hi - lo], labels[lo:hi]
            self.xp.copyto(X, images[lo:hi])  # uint8 -> float, exact
        else:
            n = sum(hi - lo for lo, hi in ranges)
            X, y, at = self.X[:n], self.y[:n], 0
            for lo, hi in ranges:
                self.xp.copyto(X[at : at + hi - lo], images[lo:hi])
                y[at : at + hi - lo] = labels[lo:hi]
                at += hi - lo
        X *= self.scale  # x = u8 * (1/255), the same single float multiply as model.pixels
        return X, y

    def __call__(self, images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, lr: float) -> tuple[Any, ...]:
        """One step on the rows ``ranges`` of ``images``/``labels``; see the class docstring."""
        xp = self.xp
        X, y = self.batch(images, labels, ranges)
        n = len(y)
        z, s, row = self.z[:n], self.s[:n], self.row[:n]
        at_label = self.offsets[:n] + y  # flat index of (n, y_n)
        xp.matmul(X, W, out=z)
        zT = xp.add(z.T, b[:, None], out=self.zT[:, :n])  # z = X W + b, stored transposed
        zT.max(axis=0, out=row[:, 0])
        xp.subtract(zT.T, row, out=s)  # s = z - max z
        e = xp.exp(s, out=z)
        e.sum(axis=1, keepdims=True, out=row)  # sum_j exp(s_j)
        L = xp.log(row[:, 0]) - s.ravel().take(at_label)  # L = log sum exp(s) - s_y
        J = (L.sum(dtype=xp.float64) / n).astype(self.dtype)  # = L.mean(float64), rounded once
        p = xp.divide(e, row, out=e)  # softmax
        hits = xp.count_nonzero(p.argmax(axis=1) == y)
        acc = xp.asarray(hits, dtype=xp.float32) / xp.float32(n)  # accuracy (stays on the device)
        p.ravel()[at_label] -= 1  # p - Y
        G = xp.multiply(p, self.dtype.type(1.0 / n), out=p)  # G = (p - Y) / N
        gWT = self.gWT
        for cols in self.halves:  # (X^T G)^T, half the pixels at a time (cache-friendlier)
            xp.matmul(G.T, X[:, cols], out=gWT[:, cols])
        W -= xp.multiply(gWT, self.dtype.type(lr), out=gWT).T
        gb = G.sum(axis=0, out=self.gb)
        b -= xp.multiply(gb, self.dtype.type(lr), out=gb)
        return J, acc, W, b
