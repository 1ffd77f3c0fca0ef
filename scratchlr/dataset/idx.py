"""Strict reader for the IDX format MNIST (and Fashion-MNIST, and KMNIST) ships in.

An IDX file is ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then exactly ``prod(dims)`` big-endian items. Files may be gzipped.
Anything else is an :class:`IDXFormatError` with a one-line reason.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any, BinaryIO, Union

import numpy as np

#: IDX dtype code -> big-endian NumPy dtype.
DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
#: deflate expands at most ~1032:1, so a gzip file of n bytes holds < 1032 n + 1 KiB.
MAX_DEFLATE_RATIO = 1032
CHUNK = 1 << 22
Stream = Union[BinaryIO, gzip.GzipFile]  # a file as read: plain, or decompressed on the fly


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (bad magic, dtype, size, or gzip stream)."""


def _read_exact(f: Stream, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def _open(path: str) -> tuple[Stream, int, bool]:
    """Open ``path`` as a decompressed stream; return (stream, file size, gzipped?)."""
    size = os.path.getsize(path)
    raw = open(path, "rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.GzipFile(path, mode="rb"), size, True  # it opens (and closes) the file itself
    raw.seek(0)
    return raw, size, False


def declared_ndim(path: str | os.PathLike[str]) -> int | None:
    """The number of dimensions an IDX file declares (3 for images, 1 for labels), or None if
    ``path``, gzipped or not (known by its magic bytes, as :func:`read_idx` knows it), does not
    start with IDX's header ``0 0 <dtype code> <ndim>``."""
    try:
        stream, _, _ = _open(os.fspath(path))
        with stream:
            head = _read_exact(stream, 4)
    except (OSError, EOFError, zlib.error):
        return None
    return head[3] if len(head) == 4 and head[:2] == b"\0\0" and head[2] in DTYPES else None


def read_idx(path: str | os.PathLike[str], digest: Any | None = None) -> np.ndarray:
    """Parse the IDX file at ``path`` (plain or gzipped) into a native-endian array.

    ``digest``, if given (e.g. ``hashlib.md5()``), is updated with every decompressed
    byte, so a caller can verify the payload without decompressing twice.
    The header is checked against the data before the payload is allocated, so a
    header that claims more than the file can hold is an error, not a huge allocation.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        stream, size, gzipped = _open(path)
    except OSError as exc:
        raise IDXFormatError(f"{name}: cannot open ({exc.strerror or exc})") from None
    try:
        with stream:
            return _parse(stream, name, size, gzipped, digest)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise IDXFormatError(f"{name}: bad gzip stream ({exc})") from None


def _parse(f: Stream, name: str, size: int, gzipped: bool, digest: Any) -> np.ndarray:
    head = _read_exact(f, 4)
    if len(head) < 4:
        raise IDXFormatError(f"{name}: truncated header ({len(head)} of 4 bytes)")
    if head[:2] != b"\x00\x00":
        raise IDXFormatError(f"{name}: bad magic {head[:2].hex()} (expected 0000)")
    code = head[2]
    ndim = head[3]
    if code not in DTYPES:
        raise IDXFormatError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    dim_bytes = _read_exact(f, 4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise IDXFormatError(f"{name}: truncated header (needs {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", dim_bytes)
    dtype = DTYPES[code]
    nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
    header = 4 + 4 * ndim
    limit = size * MAX_DEFLATE_RATIO + 1024 if gzipped else size
    if header + nbytes > limit:
        raise IDXFormatError(
            f"{name}: header claims {nbytes} payload bytes {list(dims)} but the file holds "
            f"{'at most ' if gzipped else ''}{max(limit - header, 0)}"
        )
    if digest is not None:
        digest.update(head + dim_bytes)
    buf = np.empty(nbytes, dtype=np.uint8)
    view = buf.data  # a memoryview of buf
    got = 0
    while got < nbytes:
        chunk = _read_exact(f, min(CHUNK, nbytes - got))
        if not chunk:
            raise IDXFormatError(f"{name}: truncated payload ({got} of {nbytes} bytes)")
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    if digest is not None:
        digest.update(view)
    if _read_exact(f, 1):
        raise IDXFormatError(f"{name}: trailing bytes after the {nbytes}-byte payload")
    try:
        array = buf.view(dtype).reshape(dims)
    except ValueError:  # e.g. (0, 2**31, 2**31): no data, but a shape NumPy cannot hold
        raise IDXFormatError(
            f"{name}: dimensions {list(dims)} are too large for an array"
        ) from None
    return array.astype(dtype.newbyteorder("="), copy=False)
