"""Model files: W, b and what made them, in a NumPy ``.npz`` read without pickle.

A model file holds three arrays:
- ``W`` (D, C) and ``b`` (C,), float32 or float64, both of one dtype;
- ``meta``, a 0-d string array holding one JSON object: ``format_version``,
  ``scratchlr_version``, ``dtype``, the training ``config``, the ``data`` (the data set
  and the MD5 of each of its files' decompressed payload), and ``validation_accuracy`` and
  ``test_accuracy`` (null where not measured).

Files are written atomically (a temporary file, then a rename), and read with
``allow_pickle=False``, so a file cannot run code. :func:`load` checks everything and
raises :class:`ModelFileError` with one line naming the file and the problem.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .atomic import atomic_write

FORMAT_VERSION = 1
DIM, CLASSES = 784, 10


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable, or not a valid scratchlr model. One-line message."""


@dataclass(frozen=True)
class Model:
    """A loaded model: weights W (D, C), bias b (C,), and the file's metadata."""

    W: np.ndarray
    b: np.ndarray
    meta: dict[str, Any]


def save(path: Path, W: np.ndarray, b: np.ndarray, meta: dict[str, Any]) -> None:
    """Write W, b and ``meta`` (plus the format and scratchlr versions and the dtype) to
    ``path``, atomically."""
    W, b = np.asarray(W), np.asarray(b)
    meta = {"format_version": FORMAT_VERSION, "scratchlr_version": __version__, "dtype": str(W.dtype), **meta}
    buffer = io.BytesIO()
    np.savez(buffer, W=W, b=b, meta=np.array(json.dumps(meta)))
    atomic_write(Path(path), buffer.getvalue())


def load(path: Path) -> Model:
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
        raise bad("truncated or damaged: a zip archive without its end" if head == b"PK\x03\x04"
                  else "not a model file (.npz): not a zip archive")
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
            raise bad("refused: it holds a pickled object array, and model files are read without pickle") from None
        raise bad(f"damaged ({exc})") from None
    except Exception as exc:  # zip, zlib and numpy raise many kinds here; each means a damaged file
        raise bad(f"truncated or damaged ({type(exc).__name__}: {exc})") from None
    if not all(isinstance(a, np.ndarray) for a in (W, b, meta_text)):
        raise bad("not a scratchlr model: W, b and meta must be .npy arrays in the archive")
    return Model(W, b, check(meta_text, W, b, bad))


def check(meta_text: np.ndarray, W: np.ndarray, b: np.ndarray, bad: Any) -> dict[str, Any]:
    """The metadata, after checking it and the arrays against it."""
    try:
        meta = json.loads(str(meta_text[()])) if meta_text.shape == () and meta_text.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise bad("not a scratchlr model: its meta is not a JSON object with a format_version")
    if meta["format_version"] > FORMAT_VERSION:
        raise bad(f"format version {meta['format_version']} is newer than this scratchlr reads "
                  f"({FORMAT_VERSION}); upgrade scratchlr")
    if W.dtype not in (np.float32, np.float64) or b.dtype != W.dtype or meta.get("dtype") != str(W.dtype):
        raise bad(f"W and b must both be float32 or float64 as the meta says, got {W.dtype}, {b.dtype}")
    if W.shape != (DIM, CLASSES) or b.shape != (CLASSES,):
        raise bad(f"W must be ({DIM}, {CLASSES}) and b ({CLASSES},), got {W.shape} and {b.shape}")
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise bad("its weights are not all finite")
    data = meta.get("data", {})
    size = data.get("validation_size", 0) if isinstance(data, dict) else None
    if not (isinstance(size, int) and 0 <= size < 60000):
        raise bad("not a scratchlr model: its meta's data is not {..., \"validation_size\": 0 to 59999}")
    return meta
