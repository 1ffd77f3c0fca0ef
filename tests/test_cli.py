"""The command line as a user meets it: one-line errors, exit codes, the seed's output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import gpu_available
from helpers import damaged_copy

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "scratchlr", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, status: int, *words: str) -> None:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchlr"), proc.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("args, word", [
    (["--learning-rate", "0"], "--learning-rate"),
    (["--learning-rate", "-0.1"], "--learning-rate"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--learning-rate", "abc"], "--learning-rate"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-5"], "--batch-size"),
    (["--batch-size", "1.5"], "--batch-size"),
    (["--num-steps", "0"], "--num-steps"),
    (["--display-step", "-1"], "--display-step"),
    (["--validation-size", "60000"], "--validation-size"),
    (["--device", "tpu"], "--device"),
    (["--dtype", "float16"], "--dtype"),
    (["--batching", "shuffle"], "--batching"),
    (["--bogus"], "--bogus"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], word: str, tmp_path: Path) -> None:
    assert_one_line_error(run(*args, "--data-dir", str(tmp_path)), 2, word)


def test_device_gpu_without_gpu_is_usage_error(tmp_path: Path) -> None:
    if gpu_available():
        pytest.skip("this machine has a usable GPU")
    assert_one_line_error(run("--device", "gpu", "--data-dir", str(tmp_path)), 2, "--device gpu")


def test_missing_data_says_where_it_looked(tmp_path: Path) -> None:
    proc = run("--data-dir", str(tmp_path / "empty"))
    assert_one_line_error(proc, 1, str(tmp_path / "empty"), "train-images-idx3-ubyte.gz", "--data-dir")
    assert proc.stdout == ""


@pytest.mark.parametrize("how", ["truncated", "corrupted", "missing"])
def test_damaged_data_is_one_line_error(mnist_dir: Path, tmp_path: Path, how: str) -> None:
    d = damaged_copy(mnist_dir, tmp_path / "d", "train_labels", how)
    assert_one_line_error(run("--data-dir", str(d)), 1, "train-labels-idx1-ubyte.gz")


def test_default_run_prints_exactly_the_seed_lines(mnist_dir: Path, golden_lines: list[str]) -> None:
    proc = run("--data-dir", str(mnist_dir), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [re.sub(r"\d", "#", x) for x in lines] == [re.sub(r"\d", "#", x) for x in golden_lines]
    assert lines[-1] == golden_lines[-1] and [x[-6:] for x in lines[2:-1]] == [x[-6:] for x in golden_lines[2:-1]]
    summary = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"scratchlr: load \d+\.\d{3} s, train \d+\.\d{3} s \(\d+\.\d us/step\), "
                        r"test \d+\.\d{3} s, backend numpy \(cpu\)",
                        summary), summary


def test_data_dir_from_environment(mnist_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCRATCHLR_DATA": str(mnist_dir)}
    proc = subprocess.run([sys.executable, "-m", "scratchlr", "--num-steps", "1"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("Initial loss= 2.302585125\n"), proc.stderr


def test_gradcheck_command_with_mnist(mnist_dir: Path) -> None:
    proc = run("gradcheck", "--data-dir", str(mnist_dir))
    assert proc.returncode == 0, proc.stderr
    assert "MNIST first 32 examples" in proc.stdout and "gradcheck OK" in proc.stdout
    worst = float(re.search(r"max relative error (\S+) \(tolerance", proc.stdout).group(1))
    assert 0 < worst <= 1e-7


def test_gradcheck_without_data_checks_random_problem(tmp_path: Path) -> None:
    proc = run("gradcheck", "--data-dir", str(tmp_path))
    assert proc.returncode == 0 and "random" in proc.stdout and "MNIST" not in proc.stdout
    assert "checking the random problem only" in proc.stderr


def test_console_script() -> None:
    exe = shutil.which("scratchlr")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("the 'scratchlr' console script is not installed")
        pytest.skip("package not installed (pip install -e .)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("scratchlr ")
