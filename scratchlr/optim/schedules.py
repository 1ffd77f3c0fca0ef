"""Learning-rate schedules: lr_t of the step count t = 0, 1, ... (``torch.optim.lr_scheduler``).

Each schedule is one formula, and reads only its own parameters (PyTorch's names):
- ``constant``: lr;
- ``step``: lr gamma^floor(t / step_size), gamma 0.1 unless given;
- ``exponential``: lr gamma^t;
- ``cosine``: eta_min + (lr - eta_min) (1 + cos(pi t / t_max)) / 2, t_max the run's steps
  and eta_min 0 unless given;
- ``inverse``: lr / (1 + gamma t).
:func:`check` says, schedule by schedule, which parameters it needs and their ranges.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "exponential", "cosine", "inverse")
STEP_GAMMA = 0.1  # StepLR's default gamma
# The parameters each schedule reads, as flags: any other one given is a mistake.
READS = {
    "constant": (),
    "step": ("--step-size", "--gamma"),
    "exponential": ("--gamma",),
    "cosine": ("--t-max", "--eta-min"),
    "inverse": ("--gamma",),
}


def step_lr(lr: float, t: int, step_size: int, gamma: float) -> float:
    """lr_t = lr gamma^floor(t / step_size): ``lr_scheduler.StepLR``, TF's staircase
    ``ExponentialDecay``."""
    return lr * gamma ** (t // step_size)


def exponential_lr(lr: float, t: int, gamma: float) -> float:
    """lr_t = lr gamma^t: ``lr_scheduler.ExponentialLR``, TF's ``ExponentialDecay`` with
    decay_steps 1."""
    return lr * gamma**t


def cosine_lr(lr: float, t: int, t_max: int, eta_min: float) -> float:
    """lr_t = eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2: the closed form of
    ``lr_scheduler.CosineAnnealingLR`` (which rises again after T_max). TF's ``CosineDecay``
    with alpha = eta_min / lr is the same for t <= T_max only: it holds t at T_max after."""
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def inverse_lr(lr: float, t: int, gamma: float) -> float:
    """lr_t = lr / (1 + gamma t): TF's ``InverseTimeDecay`` with decay_steps 1 (the decay
    under which SGD's iterates converge; PyTorch has it as a ``LambdaLR``)."""
    return lr / (1 + gamma * t)


def scheduled_lr(
    schedule: str,
    lr: float,
    t: int,
    total: int | None = None,
    step_size: int | None = None,
    gamma: float | None = None,
    t_max: int | None = None,
    eta_min: float | None = None,
) -> float:
    """The learning rate of step t (counted from 0) of a run of ``total`` steps under
    ``schedule``, with its parameters (None: the schedule's default)."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        assert step_size is not None
        return step_lr(lr, t, step_size, STEP_GAMMA if gamma is None else gamma)
    if schedule == "exponential":
        assert gamma is not None
        return exponential_lr(lr, t, gamma)
    if schedule == "cosine":
        half_period = total if t_max is None else t_max
        assert half_period is not None
        return cosine_lr(lr, t, half_period, eta_min or 0.0)
    if schedule == "inverse":
        assert gamma is not None
        return inverse_lr(lr, t, gamma)
    raise ValueError(f"unknown schedule {schedule!r}; one of {', '.join(SCHEDULES)}")


def finite(value: float) -> bool:
    """Not inf or nan (an int always is finite, however large)."""
    return isinstance(value, int) or math.isfinite(value)


def needed(schedule: str, name: str, value: float | None) -> None:
    """``ValueError`` if the schedule's parameter ``name`` was not given."""
    if value is None:
        raise ValueError(f"--lr-schedule {schedule} needs {name}")


def positive(schedule: str, name: str, value: float | None) -> None:
    """``ValueError`` unless ``value`` (if given) is above 0."""
    if value is not None and not (finite(value) and value > 0):
        raise ValueError(f"{name} must be positive for --lr-schedule {schedule}, got {value}")


def factor(schedule: str, value: float | None) -> None:
    """``ValueError`` unless gamma (if given) lies in (0, 1]: a decay."""
    if value is not None and not (finite(value) and 0 < value <= 1):
        raise ValueError(f"--gamma must be in (0, 1] for --lr-schedule {schedule}, got {value}")


def check(
    schedule: str,
    lr: float,
    step_size: int | None,
    gamma: float | None,
    t_max: int | None,
    eta_min: float | None,
) -> None:
    """``ValueError`` (one line naming the flag) unless ``schedule`` gets the parameters it
    needs, each in its range, and none that it does not read."""
    if schedule not in READS:
        raise ValueError(f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    given = {"--eta-min": eta_min, "--gamma": gamma, "--step-size": step_size, "--t-max": t_max}
    for name, value in given.items():
        if value is not None and name not in READS[schedule]:
            raise ValueError(f"{name} is not used by --lr-schedule {schedule}")
    if schedule == "step":
        factor(schedule, gamma)
        needed(schedule, "--step-size", step_size)
        positive(schedule, "--step-size", step_size)
    if schedule == "exponential":
        needed(schedule, "--gamma", gamma)
        factor(schedule, gamma)
    if schedule == "cosine":
        in_range = eta_min is None or (finite(eta_min) and 0 <= eta_min <= lr)
        if not in_range:
            raise ValueError(
                f"--eta-min must be in [0, --learning-rate] for --lr-schedule cosine, got {eta_min}"
            )
        positive(schedule, "--t-max", t_max)
    if schedule == "inverse":
        needed(schedule, "--gamma", gamma)
        positive(schedule, "--gamma", gamma)
