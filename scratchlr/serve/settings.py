"""What the demo page may set for a run: the training flags, from :class:`scratchlr.config.Config`'s
fields (one home: their names, defaults, help, choices and checks), the presets, and the speeds.

A setting's value travels as the text its flag takes (:func:`scratchlr.config.to_text`:
``0.1``, ``true``, ``0.9 0.999``, empty for unset), and is read back by
:func:`scratchlr.config.from_text`; the run's :class:`Config` then checks the whole as the
command line does, with the same one-line errors.

The presets (measured on MNIST's 55000 training images, float32):
- ``seed``: the seed's run, 1000 steps at 0.1; its end is the CLI's ``Testset Accuracy: 0.9079``;
- ``recipe``: the README's recipe (benchmarks/converge.py's RECIPE), validated every 10 steps;
- ``too-large``: the seed at ``--learning-rate 50``, about 98 x gradient descent's stable
  limit 2/lambda_max = 0.512 at zero weights (lambda_max = 3.906, ``scratchlr curvature``). Its
  mean training loss over steps 1-5 is 183.5, 80 x the start's ln 10 = 2.303, so the page's
  divergence rule (over 10 x) stops it at its first record after step 1, step 5. (Left to run,
  the loss comes back down to about 9 by step 50: a linear softmax model's loss grows with the
  weights, not exponentially; rate 10 reaches 37 at step 5, rate 5 only 21.5 at step 10.)
"""

from __future__ import annotations

from dataclasses import Field
from typing import Any

from ..config import FIELDS, Config, flag, from_text, to_text, value_type
from ..optim import OPTIMIZERS

#: The Config fields the page does not offer: the data (chosen by ``serve``) and the
#: full-batch solvers' (the page runs the mini-batch loop only).
NOT_OFFERED = ("dataset", "validation_size", "max_iter", "tol")
OFFERED = tuple(name for name in FIELDS if name not in NOT_OFFERED)
SPEEDS = (1, 3, 10, 30, 100, 300, 1000, 0)  # steps per second; 0: as fast as it goes
RECIPE = {  # the README's recipe (benchmarks/converge.py's RECIPE), validated every 10 steps
    "shuffle": "true",
    "batching": "epoch",
    "batch_size": "512",
    "num_steps": "300",
    "momentum": "0.93",
    "learning_rate": "1.1",
    "average": "80",
    "weight_decay": "1e-05",
    "validate": "true",
    "display_step": "10",
}
PRESETS: tuple[tuple[str, str, dict[str, str]], ...] = (  # name, label, settings
    ("seed", "The seed (1000 steps at rate 0.1)", {}),
    ("recipe", "The README's recipe (300 steps, momentum 0.93)", RECIPE),
    ("too-large", "A rate too large (50)", {"learning_rate": "50", "display_step": "5"}),
)


def kind(f: Field[Any]) -> str:
    """How the page asks for a field's value: ``bool``, ``pair`` (two numbers), ``choice``,
    ``int`` or ``float``."""
    t = value_type(f)
    if t is bool:
        return "bool"
    if isinstance(f.metadata.get("nargs"), int):
        return "pair"
    if choices(f) is not None:
        return "choice"
    return "int" if t is int else "float"


def choices(f: Field[Any]) -> list[str] | None:
    """A field's choices (the optimiser's: the mini-batch members only), or None."""
    if f.name == "optimizer":
        return list(OPTIMIZERS)
    named = f.metadata.get("choices")
    return list(named) if named is not None else None


def users(name: str) -> list[str] | None:
    """The optimisers that read the field ``name``, or None if it is not any member's own."""
    names = [member for member, m in OPTIMIZERS.items() if name in m.fields]
    return names or None


def describe_field(f: Field[Any]) -> dict[str, Any]:
    """One field as the page shows it (the /api/settings ``fields`` entries)."""
    return {
        "name": f.name,
        "flag": flag(f.name),
        "help": f.metadata["help"],
        "kind": kind(f),
        "default": to_text(f.default),
        "choices": choices(f),
        "optional": f.default is None,
        "optimizers": users(f.name),
        "group": f.metadata.get("group"),
    }


def presets(dataset: str = "mnist") -> list[dict[str, Any]]:
    """Each preset's ``name``, ``label``, ``settings`` (texts) and ``command`` line."""
    return [
        {
            "name": name,
            "label": label,
            "settings": dict(texts),
            "command": command_line(config_of(texts, dataset)),
        }
        for name, label, texts in PRESETS
    ]


def describe(dataset: str = "mnist") -> dict[str, Any]:
    """The offered fields, in Config's order, the presets and the speeds."""
    return {
        "fields": [describe_field(FIELDS[name]) for name in OFFERED],
        "presets": presets(dataset),
        "speeds": list(SPEEDS),
    }


def config_of(texts: dict[str, str], dataset: str = "mnist") -> Config:
    """The run's Config of the page's settings (name -> text; the others at their defaults)
    on ``dataset``; ``ValueError`` with one line if a name is not offered, a text is not a
    value of its field, or Config refuses the whole."""
    values: dict[str, Any] = {}
    for name, text in texts.items():
        if name not in OFFERED:
            raise ValueError(f"{name!r} is not a setting the page offers")
        if not isinstance(text, str):
            raise ValueError(f"{flag(name)}: its value must be a text, got {text!r}")
        values[name] = from_text(name, text)
    if values.get("optimizer", "sgd") not in OPTIMIZERS:
        names = ", ".join(OPTIMIZERS)
        raise ValueError(f"--optimizer must be one of {names}, got {values['optimizer']!r}")
    return Config(**values, dataset=dataset)


def command_line(config: Config) -> str:
    """``python -m scratchlr --flag value ...``: the command that trains ``config``, its
    fields that differ from their default in Config's order (switches bare)."""
    words = ["python", "-m", "scratchlr"]
    for name, f in FIELDS.items():
        v = getattr(config, name)
        if v == f.default:
            continue
        if v is True:
            words.append(flag(name))
        else:
            words.extend([flag(name), *to_text(v).split()])
    return " ".join(words)
