"""The strict IDX reader: every dtype, gzipped or not, and each kind of malformed file."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_bytes, write_idx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchlr.dataset.idx import DTYPES, IDXFormatError, read_idx


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


def test_a_header_written_by_hand(tmp_path: Path) -> None:
    """The format as its spec gives it: 0 0, the dtype code, ndim, big-endian uint32 dims,
    big-endian items."""
    (tmp_path / "h").write_bytes(
        bytes([0, 0, 0x0B, 2]) + struct.pack(">2I", 2, 3) + struct.pack(">6h", *range(-3, 3))
    )
    out = read_idx(tmp_path / "h")
    assert out.dtype == np.int16 and out.tolist() == [[-3, -2, -1], [0, 1, 2]]


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
    "huge claim": (
        b"\x00\x00\x08\x02" + struct.pack(">2I", 65536, 65536) + b"\x00" * 1000,
        "header claims 4294967296 payload bytes",
    ),
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
    [
        lambda gz: gz[: len(gz) // 2],
        lambda gz: gz[:10] + b"\xff" * 8 + gz[18:],
        lambda gz: b"\x1f\x8b\x00" + gz[3:],
    ],
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


def parse_or_format_error(tmp_path: Path, data: bytes, compress: bool) -> None:
    """The fuzz property: either a faithful parse (re-encoding gives the same bytes back)
    or an IDXFormatError; never another exception, never a huge allocation."""
    path = tmp_path / "fuzz.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        parsed = read_idx(path)
    except IDXFormatError:
        return
    assert idx_bytes(parsed) == data


@given(data=st.binary(max_size=64), compress=st.booleans())
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, compress: bool) -> None:
    parse_or_format_error(tmp_path, data, compress)


@given(
    code=st.sampled_from([*DTYPES, 0x00, 0x0A, 0xFF]),
    dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), max_size=4),
    payload=st.binary(max_size=200),
    flips=st.lists(st.tuples(st.integers(0, 300), st.integers(1, 255)), max_size=3),
    compress=st.booleans(),
)
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_mutated_headers_and_payloads(
    tmp_path: Path,
    code: int,
    dims: list[int],
    payload: bytes,
    flips: list[tuple[int, int]],
    compress: bool,
) -> None:
    data = bytearray(
        bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload
    )
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    parse_or_format_error(tmp_path, bytes(data), compress)


def test_empty_but_unrepresentable_shape(tmp_path: Path) -> None:
    # found by the fuzzer: zero items, yet a shape too large for NumPy to describe
    path = tmp_path / "wide"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 0, 3_036_988_439, 3_037_012_561))
    with pytest.raises(IDXFormatError, match="too large for an array"):
        read_idx(path)


def test_gzip_bomb_claim_is_refused_before_allocating(tmp_path: Path) -> None:
    # 2**32 items claimed, 1 kB of zeros: refused from the header, not by a MemoryError
    data = b"\x00\x00\x08\x01" + struct.pack(">I", 2**32 - 1) + b"\x00" * 1024
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(IDXFormatError, match="header claims 4294967295 payload bytes"):
        read_idx(path)
