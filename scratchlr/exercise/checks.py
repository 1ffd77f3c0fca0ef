"""``scratchlr exercise check``: a learner's functions against the engine's, with hints.

Each function of the learner's file is called on the same inputs as :mod:`scratchlr.model`'s
and its answer compared, in three stages: random inputs (float64, small shapes), extreme
values (logits of +-1e4, where a softmax without the max-shift gives nan, and two logits
that round to one probability; pixels of 0 and 255 in float64), and MNIST's first 256
training images (float32, where the data folder has them). Answers may differ by rounding:
a relative 1e-5, and 16 ulps of the inputs' size (at logits of 1e4, a float32 ulp is 1e-3).
Then the learner's gradient, ``grad_W(X, grad_logits(z, y))`` and ``grad_b(...)``, is checked
against five-point differences of the engine's cross-entropy (:mod:`scratchlr.gradcheck`).
A function that raises ``NotImplementedError`` is reported as not written yet, and skipped.
"""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import gradcheck, model
from .skeleton import FUNCTIONS

# Room for another order of operations, not another formula: a relative tolerance, and ulps
# of the inputs' scale.
RTOL = 1e-5
ULPS = 16
DTYPED = ("pixels", "loss", "accuracy")  # the functions whose docstrings fix the answer's dtype
HINTS = {
    "pixels": (
        "x = u8 * (1/255), the factor rounded to dtype first: "
        "astype(dtype) * dtype.type(1 / 255) (math.md §1)"
    ),
    "logits": "z = X W + b: (N, D) @ (D, C), plus b (C,) on every row (math.md §1)",
    "softmax": (
        "p = exp(s) / sum_k exp(s_k) per row, with s = z - max(z) of that row (math.md §2, §4)"
    ),
    "cross_entropy": (
        "L_n = log sum_j exp(s_nj) - s_n,y_n, with s = z - max(z) per row (math.md §3, §4)"
    ),
    "loss": "J = the mean of cross_entropy(z, y) over the N examples, in z's dtype (math.md §3)",
    "grad_logits": "G = (softmax(z) - onehot(y)) / N (math.md §5)",
    "grad_W": "dJ/dW = X^T G, of shape (D, C) (math.md §6)",
    "grad_b": "dJ/db = sum over the examples of G's rows, of shape (C,) (math.md §6)",
    "accuracy": (
        "the share of rows whose argmax of softmax(z) is the label, in float32 (math.md §2)"
    ),
}
Inputs = dict[str, tuple[Any, ...]]  # function name -> its arguments


class Verdict(NamedTuple):
    """One function's result: ``status`` is "pass", "fail" or "todo"; ``message`` says why."""

    name: str
    status: str
    message: str = ""

    def line(self) -> str:
        """``✓ softmax``, ``✗ softmax: ...``, or ``- softmax: not written yet``."""
        mark = {"pass": "\u2713", "fail": "\u2717", "todo": "-"}[self.status]
        return f"{mark} {self.name}" + (f": {self.message}" if self.message else "")


class LearnerError(RuntimeError):
    """The learner's file cannot be imported. One-line message."""


