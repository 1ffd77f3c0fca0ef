"""Project rules that can be checked: lint clean (lines of at most 100 characters), plain
assignments, every public function documented and typed, the layout of the design."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scratchlr

ROOT = Path(__file__).resolve().parents[1]
# Every module of the package and of its subpackages (plots needs the [plot] extra).
NAMES = [
    m.name
    for m in pkgutil.walk_packages(scratchlr.__path__, "scratchlr.")
    if not m.name.endswith("__main__")
]
MODULES = [
    importlib.import_module(name)
    for name in NAMES
    if name != "scratchlr.reports.plots" or importlib.util.find_spec("matplotlib")
]


def public_functions():
    for module in MODULES:
        for name, obj in vars(module).items():
            if (
                inspect.isfunction(obj)
                and not name.startswith("_")
                and obj.__module__ == module.__name__
            ):
                yield f"{module.__name__}.{name}", obj


def test_every_public_function_has_docstring_and_type_hints() -> None:
    found = list(public_functions())
    assert len(found) > 30
    undocumented = [name for name, f in found if not (f.__doc__ or "").strip()]
    untyped = [name for name, f in found if "return" not in f.__annotations__]
    assert not undocumented and not untyped, (undocumented, untyped)


def tool(name: str) -> list[str]:
    """How to run a checking tool of the [test] extra with this interpreter (``python -m``,
    whether or not its environment is on PATH); skip without it (fail under CI)."""
    if importlib.util.find_spec(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (it comes with the [test] extra)")
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", name]


def test_the_type_hints_check(tmp_path: Path) -> None:
    """mypy, configured in setup.cfg, finds the package's hints consistent."""
    proc = subprocess.run(
        [*tool("mypy"), "--cache-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_python_floor_is_the_one_stated() -> None:
    """The package needs nothing newer than setup.cfg's python_requires (vermin reads the syntax
    and the standard library it uses); ruff's target-version is the same floor."""
    floor = re.search(r"python_requires = >=(\d+\.\d+)", (ROOT / "setup.cfg").read_text()).group(1)
    assert f'target-version = "py{floor.replace(".", "")}"' in (ROOT / "ruff.toml").read_text()
    tool("vermin")  # it has no __main__: call its console script's function
    vermin = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
    proc = subprocess.run(
        [*vermin, f"--target={floor}-", "--violations", "--no-tips", "scratchlr"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check_is_clean() -> None:
    """ruff, configured in ruff.toml, finds nothing; its rules include pycodestyle's errors
    ("E"), among them E501: no line over the line-length, 100 characters."""
    settings = (ROOT / "ruff.toml").read_text()
    assert re.search(r"^line-length = 100$", settings, re.M), settings
    assert re.search(r'^select = \[[^]]*"E"', settings, re.M), settings
    proc = subprocess.run(
        [*tool("ruff"), "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def assigned(target: ast.expr) -> list[ast.expr]:
    """The names (or attributes, or items) an assignment's target binds, unpacked."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return [leaf for element in target.elts for leaf in assigned(element)]
    if isinstance(target, ast.Starred):
        return assigned(target.value)
    return [target]


def dense_assignments(path: Path) -> list[str]:
    """Where a source file assigns more than three names at once, or a tuple of separate
    values (``a, b = x, y``), as ``file:line``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Assign):
            continue
        names = [leaf for target in node.targets for leaf in assigned(target)]
        unpacks = any(isinstance(target, (ast.Tuple, ast.List)) for target in node.targets)
        separate = unpacks and isinstance(node.value, (ast.Tuple, ast.List))
        if len(names) > 3 or separate:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_one_assignment_a_line() -> None:
    """No assignment of more than three names, and no ``a, b = x, y`` of separate values:
    one assignment per line. Unpacking a function's returned tuple of at most three
    (``W, b = params``) is fine."""
    sources = [
        *(ROOT / "scratchlr").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
        *(ROOT / "docs").glob("*.py"),
    ]
    assert len(sources) > 60
    dense = [where for path in sorted(sources) for where in dense_assignments(path)]
    assert not dense, dense


def imports_of(path: Path) -> set[str]:
    """The scratchlr modules (and packages) a source file imports, as dotted names."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # a module's package, or an __init__'s own
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("scratchlr")}


def test_the_layout_shows_the_design() -> None:
    """A learner's modules on top (at most 12), the rest in one subpackage per concern. The
    command line is imported by nothing in the package; the search, the demo server and the
    exercises (clients of the chain) by nothing but the command line; the data layer knows
    neither the training's settings, its math, its optimisers nor its loop (nor the reports
    built on them); and the demo server runs without matplotlib (the pictures' module)."""
    top = sorted(p.name for p in (ROOT / "scratchlr").glob("*.py"))
    assert len(top) <= 12, top
    learners = {"model.py", "gradients.py", "objective.py", "evaluation.py", "train.py"}
    assert learners | {"gradcheck.py", "config.py", "progress.py", "backend.py"} <= set(top), top
    assert not {"step.py", "optim.py"} & set(top), top  # renamed: gradients.py, optim/
    packages = sorted(p.parent.name for p in (ROOT / "scratchlr").glob("*/__init__.py"))
    assert packages == [
        "cli",
        "dataset",
        "exercise",
        "files",
        "optim",
        "reports",
        "search",
        "serve",
    ]
    chain = tuple(
        f"scratchlr.{name}"
        for name in ("config", "train", "gradients", "objective", "evaluation", "optim", "reports")
    )
    for path in (ROOT / "scratchlr").rglob("*.py"):
        where = path.relative_to(ROOT / "scratchlr").parts
        reached = reachable(path)  # what it imports, and what those import, and so on
        if where[0] != "cli" and path.name != "__main__.py":
            assert not any(name.startswith("scratchlr.cli") for name in reached), (path, reached)
        for client in ("search", "serve", "exercise"):  # clients only the command line uses
            if where[0] not in ("cli", client) and path.name != "__main__.py":
                assert not any(name.startswith(f"scratchlr.{client}") for name in reached), (
                    path,
                    reached,
                )
        if where[0] == "dataset":
            assert not any(name.startswith(chain) for name in reached), (path, reached)
        if where[0] == "serve":
            assert "scratchlr.reports.plots" not in reached, (path, reached)


def test_every_module_is_used_by_the_command_line() -> None:
    """No module is dead: each one of the package is imported, directly or through others,
    by the command line (``python -m scratchlr``), relative and indirect imports followed."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "scratchlr").rglob("*.py")
    }
    reached = reachable(ROOT / "scratchlr" / "__main__.py")
    assert modules - reached == {"scratchlr.__main__"}, modules - reached


def source_of(name: str) -> Path | None:
    """The file of the scratchlr module or package ``name`` (None for a function's name)."""
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def reachable(path: Path) -> set[str]:
    """Every scratchlr module that importing ``path`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(imports_of(path))
    while todo:
        name = todo.pop()
        if name not in seen and (source := source_of(name)) is not None:
            seen.add(name)
            todo.extend(imports_of(source))
    return seen
