"""The fast training step: the same arithmetic as :func:`scratchlr.train.reference_step`,
without its temporaries.

One forward pass per step serves the loss, the accuracy and the gradient. Every buffer
is allocated once and each operation writes into one (``out=`` or in place). Images go
from uint8 straight into the batch buffer, range by range, so a batch that wraps around
the end of the data needs no gathered copy. Each float operation below is the one the
readable math in :mod:`scratchlr.model` performs, on the same operands, in the same
order, so the results are bit-identical to the reference (``tests/test_fast.py``).
Seven choices that change speed, not values:

- ``z^T = W^T X^T`` as BLAS itself sums ``X W``. For a batch of 128, OpenBLAS adds two
  partial sums over the pixels, ``fl(X[:, :k] W[:k] + X[:, k:] W[k:])`` (k = 400 on one
  thread, 392 on two), and the two halves called on their own take 35 us instead of 50
  (they fit its small-matrix kernel). Taken transposed, ``W[:k]^T X[:, :k]^T``, they land
  as (C, N), the layout the softmax wants, with the same bits. :func:`pixel_split` finds k
  once per batch size by trying it against ``X @ W``; where no split reproduces the
  product bit for bit (another BLAS, a smaller batch, float64) the step keeps ``X @ W``.
- ``dJ/dW = X^T G`` in two calls, pixels 0..k-1 and k..D-1: the same dot products over
  the batch as the one call, in 24-34 us instead of 45. G is kept transposed, ``G =
  G^T.T`` with ``G^T`` (C, N) in memory, which OpenBLAS multiplies ~10% faster.
- Within :meth:`FastStep.helper`, a helper process on a second core does the pixels
  k..D-1 half of both products for full batches (:mod:`scratchlr.helper`), from its own
  copy of those pixels, while the step does pixels 0..k-1.
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

The probes (:mod:`scratchlr.probes`) run when the step is made, for full batches (a batch
of another size is probed at its first step, on scratch buffers), so they are not part of
a timed training loop. Works on NumPy and CuPy alike, and never reads a value back to the
host after the probes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any, NamedTuple

from .batches import Ranges, fill_pixels, rows, take_into
from .helper import FORWARD, GRADIENT, Helper, shared_array
from .probes import pixel_halves, pixel_split, split_pixels, transposed_gradient
from .tally import LoggedSums


class Views(NamedTuple):
    """The step's buffers cut to a batch of n rows, and the operands of its products:
    made once per batch size (each slice costs about as much as a small NumPy call)."""

    X: Any  # (n, D) pixels, or (n, k) pixels 0..k-1 where a helper does the rest
    X_right: Any  # (n, D-k) the step's own pixels k..D-1 where a helper runs, else None
    y: Any  # (n,) labels, for a batch that spans several ranges
    k: int | None  # pixel_split: (X W)^T = W[:k]^T X[:, :k]^T + W[k:]^T X[:, k:]^T, or None
    WT_left: Any  # W[:k].T (k: the split, or D/2 where there is none)
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
    grad_halves: tuple  # (X[:, :k].T, dJ/dW[:k]) and (X[:, k:].T, dJ/dW[k:])
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
    ``with step.helper(images, batches) as batches:`` has a helper process do the pixels
    k..D-1 half of both products for each full batch of ``batches``.
    """

    def __init__(self, xp: Any, batch_size: int, dim: int, num_classes: int, dtype: Any,
                 saved: int = 128) -> None:
        self.xp, self.dtype = xp, xp.dtype(dtype)
        self.scale = self.dtype.type(1.0 / 255.0)
        B, D, C = batch_size, dim, num_classes
        self.X = xp.empty((B, D), self.dtype)  # the batch's pixels
        self.X_halves: tuple[Any, Any] | None = None  # pixels 0..k-1 and k..D-1, where a helper runs
        self.partner: Helper | None = None  # the helper, inside `with step.helper(...)`
        self.images_halves: tuple[Any, Any] | None = None  # images[:, :k] and images[:, k:] then
        self.y = xp.empty(B, xp.int64)
        self.z = xp.empty((B, C), self.dtype)
        self.zT = xp.empty((C, B), self.dtype)  # z transposed: the row max runs along rows
        self.zT2 = xp.empty((C, B), self.dtype)
        self.GT = xp.empty((C, B), self.dtype)  # G transposed
        self.s = xp.empty((B, C), self.dtype)
        self.row = xp.empty((B, 1), self.dtype)
        self.offsets = xp.arange(B) * C
        self.take_parameters(xp.zeros((D + 1, C), self.dtype))  # theta = [W; b]
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
        self.made: dict[tuple[int, bool], Views] = {}  # (batch rows, helped) -> views
        self.views(B, False)  # full batches: probed now, before training

    def take_parameters(self, theta: Any) -> None:
        """Use ``theta`` = [W; b] (D+1, C) as the step's parameters."""
        self.theta, self.W, self.b = theta, theta[:-1], theta[-1]
        self.b_col = self.b[:, None]

    def probes(self, n: int) -> tuple[int | None, Any]:
        """(:func:`pixel_split`'s k, :func:`transposed_gradient`'s ones) for n rows, probed
        once per batch size on scratch buffers of the step's layouts."""
        if n not in self.probed:
            xp, X, GT = self.xp, self.xp.empty_like(self.X)[:n], self.xp.empty_like(self.GT)[:, :n]
            k = pixel_split(xp, X, xp.empty_like(self.W))
            self.probed[n] = k, transposed_gradient(xp, X, GT, k)
        return self.probed[n]

    def views(self, n: int, helped: bool) -> Views:
        """:class:`Views` for n rows, with pixels in ``self.X`` or, ``helped``, in ``self.X_halves``."""
        if (n, helped) not in self.made:
            D, W, X = self.W.shape[0], self.W, self.X[:n]
            k, ones = self.probes(n)
            left, right = pixel_halves(D, k)  # k's split, or halves where X W is one call
            X_left, X_right = self.X_halves if helped else (X[:, left], X[:, right])
            z, zT, s, row = self.z[:n], self.zT[:, :n], self.s[:n], self.row[:n]
            self.made[n, helped] = Views(
                X=X_left if helped else X, X_right=X_right if helped else None, y=self.y[:n], k=k,
                WT_left=W[left].T, XT_left=X_left.T, WT_right=W[right].T, XT_right=X_right.T, z=z,
                z_flat=z.ravel(), zT2=self.zT2[:, :n], zT=zT, zb=zT.T, s=s, s_flat=s.ravel(), row=row,
                row_flat=row[:, 0], offsets=self.offsets[:n], inv_n=self.dtype.type(1.0 / n),
                grad_halves=((X_left.T, self.gW[left]), (X_right.T, self.gW[right])),
                ones=ones, G=self.GT[:, :n].T if ones is not None else z,
                gb=self.grad[D:] if ones is not None else self.grad[D], pred=self.pred[:n],
            )
        return self.made[n, helped]

    def labels(self, labels: Any, ranges: Ranges, v: Views) -> Any:
        """y = the batch's labels: a view for one range, else copied into the buffer."""
        if len(ranges) == 1:
            lo, hi = ranges[0]
            return labels[lo:hi]
        return take_into(v.y, labels, ranges)

    @contextmanager
    def helper(self, images: Any, batches: Iterator[Ranges]) -> Iterator[Helper | Iterator[Ranges]]:
        """Within the block, a helper process does the pixels k..D-1 half of both products
        for each full batch (:mod:`scratchlr.helper`); iterate over what it yields for the
        batches, and call the step once per batch, in order. It yields the batches as they
        are (no helper) where full batches have no pixel split, or its halves kept in buffers
        of their own would change a bit (:func:`scratchlr.probes.split_pixels`). NumPy only
        (see ``helper.unusable``)."""
        xp, (B, D), C = self.xp, self.X.shape, self.W.shape[1]
        k, ones = self.probes(B)
        if k is None or ones is None or not split_pixels(xp, xp.empty_like(self.X), xp.empty_like(self.W),
                                                         xp.empty_like(self.GT), k):
            yield batches
            return
        theta = shared_array(self.theta.shape, self.dtype)  # the helper reads W[k:] and G
        theta[...] = self.theta
        self.take_parameters(theta)
        self.GT = shared_array((C, B), self.dtype)
        self.X_halves = xp.empty((B, k), self.dtype), xp.empty((B, D - k), self.dtype)
        self.images_halves = images[:, :k], images[:, k:]
        self.made.clear()  # views of the old parameters and G
        with Helper(self.images_halves[1], batches, self.W[k:].T, self.GT.T, self.scale) as self.partner:
            try:
                yield self.partner
            finally:
                self.partner = None

    def __call__(self, images: Any, labels: Any, ranges: Ranges, W: Any, b: Any, lr: float) -> tuple[Any, Any]:
        """One step on the rows ``ranges`` of ``images``/``labels``; see the module docstring."""
        xp, n, h = self.xp, rows(ranges), self.partner
        if W is not self.W or b is not self.b:  # parameters it did not hand out: take them in
            xp.copyto(self.W, W)
            xp.copyto(self.b, b)
        if h is not None and not h.begin(ranges):  # (after that: the helper reads W) full batches only
            h = None
        v = self.views(n, h is not None)
        if h is None:
            fill_pixels(v.X, images, ranges, self.scale)
        else:  # pixels 0..k-1; the helper has made its own k..D-1, the step makes them if need be
            fill_pixels(v.X, self.images_halves[0], ranges, self.scale)
        right_made = h is None
        X, y = v.X, self.labels(labels, ranges, v)
        z, zT, s, row = v.z, v.zT, v.s, v.row
        at_label = v.offsets + y  # flat index of (n, y_n)
        if v.k is None:
            xp.add(xp.matmul(X, self.W, out=z).T, self.b_col, out=zT)  # z = X W + b, stored transposed
        else:  # (X W)^T as the same two partial sums BLAS adds, then + b
            xp.matmul(v.WT_left, v.XT_left, out=zT)
            if h is not None and h.result(FORWARD):
                zT += h.zT2  # the helper's W[k:]^T X[:, k:]^T
            else:
                if not right_made:
                    fill_pixels(v.X_right, self.images_halves[1], ranges, self.scale)
                    right_made = True
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
        if h is not None:
            h.post(GRADIENT)
        (XT_left, gW_left), (XT_right, gW_right) = v.grad_halves  # dJ/dW = X^T G, in two blocks of pixels
        xp.matmul(XT_left, G, out=gW_left)
        if h is not None and h.result(GRADIENT):
            xp.copyto(gW_right, h.gW)  # the helper's X[:, k:]^T G
        else:
            if not right_made:
                fill_pixels(v.X_right, self.images_halves[1], ranges, self.scale)
            xp.matmul(XT_right, G, out=gW_right)
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
