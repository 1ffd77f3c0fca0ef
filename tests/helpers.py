"""Helpers shared by tests: damaged copies of the MNIST folder."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

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
