"""The objective f(W, b) = J + (lambda/2) ||W||^2: its value, gradient and Hessian-vector product
against finite differences with lambda > 0, over shapes; and the callers that share it."""

from __future__ import annotations

import numpy as np
import pytest

from scratchlr import gradcheck, model
from scratchlr.gradients import reference_gradients
from scratchlr.objective import Objective, penalty_terms

SHAPES = [(0, 16, 12, 5, 0.0), (1, 20, 9, 4, 0.1), (2, 7, 5, 3, 1.0), (3, 40, 8, 10, 1e-3)]


def five_point(f, theta: np.ndarray, direction: np.ndarray, h: float) -> float:
    """d/dt f(theta + t direction) at t = 0, by five-point central differences."""
    d1 = f(theta + h * direction) - f(theta - h * direction)
    d2 = f(theta + 2 * h * direction) - f(theta - 2 * h * direction)
    return (8 * d1 - d2) / (12 * h)


@pytest.mark.parametrize("seed, n, d, c, weight_decay", SHAPES)
def test_the_gradient_is_the_values_derivative(
    seed: int, n: int, d: int, c: int, weight_decay: float
) -> None:
    """Along random directions of W and of b, (f(. + h V) - f(. - h V)) / 2h against <grad, V>."""
    example = gradcheck.random_problem(seed, n, d, c)
    X = example.X
    y = example.y
    W = example.W
    b = example.b
    f = Objective(X, y, weight_decay)
    grad_W, grad_b = f.gradient(W, b)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        V = rng.normal(size=W.shape)
        v = rng.normal(size=b.shape)
        along_W = five_point(lambda W_: float(f.value(W_, b)), W, V, 1e-3)
        along_b = five_point(lambda b_: float(f.value(W, b_)), b, v, 1e-3)
        assert np.sum(grad_W * V) == pytest.approx(along_W, rel=1e-8, abs=1e-10)
        assert np.sum(grad_b * v) == pytest.approx(along_b, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("seed, n, d, c, weight_decay", SHAPES)
def test_the_hessian_vector_product_is_the_gradients_derivative(
    seed: int, n: int, d: int, c: int, weight_decay: float
) -> None:
    example = gradcheck.random_problem(seed, n, d, c)
    X = example.X
    y = example.y
    W = example.W
    b = example.b
    f = Objective(X, y, weight_decay)
    rng = np.random.default_rng(10 + seed)
    V = rng.normal(size=W.shape)
    v = rng.normal(size=b.shape)
    HV, Hv = f.hessian_vector_product(W, b, V, v)
    for part, analytic in enumerate((HV, Hv)):

        def gradient_along(t: float, part: int = part) -> np.ndarray:
            return f.gradient(W + t * V, b + t * v)[part]

        numeric = five_point(gradient_along, 0.0, 1.0, 1e-4)
        assert gradcheck.relative_error(analytic, numeric).max() < 1e-7


def test_the_value_is_the_mean_cross_entropy_plus_the_penalty() -> None:
    example = gradcheck.random_problem(5)
    X = example.X
    y = example.y
    W = example.W
    b = example.b
    f = Objective(X, y, 0.3)
    z = model.logits(X, W, b)
    expected = np.mean(model.cross_entropy(z, y)) + 0.15 * np.sum(W**2)
    assert f.value(W, b) == pytest.approx(expected, rel=1e-14)
    assert f.value(W, b) - f.penalty(W) == pytest.approx(f.data_loss(z), rel=1e-14)  # J alone
    assert f.penalty(W) == pytest.approx(0.15 * np.sum(W**2), rel=1e-14)
    np.testing.assert_allclose(penalty_terms(W, 0.3), 0.15 * W**2, rtol=1e-15)
    assert Objective(X, y).penalty(W) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_penalty_adds_lambda_W_to_W_only(dtype: type) -> None:
    example = gradcheck.random_problem(6)
    X = example.X.astype(dtype)
    y = example.y
    W = example.W.astype(dtype)
    b = example.b.astype(dtype)
    plain_W, plain_b = Objective(X, y).gradient(W, b)
    grad_W, grad_b = Objective(X, y, 0.25).gradient(W, b)
    assert grad_W.dtype == dtype and grad_b.dtype == dtype
    assert np.array_equal(grad_W, plain_W + W * dtype(0.25))
    assert np.array_equal(grad_b, plain_b)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_readable_step_is_the_objectives_gradient(weight_decay: float) -> None:
    """reference_gradients is the objective on the batch's rows: it picks the rows (here a
    batch that wraps around the end), scales them and passes lambda on; the same bits."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (50, 20), dtype=np.uint8)
    labels = rng.integers(0, 3, 50)
    W = rng.normal(size=(20, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    batch = reference_gradients(images, labels, [(40, 50), (0, 6)], W, b, weight_decay)
    rows = list(range(40, 50)) + list(range(6))
    f = Objective(model.pixels(images[rows]), labels[rows], weight_decay)
    expected_W, expected_b = f.gradient(W, b)
    assert batch.loss.tobytes() == f.data_loss(f.logits(W, b)).tobytes()
    assert batch.grad_W.tobytes() == expected_W.tobytes()
    assert batch.grad_b.tobytes() == expected_b.tobytes()
