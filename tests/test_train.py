"""The training loop: batch order, parity with TensorFlow's run, the device path."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scratchlr import model, train
from scratchlr.backend import Backend, numpy_backend
from scratchlr.dataset import batches
from scratchlr.optim.sgd import descend

NUMBER = re.compile(r"\d+\.\d+")


def concat(ranges: list[tuple[int, int]]) -> list[int]:
    return [i for lo, hi in ranges for i in range(lo, hi)]


@pytest.mark.parametrize("n, batch", [(10, 4), (3, 7), (12, 4), (1, 1)])
def test_repeat_batches_follow_dataset_repeat_batch(n: int, batch: int) -> None:
    steps = 9
    got = [concat(r) for r in batches.batch_ranges(n, batch, steps, "repeat")]
    stream = np.arange(steps * batch) % n  # Dataset.repeat() flattened, then .batch()
    assert got == [stream[k * batch : (k + 1) * batch].tolist() for k in range(steps)]
    assert all(len(b) == batch for b in got)  # never partial


def test_epoch_batches_keep_last_partial_batch() -> None:
    got = [concat(r) for r in batches.batch_ranges(10, 4, 7, "epoch")]
    assert got == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
        [0, 1, 2, 3],
    ]


def test_take_is_a_view_for_one_range_and_concatenates_wraps() -> None:
    a = np.arange(20).reshape(10, 2)
    assert np.shares_memory(batches.take(a, [(2, 5)]), a)
    assert batches.take(a, [(8, 10), (0, 2)])[:, 0].tolist() == [16, 18, 0, 2]


@pytest.mark.parametrize(
    "field, value",
    [
        ("learning_rate", 0),
        ("batch_size", -1),
        ("num_steps", 0),
        ("display_step", 0),
        ("batching", "shuffle"),
        ("dtype", "int8"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        train.Config(**{field: value})


def quiet(*args, **kwargs) -> train.Result:
    return train.train(*args, emit=lambda line: None, **kwargs)


def assert_same_as_tensorflow(lines: list[str], golden: list[str]) -> None:
    assert len(lines) == len(golden)
    for ours, tf in zip(lines, golden):
        assert NUMBER.sub("#", ours) == NUMBER.sub("#", tf)  # same text around the numbers
        for a, b in zip(NUMBER.findall(ours), NUMBER.findall(tf)):
            if len(b.split(".")[1]) == 4:
                assert a == b, (ours, tf)  # accuracies: identical digits
            else:
                assert abs(float(a) - float(b)) <= 1e-5, (ours, tf)  # losses


def test_default_run_matches_tensorflow(mnist_data, golden_lines: list[str]) -> None:
    result = quiet(mnist_data, train.Config(), numpy_backend())
    assert_same_as_tensorflow(result.lines, golden_lines)
    assert result.W.dtype == np.float32 and result.W.shape == (784, 10)


def manual_run(data, config: train.Config) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The loop re-done with plain index arrays, for comparison."""
    X_all = data.train.images
    y_all = data.train.labels
    n = len(y_all)
    B = config.batch_size
    W = np.zeros((784, 10), config.dtype)
    b = np.zeros(10, config.dtype)
    losses = []
    pos = 0
    for _ in range(config.total_steps(n)):
        if config.batches == "repeat":
            idx = np.arange(pos, pos + B) % n
            pos = (pos + B) % n
        else:
            idx = np.arange(pos, min(pos + B, n))
            pos = 0 if pos + B >= n else pos + B
        X = model.pixels(X_all[idx], config.dtype)
        y = y_all[idx]
        z = model.logits(X, W, b)
        losses.append(float(model.loss(z, y)))
        G = model.grad_logits(z, y)
        lr = config.learning_rate
        W = descend(W, model.grad_W(X, G), lr)
        b = descend(b, model.grad_b(G), lr)
    return W, b, losses


@pytest.mark.parametrize(
    "config",
    [
        train.Config(
            learning_rate=0.5, batch_size=1000, num_steps=60, display_step=1
        ),  # wraps at 55000
        train.Config(
            batch_size=128, num_steps=432, display_step=1, batching="epoch"
        ),  # partial batch 430
        train.Config(batch_size=100, num_steps=20, display_step=1, dtype="float64"),
    ],
    ids=["repeat-wrap", "epoch-partial", "float64"],
)
def test_loop_equals_manual_loop(mnist_data, config: train.Config) -> None:
    result = quiet(mnist_data, config, numpy_backend())
    W, b, losses = manual_run(mnist_data, config)
    assert result.W.dtype == np.dtype(config.dtype)
    assert np.array_equal(result.W, W) and np.array_equal(result.b, b)
    logged = [float(NUMBER.findall(line)[0]) for line in result.lines if line.startswith("Step")]
    assert logged == [float(f"{x:.9f}") for x in losses]


def test_display_step_that_does_not_divide_num_steps(mnist_data) -> None:
    lines = quiet(mnist_data, train.Config(num_steps=25, display_step=10), numpy_backend()).lines
    assert [line.split()[1] for line in lines[1:-1]] == ["0001", "0010", "0020"]
    assert lines[-1].startswith("Testset Accuracy: ")


def test_fake_gpu_backend_runs_the_device_path(mnist_data, golden_lines: list[str]) -> None:
    """NumPy behind the shim's GPU interface: the whole run, counting host transfers."""
    transfers = []

    def to_host(a):
        transfers.append(np.shape(a))
        return np.asarray(a)

    fake = Backend(np, "fake-cupy", "gpu", "Fake GPU", to_host)
    result = quiet(mnist_data, train.Config(), fake)
    assert_same_as_tensorflow(result.lines, golden_lines)
    # two reads (loss and accuracy) per logged step line, two per history record (made at the
    # same steps), then W and b: never per step
    steps_logged = sum(line.startswith("Step") for line in result.lines)
    assert len(result.history) == steps_logged == 11
    assert len(transfers) == 2 * steps_logged + 2 * len(result.history) + 2
    assert transfers[-2:] == [(784, 10), (10,)]
