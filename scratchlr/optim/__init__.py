"""The optimisers, as a family with ``torch.optim``'s shape.

- :mod:`.optimizer`: the shape every member has (``params``, ``step(grads, lr)``, ``state``);
- :mod:`.sgd`: SGD with momentum and Nesterov, the first member;
- :mod:`.adam`: Adam and AdamW (decoupled weight decay); :mod:`.rmsprop`: RMSprop;
  :mod:`.adagrad`: Adagrad: steps scaled per coordinate by the gradients' history;
- :mod:`.averaging`: Polyak-Ruppert averaging, a wrapper around any member;
- :mod:`.schedules`: the learning rate of each step.
:data:`OPTIMIZERS` names the members; ``--optimizer NAME`` picks one. A new optimiser is
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

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Averaged",
    "Optimizer",
    "RMSprop",
    "polyak_average",
]
