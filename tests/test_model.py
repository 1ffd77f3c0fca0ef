"""The hand-written math against TensorFlow's own outputs, plus its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchlr import model

CASES = 14  # cases in tests/data/tf_xent_cases.npz
BIG = float(np.float32(1.5e38))


def close(ours: np.ndarray, tf: np.ndarray, ulps: float = 8) -> bool:
    """|ours - tf| <= ulps * eps * (|tf| + 1): agreement to the dtype's rounding, with an
    absolute floor of 1 so values that underflow differently near 0 still compare."""
    eps = np.finfo(tf.dtype).eps
    return bool(np.all(np.abs(ours - tf) <= ulps * eps * (np.abs(tf) + 1)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(CASES))
def test_matches_tensorflow(tf_cases: dict, case: int, dtype: str) -> None:
    key = f"case{case:02d}_{dtype}"
    z = tf_cases[f"{key}_logits"]
    y = tf_cases[f"{key}_labels"]
    assert z.dtype == np.dtype(dtype)
    per_example = model.cross_entropy(z, y)
    mean = model.loss(z, y)
    probs = model.softmax(z)
    G = model.grad_logits(z, y)
    for ours in (per_example, mean, probs, G):
        assert ours.dtype == z.dtype  # no silent upcast or downcast
        assert np.all(np.isfinite(ours))
    assert close(per_example, tf_cases[f"{key}_loss"])
    assert close(mean, tf_cases[f"{key}_mean"])
    assert close(probs, tf_cases[f"{key}_softmax"])
    # dJ/dz is O(1/N); compare (p - Y) = N G at the scale of the softmax
    assert close(G * len(y), tf_cases[f"{key}_dlogits"] * len(y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_minus_log_softmax_and_finite(dtype: type) -> None:
    """On logits of order 1e4, where exp overflows and p underflows: the loss is -log p_y as
    log-sum-exp gives it, written out here in float64; softmax is exp of the same."""
    rng = np.random.default_rng(1)
    z = (rng.normal(size=(64, 10)) * np.array([1, 1e4] * 32)[:, None]).astype(dtype)
    y = rng.integers(0, 10, 64)
    z64 = z.astype(np.float64)
    log_p = z64 - z64.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    L = model.cross_entropy(z, y)
    assert L.dtype == dtype and np.all(np.isfinite(L)) and np.all(L >= 0) and L.max() > 1e3
    np.testing.assert_allclose(
        L, -log_p[np.arange(64), y], rtol=1e-5 if dtype == np.float32 else 1e-12
    )
    np.testing.assert_allclose(
        model.softmax(z), np.exp(log_p), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30
    )


@given(
    z=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(2, 12)),
        elements=st.floats(-BIG, BIG, width=32),  # |z - max z| <= 2 BIG stays finite
    ),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_no_nan_or_inf_on_any_finite_logits(z: np.ndarray, data: st.DataObject) -> None:
    y = np.array(
        data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=len(z), max_size=len(z)))
    )
    p = model.softmax(z)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert np.all(np.isfinite(model.cross_entropy(z, y))) and np.all(model.cross_entropy(z, y) >= 0)
    G = model.grad_logits(z, y)
    assert np.all(np.isfinite(G)) and np.allclose(G.sum(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("bad", [-1, 10, 11])
def test_out_of_range_labels_raise(bad: int) -> None:
    z = np.zeros((3, 10), np.float32)
    y = np.array([0, bad, 2])
    with pytest.raises(ValueError, match=f"label {bad} is outside the valid range"):
        model.cross_entropy(z, y)
    with pytest.raises(ValueError, match="outside the valid range"):
        model.grad_logits(z, y)


def test_pixels_are_tf_input_data_scaling() -> None:
    u8 = np.arange(256, dtype=np.uint8).reshape(1, 256)
    x = model.pixels(u8)
    assert x.dtype == np.float32
    # TF: images.astype(float32) * float32(1/255), one float32 multiply per pixel
    expected = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
    assert np.array_equal(x[0], expected)
    assert x[0, 0] == 0 and abs(x[0, 255] - 1) <= np.finfo(np.float32).eps
    assert model.pixels(u8, np.float64).dtype == np.float64


def test_zero_weights_give_log_c_loss_and_uniform_softmax() -> None:
    X = np.random.default_rng(0).random((128, 784), dtype=np.float32)
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    z = model.logits(X, W, b)
    assert model.loss(z, np.zeros(128, int)) == np.float32(np.log(10))
    assert np.all(model.softmax(z) == np.float32(0.1))


def test_prediction_ties_go_to_lower_class() -> None:
    z = np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 0.0]], np.float32)
    assert list(model.predictions(z)) == [1, 0]
    assert model.accuracy(z, np.array([1, 1])) == np.float32(0.5)
    assert model.accuracy(z, np.array([1, 1])).dtype == np.float32


def test_gradients_shapes_and_onehot() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((5, 7))
    y = np.array([0, 2, 1, 2, 0])
    G = model.grad_logits(model.logits(X, np.zeros((7, 3)), np.zeros(3)), y)
    Y = model.onehot(y, 3, np.float64)
    assert np.array_equal(Y.argmax(axis=1), y) and np.all(Y.sum(axis=1) == 1)
    np.testing.assert_allclose(G, (1 / 3 - Y) / 5)
    assert model.grad_W(X, G).shape == (7, 3) and model.grad_b(G).shape == (3,)
    # at W = 0, b = 0 every p is 1/3, so dJ/db_c = (N/3 - #{n : y_n = c}) / N and
    # dJ/dW_ic = (sum_n x_ni / 3 - sum_{n : y_n = c} x_ni) / N
    np.testing.assert_allclose(model.grad_b(G), (5 / 3 - np.bincount(y, minlength=3)) / 5)
    in_class = np.stack([X[y == c].sum(axis=0) for c in range(3)], axis=1)
    np.testing.assert_allclose(model.grad_W(X, G), (X.sum(axis=0)[:, None] / 3 - in_class) / 5)
