"""docs/walkthrough.ipynb runs headless against the real MNIST, so it cannot go stale."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"
RECIPE = (  # the notebook's converged run, as a command
    "--epochs 3 --shuffle --momentum 0.9 --learning-rate 0.5 --average 430 --validate "
    "--display-step 430"
).split()


def test_notebook_is_committed_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.parametrize(
    "setting", [None, "data/mnist"], ids=["unset", "the README's relative path"]
)
def test_notebook_executes(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    """In a checkout's layout, run from docs/ as Jupyter runs it: MNIST is found in data/mnist
    at the top, with SCRATCHLR_DATA unset or set to the README's relative path."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib", reason="the notebook draws with the [plot] extra")
    shutil.copytree(mnist_dir, tmp_path / "data" / "mnist")
    (tmp_path / "docs").mkdir()
    if setting is None:
        monkeypatch.delenv("SCRATCHLR_DATA", raising=False)
    else:
        monkeypatch.setenv("SCRATCHLR_DATA", setting)  # the kernel inherits it
    # The kernel's BLAS may use threads; the notebook limits it.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "docs")}},
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Testset Accuracy: 0.9079" in text  # the seed's run
    assert "J = 2.3025851 = ln 10" in text and "dJ/dW  (784, 10)" in text
    searched = r"best on validation: --learning-rate \S+ --momentum \S+ 0\.9\d{3}"
    assert re.search(searched, text)  # the search
    pictures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert pictures == 5  # templates, curves, confusion, explain, map
    recipe = next(c for c in nb.cells if c.cell_type == "code" and "average=430" in c.source)
    printed = "".join(o.get("text", "") for o in recipe.outputs if o.output_type == "stream")
    lines = printed.splitlines()
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    cli = subprocess.run(
        [sys.executable, "-m", "scratchlr", *RECIPE, "--data-dir", str(mnist_dir), "--quiet"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert cli.returncode == 0 and len(lines) > 5
    assert lines[:-1] == cli.stdout.splitlines()  # the CLI's digits
