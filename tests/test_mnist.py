"""The loader on the real MNIST files: verification, the seed's split, clear errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import damaged_copy

from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS

MNIST = DATASETS["mnist"]
FILES = MNIST.files


def test_seed_split(mnist_data: splits.Splits, mnist_dir: Path) -> None:
    arrays = splits.load_arrays(MNIST, mnist_dir)
    train = mnist_data.train
    val = mnist_data.validation
    test = mnist_data.test
    assert mnist_data.dataset is MNIST
    assert train.images.shape == (55000, 784) and val.images.shape == (5000, 784)
    assert test.images.shape == (10000, 784) and test.labels.shape == (10000,)
    assert train.images.dtype == np.uint8  # kept as bytes; scaled per batch
    # validation = first 5000 in file order, train = the last 55000
    assert np.array_equal(val.images, arrays["train_images"][:5000].reshape(5000, -1))
    assert np.array_equal(train.labels, arrays["train_labels"][5000:])
    assert set(np.unique(train.labels)) == set(range(10))
    assert train.labels[:5].tolist() == [7, 3, 4, 6, 1]  # image 5000.. of train-labels


def test_validation_size_changes_split(mnist_dir: Path) -> None:
    data = splits.load(MNIST, str(mnist_dir), validation_size=0)
    assert len(data.train.labels) == 60000 and len(data.validation.labels) == 0
    data = splits.load(MNIST, str(mnist_dir), validation_size=59999)
    last = splits.load_arrays(MNIST, mnist_dir)["train_labels"][-1]
    assert len(data.train.labels) == 1 and data.train.labels[0] == last


def test_uncompressed_files_verify(mnist_dir: Path, tmp_path: Path) -> None:
    d = damaged_copy(mnist_dir, tmp_path / "d", "test_labels", "uncompressed")
    assert splits.load(MNIST, str(d)).test.labels.shape == (10000,)


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing", "missing t10k-images-idx3-ubyte.gz"),
        ("truncated", "t10k-images-idx3-ubyte.gz: corrupt MNIST file"),
        ("corrupted", "MD5 of the decompressed data is"),
    ],
)
def test_damaged_data_dir_is_one_clear_error(
    mnist_dir: Path, tmp_path: Path, how: str, message: str
) -> None:
    d = damaged_copy(mnist_dir, tmp_path / "d", "test_images", how)
    with pytest.raises(splits.DataError, match=message) as info:
        splits.load(MNIST, str(d))
    assert "\n" not in str(info.value)


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRATCHLR_DATA", raising=False)
    assert splits.data_dir(MNIST) == Path("data/mnist")
    monkeypatch.setenv("SCRATCHLR_DATA", "/somewhere")
    assert splits.data_dir(MNIST) == Path("/somewhere")
    assert splits.data_dir(MNIST, "/explicit") == Path("/explicit")
    fashion = DATASETS["fashion-mnist"]  # each data set has its own folder and variable
    assert splits.data_dir(fashion) == Path("data/fashion-mnist")
    monkeypatch.setenv(fashion.env, "/clothes")
    assert splits.data_dir(fashion) == Path("/clothes")


def test_warm_load_memory_maps_the_npy_cache(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for f in FILES.values():
        (d / f.name).write_bytes(splits.find(mnist_dir, f).read_bytes())
    cold = splits.load_arrays(MNIST, d)
    assert all(splits.npy_path(d / f.name, f).is_file() for f in FILES.values())
    monkeypatch.setattr(splits, "read_idx", lambda *a: pytest.fail("warm load parsed an IDX file"))
    warm = splits.load_arrays(MNIST, d)
    assert all(isinstance(a, np.memmap) and np.array_equal(a, cold[k]) for k, a in warm.items())
    monkeypatch.undo()
    # damaged cache (truncated) -> rebuilt; stale cache (source touched) -> rebuilt
    npy = splits.npy_path(d / FILES["test_images"].name, FILES["test_images"])
    npy.write_bytes(npy.read_bytes()[:1000])
    src = d / FILES["test_labels"].name
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    calls = []
    real = splits.read_idx
    monkeypatch.setattr(splits, "read_idx", lambda *a: calls.append(a[0]) or real(*a))
    again = splits.load_arrays(MNIST, d)
    assert sorted(Path(p).name for p in calls) == sorted([src.name, FILES["test_images"].name])
    assert np.array_equal(again["test_images"], cold["test_images"])
    assert npy.stat().st_size > 7_840_000


def test_the_tests_find_mnist_where_the_cli_does(mnist_dir: Path, tmp_path: Path) -> None:
    """$SCRATCHLR_DATA first; without it ./data/mnist, but only when its files verify."""
    from conftest import find_real_mnist

    default = tmp_path / "data" / "mnist"
    assert find_real_mnist(None, default) is None  # nothing there
    shutil.copytree(mnist_dir, default)
    assert find_real_mnist(None, default) == default
    assert find_real_mnist(str(mnist_dir), tmp_path / "elsewhere") == mnist_dir
    # the variable wins, even when wrong
    assert find_real_mnist(str(tmp_path / "empty"), default) is None
    damaged = damaged_copy(mnist_dir, tmp_path / "bad", "test_labels", "corrupted")
    assert find_real_mnist(None, damaged) is None
