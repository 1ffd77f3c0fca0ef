"""Helpers shared by tests: damaged copies of the MNIST folder, scores computed by hand, an IDX
writer, and the command line run in a fresh process (:func:`run_cli`)."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from scratchlr.dataset import splits
from scratchlr.dataset.idx import DTYPES
from scratchlr.dataset.records import DATASETS


def damaged_copy(source: Path, target: Path, key: str, how: str) -> Path:
    """``target`` holding links to ``source``'s MNIST files, except file ``key`` damaged:
    ``missing``, ``truncated`` (gzip cut short), ``corrupted`` (one payload byte changed,
    re-gzipped: parses, fails the MD5) or ``uncompressed`` (valid, stored without gzip)."""
    target.mkdir(parents=True, exist_ok=True)
    files = DATASETS["mnist"].files
    for k, f in files.items():
        if k != key:
            os.symlink(splits.find(source, f), target / f.name)
    f = files[key]
    raw = splits.find(source, f).read_bytes()
    if how == "truncated":
        (target / f.name).write_bytes(raw[: len(raw) // 2])
    elif how == "corrupted":
        payload = bytearray(gzip.decompress(raw))
        payload[-1] ^= 0xFF
        (target / f.name).write_bytes(gzip.compress(bytes(payload), compresslevel=1))
    elif how == "uncompressed":
        (target / f.name[: -len(".gz")]).write_bytes(gzip.decompress(raw))
    elif how != "missing":
        raise ValueError(how)
    return target


def scores_by_hand(
    W: np.ndarray, b: np.ndarray, images_u8: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of W, b, written out here in float64 with its own
    log-sum-exp: a second reading of the package's evaluation, to check it against."""
    z = (images_u8 / 255.0) @ W.astype(np.float64) + b
    top = z.max(axis=1, keepdims=True)
    log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean()), float(
        np.mean(z.argmax(axis=1) == labels)
    )


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file (header + big-endian payload), uncompressed: files for the
    reader to read."""
    array = np.asarray(array)
    same = [
        c
        for c, d in DTYPES.items()
        if (d.kind, d.itemsize) == (array.dtype.kind, array.dtype.itemsize)
    ]
    if not same:
        raise ValueError(f"IDX has no dtype code for {array.dtype}")
    code = same[0]
    if array.ndim > 255:
        raise ValueError("IDX supports at most 255 dimensions")
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(DTYPES[code], copy=False).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` to ``path`` as IDX, gzipped when ``compress``."""
    data = idx_bytes(array)
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)


ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m scratchlr ARGS`` in a fresh process that imports this checkout, its output
    captured as text (``kwargs``: more of ``subprocess.run``'s, such as ``cwd``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "scratchlr", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kwargs,
    )
