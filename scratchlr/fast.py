"""The fast training step: the same arithmetic as :func:`scratchlr.train.reference_step`,
without its temporaries.

One forward pass per step serves the loss, the accuracy and the gradient. Every buffer
is allocated once and each operation writes into one (``out=`` or in place). Images go
from uint8 straight into the batch buffer, range by range, so a batch that wraps around
the end of the data needs no gathered copy. Each float operation below is the one the
readable math in :mod:`scratchlr.model` performs, on the same operands, in the same
order, so the results are bit-identical to the reference (``tests/test_fast.py``).
Five choices that change speed, not values:

- ``X W`` as BLAS itself sums it. For a batch of 128, OpenBLAS adds two partial sums
  over the pixels, ``fl(X[:, :k] W[:k] + X[:, k:] W[k:])`` (k = 400 on one thread, 392
  on two), and the two halves called on their own take 35 us instead of 50 (they fit
  its small-matrix kernel). :func:`pixel_split` finds k once per batch size by trying
  it against ``X @ W``; where no split reproduces the product bit for bit (another
  BLAS, a smaller batch, float64) the step keeps ``X @ W``.
- ``dJ/dW = X^T G`` in two calls of half the pixels each, the same dot products over the
  batch as the one call, ~25% faster for these shapes.
- z is kept transposed, ``(C, N)``, so the row maximum is a fast reduction along its
  rows (max is exact in any order).
- the batch's loss and accuracy are reduced at display steps, not every step: a step
  saves its per-example losses L_n and hits; :meth:`FastStep.logged` then forms each
  batch's J (a float64 sum, rounded once) and accuracy (hits / N, an exact count
  divided once, as ``mean`` of 0/1 does) for all saved batches at once, and adds them
  up in step order. Five small NumPy calls fewer per step, ~9% of it.

Works on NumPy and CuPy alike, and never reads a value back to the host after the probe.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from .batches import Ranges
from .tally import LoggedSums


def spread(xp: Any, out: Any, a: float, c: float) -> Any:
    """out_ij = frac(i a) + frac(j c), in [0, 2): generic values (Weyl sequences for
    irrational a, c) that expose any difference in rounding. (R, S) -> written into out.
    Cheaper to start than a random generator (importing ``numpy.random`` takes ~8 ms)."""
    i = xp.arange(out.shape[0], dtype=xp.float64) * a
    j = xp.arange(out.shape[1], dtype=xp.float64) * c
    frac_i, frac_j = (i - xp.floor(i)).astype(out.dtype), (j - xp.floor(j)).astype(out.dtype)
    return xp.add(frac_i[:, None], frac_j[None, :], out=out)


def pixel_split(xp: Any, X: Any, W: Any) -> int | None:
    """The k with ``X @ W == fl(X[:, :k] @ W[:k] + X[:, k:] @ W[k:])`` bit for bit, or None.

    X (N, D), W (D, C): buffers of the real shapes and layouts, overwritten with probe
    values. BLAS libraries that block the sum over D (OpenBLAS: two blocks, the first
    D/2 rounded up to the kernel's unroll) give one such k; a different summation order
    changes a large share of the N*C results, so a match on generic values is the same
    order, not chance. Candidates: D/2 rounded up to a multiple of 32, 16, ..., 1.
    """
    spread(xp, X, 0.6180339887498949, 0.4142135623730951)
    spread(xp, W, 0.7320508075688772, 0.2360679774997897)
    W -= 1.0  # in [-1, 1)
    z, D = X @ W, X.shape[1]
    for unroll in (32, 16, 8, 4, 2, 1):
        k = -(-D // (2 * unroll)) * unroll
        if 0 < k < D and bool(xp.array_equal(X[:, :k] @ W[:k] + X[:, k:] @ W[k:], z)):
            return k
    return None


class FastStep:
    """A reusable SGD step for batches of up to ``batch_size`` rows of ``dim`` pixels.

    ``step(images, labels, ranges, W, b, lr)`` -> (W, b), updated in place;
    ``step.logged()`` -> the sums of the batches' losses and accuracies since its last call.
    """

    def __init__(self, xp: Any, batch_size: int, dim: int, num_classes: int, dtype: Any) -> None:
        self.xp, self.dtype = xp, xp.dtype(dtype)
        self.scale = self.dtype.type(1.0 / 255.0)
        B, D, C = batch_size, dim, num_classes
        self.X = xp.empty((B, D), self.dtype)  # pixels of the batch
        self.y = xp.empty(B, xp.int64)  # labels, where a batch spans several ranges
        self.z = xp.empty((B, C), self.dtype)  # z, then exp(s), p, and finally G
        self.z2 = xp.empty((B, C), self.dtype)  # the second partial sum of X W
        self.zT = xp.empty((C, B), self.dtype)  # z transposed: the row max runs along rows
        self.s = xp.empty((B, C), self.dtype)  # shifted logits
        self.row = xp.empty((B, 1), self.dtype)  # per-row max, then per-row sum of exp
        self.offsets = xp.arange(B) * C  # flat index of row n's first class
        self.gW = xp.empty((D, C), self.dtype)
        self.halves = (slice(0, D // 2), slice(D // 2, D))
        self.gb = xp.empty(C, self.dtype)
        self.splits: dict[tuple, int | None] = {}  # (batch rows, W strides) -> pixel_split
        # each step saves its batch's L_n and hits, back to back; logged() reduces them
        self.L = xp.empty(64 * B, self.dtype)  # per-example losses of up to 64 batches
        self.hit = xp.empty(64 * B, bool)  # per-example "prediction == label"
        self.sizes: list[int] = []  # rows of each saved batch, in step order
        self.used = 0  # rows of L and hit in use
        self.sums = LoggedSums(xp, self.dtype)

    def split(self, n: int, W: Any) -> int | None:
        """:func:`pixel_split` for n rows of the pixel buffer and a W laid out as ``W``,
        probed once per shape."""
        key = (n, W.strides)
        if key not in self.splits:
            self.splits[key] = pixel_split(self.xp, self.X[:n], self.xp.empty_like(W))
        return self.splits[key]

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
        """One step on the rows ``ranges`` of ``images``/``labels``; see the module docstring."""
        xp = self.xp
        k = self.split(sum(hi - lo for lo, hi in ranges), W)  # before the batch fills X
        X, y = self.batch(images, labels, ranges)
        n = len(y)
        z, s, row = self.z[:n], self.s[:n], self.row[:n]
        at_label = self.offsets[:n] + y  # flat index of (n, y_n)
        if k is None:
            xp.matmul(X, W, out=z)
        else:  # X W, as the same two partial sums BLAS adds
            xp.matmul(X[:, :k], W[:k], out=z)
            z += xp.matmul(X[:, k:], W[k:], out=self.z2[:n])
        zT = xp.add(z.T, b[:, None], out=self.zT[:, :n])  # z = X W + b, stored transposed
        zT.max(axis=0, out=row[:, 0])
        xp.subtract(zT.T, row, out=s)  # s = z - max z
        e = xp.exp(s, out=z)
        e.sum(axis=1, keepdims=True, out=row)  # sum_j exp(s_j)
        if self.used + n > len(self.L):
            self.fold()
        L, hit = self.L[self.used : self.used + n], self.hit[self.used : self.used + n]
        self.sizes.append(n)
        self.used += n
        xp.log(row[:, 0], out=L)
        L -= s.ravel().take(at_label)  # L = log sum exp(s) - s_y
        p = xp.divide(e, row, out=e)  # softmax
        xp.equal(p.argmax(axis=1), y, out=hit)  # prediction == label
        p.ravel()[at_label] -= 1  # p - Y
        G = xp.multiply(p, self.dtype.type(1.0 / n), out=p)  # G = (p - Y) / N
        gW = self.gW
        for pix in self.halves:  # X^T G, half the pixels at a time (cache-friendlier)
            xp.matmul(X[:, pix].T, G, out=gW[pix])
        W -= xp.multiply(gW, self.dtype.type(lr), out=gW)
        gb = G.sum(axis=0, out=self.gb)
        b -= xp.multiply(gb, self.dtype.type(lr), out=gb)
        return W, b

    def fold(self) -> None:
        """Reduce the saved batches: J = mean L (summed in float64, rounded once) and
        acc = hits / N in float32, exactly as :func:`model.loss` / :func:`model.accuracy`,
        and add them to the sums one batch at a time, in step order, as the seed does."""
        xp, at = self.xp, 0
        for n, run in groupby(self.sizes):  # consecutive batches of n rows: one (count, n) block
            count = len(list(run))
            L = self.L[at : at + count * n].reshape(count, n)
            hits = self.hit[at : at + count * n].reshape(count, n).sum(axis=1)
            J = (L.sum(axis=1, dtype=xp.float64) / n).astype(self.dtype)
            acc = xp.true_divide(hits, n, dtype=xp.float32)
            for k in range(count):
                self.sums.add(J[k], acc[k])
            at += count * n
        self.sizes, self.used = [], 0

    def logged(self) -> tuple[Any, Any]:
        """(sum of the batch losses J, sum of the batch accuracies) since the last call, as
        device scalars; see :class:`scratchlr.tally.LoggedSums`."""
        self.fold()
        return self.sums.take()
