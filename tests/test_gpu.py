"""The CuPy path on a real GPU (skipped where none is usable)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchlr import model, train
from scratchlr.backend import numpy_backend, select
from scratchlr.config import IMPLEMENTATIONS

pytestmark = pytest.mark.gpu


def test_gpu_math_matches_numpy(tf_cases: dict) -> None:
    cp = select("gpu").xp
    for key in ("case00_float32", "case02_float32", "case12_float64"):
        z = cp.asarray(tf_cases[f"{key}_logits"])
        y = cp.asarray(tf_cases[f"{key}_labels"])
        loss = cp.asnumpy(model.cross_entropy(z, y))
        G = cp.asnumpy(model.grad_logits(z, y))
        np.testing.assert_allclose(loss, tf_cases[f"{key}_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(G, tf_cases[f"{key}_dlogits"], rtol=1e-5, atol=1e-8)


def test_gpu_default_run_matches_tensorflow(mnist_data, golden_lines: list[str]) -> None:
    from test_train import assert_same_as_tensorflow

    gpu = train.train(mnist_data, train.Config(), select("gpu"), emit=lambda line: None)
    assert_same_as_tensorflow(gpu.lines, golden_lines)
    cpu = train.train(mnist_data, train.Config(), numpy_backend(), emit=lambda line: None)
    np.testing.assert_allclose(gpu.W, cpu.W, atol=1e-5)


def test_gpu_fast_step_is_bit_identical_to_reference(mnist_data) -> None:
    """On CuPy too, the fast step makes the reference's calls on the same layouts."""
    gpu = select("gpu")
    runs = [
        train.train(
            mnist_data,
            train.Config(num_steps=300, display_step=1, implementation=s),
            gpu,
            emit=lambda line: None,
        )
        for s in IMPLEMENTATIONS
    ]
    assert np.array_equal(runs[0].W, runs[1].W) and np.array_equal(runs[0].b, runs[1].b)
    assert runs[0].lines == runs[1].lines


def test_gpu_shuffled_momentum_average_run_agrees_with_cpu(mnist_data) -> None:
    """The same seed gives the same batches on CuPy; the run agrees with NumPy's to float32
    rounding (the BLAS differ, so the bits may not)."""
    config = train.Config(
        epochs=1,
        shuffle=True,
        seed=1,
        momentum=0.9,
        learning_rate=0.4,
        average=200,
        display_step=43,
        validate=True,
    )
    gpu = train.train(mnist_data, config, select("gpu"), emit=lambda line: None)
    cpu = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    np.testing.assert_allclose(gpu.W, cpu.W, atol=1e-4)
    np.testing.assert_allclose(
        [r.loss for r in gpu.history], [r.loss for r in cpu.history], rtol=1e-4
    )
    assert abs(gpu.test_accuracy - cpu.test_accuracy) <= 2e-4
