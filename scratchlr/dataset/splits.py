"""A data set's four files, verified against its record, and the seed's train/validation/test split.

Images stay ``uint8`` in memory; the math sees ``uint8 * float32(1/255)``, exactly
what TensorFlow's ``input_data`` produced (:func:`scratchlr.model.pixels`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files.atomic import replacing
from . import store
from .idx import CHUNK, GZIP_MAGIC, IDXFormatError, read_idx
from .records import ALL_FILES, DEFAULT_VALIDATION_SIZE, GZ_FILE, PAYLOAD, DataFile, Dataset


class DataError(RuntimeError):
    """A data set's files are missing, unreadable, or fail verification. One-line message,
    naming the data set."""


@dataclass(frozen=True)
class Split:
    """Images ``(N, D) uint8`` and labels ``(N,) int64`` of one split."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Splits:
    """The seed's splits of a data set: train = training images [v:], validation = [:v],
    test = t10k; and the record of the data set they come from."""

    train: Split
    validation: Split
    test: Split
    dataset: Dataset


def data_dir(dataset: Dataset, explicit: str | None = None) -> Path:
    """``explicit`` if given, else the folder the data set's variable names (``$SCRATCHLR_DATA``
    for MNIST), else its default folder (``./data/mnist``)."""
    return Path(explicit or os.environ.get(dataset.env) or dataset.folder)


def candidates(directory: Path, f: DataFile) -> list[Path]:
    """Where ``f`` may lie in ``directory``: its ``.gz`` name, or uncompressed."""
    return [directory / f.name, directory / f.plain_name]


def find(directory: Path, f: DataFile) -> Path | None:
    """The first existing candidate path for ``f``, or None."""
    return next((p for p in candidates(directory, f) if p.is_file()), None)


def read_verified(path: Path, dataset: Dataset, key: str, label: str | None = None) -> np.ndarray:
    """Parse ``path`` and check it against the record's file ``key``: the MD5 of the bytes the
    record says (the decompressed payload, or the ``.gz`` file), then the shape.

    The MD5 is skipped when a stamp (:mod:`scratchlr.dataset.store`) shows the file verified and
    unchanged; stamping a file after it passed is the caller's business. Errors name
    ``label`` (default: the path).
    """
    f = dataset.files[key]
    label = label or str(path)
    stamped = store.is_stamped(path, f.md5)
    if f.md5_of == GZ_FILE and not stamped:
        check_gz_file(path, f, dataset, label)
    digest = hashlib.md5() if f.md5_of == PAYLOAD and not stamped else None
    try:
        array = read_idx(path, digest)
    except IDXFormatError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise DataError(f"{label}: corrupt {dataset.title} file: {reason}") from None
    if digest is not None and digest.hexdigest() != f.md5:
        raise DataError(
            f"{label}: MD5 of the decompressed data is {digest.hexdigest()}, expected {f.md5}"
            f" (corrupted, or not {dataset.title})"
        )
    if array.shape != f.shape or array.dtype != np.uint8:  # only if the record is wrong
        raise DataError(f"{label}: shape {array.shape} {array.dtype}, expected {f.shape}")
    return array


