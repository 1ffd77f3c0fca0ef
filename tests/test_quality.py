"""Project rules that can be checked: lint clean, every public function documented and typed."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import shutil
import subprocess
from pathlib import Path

import pytest

import scratchlr

ROOT = Path(__file__).resolve().parents[1]
# Every module of the package and of its subpackages (plots needs the [plot] extra).
NAMES = [m.name for m in pkgutil.walk_packages(scratchlr.__path__, "scratchlr.") if not m.name.endswith("__main__")]
MODULES = [importlib.import_module(name) for name in NAMES
           if name != "scratchlr.reports.plots" or importlib.util.find_spec("matplotlib")]


def public_functions():
    for module in MODULES:
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_every_public_function_has_docstring_and_type_hints() -> None:
    found = list(public_functions())
    assert len(found) > 30
    undocumented = [name for name, f in found if not (f.__doc__ or "").strip()]
    untyped = [name for name, f in found if "return" not in f.__annotations__]
    assert not undocumented and not untyped, (undocumented, untyped)


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "scratchlr").rglob("*.py")}
    assert len(sizes) > 20
    assert max(sizes.values()) <= 300, sizes


def test_ruff_check_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install -e '.[test]')")
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
