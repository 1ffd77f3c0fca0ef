"""``scratchlr exercise init``: the learner's file, cut from :mod:`scratchlr.model` itself.

Each function of :data:`FUNCTIONS` keeps its signature and its docstring (the equation and
the shapes), and its body becomes ``raise NotImplementedError``. Cut from the engine's own
source, the exercise cannot drift from it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from .. import model
from ..files.atomic import atomic_write

FUNCTIONS = (
    "pixels",
    "logits",
    "softmax",
    "cross_entropy",
    "loss",
    "grad_logits",
    "grad_W",
    "grad_b",
    "accuracy",
)

HEADER = '''\
"""Softmax regression, by your own hand. Write each function below (NumPy, no loop over the
examples needed; a function may call the others), then check them:

    python -m scratchlr exercise check my_model.py

Each docstring is the equation and the shapes, as in scratchlr's model.py; docs/math.md
derives them. Where one names another quantity (softmax(z), onehot(y): Y_nk = 1 if k == y_n,
else 0), call your own function or write it inline. The check compares each function with
scratchlr's on random inputs, on extreme values (logits of +-1e4, where a softmax without
the max-shift overflows) and on MNIST, then checks your gradient against finite differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray
'''

README = """# Softmax regression, by your own hand

`my_model.py` holds the nine functions of the model, each with its equation and shapes,
and a body to write: the pixels, the logits, softmax, the cross-entropy and its mean, the
three gradients, and the accuracy. Write them with NumPy, in any order. Then:

```bash
python -m scratchlr exercise check my_model.py
```

prints one line per function: ✓, ✗ with what differed and a hint, or a note that it is not
written yet. It exits 0 when every function and the gradient check pass. The derivations
are in scratchlr's `docs/math.md` (sections 1 to 6); the engine's own answers are in
`scratchlr/model.py`, for after.
"""


def body_start(source: str, name: str) -> tuple[int, int]:
    """(first line, last docstring line) of function ``name`` in ``source`` (1-based)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.lineno, node.body[0].end_lineno or node.lineno
    raise LookupError(f"scratchlr.model has no function {name}")


def skeleton() -> str:
    """The text of ``my_model.py``: the header, then each function's signature and docstring
    with ``raise NotImplementedError`` for a body."""
    source = inspect.getsource(model)
    lines = source.splitlines()
    parts = [HEADER]
    for name in FUNCTIONS:
        first, last = body_start(source, name)
        parts.append(
            "\n".join(lines[first - 1 : last])
            + f'\n    raise NotImplementedError("write {name}")\n'
        )
    return "\n\n".join(parts)


def init(directory: Path) -> list[Path]:
    """Write ``my_model.py`` and ``README.md`` into ``directory`` (made if missing), atomically;
    ``FileExistsError`` if either is there already (a learner's work is never overwritten)."""
    files = {directory / "my_model.py": skeleton(), directory / "README.md": README}
    for path in files:
        if path.exists():
            raise FileExistsError(f"{path} exists already; it is kept (choose another folder)")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        atomic_write(path, text.encode())
    return list(files)
