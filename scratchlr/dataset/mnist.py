"""The four canonical MNIST files, verified, and the seed's train/validation/test split.

Images stay ``uint8`` in memory; the math sees ``uint8 * float32(1/255)``, exactly
what TensorFlow's ``input_data`` produced (:func:`scratchlr.model.pixels`).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files.atomic import replacing
from . import store
from .idx import IDXFormatError, read_idx

DEFAULT_DATA_DIR = os.path.join("data", "mnist")
DATA_ENV = "SCRATCHLR_DATA"
# MNIST's shapes, for every module that needs them: SIDE x SIDE images (D = PIXELS), C = CLASSES.
SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10
TRAIN_SIZE, TEST_SIZE = 60000, 10000
DEFAULT_VALIDATION_SIZE = 5000  # TensorFlow's input_data held out the first 5,000 training images


@dataclass(frozen=True)
class MNISTFile:
    """One canonical file: its name, the MD5 and size of its decompressed IDX bytes, shape."""

    name: str
    md5: str
    size: int
    shape: tuple[int, ...]


FILES = {
    "train_images": MNISTFile(
        "train-images-idx3-ubyte.gz",
        "6bbc9ace898e44ae57da46a324031adb",
        47040016,
        (TRAIN_SIZE, SIDE, SIDE),
    ),
    "train_labels": MNISTFile(
        "train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", 60008, (TRAIN_SIZE,)
    ),
    "test_images": MNISTFile(
        "t10k-images-idx3-ubyte.gz",
        "2646ac647ad5339dbf082846283269ea",
        7840016,
        (TEST_SIZE, SIDE, SIDE),
    ),
    "test_labels": MNISTFile(
        "t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", 10008, (TEST_SIZE,)
    ),
}

TRAIN_FILES = ("train_images", "train_labels")  # all a search reads: it never sees the test set
TEST_FILES = ("test_images", "test_labels")  # all the demo page reads (scratchlr serve)


class MNISTDataError(RuntimeError):
    """The MNIST files are missing, unreadable, or fail verification. One-line message."""


@dataclass(frozen=True)
class Split:
    """Images ``(N, 784) uint8`` and labels ``(N,) int64`` of one split."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class MNIST:
    """The seed's splits: train = training images [v:], validation = [:v], test = t10k."""

    train: Split
    validation: Split
    test: Split


