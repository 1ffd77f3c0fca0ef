"""The optimisers, as a family with ``torch.optim``'s shape.

- :mod:`.optimizer`: the shape every member has (``params``, ``step(grads, lr)``, ``state``);
- :mod:`.sgd`: SGD with momentum and Nesterov, the first member;
- :mod:`.averaging`: Polyak-Ruppert averaging, a wrapper around any member;
- :mod:`.schedules`: the learning rate of each step.
:data:`OPTIMIZERS` names the members; ``--optimizer NAME`` picks one. A new optimiser is
one class in a module of its own, its entry here, its Config fields, its tests and its section
of docs/math.md.
"""

from __future__ import annotations

from typing import Any

from .averaging import Averaged, polyak_average
from .optimizer import Optimizer
from .sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD}
SOLVERS: dict[str, Any] = {}  # H3 placeholder until optim/solver.py lands

__all__ = ["OPTIMIZERS", "SOLVERS", "Averaged", "Optimizer", "SGD", "polyak_average"]
