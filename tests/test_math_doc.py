"""docs/math.md points into the code: every function it names exists, and it names every
public function of the math modules. A name is ``module.function`` with the module's path
inside the package, subpackages included (``model.loss``, ``reports.plots.explain``)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import scratchlr

ROOT = Path(__file__).resolve().parents[1]
MATH = (ROOT / "docs" / "math.md").read_text()
MODULES = {
    m.name.removeprefix("scratchlr.")
    for m in pkgutil.walk_packages(scratchlr.__path__, "scratchlr.")
}
FOREIGN = {
    "torch",
    "tf",
    "np",
    "numpy",
    "sklearn",
    "lr_scheduler",
}  # names of other libraries the page cites
NAMED = {
    (module, name)
    for module, name in re.findall(r"`((?:[a-z_]+\.)*[a-z_]+)\.([A-Za-z_]\w*)`", MATH)
    if module.split(".")[0] not in FOREIGN
}  # all the others are ours, and must exist: no stale name


def test_a_stale_or_unknown_module_is_caught() -> None:
    assert all(module in MODULES for module, _ in NAMED), sorted(
        m for m, _ in NAMED if m not in MODULES
    )


def public_functions(module_name: str) -> set[str]:
    module = importlib.import_module(f"scratchlr.{module_name}")
    return {
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
    }


@pytest.mark.parametrize("module, name", sorted(NAMED), ids=lambda x: x)
def test_every_function_named_exists(module: str, name: str) -> None:
    if module == "reports.plots":
        pytest.importorskip("matplotlib", reason="plots needs the [plot] extra")
    assert callable(getattr(importlib.import_module(f"scratchlr.{module}"), name, None)), (
        f"{module}.{name}"
    )


def math_modules() -> list[str]:
    """The modules whose every public function math.md names: the model, the objective,
    averaging, each optimiser of the family, each full-batch solver, their shape and line
    search, and the curvature."""
    from scratchlr.optim import OPTIMIZERS, SOLVERS

    members = {
        member.__module__.removeprefix("scratchlr.")
        for member in [*OPTIMIZERS.values(), *SOLVERS.values()]
    }
    shared = {"optim.averaging", "optim.solver", "optim.line_search", "optim.curvature"}
    return sorted({"model", "objective"} | shared | members)


@pytest.mark.parametrize("module", math_modules())
def test_every_public_math_function_is_named(module: str) -> None:
    named = {name for m, name in NAMED if m == module}
    assert public_functions(module) - named == set()


def test_only_github_math_delimiters() -> None:
    """GitHub renders $...$ and $$...$$; \\( \\) and \\[ \\] would show as text."""
    assert not re.search(r"\\\(|\\\)|\\\[|\\\]", MATH)
    assert MATH.count("$$") % 2 == 0
    assert len(NAMED) >= 30


def test_no_markdown_hazards_inside_the_math() -> None:
    """GitHub's markdown runs before its math: it drops a backslash before punctuation
    (so \\, would print a comma), and a line starting with + or - inside a display
    equation would become a list item."""
    math = re.findall(r"\$\$(.*?)\$\$", MATH, re.S) + re.findall(
        r"(?<!\$)\$([^$\n]+)\$(?!\$)", MATH
    )
    for tex in math:
        assert not re.search(r"\\[!-/:-@\[-`{-~]", tex), tex
        assert not re.search(r"^\s*[-+*] ", tex, re.M), tex


def doc_number(tex: str) -> float:
    """``$4.3 \\times 10^{-4}$`` -> 4.3e-4."""
    mantissa, exponent = re.fullmatch(r"\$([\d.]+) \\times 10\^\{(-?\d+)\}\$", tex.strip()).groups()
    return float(mantissa) * 10 ** int(exponent)


def test_the_step_size_table_of_section_9_is_what_the_sweep_measures() -> None:
    """The doc's table of §9, against ``gradcheck.sweep`` of the problem it names: figures that
    truncation sets to their two digits, those that rounding sets within a factor of 2.5 (they
    move with the BLAS kernel, by about 2)."""
    from scratchlr import gradcheck

    rows = re.findall(r"^\| \$10\^\{(-\d)\}\$ \| (.+?) \| (.+?) \|$", MATH, re.M)
    assert len(rows) == 5 and "gradcheck.random_problem` with seed 0" in MATH
    measured = gradcheck.sweep(gradcheck.random_problem(0))
    for exponent, two, five in rows:
        h = 10.0 ** int(exponent)
        for points, tex in ((2, two), (5, five)):
            doc = doc_number(tex)
            got = measured[points, h]["W"]
            truncation = h >= (1e-4 if points == 2 else 1e-2)
            if truncation:
                assert f"{got:.1e}" == f"{doc:.1e}", (points, h, got, doc)
            else:
                assert doc / 2.5 < got < 2.5 * doc, (points, h, got, doc)


def test_the_mnist_figures_of_section_9(mnist_data) -> None:
    """§9's figures for the first 32 MNIST images: the two-point one (set by truncation) to its
    two digits, the five-point one inside the doc's range across kernels (give or take 2x)."""
    from scratchlr import gradcheck

    problem = gradcheck.mnist_problem(mnist_data.train.images, mnist_data.train.labels)
    two, five = (gradcheck.check(*problem, points=k)["W"] for k in (2, 5))
    doc_two = re.search(
        r"two-point formula leaves a relative error of (\$[^$]+\$) for W", MATH
    ).group(1)
    assert f"{two:.1e}" == f"{doc_number(doc_two):.1e}", two
    low, high = map(
        doc_number, re.search(r"about \$10\^\{-9\}\$ \((\$[^$]+\$) to (\$[^$]+\$)", MATH).groups()
    )
    assert low / 2 < five < 2 * high and two > gradcheck.TOLERANCE > five


