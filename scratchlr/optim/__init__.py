"""The optimisers, as a family with ``torch.optim``'s shape.

- :mod:`.optimizer`: the shape every member has (``params``, ``step(grads, lr)``, ``state``);
- :mod:`.sgd`: SGD with momentum and Nesterov, the first member;
- :mod:`.adam`: Adam and AdamW (decoupled weight decay); :mod:`.rmsprop`: RMSprop;
  :mod:`.adagrad`: Adagrad: steps scaled per coordinate by the gradients' history;
- :mod:`.averaging`: Polyak-Ruppert averaging, a wrapper around any member;
- :mod:`.schedules`: the learning rate of each step;
- :mod:`.solver`: the full-batch solvers' shape (:class:`Solver`, :class:`Iterate`), with
  :mod:`.line_search` (backtracking Armijo) and the solvers :mod:`.gradient_descent`,
  :mod:`.lbfgs` and :mod:`.newton_cg`.
:data:`OPTIMIZERS` names the members; ``--optimizer NAME`` picks one (or one of :data:`SOLVERS`,
which minimise the whole split's objective to its optimum). A new optimiser is
one class in a module of its own, its entry here, its Config fields, its tests and its section
of docs/math.md.
"""

from __future__ import annotations

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .averaging import Averaged, polyak_average
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}

# --- full-batch solvers (issue 28 part 2) ---
from .gradient_descent import GradientDescent  # noqa: E402
from .lbfgs import LBFGS  # noqa: E402
from .newton_cg import NewtonCG  # noqa: E402
from .solver import Iterate, Solver  # noqa: E402

SOLVERS: dict[str, type[Solver]] = {"gd": GradientDescent, "lbfgs": LBFGS, "newton-cg": NewtonCG}
# --- end of the full-batch solvers ---

__all__ = [
    "OPTIMIZERS",
    "SOLVERS",
    "Adagrad",
    "Adam",
    "AdamW",
    "Averaged",
    "GradientDescent",
    "Iterate",
    "LBFGS",
    "NewtonCG",
    "Optimizer",
    "RMSprop",
    "SGD",
    "Solver",
    "polyak_average",
]
