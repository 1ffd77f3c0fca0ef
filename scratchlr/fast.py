"""The fast training step: the same arithmetic as :func:`scratchlr.train.reference_step`,
without its temporaries.

One forward pass per step serves the loss, the accuracy and the gradient. Every buffer
is allocated once and each operation writes into one (``out=`` or in place). Images go
from uint8 straight into the batch buffer, range by range, so a batch that wraps around
the end of the data needs no gathered copy; inside :meth:`FastStep.prefetch` a helper
process does that one batch ahead (:mod:`scratchlr.prefetch`, the seed's
``Dataset.prefetch``). Each float operation below is the one the
readable math in :mod:`scratchlr.model` performs, on the same operands, in the same
order, so the results are bit-identical to the reference (``tests/test_fast.py``).
Six choices that change speed, not values:

- ``z^T = W^T X^T`` as BLAS itself sums ``X W``. For a batch of 128, OpenBLAS adds two
  partial sums over the pixels, ``fl(X[:, :k] W[:k] + X[:, k:] W[k:])`` (k = 400 on one
  thread, 392 on two), and the two halves called on their own take 35 us instead of 50
  (they fit its small-matrix kernel). Taken transposed, ``W[:k]^T X[:, :k]^T``, they land
  as (C, N), the layout the softmax wants, with the same bits. :func:`pixel_split` finds k
  once per batch size by trying it against ``X @ W``; where no split reproduces the
  product bit for bit (another BLAS, a smaller batch, float64) the step keeps ``X @ W``.
- ``dJ/dW = X^T G`` in two calls of half the pixels each: the same dot products over the
  batch as the one call, in 24-34 us instead of 45. G is kept transposed, ``G = G^T.T``
  with ``G^T`` (C, N) in memory, which OpenBLAS multiplies ~10% faster.
- ``dJ/db = sum_n G_n`` as ``(ones @ G)[0]``, two rows of ones (Fortran order, like G): the
  kernel adds each column up row after row, as ``G.sum(axis=0)`` does, in 1.5 us instead
  of 4. :func:`transposed_gradient` checks this and the products above; where either
  differs (float64, another BLAS) G stays (N, C) and the step keeps ``G.sum``.
- W and b live in one array ``theta = [W; b]``, (D+1, C), and their gradients in another,
  so one multiply and one subtract do both SGD updates.
- z is kept transposed, ``(C, N)``, so adding b and the row maximum run along contiguous
  rows (max is exact in any order).
- the batch's loss and accuracy are reduced at display steps, not every step: a step
  saves its per-example losses L_n and hits; :meth:`FastStep.logged` then forms each
  batch's J (a float64 sum, rounded once) and accuracy (hits / N, an exact count
  divided once, as ``mean`` of 0/1 does) for all saved batches at once, and adds them
  up in step order (a running sum, :meth:`LoggedSums.add_each`). There is room for 128
  batches, so in the seed's run this happens at its display steps only.

The probes run when the step is made, for full batches (a batch of another size is
probed at its first step, on scratch buffers), so they are not part of a timed training
loop. Works on NumPy and CuPy alike, and never reads a value back to the host after the
probes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any, NamedTuple

from .batches import Ranges, rows, take_into
from .prefetch import Prefetch, fill_pixels, shared_array
from .tally import LoggedSums


def spread(xp: Any, out: Any, a: float, c: float) -> Any:
    """out_ij = frac(i a) + frac(j c), in [0, 2): generic values (Weyl sequences for
    irrational a, c) that expose any difference in rounding. (R, S) -> written into out.
    Cheaper to start than a random generator (importing ``numpy.random`` takes ~8 ms)."""
    i = xp.arange(out.shape[0], dtype=xp.float64) * a
    j = xp.arange(out.shape[1], dtype=xp.float64) * c
    frac_i, frac_j = (i - xp.floor(i)).astype(out.dtype), (j - xp.floor(j)).astype(out.dtype)
    return xp.add(frac_i[:, None], frac_j[None, :], out=out)


def pixel_halves(D: int) -> tuple[slice, slice]:
    """The two halves of the pixels that ``dJ/dW = X^T G`` is computed in."""
    return slice(0, D // 2), slice(D // 2, D)


def pixel_split(xp: Any, X: Any, W: Any) -> int | None:
    """The k with ``(X @ W)^T == fl(W[:k]^T X[:, :k]^T + W[k:]^T X[:, k:]^T)`` bit for bit, or None.

    X (N, D), W (D, C): buffers of the real shapes and layouts, overwritten with probe
    values. BLAS libraries that block the sum over D (OpenBLAS: two blocks, the first
    D/2 rounded up to the kernel's unroll) give one such k; a different summation order
    changes a large share of the N*C results, so a match on generic values is the same
    order, not chance. Candidates: D/2 rounded up to a multiple of 32, 16, ..., 1.
    """
    spread(xp, X, 0.6180339887498949, 0.4142135623730951)
    spread(xp, W, 0.7320508075688772, 0.2360679774997897)
    W -= 1.0  # in [-1, 1)
    zT, D = (X @ W).T, X.shape[1]
    for unroll in (32, 16, 8, 4, 2, 1):
        k = -(-D // (2 * unroll)) * unroll
        if 0 < k < D and bool(xp.array_equal(W[:k].T @ X[:, :k].T + W[k:].T @ X[:, k:].T, zT)):
            return k
    return None


def transposed_gradient(xp: Any, X: Any, GT: Any) -> Any | None:
    """(2, N) ones in Fortran order if G kept as ``GT.T`` gives the reference's bits, else None.

    X (N, D), GT (C, N): buffers of the real shapes and layouts, overwritten with probe
    values. The reference has G (N, C) in C order; this checks, against it, the step's
    ``X[:, half].T @ G`` for both :func:`pixel_halves` and ``(ones @ G)[0] == G.sum(axis=0)``
    (NumPy sums axis 0 row after row; so does OpenBLAS's kernel for these layouts; two rows
    of ones, as one row would go to gemv). Any other summation order changes most results.
    """
    spread(xp, X, 0.6180339887498949, 0.4142135623730951)
    spread(xp, GT, 0.3247179572447460, 0.5436890126920764)
    GT -= 1.0  # mixed signs, like p - Y
    G, G_ref = GT.T, xp.ascontiguousarray(GT.T)
    ones = xp.asfortranarray(xp.ones((2, G.shape[0]), G.dtype))
    dW = xp.concatenate([X[:, half].T @ G for half in pixel_halves(X.shape[1])])
    same = xp.array_equal(dW, X.T @ G_ref) and xp.array_equal((ones @ G)[0], G_ref.sum(axis=0))
    return ones if bool(same) else None


class Views(NamedTuple):
    """The step's buffers cut to a batch of n rows, and the operands of its products:
    made once per batch size (each slice costs about as much as a small NumPy call)."""

    X: Any  # (n, D) pixels
    y: Any  # (n,) labels, for a batch that spans several ranges
    k: int | None  # pixel_split: (X W)^T = W[:k]^T X[:, :k]^T + W[k:]^T X[:, k:]^T, or None
    WT_left: Any  # W[:k].T
    XT_left: Any  # X[:, :k].T
    WT_right: Any  # W[k:].T
    XT_right: Any  # X[:, k:].T
    z: Any  # (n, C) X W where k is None; then exp(s), p (and G where ones is None)
    z_flat: Any  # z.ravel()
    zT2: Any  # (C, n) the second partial sum of (X W)^T
    zT: Any  # (C, n) z + b, transposed
    zb: Any  # zT.T: z + b as (n, C)
    s: Any  # (n, C) shifted logits
    s_flat: Any  # s.ravel()
    row: Any  # (n, 1) per-row max, then per-row sum of exp
    row_flat: Any  # row[:, 0]
    offsets: Any  # (n,) flat index of row n's first class
    inv_n: Any  # 1/n in the model's dtype
    grad_halves: tuple  # (X[:, half].T, dJ/dW[half]) for the two halves of the pixels
    ones: Any  # transposed_gradient: (2, n) ones for G = GT.T, or None
    G: Any  # (n, C) where G is written: GT[:, :n].T, or z where ones is None
    gb: Any  # where dJ/db goes: grad rows D and D+1 for ones @ G, else row D
    pred: Any  # (n,) predicted class


class FastStep:
    """A reusable SGD step for batches of up to ``batch_size`` rows of ``dim`` pixels.

    ``step(images, labels, ranges, W, b, lr)`` -> (W, b) after the update: views of the
    step's own parameters ``theta = [W; b]`` (D+1, C), one array so that one update covers
    both (a W and b it did not hand out are copied in first);
    ``step.logged()`` -> the sums of the batches' losses and accuracies since its last call.
    It keeps the per-example losses of up to ``saved`` batches before it reduces them.
    ``with step.prefetch(images, batches) as batches:`` has a helper process make the
    pixels of each of ``batches`` one batch ahead, into two shared slots of X (a batch it
    has not made in time is made by the step in its own slot).
    """

    def __init__(self, xp: Any, batch_size: int, dim: int, num_classes: int, dtype: Any,
                 saved: int = 128) -> None:
        self.xp, self.dtype = xp, xp.dtype(dtype)
        self.scale = self.dtype.type(1.0 / 255.0)
        B, D, C = batch_size, dim, num_classes
        self.Xs = [xp.empty((B, D), self.dtype)]  # the batch's pixels; the last slot is the step's own
        self.source: Prefetch | None = None  # where the pixels come from, if not made here
        self.y = xp.empty(B, xp.int64)
        self.z = xp.empty((B, C), self.dtype)
        self.zT = xp.empty((C, B), self.dtype)  # z transposed: the row max runs along rows
        self.zT2 = xp.empty((C, B), self.dtype)
        self.GT = xp.empty((C, B), self.dtype)  # G transposed
        self.s = xp.empty((B, C), self.dtype)
        self.row = xp.empty((B, 1), self.dtype)
        self.offsets = xp.arange(B) * C
        self.theta = xp.zeros((D + 1, C), self.dtype)  # [W; b]
        self.W, self.b = self.theta[:D], self.theta[D]
        self.b_col = self.b[:, None]
        self.grad = xp.empty((D + 2, C), self.dtype)  # [dJ/dW; dJ/db; room for ones @ G's 2nd row]
        self.gW, self.g_theta = self.grad[:D], self.grad[: D + 1]
        self.pred = xp.empty(B, xp.int64)
        # each step saves its batch's L_n and hits, back to back; logged() reduces them
        self.L = xp.empty(saved * B, self.dtype)  # per-example losses of up to `saved` batches
        self.hit = xp.empty(saved * B, bool)  # per-example "prediction == label"
        self.sizes: list[int] = []  # rows of each saved batch, in step order
        self.used = 0  # rows of L and hit in use
        self.sums = LoggedSums(xp, self.dtype)
        self.probed: dict[int, tuple[int | None, Any]] = {}  # batch rows -> (k, ones)
        self.made: dict[tuple[int, int], Views] = {}  # (slot, batch rows) -> views
        self.views(0, B)  # full batches: probed now, before training

    def probes(self, n: int) -> tuple[int | None, Any]:
        """(:func:`pixel_split`'s k, :func:`transposed_gradient`'s ones) for n rows, probed
        once per batch size on scratch buffers of the step's layouts (a slot may hold a
        prefetched batch)."""
        if n not in self.probed:
            xp, X = self.xp, self.xp.empty_like(self.Xs[0])[:n]
            self.probed[n] = pixel_split(xp, X, xp.empty_like(self.W)), transposed_gradient(xp, X, self.GT[:, :n])
        return self.probed[n]

    def views(self, slot: int, n: int) -> Views:
        """:class:`Views` for n rows with the pixels in ``self.Xs[slot]``."""
        if (slot, n) not in self.made:
            X, D, W = self.Xs[slot][:n], self.W.shape[0], self.W
            k, ones = self.probes(n)
            z, zT, s, row = self.z[:n], self.zT[:, :n], self.s[:n], self.row[:n]
            self.made[slot, n] = Views(
                X=X, y=self.y[:n], k=k, WT_left=W[:k].T, XT_left=X[:, :k].T, WT_right=W[k:].T,
                XT_right=X[:, k:].T, z=z, z_flat=z.ravel(), zT2=self.zT2[:, :n], zT=zT, zb=zT.T, s=s,
                s_flat=s.ravel(), row=row, row_flat=row[:, 0], offsets=self.offsets[:n],
                inv_n=self.dtype.type(1.0 / n),
                grad_halves=tuple((X[:, half].T, self.gW[half]) for half in pixel_halves(D)),
                ones=ones, G=self.GT[:, :n].T if ones is not None else z,
                gb=self.grad[D:] if ones is not None else self.grad[D], pred=self.pred[:n],
            )
        return self.made[slot, n]

    def labels(self, labels: Any, ranges: Ranges, v: Views) -> Any:
        """y = the batch's labels: a view for one range, else copied into the buffer."""
        if len(ranges) == 1:
            lo, hi = ranges[0]
            return labels[lo:hi]
        return take_into(v.y, labels, ranges)

    @contextmanager
    def prefetch(self, images: Any, batches: Iterator[Ranges]) -> Iterator[Prefetch]:
        """Within the block, a helper process makes each batch's pixels one batch ahead
        (:mod:`scratchlr.prefetch`); iterate over what it yields for the batches, and call
        the step once per batch, in order. NumPy only (see ``prefetch.unusable``)."""
        self.Xs = [*shared_array((2, *self.Xs[-1].shape), self.dtype), self.Xs[-1]]
        self.made.clear()
        with Prefetch(images, batches, self.Xs, self.scale) as self.source:
            try:
                yield self.source
            finally:
                self.source = None

    def __call__(self, images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, lr: float) -> tuple[Any, Any]:
        """One step on the rows ``ranges`` of ``images``/``labels``; see the module docstring."""
        xp = self.xp
        n = rows(ranges)
        slot = None if self.source is None else self.source.take(ranges)  # filled by the helper, or None
        v = self.views(len(self.Xs) - 1 if slot is None else slot, n)
        if W is not self.W or b is not self.b:  # parameters it did not hand out: take them in
            xp.copyto(self.W, W)
            xp.copyto(self.b, b)
        W = self.W
        if slot is None:  # else the helper has made them
            fill_pixels(v.X, images, ranges, self.scale)
        X, y = v.X, self.labels(labels, ranges, v)
        z, zT, s, row = v.z, v.zT, v.s, v.row
        at_label = v.offsets + y  # flat index of (n, y_n)
        if v.k is None:
            xp.add(xp.matmul(X, W, out=z).T, self.b_col, out=zT)  # z = X W + b, stored transposed
        else:  # (X W)^T as the same two partial sums BLAS adds, then + b
            xp.matmul(v.WT_left, v.XT_left, out=zT)
            zT += xp.matmul(v.WT_right, v.XT_right, out=v.zT2)
            zT += self.b_col
        zT.max(axis=0, out=v.row_flat)
        xp.subtract(v.zb, row, out=s)  # s = z - max z
        e = xp.exp(s, out=z)
        e.sum(axis=1, keepdims=True, out=row)  # sum_j exp(s_j)
        if self.used + n > len(self.L):
            self.fold()
        L, hit = self.L[self.used : self.used + n], self.hit[self.used : self.used + n]
        self.sizes.append(n)
        self.used += n
        xp.log(v.row_flat, out=L)
        L -= v.s_flat.take(at_label)  # L = log sum exp(s) - s_y
        p = xp.divide(e, row, out=e)  # softmax
        xp.equal(p.argmax(axis=1, out=v.pred), y, out=hit)  # prediction == label
        v.z_flat[at_label] -= 1  # p - Y (p lives in z)
        G = xp.multiply(p, v.inv_n, out=v.G)  # G = (p - Y) / N
        for XT, gW_half in v.grad_halves:  # dJ/dW = X^T G, half the pixels at a time
            xp.matmul(XT, G, out=gW_half)
        if v.ones is None:
            G.sum(axis=0, out=v.gb)  # dJ/db = sum_n G_n
        else:  # the same sums, row after row, as one small product
            xp.matmul(v.ones, G, out=v.gb)
        g = xp.multiply(self.g_theta, self.dtype.type(lr), out=self.g_theta)
        self.theta -= g  # W -= lr dJ/dW and b -= lr dJ/db, in one call
        return self.W, self.b

    def fold(self) -> None:
        """Reduce the saved batches: J = mean L (summed in float64, rounded once) and
        acc = hits / N in float32, exactly as :func:`model.loss` / :func:`model.accuracy`,
        and add them to the sums one batch at a time, in step order, as the seed does."""
        xp, at, J, acc = self.xp, 0, [], []
        for n, run in groupby(self.sizes):  # consecutive batches of n rows: one (count, n) block
            count = len(list(run))
            L = self.L[at : at + count * n].reshape(count, n)
            hits = self.hit[at : at + count * n].reshape(count, n).sum(axis=1)
            J.append((L.sum(axis=1, dtype=xp.float64) / n).astype(self.dtype))
            acc.append(xp.true_divide(hits, n, dtype=xp.float32))
            at += count * n
        if J:
            self.sums.add_each(xp.concatenate(J), xp.concatenate(acc))
        self.sizes, self.used = [], 0

    def logged(self) -> tuple[Any, Any]:
        """(sum of the batch losses J, sum of the batch accuracies) since the last call, as
        device scalars; see :class:`scratchlr.tally.LoggedSums`."""
        self.fold()
        return self.sums.take()
