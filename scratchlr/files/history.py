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
        writer.writerow(
            "" if v is None else f"{v:.10g}" if isinstance(v, float) else v for v in astuple(record)
        )
    return out.getvalue()


def write_csv(path: Path, records: list[Record]) -> None:
    """Write the records to ``path`` atomically (a temporary file, then a rename)."""
    atomic_write(Path(path), to_csv(records).encode())


def optional(cell: str) -> float | None:
    """A cell of a value that may not have been measured: empty for None."""
    return None if cell == "" else float(cell)


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
            step, epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds = row
            records.append(
                Record(
                    int(step),
                    float(epoch),
                    float(loss),
                    float(accuracy),
                    optional(val_loss),
                    optional(val_accuracy),
                    float(lr),
                    float(seconds),
                )
            )
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: not a history row: {','.join(row)}") from None
    return records
