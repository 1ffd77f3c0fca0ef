"""The analytic gradient against central differences (float64). The check on MNIST runs once,
in test_math_doc.py's section 9 figures."""

from __future__ import annotations

import numpy as np
import pytest

from scratchlr import gradcheck, model, objective


@pytest.mark.parametrize(
    "seed, n, d, c", [(0, 16, 12, 5), (1, 1, 3, 2), (2, 50, 20, 10), (3, 7, 784, 10)]
)
def test_analytic_gradient_matches_numerical(seed: int, n: int, d: int, c: int) -> None:
    errors = gradcheck.check(*gradcheck.random_problem(seed, n, d, c))
    assert max(errors.values()) <= gradcheck.TOLERANCE, errors


def test_check_catches_a_wrong_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    # forget the 1/N of the mean: the check must notice
    monkeypatch.setattr(
        model, "grad_logits", lambda z, y: model.softmax(z) - model.onehot(y, z.shape[1], z.dtype)
    )
    errors = gradcheck.check(*gradcheck.random_problem())
    assert min(errors.values()) > 0.5


def test_numerical_gradient_of_known_function_and_restores_theta() -> None:
    theta = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = theta.copy()
    g = gradcheck.numerical_gradient(lambda t: np.array([np.sum(t**3), np.sum(np.sin(t))]), theta)
    np.testing.assert_allclose(g, (3 * before**2 + np.cos(before)) / 2, rtol=1e-10)
    assert np.array_equal(theta, before)


def test_relative_error_definition() -> None:
    a = np.array([1.0, 0.0, 1e-300, -2.0])
    n = np.array([1.0, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(gradcheck.relative_error(a, n), [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("weight_decay", [1e-4, 0.1, 3.0])
def test_gradient_with_weight_decay_matches_numerical(weight_decay: float) -> None:
    errors = gradcheck.check(*gradcheck.random_problem(4, 20, 15, 6), weight_decay=weight_decay)
    assert max(errors.values()) <= gradcheck.TOLERANCE, errors


def test_check_catches_a_wrong_decay_term(monkeypatch: pytest.MonkeyPatch) -> None:
    # decay by lambda / 2 instead of lambda (the gradient of lambda / 4 ||W||^2): W must fail, b not
    real = objective.decayed
    monkeypatch.setattr(objective, "decayed", lambda g, W, lam, out=None: real(g, W, lam / 2, out))
    errors = gradcheck.check(*gradcheck.random_problem(), weight_decay=0.5)
    assert errors["W"] > 1e-3 and errors["b"] <= gradcheck.TOLERANCE


@pytest.mark.parametrize("weight_decay", [1e-4, 0.1, 3.0])
@pytest.mark.parametrize("seed, n, d, c", [(0, 16, 12, 5), (2, 50, 20, 10), (3, 7, 784, 10)])
def test_hessian_vector_product_with_decay_matches_numerical(
    seed: int, n: int, d: int, c: int, weight_decay: float
) -> None:
    errors = gradcheck.check_hessian(
        *gradcheck.random_problem(seed, n, d, c), weight_decay=weight_decay
    )
    assert max(errors.values()) <= gradcheck.TOLERANCE, errors


def test_hessian_check_catches_a_missing_decay_term(monkeypatch: pytest.MonkeyPatch) -> None:
    # J's Hessian alone, without the penalty's lambda V: W must fail, b (not decayed) not
    monkeypatch.setattr(
        objective.Objective,
        "hessian_vector_product",
        lambda self, W, b, V, v: model.hessian_vector_product(self.X, W, b, V, v),
    )
    errors = gradcheck.check_hessian(*gradcheck.random_problem(1), weight_decay=0.1)
    assert errors["W"] > 1e-3 and errors["b"] <= gradcheck.TOLERANCE


def test_numerical_hessian_vector_product_of_a_quadratic() -> None:
    A = np.array([[2.0, 1.0], [1.0, 3.0]])  # f = w^T A w / 2 + b^2, gradient (A w, 2 b)
    found = gradcheck.numerical_hessian_vector_product(
        lambda W, b: (A @ W, 2 * b), np.ones(2), np.ones(1), np.array([1.0, -1.0]), np.ones(1)
    )
    np.testing.assert_allclose(found["W"], [1.0, -2.0], rtol=1e-12)
    np.testing.assert_allclose(found["b"], [2.0], rtol=1e-12)


def test_the_command_checks_the_hessian_vector_product() -> None:
    lines: list[str] = []
    worst = gradcheck.run(emit=lines.append)
    assert worst <= gradcheck.TOLERANCE
    assert any("Hessian-vector product" in line and "weight decay 0.1" in line for line in lines)
