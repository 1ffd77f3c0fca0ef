"""Helpers shared by tests: damaged copies of the MNIST folder, scores computed by hand."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from scratchlr.dataset import mnist


def damaged_copy(source: Path, target: Path, key: str, how: str) -> Path:
    """``target`` holding links to ``source``'s files, except ``FILES[key]`` damaged:
    ``missing``, ``truncated`` (gzip cut short), ``corrupted`` (one payload byte changed,
    re-gzipped: parses, fails the MD5) or ``uncompressed`` (valid, stored without gzip)."""
    target.mkdir(parents=True, exist_ok=True)
    for k, f in mnist.FILES.items():
        if k != key:
            os.symlink(mnist.find(source, f), target / f.name)
    f = mnist.FILES[key]
    raw = mnist.find(source, f).read_bytes()
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


def scores_by_hand(W: np.ndarray, b: np.ndarray, images_u8: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of W, b, written out here in float64 with its own
    log-sum-exp: a second reading of the package's evaluation, to check it against."""
    z = (images_u8 / 255.0) @ W.astype(np.float64) + b
    top = z.max(axis=1, keepdims=True)
    log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean()), float(np.mean(z.argmax(axis=1) == labels))