def load(path: Path) -> ModuleType:
    """Import the learner's file (as a module of the package, so a copy of model.py, with its
    relative import, imports too); ``LearnerError`` if it cannot be."""
    if not path.is_file():
        raise LearnerError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location("scratchlr._exercise", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # the learner's code: any error is theirs to see, in one line
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = ""
        if where and not isinstance(exc, SyntaxError):  # a SyntaxError's message has its line
            at = f" (line {where.lineno})"
        raise LearnerError(f"{path}: cannot be imported: {type(exc).__name__}: {exc}{at}") from None
    return module


def stages(mnist_images: np.ndarray | None, mnist_labels: np.ndarray | None) -> dict[str, Inputs]:
    """The inputs of each stage, per function: random, extreme logits, and (if given) MNIST."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 12))
    W = rng.normal(size=(12, 5)) / 3
    b = rng.normal(size=5)
    z = rng.normal(size=(16, 5)) * 3
    y = rng.integers(0, 5, 16)
    G = model.grad_logits(z, y)
    out = {
        "random inputs": {
            "pixels": (rng.integers(0, 256, (16, 784)).astype(np.uint8),),
            "logits": (X, W, b),
            "grad_W": (X, G),
            "grad_b": (G,),
            **on_logits(z, y),
        }
    }
    huge = rng.choice([-1e4, -30.0, 0.0, 5.0, 1e4], size=(16, 5)).astype(np.float32)
    # Row 0: logits apart, probabilities tied, so argmax p is class 0; its label is 1.
    huge[0] = [0, 1e-8, -5, -5, -5]
    y[0] = 1
    edges = np.where(rng.random((16, 784)) < 0.5, 0, 255).astype(np.uint8)
    out["extreme values"] = {"pixels": (edges, "float64"), **on_logits(huge, y)}
    if mnist_images is not None and mnist_labels is not None:
        u8 = np.asarray(mnist_images[:256]).reshape(256, -1)
        labels = np.asarray(mnist_labels[:256]).astype(np.int64)
        X32 = model.pixels(u8)
        W32 = (rng.normal(size=(X32.shape[1], 10)) * 0.05).astype(np.float32)
        z32 = model.logits(X32, W32, np.zeros(10, np.float32))
        out["MNIST's first 256 images"] = {
            "pixels": (u8,),
            "logits": (X32, W32, np.zeros(10, np.float32)),
            "grad_W": (X32, model.grad_logits(z32, labels)),
            "grad_b": (model.grad_logits(z32, labels),),
            **on_logits(z32, labels),
        }
    return out


def on_logits(z: np.ndarray, y: np.ndarray) -> Inputs:
    """The arguments of the functions of logits: softmax's, and those of (z, y)."""
    return {
        "softmax": (z,),
        **{name: (z, y) for name in ("cross_entropy", "loss", "grad_logits", "accuracy")},
    }


def difference(got: Any, want: np.ndarray, n: int, scale: float, dtyped: bool) -> str | None:
    """None if ``got`` is ``want`` up to rounding (a relative ``RTOL``, and ``ULPS`` ulps of
    ``scale``, the inputs' size); else what differs, in a few words. n: the batch's examples,
    for a forgotten or extra 1/N; ``dtyped``: whether the answer's dtype must be ``want``'s."""
    if got is None:
        return "returned None (is a return missing?)"
    got = np.asarray(got)
    if got.shape != want.shape:
        turned = " (transposed?)" if got.shape == want.shape[::-1] and want.ndim == 2 else ""
        return f"shape {got.shape}, expected {want.shape}{turned}"
    if np.isfinite(want).all() and not np.isfinite(got).all():
        return (
            "nan or inf where the answer is finite "
            "(does exp overflow? subtract each row's max first, §4)"
        )
    if got.dtype.kind != "f" and want.dtype.kind == "f":
        return f"dtype {got.dtype}, expected floats ({want.dtype})"
    atol = ULPS * float(np.finfo(want.dtype).eps) * max(scale, 1.0)
    if np.allclose(got, want, rtol=RTOL, atol=atol):
        if dtyped and got.dtype != want.dtype:
            return f"dtype {got.dtype}, expected {want.dtype}"
        return None
    for factor, words in (
        (n, "N times too large (the mean's 1/N is missing?)"),
        (1 / n, "N times too small (a 1/N too many?)"),
    ):
        if np.allclose(got, want * factor, rtol=RTOL, atol=atol):
            return words
    excess = np.abs(got.astype(np.float64) - want) / (atol + RTOL * np.abs(want.astype(np.float64)))
    # The worst miss, for its tolerance:
    i = np.unravel_index(np.argmax(excess), want.shape) if want.ndim else ()
    return f"at {tuple(int(k) for k in i)} got {float(got[i]):.7g}, expected {float(want[i]):.7g}"


def check_function(name: str, learner: Callable[..., Any], inputs: dict[str, Inputs]) -> Verdict:
    """One function, stage by stage: the first difference fails it, with its hint."""
    for stage, arguments in inputs.items():
        if name not in arguments:
            continue
        args = arguments[name]
        want = np.asarray(getattr(model, name)(*args))
        try:
            with np.errstate(all="ignore"):  # an overflow is reported below, as nan or inf, once
                got = learner(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        except NotImplementedError:
            return Verdict(
                name,
                "todo",
                "not written yet (it, or a function it calls, raises NotImplementedError)",
            )
        except Exception as exc:  # the learner's code
            return Verdict(
                name, "fail", f"{stage}: raised {type(exc).__name__}: {exc}; hint: {HINTS[name]}"
            )
        arrays = [a for a in (*args, want) if np.ndim(a)]  # not a dtype's name, nor a scalar
        scale = max(float(np.abs(np.asarray(a, np.float64)).max(initial=0)) for a in arrays)
        problem = difference(got, want, len(args[0]), scale, name in DTYPED)
        if problem:
            return Verdict(name, "fail", f"{stage}: {problem}; hint: {HINTS[name]}")
    return Verdict(name, "pass")


def gradient_check(module: ModuleType) -> Verdict:
    """The learner's dJ/dW and dJ/db against five-point differences of the engine's
    cross-entropy, on a small random problem."""
    problem = gradcheck.random_problem()
    X = problem.X
    y = problem.y
    W = problem.W
    b = problem.b
    try:
        G = module.grad_logits(model.logits(X, W, b), y)
        analytic = {"W": np.asarray(module.grad_W(X, G)), "b": np.asarray(module.grad_b(G))}
    except NotImplementedError:
        return Verdict("gradient check", "todo", "needs grad_logits, grad_W and grad_b")
    except Exception as exc:
        return Verdict("gradient check", "fail", f"raised {type(exc).__name__}: {exc}")
    numeric = gradcheck.numerical_gradients(X, y, W, b)
    for k in ("W", "b"):
        if analytic[k].shape != numeric[k].shape:
            return Verdict(
                "gradient check",
                "fail",
                f"dJ/d{k} has shape {analytic[k].shape}, expected {numeric[k].shape}",
            )
    worst = max(float(gradcheck.relative_error(analytic[k], numeric[k]).max()) for k in analytic)
    words = f"max relative error {worst:.1e} against five-point differences of the cross-entropy"
    return Verdict("gradient check", "pass" if worst <= gradcheck.TOLERANCE else "fail", words)


def check(
    module: ModuleType,
    mnist_images: np.ndarray | None = None,
    mnist_labels: np.ndarray | None = None,
) -> list[Verdict]:
    """A verdict for every function of :data:`FUNCTIONS` (a missing one fails), then the
    gradient check's."""
    inputs = stages(mnist_images, mnist_labels)
    out = []
    for name in FUNCTIONS:
        learner = getattr(module, name, None)
        if callable(learner):
            out.append(check_function(name, learner, inputs))
        else:
            out.append(Verdict(name, "fail", "missing from the file"))
    return out + [gradient_check(module)]
