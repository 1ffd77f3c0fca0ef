"""The data directory as a cache: verification stamps and a lock.

A stamp records (size, mtime_ns) of a file that matched the MD5 its record publishes
(:mod:`scratchlr.dataset.records`), in ``.scratchlr-verified.json``; while a file's size and
mtime are unchanged it is not hashed again. A stamp is an optimisation, never a requirement:
a folder scratchlr may not write (:func:`writable`) is used as it is, and nothing is written
there.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..files.atomic import atomic_write

STAMPS = ".scratchlr-verified.json"
LOCK = ".scratchlr.lock"
SEEN: dict[Path, list] = {}  # this process's own stamps, which serve where none can be written

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; atomic renames still keep files whole
    fcntl = None  # type: ignore[assignment]


def fingerprint(path: Path) -> list[int]:
    """[size, mtime_ns] of ``path``: cheap evidence that it has not changed."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def read_stamps(directory: Path) -> dict[str, list]:
    """{file name: [size, mtime_ns, md5]} of files verified earlier ({} if none/unreadable)."""
    try:
        stamps = json.loads((directory / STAMPS).read_text())
        return stamps if isinstance(stamps, dict) else {}
    except (OSError, ValueError):
        return {}


def writable(directory: Path) -> bool:
    """Whether scratchlr may write in ``directory``: the system allows it and its mode bits do.
    (Root may write anywhere, but a folder whose bits forbid writing, a shared read-only copy
    as in a classroom, is left exactly as it is.)"""
    try:
        return bool(directory.stat().st_mode & 0o222) and os.access(directory, os.W_OK)
    except OSError:
        return False


def is_stamped(path: Path, md5: str) -> bool:
    """True if ``path`` was verified against ``md5`` and is unchanged since."""
    try:
        now = [*fingerprint(path), md5]
    except OSError:
        return False
    return SEEN.get(path.resolve()) == now or read_stamps(path.parent).get(path.name) == now


def stamp(path: Path, md5: str) -> None:
    """Record that ``path`` (just verified) has the MD5 ``md5``: in this process, and
    in the folder's stamps where scratchlr may write there."""
    SEEN[path.resolve()] = [*fingerprint(path), md5]
    if writable(path.parent):
        stamps = read_stamps(path.parent)
        stamps[path.name] = SEEN[path.resolve()]
        with contextlib.suppress(OSError):
            atomic_write(path.parent / STAMPS, json.dumps(stamps, indent=1).encode())


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (blocks while another process fetches). A lock
    file that its holder removed while we waited (a failed first download cleans up) is not
    the lock any more: take the one now there instead."""
    if fcntl is None:
        yield
        return
    while True:
        fh = open(directory / LOCK, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.stat(directory / LOCK).st_ino == os.fstat(fh.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
