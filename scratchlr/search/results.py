"""A search's results: one row per finished trial, its CSV file, and the best trials.

The CSV has one column per training flag that varies, named by the flag without its dashes
(``learning-rate``), each cell as the flag takes it; then :data:`METRICS`. Floats are written
in full (``repr``, which reads back to the same bits), and the file is rewritten atomically
after each finished trial, its rows in the trials' order, so an interrupted search keeps
every trial it finished. Beside it, ``FILE.csv.json`` holds the flags every trial shared,
so that a resumed search can check that it is the same search.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path
from typing import Any

from ..config import FIELDS, flag, from_text, to_text
from ..files.atomic import atomic_write
from . import space


@dataclass(frozen=True)
class Outcome:
    """What a trial measured: the validation loss and accuracy of the model its run keeps,
    the steps it ran and its training seconds."""

    val_loss: float
    val_accuracy: float
    steps: int
    seconds: float


METRICS = tuple(f.name for f in fields(Outcome))


def column(name: str) -> str:
    """A setting's column: its flag without the dashes (``learning_rate`` -> ``learning-rate``)."""
    return flag(name)[2:]


def header(varying: list[str]) -> list[str]:
    """The CSV's columns: the varying settings', then the metrics."""
    return [column(n) for n in varying] + list(METRICS)


def to_csv(rows: list[tuple[space.Settings, Outcome]], varying: list[str]) -> str:
    """The finished trials as CSV text, in the order given."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header(varying))
    for settings, outcome in rows:
        writer.writerow(
            [to_text(settings[n]) for n in varying] + [to_text(v) for v in astuple(outcome)]
        )
    return out.getvalue()


def shared_path(path: Path) -> Path:
    """Where the flags shared by a results file's trials are kept: ``FILE.csv.json``."""
    return Path(path).with_name(Path(path).name + ".json")


def shared(first: space.Settings, varying: list[str]) -> dict[str, str]:
    """The settings every trial shares, each training flag not in ``varying`` with the value
    the run uses (a default written out or left out is the same), as the file keeps them.
    ``first`` is any trial's settings."""
    config = space.config(first)
    return {
        flag(name): to_text(getattr(config, name)) or "none"
        for name in FIELDS
        if name not in varying and name != "validate"
    }


def write(
    path: Path,
    rows: list[tuple[space.Settings, Outcome]],
    varying: list[str],
    common: dict[str, str],
) -> None:
    """Write the CSV to ``path``, then the ``common`` settings (:func:`shared`) beside it,
    each atomically (a temporary file, then a rename)."""
    atomic_write(Path(path), to_csv(rows, varying).encode())
    atomic_write(shared_path(path), (json.dumps(common, indent=1) + "\n").encode())


def check_shared(path: Path, common: dict[str, str]) -> None:
    """``ValueError`` unless the results file's trials shared exactly the ``common`` settings."""
    try:
        kept = json.loads(shared_path(path).read_text())
    except (OSError, ValueError):
        kept = None
    if not isinstance(kept, dict) or not all(isinstance(v, str) for v in kept.values()):
        raise ValueError(
            f"{path}: {shared_path(path).name}, the flags its trials shared, is missing or "
            "damaged, so it cannot be resumed"
        )
    kept = as_now(kept, common)
    for name in sorted(set(kept) | set(common)):
        if kept.get(name) != common.get(name):
            raise ValueError(
                f"{path}: its trials ran with {name} {kept.get(name, '?')}, not "
                f"{common.get(name, '?')} (--resume needs the flags that wrote it)"
            )


RENAMED = {"--step": "--implementation"}  # flags of older results files -> their name now


def as_now(kept: dict[str, str], common: dict[str, str]) -> dict[str, str]:
    """The shared flags of a results file written before a flag was renamed or added, as they
    would be written now: old names renamed, and a shared flag the file lacks (added since) at
    its default, the value those trials ran with."""
    now = {RENAMED.get(name, name): value for name, value in kept.items()}
    for name, f in FIELDS.items():
        if flag(name) in common and flag(name) not in now:
            now[flag(name)] = to_text(f.default) or "none"
    return now


def rows_of(path: Path) -> list[list[str]]:
    """The cells of a CSV file; ``ValueError`` naming it if it is not one."""
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a CSV file ({exc})") from None


def read(path: Path, varying: list[str]) -> list[tuple[space.Settings, Outcome]]:
    """The rows of a results file written for the settings ``varying``: each trial's varying
    settings and its outcome. ``ValueError`` naming the file if it is not such a file."""
    rows = rows_of(path)
    if not rows or rows[0] != header(varying):
        found = ",".join(rows[0]) if rows else "nothing"
        raise ValueError(
            f"{path}: its columns are {found}, not this search's {','.join(header(varying))}"
        )
    out = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            settings = {n: from_text(n, cell) for n, cell in zip(varying, row)}
            metrics = row[len(varying) :]
            if len(metrics) != len(METRICS):
                raise ValueError
            outcome = Outcome(
                val_loss=float(metrics[0]),
                val_accuracy=float(metrics[1]),
                steps=int(metrics[2]),
                seconds=float(metrics[3]),
            )
            out.append((settings, outcome))
        except ValueError:
            raise ValueError(
                f"{path}, line {line}: not a row of this search: {','.join(row)}"
            ) from None
    return out


def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Any results file, for pictures: its setting columns, and its rows as dicts of column ->
    value (numbers where the cell is one). ``ValueError`` naming the file if it is not one."""
    rows = rows_of(path)
    if not rows or tuple(rows[0][-len(METRICS) :]) != METRICS or len(rows[0]) == len(METRICS):
        raise ValueError(
            f"{path}: not a search's results (its last columns are not {','.join(METRICS)})"
        )
    names = rows[0][: -len(METRICS)]
    table = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ValueError(f"{path}, line {line}: {len(row)} cells, not {len(rows[0])}")
        try:
            table.append(
                {c: number(cell) for c, cell in zip(rows[0], row)}
                | {m: float(row[rows[0].index(m)]) for m in METRICS}
            )
        except ValueError:
            raise ValueError(
                f"{path}, line {line}: a metric is not a number: {','.join(row)}"
            ) from None
    return names, table


def as_table(
    rows: list[tuple[space.Settings, Outcome]], varying: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Finished trials as :func:`read_table` reads their file: the setting columns, and a dict
    per row of column -> value (for the pictures, without a file)."""
    return [column(n) for n in varying], [
        {column(n): settings[n] for n in varying} | asdict(outcome) for settings, outcome in rows
    ]


def number(cell: str) -> Any:
    """A cell as an int or a float where it is one, else as it is."""
    for t in (int, float):
        try:
            return t(cell)
        except ValueError:
            pass
    return cell


def best(
    rows: list[tuple[space.Settings, Outcome]], k: int = 5
) -> list[tuple[space.Settings, Outcome]]:
    """The k best trials: highest validation accuracy, then lowest validation loss, then first."""
    order = sorted(
        range(len(rows)), key=lambda i: (-rows[i][1].val_accuracy, rows[i][1].val_loss, i)
    )
    return [rows[i] for i in order[:k]]
