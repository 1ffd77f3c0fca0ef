"""A training run's settings: the seed's hyper-parameters, and the options that go past it.

Every default is the seed's. Values are checked when a :class:`Config` is made: a bad one
raises ``ValueError`` with a one-line message naming the command-line flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dataset.batches import BATCHINGS
from .optim import SCHEDULES, scheduled_lr, stable_decay_limit

DTYPES = ("float32", "float64")
STEPS = ("fast", "reference")
SEED_NUM_STEPS = 1000
# The parameters each schedule reads (PyTorch's lr_scheduler names); gamma's default, if any.
SCHEDULE_PARAMETERS = {"constant": (), "step": ("step_size", "gamma"), "exponential": ("gamma",),
                       "cosine": ("t_max", "eta_min"), "inverse": ("gamma",)}
GAMMA_DEFAULT = {"step": 0.1}  # StepLR's default; ExponentialLR has none, nor do we for inverse


def finite(value: float) -> bool:
    """Not inf or nan (an int always is finite, however large)."""
    return isinstance(value, int) or math.isfinite(value)


def flag(name: str) -> str:
    """The command-line flag of a field: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Config:
    """How to train. ``num_steps`` and ``epochs`` are alternatives (1000 steps if neither);
    with ``epochs`` the batching is ``epoch``. Optional fields are None when unset."""

    learning_rate: float = 0.1
    batch_size: int = 128
    num_steps: int | None = None
    display_step: int = 100
    batching: str | None = None  # "repeat" (the seed's), or "epoch"; "epoch" with epochs
    dtype: str = "float32"
    step: str = "fast"
    epochs: int | None = None
    shuffle: bool = False
    seed: int | None = None  # of the shuffling (0 if unset); only with shuffle
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    step_size: int | None = None
    gamma: float | None = None
    t_max: int | None = None
    eta_min: float | None = None
    average: int | None = None  # average the iterates after this many steps
    validate: bool = False
    early_stopping: int | None = None  # patience, in evaluations; implies validate

    def __post_init__(self) -> None:
        self.check_numbers()
        if self.epochs is not None and self.num_steps is not None:
            raise ValueError("--epochs and --num-steps are alternatives: give one")
        if self.epochs is not None and self.batching == "repeat":
            raise ValueError("--epochs runs whole passes, so its batching is 'epoch', not 'repeat'")
        for name, choices in (("batching", BATCHINGS), ("dtype", DTYPES), ("step", STEPS),
                              ("lr_schedule", SCHEDULES)):
            if getattr(self, name) not in choices + ((None,) if name == "batching" else ()):
                raise ValueError(f"{flag(name)} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.seed is not None and not self.shuffle:
            raise ValueError("--seed is the shuffling's: it needs --shuffle")
        self.check_optimiser()
        self.check_schedule()
        resolved = {
            "num_steps": self.num_steps or (None if self.epochs else SEED_NUM_STEPS),
            "batching": self.batching or ("epoch" if self.epochs else "repeat"),
            "validate": self.validate or self.early_stopping is not None,
        }
        for name, value in resolved.items():
            object.__setattr__(self, name, value)

    def check_numbers(self) -> None:
        """Each number in its range."""
        positive = ("learning_rate", "batch_size", "num_steps", "display_step", "epochs", "step_size",
                    "t_max", "early_stopping")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not (finite(value) and value > 0):
                raise ValueError(f"{flag(name)} must be positive, got {value}")
        for name in ("weight_decay", "eta_min", "average", "seed"):
            value = getattr(self, name)
            if value is not None and not (finite(value) and value >= 0):
                raise ValueError(f"{flag(name)} must be zero or positive, got {value}")
        with np.errstate(over="ignore"):
            overflows = self.dtype in DTYPES and not np.isfinite(np.dtype(self.dtype).type(self.learning_rate))
        if overflows:
            raise ValueError(f"--learning-rate {self.learning_rate} overflows {self.dtype}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")

    def check_optimiser(self) -> None:
        """Nesterov needs momentum; weight decay must not make the weights diverge."""
        if self.nesterov and not self.momentum:
            raise ValueError("--nesterov needs --momentum above 0")
        limit = stable_decay_limit(self.momentum, self.nesterov)
        if self.learning_rate * self.weight_decay >= limit:
            with_momentum = f" with --momentum {self.momentum:g}{' --nesterov' if self.nesterov else ''}" \
                if self.momentum else ""
            raise ValueError(f"--learning-rate x --weight-decay is {self.learning_rate * self.weight_decay:g}; "
                             f"at {limit:g} or more{with_momentum} the weights diverge")

    def check_schedule(self) -> None:
        """Each schedule gets the parameters it reads, and only those."""
        wanted = SCHEDULE_PARAMETERS[self.lr_schedule]
        for name in ("step_size", "gamma", "t_max", "eta_min"):
            if getattr(self, name) is not None and name not in wanted:
                raise ValueError(f"{flag(name)} is not used by --lr-schedule {self.lr_schedule}")
        if self.lr_schedule == "step" and self.step_size is None:
            raise ValueError("--lr-schedule step needs --step-size")
        if self.lr_schedule in ("exponential", "inverse") and self.gamma is None:
            raise ValueError(f"--lr-schedule {self.lr_schedule} needs --gamma")
        if self.gamma is not None:
            if self.lr_schedule == "inverse" and not (finite(self.gamma) and self.gamma > 0):
                raise ValueError(f"--gamma must be positive, got {self.gamma}")
            if self.lr_schedule != "inverse" and not (finite(self.gamma) and 0 < self.gamma <= 1):
                raise ValueError(f"--gamma must be in (0, 1] for --lr-schedule {self.lr_schedule}, got {self.gamma}")
        if self.eta_min is not None and self.eta_min > self.learning_rate:
            raise ValueError(f"--eta-min must not exceed --learning-rate, got {self.eta_min}")

    def total_steps(self, n: int) -> int:
        """Steps in the run on n training examples: ``num_steps``, or ``epochs`` passes."""
        return self.epochs * self.steps_per_epoch(n) if self.epochs else self.num_steps

    def steps_per_epoch(self, n: int) -> int:
        """Batches in one pass over n examples, the last one partial."""
        return -(-n // self.batch_size)

    def epochs_done(self, steps: int, n: int) -> float:
        """Passes over n examples made in ``steps`` steps: whole batches of ``repeat``
        batching run across epochs, ``epoch`` batching ends each pass with a partial one."""
        if self.batching == "repeat":
            return steps * self.batch_size / n
        return steps / self.steps_per_epoch(n)

    def check_data(self, n_train: int, n_validation: int) -> None:
        """What can only be checked against the data: averaging must start before the end,
        and validation needs held-out images."""
        if self.average is not None and self.average >= self.total_steps(n_train):
            raise ValueError(f"--average {self.average}: the run has only {self.total_steps(n_train)} steps")
        if self.validate and not n_validation:
            raise ValueError("--validate and --early-stopping need --validation-size above 0")

    def learning_rate_at(self, t: int, total: int) -> float:
        """lr_t, the learning rate of step t (from 0) of a run of ``total`` steps."""
        gamma = self.gamma if self.gamma is not None else GAMMA_DEFAULT.get(self.lr_schedule, 0.0)
        return scheduled_lr(self.lr_schedule, self.learning_rate, t, self.step_size or 1, gamma,
                            self.t_max or total, self.eta_min or 0.0)
