"""A training run's settings: the seed's hyper-parameters, and the options that go past it.

:class:`Config` keeps each setting as it was given (None where unset), and derives what the
run uses from them (:attr:`Config.batches`, :attr:`Config.validates`,
:meth:`Config.total_steps`), so a config can be copied with ``dataclasses.replace`` and
rebuilt from a model file as it was. Every default is the seed's. Every check of the
settings lives here, run when a config is made: a bad value raises ``ValueError`` with one
line naming the command-line flag. The command line's flags are these fields (a field's
metadata holds its help), so a flag and its default are written once.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any

import numpy as np

from .dataset.batches import BATCHINGS
from .dataset.records import DATASETS, DEFAULT_VALIDATION_SIZE
from .optim import OPTIMIZERS, SOLVERS, schedules
from .optim.schedules import finite

DTYPES = ("float32", "float64")
IMPLEMENTATIONS = ("fast", "reference")
SEED_NUM_STEPS = 1000


def option(default: Any, help: str, **argparse: Any) -> Any:
    """A field of :class:`Config` with what its command-line flag needs: its help and, where
    the default does not tell, its ``type`` (and ``choices``, ``metavar``, ``nargs``, ...)."""
    return field(default=default, metadata={"help": help, **argparse})


def flag(name: str) -> str:
    """The command-line flag of a field: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


def value_type(f: Field[Any]) -> type:
    """The type of a field's values, as its flag reads them: bool for a switch (default
    False), else the ``type`` in its metadata, else its default's (str for an unset one)."""
    if f.default is False:
        return bool
    return f.metadata.get("type") or (str if f.default is None else type(f.default))


# A setting's text, as a flag, a search's CSV cell and the demo page take it.

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


def from_text(name: str, text: str) -> Any:
    """One value of the field ``name`` from its text (``none`` for an optional one unset);
    ``ValueError`` naming the flag if it is not one. A field of several numbers (``--betas``,
    its metadata's ``nargs``) takes them in one text, apart by spaces: ``0.9 0.999``."""
    count = FIELDS[name].metadata.get("nargs")
    if isinstance(count, int):
        parts = text.split()
        if len(parts) != count:
            raise ValueError(f"{flag(name)}: {text!r} is not {count} numbers apart by spaces")
        return tuple(one_from_text(name, part) for part in parts)
    return one_from_text(name, text)


def one_from_text(name: str, text: str) -> Any:
    """The value of ``text`` in the type of the field ``name``'s values (``none``: unset)."""
    t = value_type(FIELDS[name])
    if FIELDS[name].default is None and text.lower() in ("none", ""):
        return None
    try:
        if t is bool:
            if text.lower() not in TRUE + FALSE:
                raise ValueError
            return text.lower() in TRUE
        return t(text)
    except ValueError:
        what = {bool: "true or false", int: "an integer", float: "a number"}.get(t, "a value")
        raise ValueError(f"{flag(name)}: {text!r} is not {what}") from None


