"""The fast step against the readable reference: the same numbers, bit for bit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchlr import fast as fast_module
from scratchlr import mnist, train
from scratchlr.backend import numpy_backend
from scratchlr.fast import FastStep
from scratchlr.helper import unusable
from scratchlr.probes import pixel_halves, pixel_split, transposed_gradient
from scratchlr.tally import LoggedSums


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
    if config == train.Config():  # the seed's run has a helper, where one can run
        assert (fast.helped is not None) == (unusable(np) is None)
    assert fast.W.dtype == ref.W.dtype == np.dtype(config.dtype)
    assert np.array_equal(fast.W, ref.W) and np.array_equal(fast.b, ref.b)
    assert fast.lines == ref.lines  # every logged loss and accuracy, to the last digit
    assert fast.test_accuracy == ref.test_accuracy


SEED_RUN_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
from scratchlr import mnist, train
from scratchlr.backend import numpy_backend
data = mnist.load(sys.argv[1])
runs = [train.train(data, train.Config(step=s), numpy_backend(), emit=lambda line: None)
        for s in ("fast", "reference")]
same = np.array_equal(runs[0].W, runs[1].W) and runs[0].lines == runs[1].lines
print("identical" if same else "DIFFERENT")
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_seed_run_is_bit_identical_with_either_blas_thread_count(mnist_dir: Path, threads: str) -> None:
    """OpenBLAS blocks X @ W differently with one thread (the CLI's default) and with two."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads)
    out = subprocess.run([sys.executable, "-c", SEED_RUN_IN_A_FRESH_PROCESS, str(mnist_dir)],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "identical"


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
    step = FastStep(np, 5, 6, 3, np.float64)
    W, b = step(images, labels, [(5, 7), (0, 3)], W, b, 0.5)
    J, acc = step.logged()
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 88, 128, 1000])
def test_pixel_split_holds_beyond_its_probe(n: int, dtype: type) -> None:
    """Where the probe reports a split, X @ W equals the two partial sums, taken transposed,
    on other data too. (None, this BLAS summing the shape in one pass, leaves the step on
    plain X @ W.)"""
    k = pixel_split(np, np.empty((n, 784), dtype), np.empty((784, 10), dtype))
    rng = np.random.default_rng(n)
    for _ in range(3 if k is not None else 0):
        X = (rng.integers(0, 256, (n, 784)) * dtype(1 / 255)).astype(dtype)
        W = rng.normal(0, 0.05, (784, 10)).astype(dtype)
        assert 0 < k < 784
        assert np.array_equal(W[:k].T @ X[:, :k].T + W[k:].T @ X[:, k:].T, (X @ W).T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 88, 128, 1000])
def test_transposed_gradient_holds_beyond_its_probe(n: int, dtype: type) -> None:
    """Where the probe returns ones, G kept transposed gives the reference's dJ/dW and dJ/db
    on real gradients too, in the blocks of pixels the step uses (split at pixel_split's k).
    (None leaves the step on a C-ordered G and G.sum.)"""
    k = pixel_split(np, np.empty((n, 784), dtype), np.empty((784, 10), dtype))
    ones = transposed_gradient(np, np.empty((n, 784), dtype), np.empty((10, n), dtype), k)
    rng = np.random.default_rng(n)
    for _ in range(3 if ones is not None else 0):
        X = (rng.integers(0, 256, (n, 784)) * dtype(1 / 255)).astype(dtype)
        z = rng.normal(0, 3, (n, 10)).astype(dtype)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), rng.integers(0, 10, n)] -= 1
        G = p * dtype(1 / n)
        GT = np.ascontiguousarray(G.T)
        dW = np.concatenate([X[:, half].T @ GT.T for half in pixel_halves(784, k)])
        assert np.array_equal(dW, X.T @ G)
        assert np.array_equal((ones @ GT.T)[0], G.sum(axis=0))


def test_full_batches_are_probed_when_the_step_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes' cost falls outside a timed training loop; only another size probes later."""
    step = FastStep(np, 8, 784, 10, np.float32)

    def no_probe(*args: object) -> None:
        raise AssertionError("probed inside the training loop")

    monkeypatch.setattr(fast_module, "pixel_split", no_probe)
    monkeypatch.setattr(fast_module, "transposed_gradient", no_probe)
    images = np.random.default_rng(0).integers(0, 256, (20, 784), dtype=np.uint8)
    labels = np.arange(20) % 10
    W, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
    W, b = step(images, labels, [(0, 8)], W, b, 0.1)
    W, b = step(images, labels, [(16, 20), (0, 4)], W, b, 0.1)  # wraps: still 8 rows
    with pytest.raises(AssertionError, match="probed"):
        step(images, labels, [(0, 5)], W, b, 0.1)  # a partial batch is probed at its first step


def test_add_each_adds_one_batch_at_a_time() -> None:
    """LoggedSums.add_each gives the seed's running sums, not a (pairwise) sum of the batches."""
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        J, acc = rng.gamma(2.0, size=300).astype(dtype), rng.random(300).astype(np.float32)
        one, each = LoggedSums(np, dtype), LoggedSums(np, dtype)
        for k in range(300):
            one.add(J[k], acc[k])
        each.add_each(J[:120], acc[:120])
        each.add_each(J[120:], acc[120:])
        (loss1, acc1), (loss2, acc2) = one.take(), each.take()
        assert loss2.dtype == dtype and acc2.dtype == np.float32
        assert loss1.tobytes() == loss2.tobytes() and acc1.tobytes() == acc2.tobytes()
        assert J.sum() != loss1 or acc.sum() != acc1  # these values tell the two orders apart


def test_parameters_it_did_not_hand_out_are_taken_in() -> None:
    """The step returns views of its own [W; b]; given other arrays, it starts from those."""
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (40, 784), dtype=np.uint8), rng.integers(0, 10, 40)
    W0, b0 = rng.normal(0, 0.05, (784, 10)).astype(np.float32), rng.normal(0, 0.1, 10).astype(np.float32)
    step = FastStep(np, 16, 784, 10, np.float32)
    W, b = step(images, labels, [(0, 16)], np.zeros_like(W0), np.zeros_like(b0), 0.1)
    W_own = W.copy()
    W, b = step(images, labels, [(16, 32)], W, b0.copy(), 0.1)  # its own W, a b from elsewhere
    _, _, W_ref, b_ref = train.reference_step(images, labels, [(16, 32)], W_own, b0, 0.1)
    assert np.array_equal(W, W_ref) and np.array_equal(b, b_ref)
    W, b = step(images, labels, [(16, 32)], W0.copy(), b0.copy(), 0.1)  # both from elsewhere
    _, _, W_ref, b_ref = train.reference_step(images, labels, [(16, 32)], W0, b0, 0.1)
    assert np.array_equal(W, W_ref) and np.array_equal(b, b_ref)
