"""The fast step against the readable reference: the same numbers, bit for bit."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from scratchlr import model, train
from scratchlr.backend import numpy_backend
from scratchlr.config import IMPLEMENTATIONS
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS
from scratchlr.gradients import FastGradients, reference_gradients
from scratchlr.optim.sgd import sgd_update

ROOT = Path(__file__).resolve().parents[1]


class Example(NamedTuple):
    """uint8 images (N, 784), labels (N,) and a point W, b."""

    images: np.ndarray
    labels: np.ndarray
    W: np.ndarray
    b: np.ndarray


class After(NamedTuple):
    """One step's loss J and accuracy, and the parameters after its update."""

    J: np.ndarray
    acc: np.ndarray
    W: np.ndarray
    b: np.ndarray


def reference_step(ex: Example, ranges, W, b, lr: float, weight_decay: float = 0.0) -> After:
    """The reference gradients, then plain SGD building new arrays."""
    batch = reference_gradients(ex.images, ex.labels, ranges, W, b, weight_decay)
    W_new, _ = sgd_update(W, batch.grad_W, None, lr)
    b_new, _ = sgd_update(b, batch.grad_b, None, lr)
    return After(batch.loss, batch.accuracy, W_new, b_new)


def fast_step(gradients: FastGradients, ex: Example, ranges, W, b, lr: float) -> After:
    """The fast gradients, then plain SGD in place, as the loop runs them."""
    batch = gradients(ex.images, ex.labels, ranges, W, b)
    W, _ = sgd_update(W, batch.grad_W, None, lr, in_place=True)
    b, _ = sgd_update(b, batch.grad_b, None, lr, in_place=True)
    return After(batch.loss, batch.accuracy, W, b)


def both(data: splits.Splits, config: train.Config) -> tuple[train.Result, train.Result]:
    runs = [
        train.train(
            data,
            dataclasses.replace(config, implementation=s),
            numpy_backend(),
            emit=lambda line: None,
        )
        for s in ("fast", "reference")
    ]
    return runs[0], runs[1]


@pytest.mark.parametrize(
    "config",
    [
        train.Config(),  # the seed's run
        train.Config(
            learning_rate=0.5, batch_size=1000, num_steps=120, display_step=1
        ),  # wraps at 55000
        train.Config(
            num_steps=900, display_step=1, batching="epoch"
        ),  # partial batch at step 430, 860
        train.Config(batch_size=100, num_steps=200, display_step=7, dtype="float64"),
    ],
    ids=["seed", "repeat-wrap", "epoch-partial", "float64"],
)
def test_fast_step_is_bit_identical_to_reference(
    mnist_data: splits.Splits, config: train.Config
) -> None:
    fast, ref = both(mnist_data, config)
    assert fast.W.dtype == ref.W.dtype == np.dtype(config.dtype)
    assert np.array_equal(fast.W, ref.W) and np.array_equal(fast.b, ref.b)
    assert fast.lines == ref.lines  # every logged loss and accuracy, to the last digit
    assert fast.test_accuracy == ref.test_accuracy


def test_batch_larger_than_training_set(mnist_dir: Path) -> None:
    data = splits.load(
        DATASETS["mnist"], str(mnist_dir), validation_size=59990
    )  # 10 training examples, batch 128
    fast, ref = both(data, train.Config(num_steps=5, display_step=1))
    assert np.array_equal(fast.W, ref.W) and fast.lines == ref.lines


SEED_STEPS_IN_A_FRESH_PROCESS = """
import json, sys
import threadpoolctl
from scratchlr import train
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS
from scratchlr.backend import numpy_backend
data = splits.load(DATASETS["mnist"], sys.argv[1])
blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
out = {"blas": [(p["internal_api"], p["num_threads"]) for p in blas]}
for s in ("fast", "reference"):
    config = train.Config(num_steps=50, display_step=1, implementation=s)
    r = train.train(data, config, numpy_backend(), emit=lambda line: None)
    out[s] = {"W": r.W.tobytes().hex(), "b": r.b.tobytes().hex(), "lines": r.lines}
print(json.dumps(out))
"""