def to_text(v: Any) -> str:
    """A value as a flag or CSV cell takes it: floats in full (``repr``), booleans
    ``true``/``false``, None empty, several numbers apart by spaces."""
    if v is None:
        return ""
    if isinstance(v, (tuple, list)):
        return " ".join(to_text(x) for x in v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


OPTIMISER = "optimiser (torch.optim and lr_scheduler semantics)"
SOLVER = "full-batch solver (--optimizer gd, lbfgs or newton-cg)"
VALIDATION = "validation"
#: The settings of mini-batch training, which a full-batch solver does not use: each must stay
#: at its default with one (the mini-batch members' own settings are refused as any other
#: member's are).
MINI_BATCH = (
    "learning_rate",
    "batch_size",
    "num_steps",
    "epochs",
    "display_step",
    "batching",
    "shuffle",
    "seed",
    "implementation",
    "lr_schedule",
    "step_size",
    "gamma",
    "t_max",
    "eta_min",
    "average",
    "early_stopping",
)
#: The settings of the full-batch solvers, which mini-batch training does not use.
FULL_BATCH = ("max_iter", "tol")


@dataclass(frozen=True)
class Config:
    """How to train. ``num_steps`` and ``epochs`` are alternatives (1000 steps if neither).
    Optional fields are None when unset; what the run does with them is derived."""

    learning_rate: float = option(
        0.1,
        "the mini-batch optimisers' step size, the seed's 0.1 for each (torch's adam and adamw "
        "default to 1e-3, rmsprop and adagrad to 1e-2)",
    )
    batch_size: int = option(128, "examples per step")
    num_steps: int | None = option(
        None, f"training steps ({SEED_NUM_STEPS}; or give --epochs)", type=int
    )
    epochs: int | None = option(
        None, "passes over the training set, the last batch of each partial", type=int
    )
    display_step: int = option(100, "log every N steps")
    validation_size: int = option(
        DEFAULT_VALIDATION_SIZE, "the first N training images are held out for validation"
    )
    dataset: str = option(
        "mnist", "the data set: its files, classes and folder", choices=tuple(DATASETS)
    )
    batching: str | None = option(
        None,
        "repeat (the default): Dataset.repeat().batch(B); epoch (the only one with "
        "--epochs): one pass at a time, the last batch partial",
        choices=BATCHINGS,
    )
    shuffle: bool = option(False, "a fresh permutation of the training set each epoch")
    seed: int | None = option(
        None, "seed of the shuffling's numpy.random.default_rng (0)", type=int
    )
    dtype: str = option("float32", "float type of the math", choices=DTYPES)
    implementation: str = option(
        "fast",
        "fast: preallocated, in place; reference: the readable math (the same numbers)",
        choices=IMPLEMENTATIONS,
        aliases=("--step",),
    )
    weight_decay: float = option(
        0.0,
        "lambda: the objective gains (lambda/2) ||W||^2, so W's gradient gains lambda W "
        "(b is not decayed); adamw: the decoupled decay W <- (1 - lr lambda) W instead "
        "(0 here too, not torch.optim.AdamW's 0.01)",
        group=OPTIMISER,
    )
    optimizer: str = option(
        "sgd",
        "the optimiser, with torch.optim's rules and defaults; sgd: steps -lr g; adam: "
        "-lr m / (sqrt(v) + eps), m and v the gradients' and their squares' running means, "
        "bias-corrected; adamw: adam with the weight decay decoupled; rmsprop: -lr g / "
        "(sqrt(v) + eps), v the squares' running mean; adagrad: -lr g / (sqrt(s) + eps), s "
        "the squares' sum; gd, lbfgs, newton-cg: full-batch solvers of the whole training "
        "split's objective, from zero weights",
        metavar="{" + ",".join([*OPTIMIZERS, *SOLVERS]) + "}",
        group=OPTIMISER,
    )
    momentum: float = option(
        0.0, "sgd, rmsprop: mu in [0, 1), v = mu v + g (rmsprop: + g / d)", group=OPTIMISER
    )
    nesterov: bool = option(False, "sgd: Nesterov momentum, step along g + mu v", group=OPTIMISER)
    # The adaptive members' settings (PyTorch's names and defaults): scratchlr.optim.adam,
    # .rmsprop, .adagrad.
    betas: tuple[float, float] = option(
        (0.9, 0.999),
        "adam, adamw: beta1 beta2 in [0, 1), the decay rates of the gradients' average and "
        "of their squares'",
        type=float,
        nargs=2,
        metavar=("BETA1", "BETA2"),
        group=OPTIMISER,
    )
    eps: float | None = option(
        None,
        "adam, adamw, rmsprop, adagrad: eps > 0 added to the root in the step's denominator "
        "(torch's: 1e-8; adagrad 1e-10)",
        type=float,
        group=OPTIMISER,
    )
    alpha: float = option(
        0.99, "rmsprop: decay rate in [0, 1) of the squared gradients' average", group=OPTIMISER
    )
    centered: bool = option(
        False,
        "rmsprop: divide by the root of the gradients' variance, not of their mean square",
        group=OPTIMISER,
    )
    lr_decay: float = option(
        0.0, "adagrad: step k's lr is lr / (1 + (k - 1) lr-decay)", group=OPTIMISER
    )
    initial_accumulator_value: float = option(
        0.0, "adagrad: the squared gradients' sum at the start (>= 0)", group=OPTIMISER
    )
    lr_schedule: str = option(
        "constant",
        "learning rate per step t: step: lr gamma^(t // step-size); exponential: "
        "lr gamma^t; cosine: eta-min + (lr - eta-min)(1 + cos(pi t / t-max)) / 2; inverse: "
        "lr / (1 + gamma t)",
        choices=schedules.SCHEDULES,
        group=OPTIMISER,
    )
    step_size: int | None = option(
        None, "steps between decays (step: needed)", type=int, group=OPTIMISER
    )
    gamma: float | None = option(
        None,
        f"decay factor (step: {schedules.STEP_GAMMA}, exponential: needed, inverse: needed)",
        type=float,
        group=OPTIMISER,
    )
    t_max: int | None = option(
        None,
        "steps of the way down to eta-min, half the period (cosine: the run's steps)",
        type=int,
        group=OPTIMISER,
    )
    eta_min: float | None = option(
        None, "the least learning rate (cosine: 0.0)", type=float, group=OPTIMISER
    )
    average: int | None = option(
        None,
        "Polyak-Ruppert averaging of the iterates after START steps (0); the average "
        "is what is evaluated and kept",
        type=int,
        nargs="?",
        const=0,
        metavar="START",
        group=OPTIMISER,
    )
    max_iter: int = option(
        100, "the solver's most iterations (scikit-learn's default)", group=SOLVER
    )
    tol: float = option(
        1e-4,
        "the solver stops when max_i |g_i| <= tol, g the gradient of W and b (scikit-learn's "
        "rule and default)",
        group=SOLVER,
    )
    validate: bool = option(
        False,
        "validation loss and accuracy at each display step (each epoch with --epochs; each "
        "iteration with a solver)",
        group=VALIDATION,
    )
    early_stopping: int | None = option(
        None,
        "stop after PATIENCE validations without a better accuracy; keep the "
        "best (implies --validate)",
        type=int,
        metavar="PATIENCE",
        group=VALIDATION,
    )

    def __post_init__(self) -> None:
        # betas come as a list from the command line and from a model file's JSON
        object.__setattr__(self, "betas", tuple(self.betas))
        self.check_numbers()
        self.check_optimiser()  # before the choices: "--seed is not used by --optimizer gd"
        self.check_choices()
        self.check_schedule()
        train_size = DATASETS[self.dataset].train_size  # the data set, split as it says
        self.check_run(train_size - self.validation_size, self.validation_size)

    # What the run does with the settings.

    @property
    def batches(self) -> str:
        """The batching in force: as given, else ``epoch`` with epochs, else ``repeat``."""
        return self.batching or ("epoch" if self.epochs else "repeat")

    @property
    def validates(self) -> bool:
        """Whether the run validates: asked for, or needed by early stopping."""
        return self.validate or self.early_stopping is not None

    @property
    def penalty(self) -> float:
        """The objective's lambda: the weight decay, except where the optimiser decouples it
        from the gradient (adamw), whose objective then has none."""
        member = OPTIMIZERS.get(self.optimizer)
        return 0.0 if member is not None and member.decoupled else self.weight_decay

    def total_steps(self, n: int) -> int:
        """Steps in the run on n training examples: ``epochs`` passes, else ``num_steps``,
        else the seed's 1000."""
        if self.epochs:
            return self.epochs * self.steps_per_epoch(n)
        return self.num_steps or SEED_NUM_STEPS

    def steps_per_epoch(self, n: int) -> int:
        """Batches in one pass over n examples, the last one partial."""
        return -(-n // self.batch_size)

    def epochs_done(self, steps: int, n: int) -> float:
        """Passes over n examples made in ``steps`` steps: whole batches of ``repeat``
        batching run across epochs, ``epoch`` batching ends each pass with a partial one."""
        if self.batches == "repeat":
            return steps * self.batch_size / n
        return steps / self.steps_per_epoch(n)

    def displays_at(self, t: int) -> bool:
        """Whether the seed's lines are printed after step t (from 1): the first and every
        display step."""
        return t == 1 or t % self.display_step == 0

    def records_at(self, t: int, n: int) -> bool:
        """Whether the history gets a record after step t: at each display step, at each
        epoch's end with epochs, and at the last step, so that no trained step goes unseen."""
        return self.displays_at(t) or t == self.total_steps(n) or self.ends_epoch(t, n)

    def validates_at(self, t: int, n: int, last: bool = False) -> bool:
        """Whether step t's record has a validation score: with validation, at each record,
        or only at each epoch's end with epochs; and at the run's ``last`` step, however it
        ends."""
        return self.validates and (last or not self.epochs or self.ends_epoch(t, n))

    def ends_epoch(self, t: int, n: int) -> bool:
        """Whether step t ends an epoch of ``--epochs`` (never without them)."""
        return bool(self.epochs) and t % self.steps_per_epoch(n) == 0

    def learning_rate_at(self, t: int, total: int) -> float:
        """lr_t, the learning rate of step t (from 0) of a run of ``total`` steps."""
        return schedules.scheduled_lr(
            self.lr_schedule,
            self.learning_rate,
            t,
            total,
            step_size=self.step_size,
            gamma=self.gamma,
            t_max=self.t_max,
            eta_min=self.eta_min,
        )

    # The checks, each in one place.

    def check_numbers(self) -> None:
        """Each number in its range."""
        for name in (
            "learning_rate",
            "batch_size",
            "num_steps",
            "epochs",
            "display_step",
            "early_stopping",
            "max_iter",
            "tol",
        ):
            value = getattr(self, name)
            if value is not None and not (finite(value) and value > 0):
                raise ValueError(f"{flag(name)} must be positive, got {value}")
        for name in ("weight_decay", "average", "seed"):
            value = getattr(self, name)
            if value is not None and not (finite(value) and value >= 0):
                raise ValueError(f"{flag(name)} must be zero or positive, got {value}")
        record = DATASETS.get(self.dataset)  # an unknown one: check_choices says so
        if record is not None and not 0 <= self.validation_size < record.train_size:
            raise ValueError(
                f"--validation-size must be in [0, {record.train_size}), got {self.validation_size}"
            )

    def check_choices(self) -> None:
        """Each named choice one of its kind, and the flags that only make sense together."""
        for f in FIELDS.values():  # the choices live in the fields' metadata, shown by --help
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            unset = value is None and f.default is None
            if choices is not None and value not in choices and not unset:
                raise ValueError(
                    f"{flag(f.name)} must be one of {', '.join(choices)}, got {value!r}"
                )
        with np.errstate(over="ignore"):
            if not np.isfinite(np.dtype(self.dtype).type(self.learning_rate)):
                raise ValueError(f"--learning-rate {self.learning_rate} overflows {self.dtype}")
        if self.epochs is not None and self.num_steps is not None:
            raise ValueError("--epochs and --num-steps are alternatives: give one")
        if self.epochs is not None and self.batching == "repeat":
            raise ValueError("--epochs runs whole passes, so its batching is 'epoch', not 'repeat'")
        if self.seed is not None and not self.shuffle:
            raise ValueError("--seed is the shuffling's: it needs --shuffle")

    @property
    def solves(self) -> bool:
        """Whether the optimiser is a full-batch solver (:data:`scratchlr.optim.SOLVERS`)."""
        return self.optimizer in SOLVERS

    def check_optimiser(self) -> None:
        """The optimiser is a member of the family or a full-batch solver; the settings it
        does not use (other members' and solvers', and :data:`MINI_BATCH`'s with a solver,
        :data:`FULL_BATCH`'s without) are left at their defaults; and the member checks its
        own (``Optimizer.check``, ``Solver.check``)."""
        family: dict[str, Any] = {**OPTIMIZERS, **SOLVERS}
        if self.optimizer not in family:
            names = ", ".join(family)
            raise ValueError(f"--optimizer must be one of {names}, got {self.optimizer!r}")
        member = family[self.optimizer]
        unused = [name for other in family.values() for name in other.fields]
        unused.extend(MINI_BATCH if self.solves else FULL_BATCH)
        for name in unused:
            if name not in member.fields and getattr(self, name) != FIELDS[name].default:
                raise ValueError(f"{flag(name)} is not used by --optimizer {self.optimizer}")
        member.check(self)

    def check_schedule(self) -> None:
        """Each schedule gets the parameters it needs, and only those, each in its range
        (:func:`scratchlr.optim.schedules.check`)."""
        schedules.check(
            self.lr_schedule,
            self.learning_rate,
            self.step_size,
            self.gamma,
            self.t_max,
            self.eta_min,
        )

    def check_run(self, n_train: int, n_validation: int) -> None:
        """What depends on the data, n_train training and n_validation held-out images:
        averaging must start before the run's end, and validation needs held-out images. Made
        against its data set's split when a config is built, and by :func:`scratchlr.train.train`
        against the data it is given."""
        steps = self.total_steps(n_train)
        if self.average is not None and self.average >= steps:
            raise ValueError(f"--average {self.average}: the run has only {steps} steps")
        if self.validates and not n_validation:
            raise ValueError("--validate and --early-stopping need --validation-size above 0")


#: Config's fields by name, in their order: the one walk that the flags, the search's
#: settings and the model files' configs are made from.
FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Config)}
