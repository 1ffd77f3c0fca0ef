"""A run's history: one :class:`Record` per display step (or epoch), and its CSV file.

The CSV has a header row and one row per record, in the columns of :data:`COLUMNS` (Keras's
``CSVLogger`` names: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``); a value that
was not measured (validation, without ``--validate``) is an empty cell.
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from .atomic import atomic_write


@dataclass(frozen=True)
class Record:
    """One row of a run's history, at a display step (or, with ``epochs``, an epoch's end).

    ``loss`` and ``accuracy`` are the training batches' means since the last row (the seed's
    running averages); ``val_*`` are None without validation; ``lr`` is the last step's;
    ``seconds`` count from the start of training.
    """

    step: int
    epoch: float
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


COLUMNS = tuple(f.name for f in fields(Record))


def to_csv(records: list[Record]) -> str:
    """The records as CSV text, floats to ten significant digits."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        writer.writerow(cell(value) for value in astuple(record))
    return out.getvalue()


def cell(value: int | float | None) -> int | str:
    """A value as :func:`to_csv` writes it: empty for None, a float to ten digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return value


def write_csv(path: Path, records: list[Record]) -> None:
    """Write the records to ``path`` atomically (a temporary file, then a rename)."""
    atomic_write(Path(path), to_csv(records).encode())


def optional(text: str) -> float | None:
    """A cell of a value that may not have been measured: empty for None."""
    return None if text == "" else float(text)


def parse_row(row: list[str]) -> Record:
    """A row of cells, in the order of :data:`COLUMNS`, as a record; ``ValueError`` if it
    has another length or a cell is not a number."""
    if len(row) != len(COLUMNS):
        raise ValueError(f"{len(row)} cells, not {len(COLUMNS)}")
    cells = dict(zip(COLUMNS, row))
    return Record(
        step=int(cells["step"]),
        epoch=float(cells["epoch"]),
        loss=float(cells["loss"]),
        accuracy=float(cells["accuracy"]),
        val_loss=optional(cells["val_loss"]),
        val_accuracy=optional(cells["val_accuracy"]),
        lr=float(cells["lr"]),
        seconds=float(cells["seconds"]),
    )


def read_csv(path: Path) -> list[Record]:
    """The records of a history file written by :func:`write_csv`.

    Raises ``ValueError`` naming the file if its header or a value is not what it wrote.
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise ValueError(
            f"{path}: not a scratchlr history file (its header is not {','.join(COLUMNS)})"
        )
    records = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            records.append(parse_row(row))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: not a history row: {','.join(row)}") from None
    return records
