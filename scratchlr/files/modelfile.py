"""Model files: W, b and what made them, in a NumPy ``.npz`` read without pickle.

A model file holds three arrays:
- ``W`` (D, C) and ``b`` (C,), float32 or float64, both of one dtype;
- ``meta``, a 0-d string array holding one JSON object: ``format_version``,
  ``scratchlr_version``, ``dtype``, the training ``config`` (the fields of
  :class:`scratchlr.config.Config`, as given), the ``data`` (the data set, its validation
  size and the MD5 of each of its files' decompressed payload), ``validation_accuracy``
  and ``test_accuracy`` (null where not measured), and ``interrupted_at``: the step after
  which a Ctrl-C ended the run (null if none did).

In memory it is a :class:`ModelFile`.

Files are written atomically (a temporary file, then a rename), and read with
``allow_pickle=False``, so a file cannot run code. :func:`load` checks everything and
raises :class:`ModelFileError` with one line naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config import Config
from ..dataset.mnist import CLASSES, DEFAULT_VALIDATION_SIZE, FILES, PIXELS
from .atomic import atomic_write

FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable, or not a valid scratchlr model. One-line message."""


@dataclass(frozen=True)
class ModelFile:
    """A trained model: weights W (D, C) and bias b (C,), the :class:`Config` that trained
    it, and its accuracies on the validation and test splits (None where not measured)."""

    W: np.ndarray
    b: np.ndarray
    config: Config
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    interrupted_at: int | None = None  # the step a Ctrl-C ended the run after, if one did


def save(path: Path, m: ModelFile) -> None:
    """Write ``m`` to ``path``, atomically."""
    W, b = np.asarray(m.W), np.asarray(m.b)
    meta = {
        "format_version": FORMAT_VERSION,
        "scratchlr_version": __version__,
        "dtype": str(W.dtype),
        "config": dataclasses.asdict(m.config),
        "data": {
            "name": "MNIST",
            "validation_size": m.config.validation_size,
            "md5": {f.name: f.md5 for f in FILES.values()},
        },
        "validation_accuracy": m.validation_accuracy,
        "test_accuracy": m.test_accuracy,
        "interrupted_at": m.interrupted_at,
    }
    buffer = io.BytesIO()
    np.savez(buffer, W=W, b=b, meta=np.array(json.dumps(meta)))
    atomic_write(Path(path), buffer.getvalue())


def load(path: Path) -> ModelFile:
    """Read and check a model file; raise :class:`ModelFileError` if it is not a good one."""
    path = Path(path)

    def bad(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}")

    if not path.is_file():
        raise bad("no such file" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise bad(f"cannot read it ({exc.strerror or exc})") from None
    if not head:
        raise bad("empty file")
    if not zipfile.is_zipfile(path):
        raise bad(
            "truncated or damaged: a zip archive without its end"
            if head == b"PK\x03\x04"
            else "not a model file (.npz): not a zip archive"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"W", "b", "meta"} - set(f.files)
            if missing:
                raise bad(f"not a scratchlr model: no {', '.join(sorted(missing))} array")
            W, b, meta_text = f["W"], f["b"], f["meta"]
    except ModelFileError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an object array, which only pickle could load
            raise bad(
                "refused: it holds a pickled object array, and model files are read without pickle"
            ) from None
        raise bad(f"damaged ({exc})") from None
    except Exception as exc:  # zip, zlib and numpy raise many kinds here; each means a damaged file
        raise bad(f"truncated or damaged ({type(exc).__name__}: {exc})") from None
    if not all(isinstance(a, np.ndarray) for a in (W, b, meta_text)):
        raise bad("not a scratchlr model: W, b and meta must be .npy arrays in the archive")
    meta = check(meta_text, W, b, bad)
    return ModelFile(
        W,
        b,
        training_config(meta, bad),
        meta.get("validation_accuracy"),
        meta.get("test_accuracy"),
        meta.get("interrupted_at"),
    )


def check(meta_text: np.ndarray, W: np.ndarray, b: np.ndarray, bad: Any) -> dict[str, Any]:
    """The metadata, after checking it and the arrays against it."""
    try:
        meta = (
            json.loads(str(meta_text[()]))
            if meta_text.shape == () and meta_text.dtype.kind == "U"
            else None
        )
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise bad("not a scratchlr model: its meta is not a JSON object with a format_version")
    if meta["format_version"] > FORMAT_VERSION:
        raise bad(
            f"format version {meta['format_version']} is newer than this scratchlr reads "
            f"({FORMAT_VERSION}); upgrade scratchlr"
        )
    if (
        W.dtype not in (np.float32, np.float64)
        or b.dtype != W.dtype
        or meta.get("dtype") != str(W.dtype)
    ):
        raise bad(
            f"W and b must both be float32 or float64 as the meta says, got {W.dtype}, {b.dtype}"
        )
    if W.shape != (PIXELS, CLASSES) or b.shape != (CLASSES,):
        raise bad(
            f"W must be ({PIXELS}, {CLASSES}) and b ({CLASSES},), got {W.shape} and {b.shape}"
        )
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise bad("its weights are not all finite")
    stopped = meta.get("interrupted_at")
    if stopped is not None and not (isinstance(stopped, int) and stopped >= 1):
        raise bad(
            f"not a scratchlr model: its interrupted_at is {stopped!r}, not a step number or null"
        )
    return meta


def training_config(meta: dict[str, Any], bad: Any) -> Config:
    """The :class:`Config` the meta records, checked as training checks it. (Files written
    before the config held the validation size keep it in ``data`` only.)"""
    config, data = meta.get("config", {}), meta.get("data", {})
    if not isinstance(config, dict) or not isinstance(data, dict):
        raise bad("not a scratchlr model: its meta's config and data are not JSON objects")
    try:
        config = Config(
            **{"validation_size": data.get("validation_size", DEFAULT_VALIDATION_SIZE), **config}
        )
    except (TypeError, ValueError) as exc:
        raise bad(f"not a scratchlr model: its config is not a training config ({exc})") from None
    if config.dtype != meta["dtype"]:
        raise bad(f"its weights are {meta['dtype']} but its config says {config.dtype}")
    return config
