"""The strict IDX reader: every dtype, gzipped or not, and each kind of malformed file."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from scratchlr.idx import DTYPES, IDXFormatError, idx_bytes, read_idx, write_idx


@pytest.mark.parametrize("code", sorted(DTYPES))
@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip_every_dtype(tmp_path: Path, code: int, compress: bool) -> None:
    dtype = DTYPES[code].newbyteorder("=")
    rng = np.random.default_rng(code)
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info:
        a = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True, dtype=dtype)
    else:
        a = rng.normal(size=(3, 4, 5)).astype(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, a, compress=compress)
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")
    digest = hashlib.md5()
    out = read_idx(path, digest)
    assert out.dtype == dtype and out.dtype.isnative and np.array_equal(out, a)
    assert digest.hexdigest() == hashlib.md5(gzip.decompress(raw) if compress else raw).hexdigest()
    # the header is big-endian: dtype code, ndim, then the dimensions
    plain = idx_bytes(a)
    assert plain[2] == code and plain[3] == 3 and struct.unpack(">3I", plain[4:16]) == (3, 4, 5)


def test_zero_dims_and_empty(tmp_path: Path) -> None:
    for a in (np.zeros((0, 28), np.uint8), np.array(7, np.int32)):
        write_idx(tmp_path / "z", a)
        out = read_idx(tmp_path / "z")
        assert out.shape == a.shape and np.array_equal(out, a)


def good() -> bytes:
    return idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


MALFORMED = {
    "empty": (b"", "truncated header"),
    "short header": (b"\x00\x00\x08", "truncated header"),
    "bad magic": (b"\x01\x00" + good()[2:], "bad magic"),
    "unknown dtype": (b"\x00\x00\x07" + good()[3:], "unknown IDX dtype code 0x07"),
    "missing dims": (good()[:10], "truncated header"),
    "truncated payload": (good()[:-1], "header claims 24 payload bytes"),
    "trailing bytes": (good() + b"\x00", "trailing bytes"),
    "huge claim": (b"\x00\x00\x08\x02" + struct.pack(">2I", 65536, 65536) + b"\x00" * 1000,
                   "header claims 4294967296 payload bytes"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_files_raise_named_error(tmp_path: Path, name: str, compress: bool) -> None:
    data, message = MALFORMED[name]
    if compress and name == "truncated payload":
        message = "truncated payload"  # a gzip stream's size is only known by reading it
    path = tmp_path / name.replace(" ", "_")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IDXFormatError, match=message) as info:
        read_idx(path)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value) and path.name in str(info.value)


@pytest.mark.parametrize(
    "mangle",
    [lambda gz: gz[: len(gz) // 2], lambda gz: gz[:10] + b"\xff" * 8 + gz[18:], lambda gz: b"\x1f\x8b\x00" + gz[3:]],
    ids=["cut stream", "corrupt deflate", "bad gzip header"],
)
def test_bad_gzip_raises_named_error(tmp_path: Path, mangle) -> None:
    gz = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    path = tmp_path / "x.gz"
    path.write_bytes(mangle(gz))
    with pytest.raises(IDXFormatError, match="x.gz"):
        read_idx(path)


def test_missing_file_is_named_error(tmp_path: Path) -> None:
    with pytest.raises(IDXFormatError, match="cannot open"):
        read_idx(tmp_path / "nope")


def test_unsupported_dtype_is_refused_by_writer() -> None:
    with pytest.raises(ValueError, match="no dtype code"):
        idx_bytes(np.zeros(3, np.uint16))