def check_gz_file(path: Path, f: DataFile, dataset: Dataset, label: str) -> None:
    """``DataError`` unless ``path`` is a gzip file whose MD5 is the published one of ``f``
    (a record whose MD5s are of the ``.gz`` files can verify nothing else)."""
    digest = hashlib.md5()
    try:
        with open(path, "rb") as file:
            gzipped = file.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            file.seek(0)
            for chunk in iter(lambda: file.read(CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    if not gzipped:
        raise DataError(
            f"{label}: {dataset.title}'s published MD5 is of {f.name} as served, so an "
            "uncompressed copy cannot be verified (keep the .gz file)"
        )
    if digest.hexdigest() != f.md5:
        raise DataError(
            f"{label}: MD5 of the .gz file is {digest.hexdigest()}, expected {f.md5}"
            f" (corrupted, or not {dataset.title}'s published file)"
        )


def check_folder(dataset: Dataset, directory: Path) -> None:
    """``DataError`` if ``directory`` is there but is not a folder."""
    if directory.exists() and not directory.is_dir():
        raise DataError(
            f"{directory} is a file, not a folder: the data folder holds the four "
            f"{dataset.title} files (set --data-dir or {dataset.env})"
        )


def load_arrays(
    dataset: Dataset, directory: Path, keys: tuple[str, ...] = ALL_FILES
) -> dict[str, np.ndarray]:
    """The verified arrays of the record's files ``keys`` (default: all four), keyed as
    the record keys them, or ``DataError``; no other file is opened."""
    check_folder(dataset, directory)
    found = {key: find(directory, dataset.files[key]) for key in keys}
    missing = [dataset.files[key].name for key, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"{dataset.title} not found in {directory.resolve()}: missing {', '.join(missing)} "
            f"(set --data-dir or {dataset.env}, or run "
            f"'python -m scratchlr download --dataset {dataset.name}')"
        )
    return {
        key: cached_array(path, dataset, key) for key, path in found.items() if path is not None
    }


def npy_path(path: Path, f: DataFile) -> Path:
    """Where the decompressed cache of ``f`` lives: beside it, ``<name>.npy``."""
    return path.parent / (f.plain_name + ".npy")


def cached_array(path: Path, dataset: Dataset, key: str) -> np.ndarray:
    """The verified array of ``path`` (the record's file ``key``), memory-mapped from its
    ``.npy`` cache when that is current; else parsed (and verified), and the cache (re)written.

    The cache is current when both the source file and the ``.npy`` match their stamps
    (size and mtime) and the ``.npy`` header says the right shape and dtype; anything
    else (stale, damaged, missing) rebuilds it. A read-only directory just skips it.
    """
    f = dataset.files[key]
    npy = npy_path(path, f)
    if store.is_stamped(path, f.md5) and store.is_stamped(npy, f.md5):
        try:
            array = np.load(npy, mmap_mode="r")
            if array.shape == f.shape and array.dtype == np.uint8:
                return array
        except (OSError, ValueError):
            pass
    array = read_verified(path, dataset, key)
    remember(path, f, array)
    return array


def remember(path: Path, f: DataFile, array: np.ndarray) -> None:
    """Stamp ``path`` as verified and write ``array`` (its verified content) to the
    ``.npy`` cache, atomically. Best effort: a read-only folder is not touched (the stamp is
    kept in this process only)."""
    npy = npy_path(path, f)
    store.stamp(path, f.md5)
    if not store.writable(path.parent):
        return
    try:
        with replacing(npy) as tmp, open(tmp, "wb") as out:
            np.save(out, array)
        store.stamp(npy, f.md5)
    except OSError:
        pass


def split(
    arrays: dict[str, np.ndarray],
    dataset: Dataset,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
) -> Splits:
    """The seed's split of the four arrays of ``dataset``: validation = the first
    ``validation_size`` training examples (in [0, train size): :class:`scratchlr.config.Config`
    checks it), train = the rest in file order, test = all t10k examples (none if ``arrays``
    has no test files)."""
    n = len(arrays["train_labels"])
    images = arrays["train_images"].reshape(n, -1)
    labels = arrays["train_labels"].astype(np.int64)
    no_images = np.zeros((0, dataset.side, dataset.side), np.uint8)
    test_labels = arrays.get("test_labels", np.zeros(0, np.uint8))  # none: a split of no rows
    test_images = arrays.get("test_images", no_images).reshape(len(test_labels), dataset.pixels)
    return Splits(
        train=Split(images[validation_size:], labels[validation_size:]),
        validation=Split(images[:validation_size], labels[:validation_size]),
        test=Split(test_images, test_labels.astype(np.int64)),
        dataset=dataset,
    )


def load(
    dataset: Dataset,
    directory: str | None = None,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
) -> Splits:
    """Read, verify and split ``dataset`` from :func:`data_dir` ``(dataset, directory)``."""
    return split(load_arrays(dataset, data_dir(dataset, directory)), dataset, validation_size)
