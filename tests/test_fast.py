"""The fast step against the readable reference: the same numbers, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scratchlr import mnist, train
from scratchlr.backend import numpy_backend
from scratchlr.fast import FastStep


def both(data: mnist.MNIST, config: train.Config) -> tuple[train.Result, train.Result]:
    runs = [train.train(data, dataclasses.replace(config, step=s), numpy_backend(), emit=lambda line: None)
            for s in ("fast", "reference")]
    return runs[0], runs[1]


@pytest.mark.parametrize("config", [
    train.Config(),  # the seed's run
    train.Config(learning_rate=0.5, batch_size=1000, num_steps=120, display_step=1),  # wraps at 55000
    train.Config(num_steps=900, display_step=1, batching="epoch"),  # partial batch at step 430, 860
    train.Config(batch_size=100, num_steps=200, display_step=7, dtype="float64"),
], ids=["seed", "repeat-wrap", "epoch-partial", "float64"])
def test_fast_step_is_bit_identical_to_reference(mnist_data: mnist.MNIST, config: train.Config) -> None:
    fast, ref = both(mnist_data, config)
    assert fast.W.dtype == ref.W.dtype == np.dtype(config.dtype)
    assert np.array_equal(fast.W, ref.W) and np.array_equal(fast.b, ref.b)
    assert fast.lines == ref.lines  # every logged loss and accuracy, to the last digit
    assert fast.test_accuracy == ref.test_accuracy


def test_batch_larger_than_training_set(mnist_dir) -> None:
    data = mnist.load(str(mnist_dir), validation_size=59990)  # 10 training examples, batch 128
    fast, ref = both(data, train.Config(num_steps=5, display_step=1))
    assert np.array_equal(fast.W, ref.W) and fast.lines == ref.lines


def test_fast_step_one_step_by_hand() -> None:
    """On a tiny problem, one fast step equals the textbook update written out here."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, 7)
    W, b = rng.normal(size=(6, 3)), np.zeros(3)
    W0, b0 = W.copy(), b.copy()
    J, acc, W, b = FastStep(np, 5, 6, 3, np.float64)(images, labels, [(5, 7), (0, 3)], W, b, 0.5)
    idx = [5, 6, 0, 1, 2]
    X, y = images[idx] / 255.0, labels[idx]
    z = X @ W0 + b0
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(J, -np.log(p[range(5), y]).mean(), rtol=1e-12)
    assert acc == np.float32(np.mean(p.argmax(1) == y))
    G = (p - np.eye(3)[y]) / 5
    np.testing.assert_allclose(W, W0 - 0.5 * X.T @ G, rtol=1e-12)
    np.testing.assert_allclose(b, b0 - 0.5 * G.sum(0), rtol=1e-12)
