"""The second edition's lessons, in code: the loss's convexity and its flat direction, KL and
cross-entropy, two classes as the sigmoid, and the mini-batch gradient's mean and spread. (The
Hessian-vector product against finite differences is in test_objective.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from scratchlr import gradcheck, model
from scratchlr.objective import Objective


def gradient(X, y, W, b):
    """dJ/dW, dJ/db of the data alone."""
    return Objective(X, y).gradient(W, b)


def test_the_loss_is_convex_with_one_flat_direction() -> None:
    example = gradcheck.random_problem(7, n=30, d=8, c=5)
    X = example.X
    y = example.y
    W = example.W
    b = example.b
    data = Objective(X, y)
    rng = np.random.default_rng(0)
    for _ in range(50):  # v^T H v >= 0 along any direction
        V = rng.normal(size=W.shape)
        v = rng.normal(size=b.shape)
        HV, Hv = data.hessian_vector_product(W, b, V, v)
        assert np.sum(V * HV) + np.sum(v * Hv) >= -1e-12
    # the same vector added to every column of W, and one number to every b_j
    V = np.repeat(rng.normal(size=(W.shape[0], 1)), W.shape[1], axis=1)
    v = np.full(b.shape, 0.7)
    HV, Hv = data.hessian_vector_product(W, b, V, v)
    assert np.abs(HV).max() < 1e-12 and np.abs(Hv).max() < 1e-12  # no curvature along it
    J = data.value(W, b)
    assert data.value(W + 3 * V, b + 3 * v) == pytest.approx(J, rel=1e-12)  # nor change
    # the penalty curves it: along it, f changes by the penalty's change alone
    penalised = Objective(X, y, weight_decay=1e-3)
    change = penalised.value(W + 3 * V, b + 3 * v) - penalised.value(W, b)
    expected = 1e-3 / 2 * (np.sum((W + 3 * V) ** 2) - np.sum(W**2))
    assert change == pytest.approx(expected, rel=1e-9)
    assert change > 0


def test_cross_entropy_is_the_kl_divergence_from_the_one_hot_labels() -> None:
    example = gradcheck.random_problem(3)
    X = example.X
    y = example.y
    W = example.W
    b = example.b
    z = model.logits(X, W, b)
    p = model.softmax(z)
    q = model.onehot(y, z.shape[1], z.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(q > 0, q * np.log(q / p), 0.0).sum(
            axis=1
        )  # KL(q || p); H(q) = 0 for a one-hot q
    cross = -(q * np.log(p)).sum(axis=1)  # H(q, p)
    np.testing.assert_allclose(model.cross_entropy(z, y), kl, rtol=1e-12)
    np.testing.assert_allclose(model.cross_entropy(z, y), cross, rtol=1e-12)


def test_two_classes_are_the_sigmoid_of_the_logit_difference() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 2)) * 5
    sigmoid = 1 / (1 + np.exp(-(z[:, 1] - z[:, 0])))
    np.testing.assert_allclose(model.softmax(z)[:, 1], sigmoid, rtol=1e-12)


def test_the_batch_gradient_is_unbiased_and_its_spread_falls_as_one_over_b() -> None:
    rng = np.random.default_rng(2)
    n = 4096
    d = 10
    c = 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, c, n)
    W = rng.normal(size=(d, c)) / 3
    b = np.zeros(c)
    full = gradient(X, y, W, b)[0]
    spread = {}
    for B in (16, 64, 256):
        order = rng.permutation(n).reshape(-1, B)  # one epoch's batches: they partition the data
        grads = np.stack([gradient(X[i], y[i], W, b)[0] for i in order])
        np.testing.assert_allclose(
            grads.mean(axis=0), full, atol=1e-12
        )  # their mean is the full gradient
        spread[B] = float(((grads - full) ** 2).sum(axis=(1, 2)).mean())
    for small, large in ((16, 64), (64, 256)):  # 4x the batch, about a quarter of the spread
        assert 3.0 < spread[small] / spread[large] < 5.0, spread


def test_from_zero_the_weights_columns_keep_summing_to_zero(mnist_data) -> None:
    """Every gradient's columns (and b's entries) sum to 0, so SGD from W = 0, b = 0 stays on the
    flat line's zero-sum point, with momentum and averaging too (to float32 rounding)."""
    from scratchlr import train
    from scratchlr.backend import numpy_backend

    config = train.Config(num_steps=300, momentum=0.9, learning_rate=0.5, average=100)
    run = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    assert np.abs(run.W.sum(axis=1)).max() < 1e-5 * np.abs(run.W).max() and abs(run.b.sum()) < 1e-5
