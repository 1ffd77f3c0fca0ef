"""``scratchlr exercise``: the skeleton is the model's own signatures; the check passes the
engine's code, a learner's own correct code, and names what is wrong in broken versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from scratchlr.exercise import checks, skeleton

ROOT = Path(__file__).resolve().parents[1]
MODEL = (ROOT / "scratchlr" / "model.py").read_text()

LEARNER = """
import numpy as np

def pixels(images_u8, dtype="float32"):
    dt = np.dtype(dtype)
    return images_u8.astype(dt) * dt.type(1 / 255)

def logits(X, W, b):
    return X @ W + b

def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def cross_entropy(z, y):
    s = z - z.max(axis=1, keepdims=True)
    return np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]

def loss(z, y):
    return cross_entropy(z, y).mean()

def grad_logits(z, y):
    p = softmax(z)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)

def grad_W(X, G):
    return X.T @ G

def grad_b(G):
    return G.sum(axis=0)

def accuracy(z, y):
    return np.float32((softmax(z).argmax(axis=1) == y).mean())
"""


class Mistake(NamedTuple):
    """A learner's classic mistake, made in a copy of model.py: ``old`` replaced by ``new``
    fails the function ``name`` with a message that says ``words``."""

    old: str
    new: str
    name: str
    words: str


BROKEN = {
    "no max-shift": Mistake(
        "    e = xp.exp(shifted_logits(z))\n",
        "    e = xp.exp(z)\n",
        "softmax",
        "subtract each row's max",
    ),
    "a forgotten 1/N": Mistake(
        "    return (softmax(z) - onehot(y, z.shape[1], z.dtype)) * z.dtype.type(1.0 / n)\n",
        "    return softmax(z) - onehot(y, z.shape[1], z.dtype)\n",
        "grad_logits",
        "1/N is missing",
    ),
    "a transposed gradient": Mistake(
        "    return X.T @ G\n",
        "    return G.T @ X\n",
        "grad_W",
        "transposed",
    ),
    "a bias gradient averaged": Mistake(
        "    return G.sum(axis=0)\n",
        "    return G.mean(axis=0)\n",
        "grad_b",
        "N times too small",
    ),
    "a bias gradient summed over classes": Mistake(
        "    return G.sum(axis=0)\n",
        "    return G.sum(axis=1)\n",
        "grad_b",
        "expected (5,)",
    ),
    "a softmax without logs": Mistake(
        "    return logsumexp_shifted(s)[:, 0] - s[xp.arange(z.shape[0]), y]\n",
        "    return -xp.log(softmax(z)[xp.arange(z.shape[0]), y])\n",
        "cross_entropy",
        "nan or inf",
    ),
}


def exercise(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scratchlr", "exercise", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


def lines_of(out: str) -> dict[str, str]:
    """The check's lines, by function name."""
    return {
        line.split(":")[0][2:]: line
        for line in out.splitlines()
        if line[:2] in ("\u2713 ", "\u2717 ", "- ")
    }


def test_init_writes_the_models_signatures_and_docstrings(tmp_path: Path) -> None:
    proc = exercise("init", str(tmp_path / "ex"))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "ex" / "my_model.py").read_text()
    compile(text, "my_model.py", "exec")
    for name in skeleton.FUNCTIONS:
        assert f"\ndef {name}(" in text and f'raise NotImplementedError("write {name}")' in text
    assert "G = dJ/dz = (p - Y) * (1/N)" in text  # the docstrings,
    assert "xp." not in text  # no engine code
    assert "exercise check my_model.py" in (tmp_path / "ex" / "README.md").read_text()
    again = exercise("init", str(tmp_path / "ex"))  # nothing is overwritten
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "exists already" in again.stderr
    assert (tmp_path / "ex" / "my_model.py").read_text() == text


def test_the_untouched_skeleton_is_all_not_written(tmp_path: Path) -> None:
    exercise("init", str(tmp_path))
    proc = exercise("check", str(tmp_path / "my_model.py"), "--data-dir", str(tmp_path / "none"))
    assert proc.returncode == 1, proc.stderr
    found = lines_of(proc.stdout)
    assert set(skeleton.FUNCTIONS) <= set(found)
    assert all(
        found[name].startswith("- ") and "not written yet" in found[name]
        for name in skeleton.FUNCTIONS
    )
    assert "0 of 10 pass, 0 fail, 10 not written yet" in proc.stdout
    assert "MNIST stage is skipped" in proc.stdout


