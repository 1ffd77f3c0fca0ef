"""Model files are byte for byte the same for the same model, and the command line's
``--save`` writes :func:`scratchlr.files.modelfile.of_run` of its run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.files import modelfile

ROOT = Path(__file__).resolve().parents[1]


def a_model() -> modelfile.ModelFile:
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.1, (784, 10)).astype(np.float32)
    b = rng.normal(0, 0.1, 10).astype(np.float32)
    return modelfile.ModelFile(W, b, train.Config(num_steps=5), 0.5, 0.25, 3)


def test_two_saves_of_one_model_are_the_same_bytes(tmp_path: Path) -> None:
    m = a_model()
    modelfile.save(tmp_path / "a.npz", m)
    time.sleep(2.1)  # a zip entry's time has a 2 s resolution
    modelfile.save(tmp_path / "b.npz", m)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = modelfile.load(tmp_path / "b.npz")
    assert np.array_equal(back.W, m.W) and np.array_equal(back.b, m.b)
    assert back.config == m.config and back.interrupted_at == 3
    assert (back.validation_accuracy, back.test_accuracy) == (0.5, 0.25)
    with np.load(tmp_path / "b.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["W", "b", "meta"]


def test_the_command_lines_save_is_of_run_of_its_run(mnist_data, mnist_dir, tmp_path) -> None:
    config = train.Config(num_steps=200, display_step=50)
    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    expected = modelfile.to_bytes(
        modelfile.of_run(result.W, result.b, config, mnist_data, result.test_accuracy, None)
    )
    path = tmp_path / "m.npz"
    flags = ["--num-steps", "200", "--display-step", "50", "--data-dir", str(mnist_dir)]
    subprocess.run(
        [sys.executable, "-m", "scratchlr", "--quiet", *flags, "--save", str(path)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert path.read_bytes() == expected
