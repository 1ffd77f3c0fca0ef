"""Model files: W, b and what made them, in a NumPy ``.npz`` read without pickle.

A model file holds three arrays:
- ``W`` (D, C) and ``b`` (C,), float32 or float64, both of one dtype;
- ``meta``, a 0-d string array holding one JSON object: ``format_version``,
  ``scratchlr_version``, ``dtype``, the training ``config`` (the fields of
  :class:`scratchlr.config.Config`, as given, its ``dataset`` among them), the ``data`` (the
  data set's name, its validation size and its files' MD5s as its record publishes them),
  ``validation_accuracy`` and ``test_accuracy`` (null where not measured), and
  ``interrupted_at``: the step after which a Ctrl-C ended the run (null if none did).

In memory it is a :class:`ModelFile`. W's shape is checked against the data set's record:
(its pixels, its classes). Files of format 1 (before data sets were records) name the data
"MNIST", have no ``dataset`` in their config, and say ``step`` for ``implementation``: they
are read as what they mean.

Files are written atomically (a temporary file, then a rename), byte for byte the same for the
same model (:func:`to_bytes`: each zip entry dated 1980-01-01, not now), and read with
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
from ..backend import numpy_backend
from ..config import FIELDS, Config
from ..dataset.records import DATASETS, DEFAULT_VALIDATION_SIZE, Dataset
from ..dataset.splits import Splits
from ..evaluation import evaluate
from .atomic import atomic_write

FORMAT_VERSION = 2
FORMAT_1_DATA = {"MNIST": "mnist"}  # the data's name in files of format 1 -> its --dataset
RENAMED = {"step": "implementation"}  # config keys of older files -> their name now
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # every entry's date: the zip format's first day


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

    @property
    def dataset(self) -> Dataset:
        """The record of the data set that trained it."""
        return DATASETS[self.config.dataset]


def of_run(
    W: np.ndarray,
    b: np.ndarray,
    config: Config,
    data: Splits,
    test_accuracy: float,
    interrupted_at: int | None,
) -> ModelFile:
    """The model file of a run's W (D, C) and b (C,) (host arrays), made with ``config`` on
    ``data``: its validation accuracy is NumPy's on the validation split (None without one),
    ``interrupted_at`` the step a stop ended the run after (None if it ran to its end)."""
    validation = (
        evaluate(W, b, data.validation, numpy_backend())[1] if config.validation_size else None
    )
    return ModelFile(W, b, config, validation, test_accuracy, interrupted_at)


def to_bytes(m: ModelFile) -> bytes:
    """The ``.npz`` file of ``m``: a zip of ``W.npy``, ``b.npy`` and ``meta.npy`` (as
    ``np.savez`` writes, but each entry dated :data:`ZIP_DATE`, so the same model makes the
    same bytes)."""
    W = np.asarray(m.W)
    b = np.asarray(m.b)
    meta = {
        "format_version": FORMAT_VERSION,
        "scratchlr_version": __version__,
        "dtype": str(W.dtype),
        "config": dataclasses.asdict(m.config),
        "data": {
            "name": m.dataset.name,
            "validation_size": m.config.validation_size,
            "md5": {f.name: f.md5 for f in m.dataset.files.values()},
        },
        "validation_accuracy": m.validation_accuracy,
        "test_accuracy": m.test_accuracy,
        "interrupted_at": m.interrupted_at,
    }
    arrays = {"W": W, "b": b, "meta": np.array(json.dumps(meta))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o600 << 16  # -rw-------, as np.savez's entries
            with archive.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)
    return buffer.getvalue()


def save(path: Path, m: ModelFile) -> None:
    """Write ``m`` to ``path`` (:func:`to_bytes`), atomically."""
    atomic_write(Path(path), to_bytes(m))


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
            W = f["W"]
            b = f["b"]
            meta_text = f["meta"]
    except ModelFileError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an object array, which only pickle could load
            raise bad(
                "refused: it holds a pickled object array, and model files are read without pickle"
            ) from None
        raise bad(f"damaged ({exc})") from None
    except Exception as exc:  # zip, zlib and numpy raise many kinds: each a damaged file
        raise bad(f"truncated or damaged ({type(exc).__name__}: {exc})") from None
    if not all(isinstance(a, np.ndarray) for a in (W, b, meta_text)):
        raise bad("not a scratchlr model: W, b and meta must be .npy arrays in the archive")
    meta = check(meta_text, W, b, bad)
    config = training_config(meta, bad)
    check_shapes(W, b, DATASETS[config.dataset], bad)
    return ModelFile(
        W,
        b,
        config,
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
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise bad("its weights are not all finite")
    stopped = meta.get("interrupted_at")
    if stopped is not None and not (isinstance(stopped, int) and stopped >= 1):
        raise bad(
            f"not a scratchlr model: its interrupted_at is {stopped!r}, not a step number or null"
        )
    return meta


def check_shapes(W: np.ndarray, b: np.ndarray, dataset: Dataset, bad: Any) -> None:
    """W (D, C) and b (C,) as the data set that trained them has D pixels and C classes."""
    D = dataset.pixels
    C = dataset.num_classes
    if W.shape != (D, C) or b.shape != (C,):
        raise bad(
            f"W must be ({D}, {C}) and b ({C},) for {dataset.title}, got {W.shape} and {b.shape}"
        )


def training_config(meta: dict[str, Any], bad: Any) -> Config:
    """The :class:`Config` the meta records, checked as training checks it. Older files: the
    config of one written before it held the validation size keeps it in ``data`` only; one
    of format 1 names its data set in ``data`` only, and may use a key since renamed."""
    config = meta.get("config", {})
    data = meta.get("data", {})
    if not isinstance(config, dict) or not isinstance(data, dict):
        raise bad("not a scratchlr model: its meta's config and data are not JSON objects")
    given = {
        (RENAMED[key] if key in RENAMED and key not in FIELDS else key): value
        for key, value in config.items()
    }
    name = data.get("name")
    older = {
        "validation_size": data.get("validation_size", DEFAULT_VALIDATION_SIZE),
        **({"dataset": FORMAT_1_DATA.get(name, name)} if isinstance(name, str) else {}),
    }
    try:
        built = Config(**{**older, **given})
    except (TypeError, ValueError) as exc:
        raise bad(f"not a scratchlr model: its config is not a training config ({exc})") from None
    if built.dtype != meta["dtype"]:
        raise bad(f"its weights are {meta['dtype']} but its config says {built.dtype}")
    if isinstance(name, str) and FORMAT_1_DATA.get(name, name) != built.dataset:
        raise bad(f"its data is {name} but its config says --dataset {built.dataset}")
    return built