@pytest.mark.parametrize("source", ["model.py", "a learner's own"])
def test_a_correct_solution_passes(mnist_dir: Path, tmp_path: Path, source: str) -> None:
    (tmp_path / "mine.py").write_text(MODEL if source == "model.py" else LEARNER)
    proc = exercise("check", str(tmp_path / "mine.py"), "--data-dir", str(mnist_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 of 10 pass" in proc.stdout
    assert "MNIST" not in proc.stdout  # the MNIST stage ran, and passed
    assert "Warning" not in proc.stderr


@pytest.mark.parametrize("mistake", BROKEN)
def test_a_broken_version_is_named_with_a_hint(tmp_path: Path, mistake: str) -> None:
    broken = BROKEN[mistake]
    assert broken.old in MODEL
    (tmp_path / "mine.py").write_text(MODEL.replace(broken.old, broken.new))
    proc = exercise("check", str(tmp_path / "mine.py"), "--data-dir", str(tmp_path / "none"))
    assert proc.returncode == 1
    line = lines_of(proc.stdout)[broken.name]
    assert line.startswith("\u2717 ") and broken.words in line and "hint:" in line, line
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr


def test_a_learners_file_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def softmax(z):\n    return z +\n")
    proc = exercise("check", str(tmp_path / "bad.py"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "SyntaxError" in proc.stderr
    assert "line 2" in proc.stderr
    proc = exercise("check", str(tmp_path / "nothing.py"))
    assert proc.returncode == 1 and "no such file" in proc.stderr


def test_a_missing_function_and_one_that_raises(tmp_path: Path) -> None:
    (tmp_path / "part.py").write_text(
        LEARNER.replace("def accuracy(z, y):", "def accuracy_(z, y):").replace(
            "    return X @ W + b", "    return X @ W[:, 0] + b"
        )
    )
    module = checks.load(tmp_path / "part.py")
    verdicts = {v.name: v for v in checks.check(module)}
    assert verdicts["accuracy"].status == "fail" and "missing" in verdicts["accuracy"].message
    assert verdicts["logits"].status == "fail" and "raised ValueError" in verdicts["logits"].message
    assert verdicts["softmax"].status == "pass" and verdicts["gradient check"].status == "pass"


VARIANTS = """
import numpy as np

def pixels(u, dtype="float32"):
    return u.astype(dtype) * np.dtype(dtype).type(1 / 255)

def logits(X, W, b):
    return (X.astype(np.float64) @ W + b).astype(X.dtype)  # more exact than float32's own product

def softmax(z):
    m = z.max(axis=1, keepdims=True)
    return np.exp(z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))))

def cross_entropy(z, y):
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[np.arange(len(y)), y]

def loss(z, y):
    return cross_entropy(z, y).mean()

def grad_logits(z, y):
    return (softmax(z) - np.eye(z.shape[1])[y]) / len(y)  # a float64 one-hot

def grad_W(X, G):
    return np.einsum("nd,nc->dc", X, G)

def grad_b(G):
    return G.sum(axis=0)

def accuracy(z, y):
    return np.float32((softmax(z).argmax(axis=1) == y).mean())
"""


def test_correct_code_written_otherwise_passes(mnist_dir: Path, tmp_path: Path) -> None:
    """Other orders of operations, other stable forms, float64 along the way: all within
    rounding."""
    (tmp_path / "mine.py").write_text(VARIANTS)
    proc = exercise("check", str(tmp_path / "mine.py"), "--data-dir", str(mnist_dir))
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize(
    "old, new, name",
    [
        # the logits' argmax, not the probabilities'
        ("softmax(z).argmax(axis=1)", "z.argmax(axis=1)", "accuracy"),
        # the dtype asked for, ignored
        ("    dt = np.dtype(dtype)\n", "    dt = np.dtype('float32')\n", "pixels"),
        # the log-sum-exp over the examples, not the classes
        (
            "    return np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]",
            "    return np.log(np.exp(s).sum(axis=0)).sum() - s[np.arange(len(y)), y]",
            "cross_entropy",
        ),
    ],
)
def test_subtler_mistakes_are_caught(tmp_path: Path, old: str, new: str, name: str) -> None:
    assert old in LEARNER
    (tmp_path / "mine.py").write_text(LEARNER.replace(old, new))
    module = checks.load(tmp_path / "mine.py")
    verdicts = {v.name: v for v in checks.check(module)}
    assert verdicts[name].status == "fail" and "hint:" in verdicts[name].message, verdicts[name]
    assert verdicts["logits" if name != "logits" else "softmax"].status == "pass"
