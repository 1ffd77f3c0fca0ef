"""Probes: which fast forms of the step's two products give the reference's bits here.

The fast step (:mod:`scratchlr.fast`) computes ``X W`` and ``X^T G`` in pieces that run
faster than the one call. Whether a piece gives the same bits depends on the BLAS, its
kernels and the dtype, so each form is tried once per batch size on generic values (a
different summation order changes most of the results, so a match is the same order,
not chance); where one does not match, the step keeps the reference's call.
"""

from __future__ import annotations

from typing import Any


def spread(xp: Any, out: Any, a: float, c: float) -> Any:
    """out_ij = frac(i a) + frac(j c), in [0, 2): generic values (Weyl sequences for
    irrational a, c) that expose any difference in rounding. (R, S) -> written into out.
    Cheaper to start than a random generator (importing ``numpy.random`` takes ~8 ms)."""
    i = xp.arange(out.shape[0], dtype=xp.float64) * a
    j = xp.arange(out.shape[1], dtype=xp.float64) * c
    frac_i, frac_j = (i - xp.floor(i)).astype(out.dtype), (j - xp.floor(j)).astype(out.dtype)
    return xp.add(frac_i[:, None], frac_j[None, :], out=out)


def probe_pixels(xp: Any, X: Any) -> Any:
    """X (N, D) overwritten with probe values in [0, 2), like pixels."""
    return spread(xp, X, 0.6180339887498949, 0.4142135623730951)


def probe_weights(xp: Any, W: Any) -> Any:
    """W (D, C) overwritten with probe values in [-1, 1), like weights."""
    spread(xp, W, 0.7320508075688772, 0.2360679774997897)
    W -= 1.0
    return W


def probe_gradient(xp: Any, GT: Any) -> Any:
    """GT (C, N) overwritten with probe values in [-1, 1) (mixed signs, like p - Y); G = GT.T."""
    spread(xp, GT, 0.3247179572447460, 0.5436890126920764)
    GT -= 1.0
    return GT.T


def pixel_halves(D: int, k: int | None = None) -> tuple[slice, slice]:
    """The two blocks of pixels that ``dJ/dW = X^T G`` is computed in: at k, else at D/2."""
    k = D // 2 if k is None else k
    return slice(0, k), slice(k, D)


def pixel_split(xp: Any, X: Any, W: Any) -> int | None:
    """The k with ``(X @ W)^T == fl(W[:k]^T X[:, :k]^T + W[k:]^T X[:, k:]^T)`` bit for bit, or None.

    X (N, D), W (D, C): buffers of the real shapes and layouts, overwritten with probe
    values. BLAS libraries that block the sum over D (OpenBLAS: two blocks, the first
    D/2 rounded up to the kernel's unroll) give one such k. Candidates: D/2 rounded up
    to a multiple of 32, 16, ..., 1.
    """
    X, W = probe_pixels(xp, X), probe_weights(xp, W)
    zT, D = (X @ W).T, X.shape[1]
    for unroll in (32, 16, 8, 4, 2, 1):
        k = -(-D // (2 * unroll)) * unroll
        if 0 < k < D and bool(xp.array_equal(W[:k].T @ X[:, :k].T + W[k:].T @ X[:, k:].T, zT)):
            return k
    return None


def transposed_gradient(xp: Any, X: Any, GT: Any, k: int | None = None) -> Any | None:
    """(2, N) ones in Fortran order if G kept as ``GT.T`` gives the reference's bits, else None.

    X (N, D), GT (C, N): buffers of the real shapes and layouts, overwritten with probe
    values. The reference has G (N, C) in C order; this checks, against it, the step's
    ``X[:, half].T @ G`` for both :func:`pixel_halves` (split at k) and ``(ones @ G)[0] ==
    G.sum(axis=0)`` (NumPy sums axis 0 row after row; so does OpenBLAS's kernel for these
    layouts; two rows of ones, as one row would go to gemv).
    """
    X, G = probe_pixels(xp, X), probe_gradient(xp, GT)
    G_ref = xp.ascontiguousarray(G)
    ones = xp.asfortranarray(xp.ones((2, G.shape[0]), G.dtype))
    dW = xp.concatenate([X[:, half].T @ G for half in pixel_halves(X.shape[1], k)])
    same = xp.array_equal(dW, X.T @ G_ref) and xp.array_equal((ones @ G)[0], G_ref.sum(axis=0))
    return ones if bool(same) else None


def split_pixels(xp: Any, X: Any, W: Any, GT: Any, k: int) -> bool:
    """Whether both products give the same bits with ``X[:, :k]`` and ``X[:, k:]`` copied
    into buffers of their own (C order), as :mod:`scratchlr.helper` keeps them, as with the
    views of one X. X (N, D), W (D, C), GT (C, N): overwritten with probe values."""
    X, W, G = probe_pixels(xp, X), probe_weights(xp, W), probe_gradient(xp, GT)
    same = True
    for half in pixel_halves(X.shape[1], k):
        own = xp.ascontiguousarray(X[:, half])
        same = same and xp.array_equal(W[half].T @ own.T, W[half].T @ X[:, half].T)
        same = same and xp.array_equal(own.T @ G, X[:, half].T @ G)
    return bool(same)