def seed_steps(mnist_dir: Path, threads: str) -> dict:
    """The seed's first 50 steps with either implementation, in a process with ``threads``
    OpenBLAS threads."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", SEED_STEPS_IN_A_FRESH_PROCESS, str(mnist_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout)


def test_seed_steps_with_two_blas_threads(mnist_dir: Path) -> None:
    """With two OpenBLAS threads the fast step still makes the reference's bits; against one
    thread, the run is the same to float32 rounding (BLAS may split the sums otherwise)."""
    one = seed_steps(mnist_dir, "1")
    two = seed_steps(mnist_dir, "2")
    if [api for api, _ in two["blas"]] != ["openblas"]:
        pytest.skip(f"NumPy's BLAS here is {two['blas']}, not one OpenBLAS (whose threads are set)")
    assert one["blas"] == [["openblas", 1]] and two["blas"] == [["openblas", 2]]
    for run in (one, two):
        assert run["fast"] == run["reference"]
    W1 = np.frombuffer(bytes.fromhex(one["fast"]["W"]), np.float32)
    W2 = np.frombuffer(bytes.fromhex(two["fast"]["W"]), np.float32)
    np.testing.assert_allclose(W2, W1, rtol=1e-4, atol=1e-6)
    lines = len(one["fast"]["lines"])
    assert len(two["fast"]["lines"]) == lines == 52  # initial loss, 50 steps, test


def problem(rng: np.random.Generator, n_images: int, dtype: type, scale: float = 0.05) -> Example:
    images = rng.integers(0, 256, (n_images, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, n_images)
    W = rng.normal(0, scale, (784, 10)).astype(dtype)
    b = rng.normal(0, scale, 10).astype(dtype)
    return Example(images, labels, W, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "ranges",
    [
        [(0, 1)],
        [(3, 5)],
        [(10, 40)],
        [(0, 128)],
        [(120, 200), (0, 48)],
        [(190, 200), (0, 100), (0, 18)],
    ],
    ids=lambda r: "+".join(f"{a}:{b}" for a, b in r),
)
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_one_step_equals_reference_step(
    dtype: type, ranges: list[tuple[int, int]], weight_decay: float
) -> None:
    """One step, on random parameters, for batches of 1 to 128 rows, whole or wrapping, with
    and without the penalty."""
    rng = np.random.default_rng(len(ranges) * 1000 + ranges[0][0])
    ex = problem(rng, 200, dtype)
    ref = reference_step(ex, ranges, ex.W, ex.b, 0.3, weight_decay)
    fast = FastGradients(np, 128, 784, 10, dtype, weight_decay)
    got = fast_step(fast, ex, ranges, ex.W.copy(), ex.b.copy(), 0.3)
    assert got.J.dtype == ref.J.dtype == dtype and got.acc.dtype == ref.acc.dtype == np.float32
    assert got.J.tobytes() == ref.J.tobytes() and got.acc.tobytes() == ref.acc.tobytes()
    assert got.W.tobytes() == ref.W.tobytes() and got.b.tobytes() == ref.b.tobytes()


def test_extreme_logits_stay_finite_and_equal() -> None:
    """Logits of order 1e4 overflow a naive exp; both steps stay finite and agree."""
    ex = problem(np.random.default_rng(5), 64, np.float32, scale=300.0)
    ranges = [(0, 64)]
    assert np.abs(model.logits(model.pixels(ex.images), ex.W, ex.b)).max() > 1e4
    ref = reference_step(ex, ranges, ex.W, ex.b, 0.1)
    fast = FastGradients(np, 64, 784, 10, np.float32)
    got = fast_step(fast, ex, ranges, ex.W.copy(), ex.b.copy(), 0.1)
    assert np.isfinite(got.J) and np.isfinite(got.W).all() and np.isfinite(got.b).all()
    assert got.J.tobytes() == ref.J.tobytes()
    assert np.array_equal(got.W, ref.W) and np.array_equal(got.b, ref.b)


def test_fast_step_one_step_by_hand() -> None:
    """On a tiny problem, one fast step equals the textbook update written out here."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, 7)
    W = rng.normal(size=(6, 3))
    b = np.zeros(3)
    W0 = W.copy()
    b0 = b.copy()
    fast = FastGradients(np, 5, 6, 3, np.float64)
    got = fast_step(fast, Example(images, labels, W, b), [(5, 7), (0, 3)], W, b, 0.5)
    assert got.W is W and got.b is b  # updated in place
    idx = [5, 6, 0, 1, 2]
    X = images[idx] / 255.0
    y = labels[idx]
    z = X @ W0 + b0
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(got.J, -np.log(p[range(5), y]).mean(), rtol=1e-12)
    assert got.acc == np.float32(np.mean(p.argmax(1) == y))
    G = (p - np.eye(3)[y]) / 5
    np.testing.assert_allclose(W, W0 - 0.5 * X.T @ G, rtol=1e-12)
    np.testing.assert_allclose(b, b0 - 0.5 * G.sum(0), rtol=1e-12)


def test_buffers_are_reused_across_batch_sizes() -> None:
    """A full batch after a smaller one (and the reverse) still equals the reference: no
    stale rows of an earlier batch leak into a later one."""
    ex = problem(np.random.default_rng(9), 300, np.float32)
    fast = FastGradients(np, 128, 784, 10, np.float32)
    ref = After(None, None, ex.W.copy(), ex.b.copy())
    got = After(None, None, ex.W.copy(), ex.b.copy())
    for ranges in ([(0, 128)], [(128, 131)], [(131, 259)], [(290, 300), (0, 20)], [(20, 148)]):
        ref = reference_step(ex, ranges, ref.W, ref.b, 0.2)
        got = fast_step(fast, ex, ranges, got.W, got.b, 0.2)
        assert got.J.tobytes() == ref.J.tobytes() and got.acc == ref.acc
        assert np.array_equal(got.W, ref.W) and np.array_equal(got.b, ref.b)


def test_a_batch_larger_than_the_step_is_refused() -> None:
    ex = problem(np.random.default_rng(2), 40, np.float32)
    with pytest.raises(ValueError, match="batch of 33 rows does not fit a step made for 32"):
        FastGradients(np, 32, 784, 10, np.float32)(ex.images, ex.labels, [(0, 33)], ex.W, ex.b)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("bad", [10, -1])
def test_labels_outside_the_classes_are_refused_by_either_implementation(
    mnist_data: splits.Splits, implementation: str, bad: int
) -> None:
    """The fast step does not check labels per batch; the loop checks them once, before training."""
    labels = mnist_data.train.labels.copy()
    labels[54_999] = bad
    data = dataclasses.replace(mnist_data, train=splits.Split(mnist_data.train.images, labels))
    with pytest.raises(ValueError, match=f"label {bad} is outside the valid range"):
        train.train(
            data,
            train.Config(num_steps=2, implementation=implementation),
            numpy_backend(),
            emit=lambda line: None,
        )
