"""The search space: each training flag fixed, a grid axis, or a range to sample.

A flag's text says which (``scratchlr search --help`` shows the same):
- ``0.5``: fixed, the same in every trial;
- ``0.1,0.3,1``: a grid axis; the grid is the product of the axes, in the order given;
- ``0.01:2`` or ``0.01:2:log``: a range, sampled (uniformly, or uniformly in log) by
  ``--trials N``; an integer flag's samples stay integers. With ``--trials``, a comma list
  is sampled too, each value equally likely.
A trial is a dict of settings, Config field -> value; :func:`config` makes it a training run's
:class:`scratchlr.config.Config`, validating as ``--validate`` does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import FIELDS, Config, flag, from_text, to_text, value_type

Settings = dict[str, Any]


@dataclass(frozen=True)
class Axis:
    """One flag of the search: its values in the order given (one: fixed; several: a grid
    axis), or a range [low, high], sampled uniformly or, with ``log``, uniformly in log."""

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def varies(self) -> bool:
        """Whether trials differ in this flag."""
        return self.low is not None or len(self.values) > 1

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn from ``rng``: one of the values, or a point of the range."""
        if self.low is None or self.high is None:
            return self.values[int(rng.integers(len(self.values)))]
        if value_type(FIELDS[self.name]) is int:
            if not self.log:
                return int(rng.integers(int(self.low), int(self.high) + 1))
            # integers low..high, each in log: floor of exp(U[log low, log(high + 1)))
            return min(
                int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))),
                int(self.high),
            )
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


def parse_axis(name: str, text: str) -> Axis:
    """The :class:`Axis` of ``--name TEXT``; ``ValueError`` naming the flag if it is not one."""
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError(f"{flag(name)}: {text!r} is not a range (LOW:HIGH or LOW:HIGH:log)")
        if value_type(FIELDS[name]) not in (int, float) or "nargs" in FIELDS[name].metadata:
            raise ValueError(
                f"{flag(name)}: a range needs a number flag; give a comma list of values"
            )
        low = from_text(name, parts[0])
        high = from_text(name, parts[1])
        if low is None or high is None or not low < high:
            raise ValueError(f"{flag(name)}: the range {text!r} needs LOW < HIGH")
        if len(parts) == 3 and low <= 0:
            raise ValueError(f"{flag(name)}: the log range {text!r} needs LOW above 0")
        return Axis(name, low=low, high=high, log=len(parts) == 3)
    items = text.split(",")
    if "" in items and not (len(items) == 1 and FIELDS[name].default is None):
        raise ValueError(f"{flag(name)}: an empty value in {text!r}")
    values = tuple(from_text(name, item) for item in items)
    if len(set(values)) < len(values):
        raise ValueError(f"{flag(name)}: a value given twice in {text!r}")
    return Axis(name, values)


def grid(axes: list[Axis]) -> list[Settings]:
    """Every combination of the axes' values, the first axis varying slowest."""
    ranges = [a for a in axes if a.low is not None]
    if ranges:
        raise ValueError(f"{flag(ranges[0].name)} is a range: sampling it needs --trials N")
    return [
        dict(zip((a.name for a in axes), combo))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def samples(axes: list[Axis], count: int, seed: int) -> list[Settings]:
    """``count`` distinct trials drawn from ``numpy.random.default_rng(seed)``, each axis in
    the order given; a draw that repeats an earlier trial is drawn again."""
    rng = np.random.default_rng(seed)
    found: dict[tuple[Any, ...], Settings] = {}  # each distinct trial, by its values
    for _ in range(100 * count):
        trial = {a.name: a.sample(rng) if a.varies else a.values[0] for a in axes}
        found.setdefault(tuple(trial.values()), trial)
        if len(found) == count:
            return list(found.values())
    raise ValueError(f"--trials {count}: the flags make only {len(found)} distinct trials")


def config(settings: Settings) -> Config:
    """The training run of a trial: its settings, validated (``--validate``) as the search
    scores them; ``ValueError`` naming the flag if the run would be refused."""
    return Config(**{**settings, "validate": True})


def arguments(settings: Settings) -> list[str]:
    """The training flags that make a trial's run: its settings in the order given (an unset
    or false one left out), and ``--validate``."""
    out = []
    for name, v in settings.items():
        if v is not None and v is not False:
            values = v if isinstance(v, tuple) else (v,)  # --betas takes its two numbers
            out.extend([flag(name)] if v is True else [flag(name), *map(to_text, values)])
    return out if settings.get("validate") else [*out, "--validate"]


def describe(settings: Settings, names: list[str]) -> str:
    """``--learning-rate 0.5 --momentum 0.9``: the named settings of a trial, as flags."""
    return " ".join(f"{flag(n)} {to_text(settings[n]) or 'none'}" for n in names)
