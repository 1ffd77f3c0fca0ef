"""Softmax regression, by hand. Every function is one equation; shapes in the docstrings.

Notation: N examples, D = 784 pixels, C = 10 classes.
``X (N, D)`` images, ``y (N,)`` integer labels, ``W (D, C)`` weights, ``b (C,)`` bias,
``z (N, C)`` logits, ``G (N, C)`` the gradient of the mean loss w.r.t. the logits.
The formulas (and their order of operations) follow TensorFlow's CPU kernels, so the
results agree with ``tf.nn.sparse_softmax_cross_entropy_with_logits`` to float32 rounding.
Functions work on NumPy or CuPy arrays alike (the namespace comes from the arrays).
"""

from __future__ import annotations

from typing import Any

from .backend import namespace_of

Array = Any  # numpy.ndarray or cupy.ndarray


def pixels(images_u8: Array, dtype: Any = "float32") -> Array:
    """x = u8 * (1/255), in ``dtype``: TF ``input_data``'s scaling to [0, 1]. (N, D) -> (N, D).

    The factor is rounded to ``dtype`` first, then multiplied, exactly as NumPy did in TF's
    ``numpy.multiply(images.astype(float32), 1.0 / 255.0)``.
    """
    xp = namespace_of(images_u8)
    dtype = xp.dtype(dtype)
    return images_u8.astype(dtype) * dtype.type(1.0 / 255.0)


def logits(X: Array, W: Array, b: Array) -> Array:
    """z = X W + b.   X (N, D), W (D, C), b (C,) -> z (N, C)."""
    return X @ W + b


def shifted_logits(z: Array) -> Array:
    """s = z - max_j z_j, row-wise: the max-subtraction that keeps exp from overflowing.
    (N, C) -> (N, C), every row's largest entry is 0."""
    return z - z.max(axis=1, keepdims=True)


def logsumexp_shifted(s: Array) -> Array:
    """lse_n = log sum_j exp(s_nj) for shifted logits s (each row's max is 0, so the sum
    lies in [1, C] and never overflows). (N, C) -> (N, 1)."""
    xp = namespace_of(s)
    return xp.log(xp.exp(s).sum(axis=1, keepdims=True))


def softmax(z: Array) -> Array:
    """p_nj = exp(s_nj) / sum_k exp(s_nk), with s = z - max(z). (N, C) -> (N, C).

    Equal to exp(z_nj) / sum_k exp(z_nk) but never overflows; every row sums to 1.
    """
    xp = namespace_of(z)
    e = xp.exp(shifted_logits(z))
    return e / e.sum(axis=1, keepdims=True)


def check_labels(y: Array, num_classes: int) -> None:
    """Raise ``ValueError`` unless every label lies in [0, C), as TF's CPU kernel does."""
    xp = namespace_of(y)
    if y.size and bool(xp.logical_or(y < 0, y >= num_classes).any()):
        bad = y[xp.logical_or(y < 0, y >= num_classes)][0]
        raise ValueError(f"label {int(bad)} is outside the valid range [0, {num_classes})")


def cross_entropy(z: Array, y: Array) -> Array:
    """L_n = -log p_n,y_n = log sum_j exp(s_nj) - s_n,y_n, with s = z - max(z).
    z (N, C), y (N,) ints in [0, C) -> L (N,).

    TF's ``sparse_softmax_cross_entropy_with_logits``, term for term.
    """
    xp = namespace_of(z)
    check_labels(y, z.shape[1])
    s = shifted_logits(z)
    return logsumexp_shifted(s)[:, 0] - s[xp.arange(z.shape[0]), y]


def loss(z: Array, y: Array) -> Array:
    """J = (1/N) sum_n L_n: the mean cross-entropy (``tf.reduce_mean``). -> scalar.

    Summed in float64, divided by N, and rounded once to z's dtype. A naive float32 sum of
    128 equal losses can be tens of ulps off; TF's float32 reduction rounds less, but still
    rounds. The float64 sum of 128 float32 terms is exact while they lie within a factor of
    2^22 of the largest, and far finer than float32 otherwise (docs/math.md §8).
    ``sum / N`` is what ``mean`` computes, in one call fewer.
    """
    return (cross_entropy(z, y).sum(dtype="float64") / z.shape[0]).astype(z.dtype)


def onehot(y: Array, num_classes: int, dtype: Any) -> Array:
    """Y_nj = 1 if j == y_n else 0.   y (N,) -> Y (N, C)."""
    xp = namespace_of(y)
    return (y[:, None] == xp.arange(num_classes)[None, :]).astype(dtype)


def grad_logits(z: Array, y: Array) -> Array:
    """G = dJ/dz = (p - Y) * (1/N), p = softmax(z), Y = onehot(y).  (N, C) -> (N, C).

    The classic result: d/dz_nj of -log p_n,y_n is p_nj - [j == y_n]; the mean adds
    1/N, applied as TF's gradient of ``reduce_mean`` does: a multiply by 1/N rounded.
    """
    check_labels(y, z.shape[1])
    n = z.shape[0]
    return (softmax(z) - onehot(y, z.shape[1], z.dtype)) * z.dtype.type(1.0 / n)


def grad_W(X: Array, G: Array) -> Array:
    """dJ/dW = X^T G, since z = X W + b.   X (N, D), G (N, C) -> (D, C)."""
    return X.T @ G


def grad_b(G: Array) -> Array:
    """dJ/db = sum_n G_n, since b is added to every row.   G (N, C) -> (C,)."""
    return G.sum(axis=0)


def hessian_vector_product(X: Array, W: Array, b: Array, V: Array, v: Array) -> tuple[Array, Array]:
    """H (V, v): the Hessian of J at (W, b) times a direction (V (D, C), v (C,)), never forming
    H itself.  X (N, D) -> ((D, C), (C,)).

    Along the direction the logits move by dz = X V + v; each row's softmax Jacobian
    diag(p_n) - p_n p_n^T turns that into the change of G,
    dG_n = (p_n * dz_n - p_n (p_n . dz_n)) / N; then, as for the gradient, (X^T dG, sum_n dG_n).
    The labels do not appear: the curvature depends only on the probabilities (math.md §11).
    """
    p = softmax(logits(X, W, b))
    dz = X @ V + v
    dG = (p * dz - p * (p * dz).sum(axis=1, keepdims=True)) / X.shape[0]
    return grad_W(X, dG), grad_b(dG)


def predictions(z: Array) -> Array:
    """yhat_n = argmax_j p_nj (first index on ties), p = softmax(z). (N, C) -> (N,).

    Taken of the softmax, not the logits, as the seed does: where two logits round to
    the same probability, the tie goes to the lower class, as in TF.
    """
    return softmax(z).argmax(axis=1)


def accuracy(z: Array, y: Array) -> Array:
    """acc = (1/N) sum_n [yhat_n == y_n], in float32 like the seed's ``tf.cast``. -> scalar.

    The hits are summed as float32 (an exact count below 2^24), then divided by N once,
    as ``tf.reduce_mean`` of the cast hits does.
    """
    xp = namespace_of(z)
    return (predictions(z) == y).astype(xp.float32).sum() / xp.float32(z.shape[0])