def lessons():
    """docs/lessons.py, the script behind §14 and §15's figures, as a module."""
    spec = importlib.util.spec_from_file_location("lessons", ROOT / "docs" / "lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section(title_start: str) -> str:
    """The text of the section whose heading starts with ``title_start``."""
    return re.search(rf"^## {re.escape(title_start)}.*?(?=^## |\Z)", MATH, re.M | re.S).group(0)


def test_the_batch_gradient_spread_of_section_14(mnist_data) -> None:
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ?([\d.]*) ?\|$", section("14."), re.M)
    assert [int(b) for b, _, _ in rows] == [16, 64, 256, 1024]
    spread = lessons().gradient_spread(mnist_data.train.images, mnist_data.train.labels)
    for B, value, ratio in rows:
        assert f"{spread[int(B)]:.3g}" == value, (B, spread)
        if ratio:
            assert f"{spread[int(B)] / spread[4 * int(B)]:.2f}" == ratio


def validation_accuracy(mnist_data, **settings) -> str:
    from scratchlr import train
    from scratchlr.backend import numpy_backend

    run = train.train(
        mnist_data, train.Config(validate=True, **settings), numpy_backend(), emit=lambda line: None
    )
    return f"{run.history[-1].val_accuracy:.4f}"


def test_sections_14_and_15_tables_are_what_a_run_gives(mnist_data) -> None:
    """Two cells of each table, each one run of the flags it names (a search's trial is such
    a run)."""
    rows = {
        int(m[0]): m[1].split(" | ")
        for m in re.findall(r"^\| (\d+) \| (0\.\S+(?: \| \S+)+) \|$", section("14."), re.M)
    }
    one_epoch = dict(epochs=1, shuffle=True)
    assert validation_accuracy(mnist_data, **one_epoch, batch_size=16, learning_rate=0.1) == rows[
        16
    ][2].strip("*")
    assert validation_accuracy(mnist_data, **one_epoch, batch_size=256, learning_rate=1.0) == rows[
        256
    ][4].strip("*")
    decays = (
        re.search(r"^\| validation accuracy \| (.+) \|$", section("15."), re.M)
        .group(1)
        .split(" | ")
    )
    recipe = lessons().RECIPE
    assert validation_accuracy(mnist_data, **recipe, weight_decay=1e-2) == decays[4]


def recipe_run(mnist_data, **settings):
    """The README's recipe (without its averaging unless given) on the numpy backend."""
    from scratchlr import train
    from scratchlr.backend import numpy_backend

    recipe = dict(
        shuffle=True,
        batching="epoch",
        batch_size=512,
        momentum=0.93,
        learning_rate=1.1,
        weight_decay=1e-5,
    )
    config = train.Config(**{**recipe, **settings})
    return train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)


def test_the_curvature_table_of_section_16(mnist_data) -> None:
    """h_max at zero weights and after 1 and 10 of the recipe's steps, as the table gives them
    (two decimals; power iteration has settled by 40 products), and heavy ball's limits."""
    import numpy as np

    from scratchlr import model
    from scratchlr.objective import Objective
    from scratchlr.optim import curvature

    text = section("16.")
    steps = re.search(r"^\| steps \| (.+) \|$", text, re.M).group(1).split(" | ")
    h_max = re.search(r"^\| \$h_\{\\max\}\$ \| (.+) \|$", text, re.M).group(1).split(" | ")
    limits = re.search(r"^\| heavy ball's limit.*? \| (.+) \|$", text, re.M).group(1).split(" | ")
    X = model.pixels(mnist_data.train.images, "float32")
    objective = Objective(X, mnist_data.train.labels, 1e-5)
    for k in (0, 1, 10):
        column = steps.index(str(k))
        if k:
            run = recipe_run(mnist_data, num_steps=k)
            W = run.W
            b = run.b
        else:
            W = np.zeros((784, 10), np.float32)
            b = np.zeros(10, np.float32)
        lam = curvature.largest_eigenvalue(objective, W, b, iterations=40)
        assert f"{lam:.2f}" == h_max[column], (k, lam)
        assert f"{curvature.heavy_ball_stable_rate(lam, 0.93):.2f}" == limits[column], (k, lam)


def test_newtons_run_of_section_19(mnist_data) -> None:
    """Newton-CG in float64 at lambda 1e-4 to tol 1e-6: every step 1, converged after the
    iterations the text gives, at about the max|g| it gives (the float32 products' rounding,
    and so the last iteration's max|g|, depends on the BLAS kernel: 5.9e-8 under
    Sandybridge's)."""
    from scratchlr import train
    from scratchlr.backend import numpy_backend

    text = section("19.")
    iterations = int(re.search(r"converges after (\d+) iterations", text).group(1))
    final = re.search(r"at \$\\max_i \|g_i\| = ([\d.]+) \\times 10\^\{(-\d+)\}\$", text)
    config = train.Config(optimizer="newton-cg", dtype="float64", weight_decay=1e-4, tol=1e-6)
    run = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    assert run.steps == iterations
    assert {record.lr for record in run.history} == {1.0}
    grad_max = float(re.search(r"max\|g\| = (\S+)", run.lines[-2]).group(1))
    stated = float(f"{final.group(1)}e{final.group(2)}")
    assert stated / 3 <= grad_max <= stated * 3  # its last digits move with the BLAS kernel
