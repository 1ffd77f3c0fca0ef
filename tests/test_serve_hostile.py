"""``scratchlr serve`` against hostile clients: bad images, wrong methods and paths, bodies
too large, unsized, truncated or smuggled, clients that stall or trickle, and too many of them.
After each, the server keeps answering."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import threading
import time

import numpy as np
import pytest
from serving import answers, digit_like, png, raw, request

from scratchlr.serve.protocol import MAX_BODY
from scratchlr.serve.server import DemoServer

BAD_IMAGES = {
    "empty": (b"", "empty"),
    "not an image": (b"hello, this is text, not a picture" * 10, "not a PNG or JPEG"),
    "truncated": (png(digit_like(2, 280))[:300], "not an image"),
    "blank": (png(np.zeros((280, 280))), "blank"),
    "white paper": (png(np.full((280, 280), 255)), "blank"),
    "a GIF": (png(digit_like(3, 280), "GIF"), "not a PNG or JPEG"),
    "too many pixels": (png(np.zeros((5001, 5001))), "too large"),
}


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_images_get_400_naming_the_problem(synthetic: DemoServer, name: str) -> None:
    data, words = BAD_IMAGES[name]
    status, headers, body = request(synthetic, "POST", "/api/predict", data)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert words in json.loads(body)["error"]


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("HEAD", "/nothing", 404),
        ("HEAD", "/api/predict", 405),
        ("GET", "/api/predict", 405),
        ("POST", "/", 405),
        ("PUT", "/api/templates", 405),
        ("DELETE", "/", 405),
        ("BREW", "/api/predict", 405),
        ("OPTIONS", "/page.js", 405),
        ("GET", "/nothing", 404),
        ("DELETE", "/x", 404),
        ("GET", "/../setup.cfg", 404),
        ("GET", "/%2e%2e/%2e%2e/etc/passwd", 404),
        ("GET", "/page.js/../../setup.cfg", 404),
        ("GET", "//etc/passwd", 404),
        ("GET", "/scratchlr/serve/page/page.js", 404),
        ("GET", "/index.html", 404),
        ("GET", "/api/test/-1", 404),
        ("GET", "/api/test/1e3", 404),
        ("GET", "/api/test/999999999", 404),
        ("GET", "/api/test/%30", 404),
        ("GET", "/page.js%00.html", 404),
        ("GET", "/api/../page.js", 404),
    ],
)
def test_wrong_methods_and_path_tricks(
    synthetic: DemoServer, method: str, path: str, status: int
) -> None:
    got, headers, body = request(synthetic, method, path)
    assert got == status, body
    assert (
        headers["Content-Type"] == "application/json"
        and headers["X-Content-Type-Options"] == "nosniff"
    )
    assert body == b"" if method == "HEAD" else "error" in json.loads(body)
    if status == 405:
        assert method not in headers["Allow"] and headers["Allow"] in ("GET, HEAD", "POST")


def test_bodies_too_large_unsized_or_truncated(synthetic: DemoServer) -> None:
    big = raw(
        synthetic,
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
    )
    assert big.startswith(b"HTTP/1.1 413") and b"at most" in big
    post = b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
    unsized = raw(synthetic, post + b"\r\n")
    assert unsized.startswith(b"HTTP/1.1 411")
    chunked = raw(synthetic, post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411")
    for length in ("-5", "abc", "1e3", "\u00b2"):
        bad = raw(synthetic, post + f"Content-Length: {length}\r\n\r\n".encode("latin-1"))
        assert bad.startswith(b"HTTP/1.1 400") and b"Content-Length" in bad
    cut = raw(synthetic, post + b"Content-Length: 1000\r\n\r\n" + png(digit_like(4))[:50])
    assert cut.startswith(b"HTTP/1.1 400") and b"truncated body" in cut
    garbage = raw(
        synthetic, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) + b"\r\n\r\n"
    )
    assert garbage.startswith(b"HTTP/1.") and b" 400 " in garbage.split(b"\r\n")[0]
    with socket.create_connection(
        synthetic.server_address[:2]
    ) as s:  # a client that resets mid-body
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(post + b"Content-Length: 1000\r\n\r\n" + b"\x89PNG")
    assert request(synthetic, "GET", "/api/test/0")[0] == 200  # and it keeps answering


def test_a_stalled_client_holds_only_its_own_connection(synthetic: DemoServer) -> None:
    """Half a request, then silence: the others are served meanwhile, and the server ends the
    stalled connection after its timeout (1 s here)."""
    stalled = [socket.create_connection(synthetic.server_address[:2], timeout=10) for _ in range(3)]
    stalled[0].sendall(
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"\x89PNG"
    )
    stalled[1].sendall(b"GET /api/templ")  # mid request line
    stalled[2].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # mid headers
    start = time.monotonic()
    for i in range(5):
        assert request(synthetic, "GET", f"/api/test/{i}")[0] == 200
    assert time.monotonic() - start < 1.0  # served while the three wait
    answers = []
    for s in stalled:
        chunks = []
        while chunk := s.recv(65536):  # the server closes it
            chunks.append(chunk)
        answers.append(b"".join(chunks))
        s.close()
    assert time.monotonic() - start < 5
    assert answers[0].startswith(b"HTTP/1.1 408")


def test_keep_alive_framing_cannot_be_confused(synthetic: DemoServer) -> None:
    """A body the server does not read, or a length it cannot trust, ends the connection: what
    follows is never taken for a request of its own."""
    smuggled = b"GET /api/test/0 HTTP/1.1\r\nHost: x\r\n\r\n"
    for head in (
        b"GET /api/predict HTTP/1.1\r\n",
        b"HEAD /api/predict HTTP/1.1\r\n",
        b"GET /nothing HTTP/1.1\r\n",
        b"PUT /api/templates HTTP/1.1\r\n",
    ):
        got = answers(
            synthetic,
            head + f"Host: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode() + smuggled,
        )
        assert len(got) == 1 and b" 200 " not in got[0], (head, got)
    twice = answers(
        synthetic,
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n"
        b"\r\nabc" + smuggled,
    )
    assert twice == [b"HTTP/1.1 400 Bad Request"]
    both = answers(
        synthetic,
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
        b"Content-Length: 3\r\n\r\nabc" + smuggled,
    )
    assert both == [b"HTTP/1.1 411 Length Required"]
    old = raw(synthetic, b"GET /\r\n\r\n")  # HTTP/0.9: an answer with headers, not the bare page
    assert old.startswith(b"HTTP/1.1 400") and b"nosniff" in old and b"<canvas" not in old


def test_a_413_reaches_a_client_that_is_still_uploading(synthetic: DemoServer) -> None:
    for size in (MAX_BODY + 1, 12 * MAX_BODY):
        status, _, body = request(synthetic, "POST", "/api/predict", b"x" * size)
        assert status == 413 and b"at most" in body
    early = raw(
        synthetic,
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n"
        "Expect: 100-continue\r\n\r\n".encode(),
    )
    assert (
        early.startswith(b"HTTP/1.1 413") and b"100 Continue" not in early
    )  # refused before it is sent


def test_a_trickling_client_runs_out_of_time(synthetic: DemoServer) -> None:
    """A byte every 0.3 s never lets a read time out, but the request's 1 s is still up."""
    for prefix in (
        b"GET /api/test/0 HTTP/1.1\r\nHo",
        b"POST /api/predict HTTP/1.1\r\nContent-Length: 900\r\n\r\n",
    ):
        with socket.create_connection(synthetic.server_address[:2], timeout=10) as s:
            s.sendall(prefix)
            start = time.monotonic()
            answer = b""
            try:
                while time.monotonic() - start < 5:
                    s.sendall(b"x")
                    time.sleep(0.3)
            except OSError:  # the server closed it
                pass
            s.settimeout(1)
            with contextlib.suppress(OSError):
                answer = s.recv(65536)
            assert time.monotonic() - start < 2.5, prefix
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_connections_beyond_the_limit_get_503(synthetic: DemoServer) -> None:
    small = DemoServer(
        ("127.0.0.1", 0),
        synthetic.W,
        synthetic.b,
        synthetic.test,
        quiet=True,
        timeout_s=5,
        max_connections=3,
    )
    threading.Thread(target=small.serve_forever, daemon=True).start()
    try:
        held = [socket.create_connection(small.server_address[:2], timeout=10) for _ in range(3)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\n")  # each holds its thread
        time.sleep(0.2)
        busy = raw(small, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503") and b"busy" in busy
        for s in held:
            s.close()
        time.sleep(0.3)
        assert request(small, "GET", "/api/test/0")[0] == 200  # and back when they are gone
    finally:
        small.shutdown()
        small.server_close()


def after_a_refusal(server: DemoServer, head: bytes, then: bytes) -> list[bytes]:
    """The status codes the server sends on one connection to ``head``, and to ``then`` sent
    once the first answer has arrived (as a client that sends its body anyway would). Found
    anywhere in the bytes: a second response follows the first's body without a line break."""
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(head)
        got = s.recv(65536)
        with contextlib.suppress(OSError):  # the server may have closed it already
            s.sendall(then)
            s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                got += chunk
    return re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", got)


@pytest.mark.parametrize(
    "framing, status",
    [
        (f"Content-Length: {MAX_BODY + 1}", b"413"),
        ("Transfer-Encoding: chunked", b"411"),
        ("Content-Length: 12, 13", b"400"),
    ],
)
def test_a_body_refused_before_it_is_sent_is_never_read_as_a_request(
    synthetic: DemoServer, framing: str, status: bytes
) -> None:
    """``Expect: 100-continue`` and a body that would be refused: the refusal, and what the
    client sends next (here a request of its own) is dropped, not answered."""
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\n{framing}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    smuggled = b"GET /api/test/0 HTTP/1.1\r\nHost: x\r\n\r\n"
    got = after_a_refusal(synthetic, head, smuggled)
    assert got == [status]
