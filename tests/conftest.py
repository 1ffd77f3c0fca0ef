"""Shared fixtures. Real MNIST is found where the CLI finds it: ``$SCRATCHLR_DATA`` (which
``.ci/run`` points at ``../shared/mnist``), else ``./data/mnist`` when it holds the four
verified files (``python -m scratchlr`` fetches them there). Tests needing it skip where it
is absent, but fail under CI."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

# One OpenBLAS thread, as `python -m scratchlr` sets (set before NumPy loads OpenBLAS);
# test_fast.py runs the seed with two threads too, in a process of its own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

from scratchlr import train
from scratchlr.backend import BackendError, cupy_backend, numpy_backend
from scratchlr.dataset import splits
from scratchlr.dataset.records import DATASETS
from scratchlr.dataset.splits import Split
from scratchlr.files import modelfile
from scratchlr.serve.server import DemoServer

MNIST = DATASETS["mnist"]
# Read the settings once, then clear them (and every data set's) so no test (or CLI it
# starts) writes there.
REAL_MNIST = os.environ.pop(MNIST.env, None)
for record in DATASETS.values():
    os.environ.pop(record.env, None)
os.environ.pop("SCRATCHLR_MIRROR", None)
os.environ["SCRATCHLR_BUILTIN_MIRRORS"] = ""  # no test may reach the public mirrors
DATA = Path(__file__).parent / "data"
DEFAULT_MNIST = Path(MNIST.folder).resolve()  # ./data/mnist, from where pytest was started


def find_real_mnist(setting: str | None, default: Path) -> Path | None:
    """The folder of the real files: ``setting`` (the variable's value) if it holds them, else
    ``default`` if it holds them verified, else None."""
    if setting:
        return (
            Path(setting)
            if all(splits.find(Path(setting), f) for f in MNIST.files.values())
            else None
        )
    try:
        splits.load_arrays(MNIST, default)  # verified (by their MD5s, or an earlier check's stamps)
    except splits.DataError:
        return None
    return default


def real_mnist_dir() -> Path:
    """The read-only source of the real files, or skip (fail under CI) if absent."""
    found = find_real_mnist(REAL_MNIST, DEFAULT_MNIST)
    if found is not None:
        return found
    reason = (
        f"real MNIST not found: set {MNIST.env} to a folder with the four files, or fetch them "
        "into ./data/mnist with 'python -m scratchlr download'"
    )
    if os.environ.get("CI"):
        pytest.fail(reason + " (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mnist_source() -> Path:
    """The real MNIST folder. No test writes there (finding ./data/mnist verifies it, which
    writes its stamps and caches as the CLI would)."""
    return real_mnist_dir()


@pytest.fixture(scope="session")
def mnist_dir(mnist_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the real MNIST folder (tests and the CLI may write beside it)."""
    target = tmp_path_factory.mktemp("mnist")
    for f in MNIST.files.values():
        shutil.copy(splits.find(mnist_source, f), target)
    return target


@pytest.fixture(scope="session")
def mnist_data(mnist_dir: Path) -> splits.Splits:
    return splits.load(MNIST, str(mnist_dir))


@pytest.fixture(scope="session")
def saved(mnist_data: splits.Splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model file of 500 seed steps on the real MNIST, for the commands that read one."""
    config = train.Config(num_steps=500)
    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    modelfile.save(path, modelfile.ModelFile(result.W, result.b, config))
    return path


@pytest.fixture(scope="session")
def golden_lines() -> list[str]:
    return (DATA / "tf_seed_default_run.txt").read_text().splitlines()


@pytest.fixture(scope="session")
def tf_cases() -> dict[str, np.ndarray]:
    with np.load(DATA / "tf_xent_cases.npz") as f:
        return dict(f)


def gpu_available() -> bool:
    try:
        cupy_backend()
        return True
    except BackendError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("gpu") for item in items) and not gpu_available():
        skip = pytest.mark.skip(reason="no usable CUDA GPU / CuPy on this machine")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def synthetic() -> DemoServer:
    """A server of a random model and five random test images, on an ephemeral port, with a
    1 s connection timeout: no MNIST needed."""
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.05, (784, 10)).astype(np.float32)
    b = rng.normal(0, 0.1, 10).astype(np.float32)
    test = Split(rng.integers(0, 256, (5, 784)).astype(np.uint8), np.arange(5))
    server = DemoServer(("127.0.0.1", 0), W, b, test, quiet=True, timeout_s=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
