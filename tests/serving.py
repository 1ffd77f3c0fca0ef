"""The demo server for tests: a synthetic model served on an ephemeral port (no MNIST
needed), and clients that speak HTTP properly or not at all."""

from __future__ import annotations

import contextlib
import http.client
import io
import socket

import numpy as np
import pytest

from scratchlr.serve.server import DemoServer

Image = pytest.importorskip("PIL.Image", reason="Pillow (the [serve] extra) is not installed")


def png(pixels: np.ndarray, kind: str = "PNG") -> bytes:
    """The bytes of a grayscale uint8 image file."""
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, kind)
    return out.getvalue()


def digit_like(seed: int, side: int = 28) -> np.ndarray:
    """A random bright blob on black, ``side`` pixels square: an image that is not blank."""
    rng = np.random.default_rng(seed)
    x = np.zeros((side, side), np.uint8)
    lo = side // 4
    hi = 3 * side // 4
    x[lo:hi, lo:hi] = rng.integers(0, 256, (hi - lo, hi - lo))
    return x


def request(
    server: DemoServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def raw(server: DemoServer, data: bytes, wait_s: float = 10) -> bytes:
    """What the server answers to ``data`` sent as it is on a socket, until it closes."""
    with socket.create_connection(server.server_address[:2], timeout=wait_s) as s:
        s.sendall(data)
        with contextlib.suppress(OSError):  # the server may have answered and closed already
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(server: DemoServer, data: bytes) -> list[bytes]:
    """The status lines the server sends to ``data`` on one connection."""
    return [line for line in raw(server, data).split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