def data_dir(explicit: str | None = None) -> Path:
    """``explicit`` if given, else ``$SCRATCHLR_DATA``, else ``./data/mnist``."""
    return Path(explicit or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


def candidates(directory: Path, f: MNISTFile) -> list[Path]:
    """Where ``f`` may lie in ``directory``: its ``.gz`` name, or uncompressed."""
    return [directory / f.name, directory / f.name[: -len(".gz")]]


def find(directory: Path, f: MNISTFile) -> Path | None:
    """The first existing candidate path for ``f``, or None."""
    return next((p for p in candidates(directory, f) if p.is_file()), None)


def read_verified(path: Path, f: MNISTFile, label: str | None = None) -> np.ndarray:
    """Parse ``path`` and check its decompressed bytes' MD5 and shape against ``f``.

    The MD5 is skipped when a stamp (:mod:`scratchlr.dataset.store`) shows the file verified and
    unchanged; stamping a file after it passed is the caller's business. Errors name
    ``label`` (default: the path).
    """
    label = label or str(path)
    digest = None if store.is_stamped(path, f.md5) else hashlib.md5()
    try:
        array = read_idx(path, digest)
    except IDXFormatError as exc:
        raise MNISTDataError(
            f"{label}: corrupt MNIST file: {str(exc).split(': ', 1)[-1]}"
        ) from None
    if digest is not None and digest.hexdigest() != f.md5:
        raise MNISTDataError(
            f"{label}: MD5 of the decompressed data is {digest.hexdigest()}, expected {f.md5}"
            " (corrupted, or not MNIST)"
        )
    if array.shape != f.shape or array.dtype != np.uint8:  # only if the MD5 table is wrong
        raise MNISTDataError(f"{label}: shape {array.shape} {array.dtype}, expected {f.shape}")
    return array


def check_folder(directory: Path) -> None:
    """``MNISTDataError`` if ``directory`` is there but is not a folder."""
    if directory.exists() and not directory.is_dir():
        raise MNISTDataError(
            f"{directory} is a file, not a folder: the data folder holds the four MNIST files "
            f"(set --data-dir or {DATA_ENV})"
        )


def load_arrays(directory: Path, keys: tuple[str, ...] = tuple(FILES)) -> dict[str, np.ndarray]:
    """The verified arrays of ``keys`` (default: all four) keyed as :data:`FILES`, or
    ``MNISTDataError``; no other file is opened."""
    check_folder(directory)
    found = {key: find(directory, FILES[key]) for key in keys}
    missing = [FILES[key] for key, path in found.items() if path is None]
    if missing:
        names = ", ".join(f.name for f in missing)
        raise MNISTDataError(
            f"MNIST not found in {directory.resolve()}: missing {names} "
            f"(set --data-dir or {DATA_ENV}, or run 'python -m scratchlr download')"
        )
    return {key: cached_array(path, FILES[key]) for key, path in found.items() if path is not None}


def npy_path(path: Path, f: MNISTFile) -> Path:
    """Where the decompressed cache of ``f`` lives: beside it, ``<name>.npy``."""
    return path.parent / (f.name[: -len(".gz")] + ".npy")


def cached_array(path: Path, f: MNISTFile) -> np.ndarray:
    """The verified array of ``path``, memory-mapped from its ``.npy`` cache when that is
    current; else parsed (and verified), and the cache (re)written.

    The cache is current when both the source file and the ``.npy`` match their stamps
    (size and mtime) and the ``.npy`` header says the right shape and dtype; anything
    else (stale, damaged, missing) rebuilds it. A read-only directory just skips it.
    """
    npy = npy_path(path, f)
    if store.is_stamped(path, f.md5) and store.is_stamped(npy, f.md5):
        try:
            array = np.load(npy, mmap_mode="r")
            if array.shape == f.shape and array.dtype == np.uint8:
                return prefault(array)
        except (OSError, ValueError):
            pass
    array = read_verified(path, f)
    remember(path, f, array)
    return array


MADV_POPULATE_READ = 22  # Linux >= 5.14; Python's mmap module does not name it yet


def prefault(array: np.memmap) -> np.memmap:
    """Map all of a memory-mapped array's pages now, in one call, rather than one page
    fault at a time during training (~4 ms up front for the training images, against
    ~20 us/step over the first epoch on a VM). Best effort: a no-op off Linux or on
    kernels without ``MADV_POPULATE_READ``."""
    if sys.platform.startswith("linux") and isinstance(array.base, mmap.mmap):
        try:
            array.base.madvise(MADV_POPULATE_READ)
        except OSError:
            pass
    return array


def remember(path: Path, f: MNISTFile, array: np.ndarray) -> None:
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


def split(arrays: dict[str, np.ndarray], validation_size: int = DEFAULT_VALIDATION_SIZE) -> MNIST:
    """The seed's split of the four arrays: validation = first ``validation_size``
    training examples (in [0, 60000): :class:`scratchlr.config.Config` checks it), train = the
    rest in file order, test = all t10k examples (none if ``arrays`` has no test files)."""
    n = len(arrays["train_labels"])
    images = arrays["train_images"].reshape(n, -1)
    labels = arrays["train_labels"].astype(np.int64)
    test_labels = arrays.get("test_labels", np.zeros(0, np.uint8))  # none: a split of no rows
    test_images = arrays.get("test_images", np.zeros((0, SIDE, SIDE), np.uint8)).reshape(
        len(test_labels), PIXELS
    )
    return MNIST(
        train=Split(images[validation_size:], labels[validation_size:]),
        validation=Split(images[:validation_size], labels[:validation_size]),
        test=Split(test_images, test_labels.astype(np.int64)),
    )


def load(directory: str | None = None, validation_size: int = DEFAULT_VALIDATION_SIZE) -> MNIST:
    """Read, verify and split MNIST from :func:`data_dir` ``(directory)``."""
    return split(load_arrays(data_dir(directory)), validation_size)
