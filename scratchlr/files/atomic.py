"""Atomic writes: every file scratchlr writes goes through a temporary file and a rename.

A reader never sees a torn file, and an interrupted or failed write leaves nothing behind:
the temporary file sits beside its target (so ``os.replace`` is atomic), and it is removed
unless it was renamed. The file gets the mode a plain ``open`` would give it, 0666 less the
umask, so a shared data folder stays readable by its group and others.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def umask() -> int:
    """The process's file-creation mask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def temporary(path: Path) -> Iterator[Path]:
    """A fresh, empty temporary file beside ``path``, removed on exit unless it was renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file to write ``path``'s new content into. When the block ends without an
    error, the file gets mode 0666 less the umask and is renamed onto ``path``; when it raises
    (a failed check, Ctrl-C), the file is removed and ``path`` is left as it was."""
    path = Path(path)
    with temporary(path) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
