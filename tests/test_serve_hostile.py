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
import zlib

import numpy as np
import pytest
from serving import digit_like, png, raw, request

from scratchlr.files import images
from scratchlr.serve import guard
from scratchlr.serve.protocol import MAX_BODY, MAX_PIXELS
from scratchlr.serve.server import DemoServer


def host(server: DemoServer) -> str:
    """The ``Host`` a client gives the server: its address and port, ``127.0.0.1:PORT``."""
    address, port = server.server_address[:2]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def statuses(got: bytes) -> list[bytes]:
    """The status codes of the responses in ``got``, found anywhere in it: a second response
    follows the first's body with no line break between."""
    return re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", got)


def png_head(width: int, height: int) -> bytes:
    """A PNG file that says it is ``width`` x ``height`` grey pixels, and holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def damaged(data: bytes, at: int) -> bytes:
    """``data`` with the byte at ``at`` flipped."""
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def jpeg(pixels: np.ndarray) -> bytes:
    """The bytes of a grayscale JPEG."""
    return png(pixels, "JPEG")


BAD_IMAGES = {
    "empty": (b"", "empty"),
    "not an image": (b"hello, this is text, not a picture" * 10, "not a PNG or JPEG"),
    "truncated": (png(digit_like(2, 280))[:300], "damaged or truncated"),
    "cut in its header": (png(digit_like(2, 280))[:20], "damaged or truncated"),
    "damaged": (damaged(png(digit_like(2, 280)), 60), "damaged or truncated"),
    "a truncated JPEG": (jpeg(digit_like(2, 280))[:500], "damaged or truncated"),
    "blank": (png(np.zeros((280, 280))), "blank"),
    "white paper": (png(np.full((280, 280), 255)), "blank"),
    "a GIF": (png(digit_like(3, 280), "GIF"), "not a PNG or JPEG"),
    "a bomb's header": (png_head(100_000, 100_000), "too large"),
    "past Pillow's warning": (png_head(10_000, 10_000), "too large"),
    "a pixel too many": (png(np.zeros((1000, 1001))), "1001x1000 pixels, over 1,000,000"),
    "too many pixels": (png(np.zeros((5001, 5001))), "too large"),
}
INTERNALS = re.compile(r"PIL|Pillow|Error|Warning|DOS|bomb|0x|<|\n")  # none in an error text


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_images_get_400_naming_the_problem(synthetic: DemoServer, name: str) -> None:
    """In the user's words, in one line: not the decoder's class names or messages."""
    data, words = BAD_IMAGES[name]
    status, headers, body = request(synthetic, "POST", "/api/predict", data)
    assert status == 400 and headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert words in error and not INTERNALS.search(error), error


def test_the_largest_upload_accepted_is_a_1000_by_1000_photo_of_1_mib(
    synthetic: DemoServer,
) -> None:
    photo = png(digit_like(5, 1000))  # random grey in its middle: hardly compressible
    assert MAX_PIXELS == 1000 * 1000 and len(photo) <= MAX_BODY == 1024 * 1024
    status, _, body = request(synthetic, "POST", "/api/predict", photo)
    assert status == 200 and json.loads(body)["prediction"] in range(10)


def test_scratchlr_predict_still_reads_a_large_photo(synthetic: DemoServer, tmp_path) -> None:
    """The server's caps are its own: the command line's reader takes a 2500 x 2500 picture."""
    photo = png(digit_like(8, 2500))
    (tmp_path / "photo.png").write_bytes(photo)
    assert images.read(tmp_path / "photo.png")[0].shape == (784,)
    status, _, _ = request(synthetic, "POST", "/api/predict", photo)
    assert status == 413 and len(photo) > MAX_BODY
    with pytest.raises(images.ImageError, match="2500x2500 pixels, over 1,000,000"):
        images.from_bytes(photo, MAX_PIXELS)  # and were it small enough to be sent


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
    post = f"POST /api/predict HTTP/1.1\r\nHost: {host(synthetic)}\r\n".encode()
    big = raw(synthetic, post + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert big.startswith(b"HTTP/1.1 413") and b"at most" in big
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
    named = f"Host: {host(synthetic)}\r\n".encode()
    stalled[0].sendall(
        b"POST /api/predict HTTP/1.1\r\n" + named + b"Content-Length: 5000\r\n\r\n\x89PNG"
    )
    stalled[1].sendall(b"GET /api/templ")  # mid request line
    stalled[2].sendall(b"GET / HTTP/1.1\r\n" + named)  # mid headers
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
    named = f"Host: {host(synthetic)}\r\n".encode()
    smuggled = b"GET /api/test/0 HTTP/1.1\r\n" + named + b"\r\n"
    for head in (
        b"GET /api/predict HTTP/1.1\r\n",
        b"HEAD /api/predict HTTP/1.1\r\n",
        b"GET /nothing HTTP/1.1\r\n",
        b"PUT /api/templates HTTP/1.1\r\n",
    ):
        got = statuses(
            raw(
                synthetic,
                head + named + f"Content-Length: {len(smuggled)}\r\n\r\n".encode() + smuggled,
            )
        )
        assert len(got) == 1 and got[0] != b"200", (head, got)
    twice = statuses(
        raw(
            synthetic,
            b"POST /api/predict HTTP/1.1\r\n"
            + named
            + b"Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc"
            + smuggled,
        )
    )
    assert twice == [b"400"]
    both = statuses(
        raw(
            synthetic,
            b"POST /api/predict HTTP/1.1\r\n"
            + named
            + b"Transfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"
            + smuggled,
        )
    )
    assert both == [b"411"]
    old = raw(synthetic, b"GET /\r\n\r\n")  # HTTP/0.9: an answer with headers, not the bare page
    assert old.startswith(b"HTTP/1.1 400") and b"nosniff" in old and b"<canvas" not in old


def test_a_413_reaches_a_client_that_is_still_uploading(synthetic: DemoServer) -> None:
    for size in (MAX_BODY + 1, 12 * MAX_BODY):
        status, _, body = request(synthetic, "POST", "/api/predict", b"x" * size)
        assert status == 413 and b"at most" in body
    early = raw(
        synthetic,
        f"POST /api/predict HTTP/1.1\r\nHost: {host(synthetic)}\r\n"
        f"Content-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n\r\n".encode(),
    )
    assert (
        early.startswith(b"HTTP/1.1 413") and b"100 Continue" not in early
    )  # refused before it is sent


def test_a_trickling_client_runs_out_of_time(synthetic: DemoServer) -> None:
    """A byte every 0.3 s never lets a read time out, but the request's 1 s is still up."""
    named = f"Host: {host(synthetic)}\r\n".encode()
    for prefix in (
        b"GET /api/test/0 HTTP/1.1\r\nHo",
        b"POST /api/predict HTTP/1.1\r\n" + named + b"Content-Length: 900\r\n\r\n",
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
        busy = raw(small, f"GET / HTTP/1.1\r\nHost: {host(small)}\r\n\r\n".encode())
        assert busy.startswith(b"HTTP/1.1 503") and b"busy" in busy
        assert b"\r\nServer: scratchlr\r\n" in busy and b"Python" not in busy
        for s in held:
            s.close()
        time.sleep(0.3)
        assert request(small, "GET", "/api/test/0")[0] == 200  # and back when they are gone
    finally:
        small.shutdown()
        small.server_close()


def after_a_refusal(server: DemoServer, head: bytes, then: bytes) -> bytes:
    """What the server sends on one connection to ``head``, and to ``then`` sent once the
    first answer has arrived (as a client that sends its body anyway would)."""
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(head)
        got = s.recv(65536)
        with contextlib.suppress(OSError):  # the server may have closed it already
            s.sendall(then)
            s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                got += chunk
    return got


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
        f"POST /api/predict HTTP/1.1\r\nHost: {host(synthetic)}\r\n{framing}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    smuggled = f"GET /api/test/0 HTTP/1.1\r\nHost: {host(synthetic)}\r\n\r\n".encode()
    assert statuses(after_a_refusal(synthetic, head, smuggled)) == [status]


def foreign_hosts(server: DemoServer) -> list[str]:
    """``Host`` values that do not name the server: names a rebinding attack could use, its
    address on another port or without one, and texts that only look like an address."""
    port = server.server_address[1]
    return [
        f"rebind.example:{port}",
        "rebind.example",
        f"127.0.0.1:{port + 1}",
        "127.0.0.1",
        f"localhost.:{port}",
        f"127.1:{port}",
        f"[127.0.0.1]:{port}",
        f"127.0.0.1:0{port}",
        f"127.0.0.1:{port}@rebind.example",
        f":{port}",
        "",
    ]


def test_a_foreign_host_is_refused_and_the_connection_closed(synthetic: DemoServer) -> None:
    """403 naming what is accepted, one line, and nothing else is answered on the connection."""
    port = synthetic.server_address[1]
    then = f"GET /api/test/0 HTTP/1.1\r\nHost: {host(synthetic)}\r\n\r\n".encode()
    for name in foreign_hosts(synthetic):
        for path in ("/", "/api/templates"):
            got = raw(synthetic, f"GET {path} HTTP/1.1\r\nHost: {name}\r\n\r\n".encode() + then)
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 403") and b"\r\nConnection: close" in head, name
            error = json.loads(body)["error"]
            assert error == (
                f"this server answers to 127.0.0.1:{port} or localhost:{port}, not Host {name}"
            )
            assert statuses(got) == [b"403"] and b"<canvas" not in got
    head = raw(synthetic, f"HEAD / HTTP/1.1\r\nHost: rebind.example:{port}\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 403") and head.endswith(b"\r\n\r\n")  # no body to a HEAD


def test_the_loopback_names_and_ip_literals_with_the_port_are_served(
    synthetic: DemoServer,
) -> None:
    port = synthetic.server_address[1]
    for name in ("127.0.0.1", "localhost", "LocalHost", "10.1.2.3", "[::1]", "[::ffff:7f00:1]"):
        got = raw(synthetic, f"GET /api/test/1 HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 200"), (name, got[:200])


def test_a_missing_or_doubled_host(synthetic: DemoServer) -> None:
    """HTTP/1.1 must name the server, once; HTTP/1.0 (before Host existed) need not."""
    missing = raw(synthetic, b"GET / HTTP/1.1\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 400") and b"no Host header" in missing
    twice = f"Host: {host(synthetic)}\r\n".encode() * 2
    doubled = raw(synthetic, b"GET / HTTP/1.1\r\n" + twice + b"\r\n")
    assert doubled.startswith(b"HTTP/1.1 400") and b"more than one Host" in doubled
    old = raw(synthetic, b"GET /api/test/0 HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200")


def test_a_foreign_host_gets_no_100_continue(synthetic: DemoServer) -> None:
    got = raw(
        synthetic,
        b"POST /api/predict HTTP/1.1\r\nHost: rebind.example\r\nContent-Length: 9\r\n"
        b"Expect: 100-continue\r\n\r\nsmuggled!",
    )
    assert statuses(got) == [b"403"]


def test_an_ipv6_server_answers_to_its_literal(synthetic: DemoServer) -> None:
    try:
        v6 = DemoServer(("::1", 0), synthetic.W, synthetic.b, synthetic.test, quiet=True)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    threading.Thread(target=v6.serve_forever, daemon=True).start()
    try:
        port = v6.server_address[1]
        for name, status in ((f"[::1]:{port}", b"200"), ("[::1]", b"403"), ("::1", b"403")):
            got = raw(v6, f"GET /page.js HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 " + status), name
        assert f"answers to [::1]:{port} or localhost:{port}".encode() in got
    finally:
        v6.shutdown()
        v6.server_close()


def test_a_host_name_given_is_accepted_beside_the_loopback_ones() -> None:
    site = guard.Site("Box.Lan", 8000)
    assert site.accepts("box.lan", "8000") and site.accepts("localhost", "8000")
    assert not site.accepts("box.lan", "8001") and not site.accepts("box.lan", None)
    assert guard.Site("box.lan", 80).accepts("box.lan", None)
    assert site.example() == "127.0.0.1:8000, box.lan:8000 or localhost:8000"
    assert guard.Site("0.0.0.0", 8000).example() == "127.0.0.1:8000 or localhost:8000"
    assert site.own("box.lan", "8000") and site.own("127.0.0.2", "8000")
    assert site.own("[::1]", "8000") and not site.own("10.1.2.3", "8000")
    assert guard.Site("10.1.2.3", 8000).own("10.1.2.3", "8000")
    assert guard.Site("::1", 8000).own("[::1]", "8000")


def post_from(server: DemoServer, headers: dict[str, str]) -> tuple[int, str]:
    """(status, error or prediction) of a drawing POSTed with ``headers``."""
    status, _, body = request(server, "POST", "/api/predict", png(digit_like(6, 280)), headers)
    answer = json.loads(body)
    return status, answer.get("error", answer.get("prediction"))


def test_a_post_from_another_sites_page_is_refused(synthetic: DemoServer) -> None:
    port = synthetic.server_address[1]
    for headers in (
        {"Origin": f"http://rebind.example:{port}"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"https://127.0.0.1:{port}"},
        {"Origin": f"http://127.0.0.1:{port + 1}"},
        {"Origin": f"http://127.0.0.1:{port}/page"},
        {"Origin": f"http://user@127.0.0.1:{port}"},
        {"Origin": f"http://203.0.113.5:{port}"},  # a page served from another IP address
        {"Origin": f"http://[2001:db8::1]:{port}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
    ):
        status, error = post_from(synthetic, headers)
        assert status == 403 and "may not change anything here" in error, headers
    status, error = post_from(synthetic, {"Origin": "null"})
    assert error == "a request from another page (Origin null) may not change anything here"


def test_a_post_from_this_servers_page_or_no_page_is_served(synthetic: DemoServer) -> None:
    port = synthetic.server_address[1]
    for headers in (
        {},  # curl, a script
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://localhost:{port}"},
        {"Origin": f"http://LOCALHOST:{port}", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
    ):
        status, prediction = post_from(synthetic, headers)
        assert status == 200 and prediction in range(10), headers
    lan = {"Host": f"10.1.2.3:{port}", "Origin": f"http://10.1.2.3:{port}"}  # its page by IP
    status, prediction = post_from(synthetic, lan)
    assert status == 200 and prediction in range(10)
    got = request(synthetic, "GET", "/api/test/0", headers={"Origin": "http://evil.example"})
    assert got[0] == 200  # reading changes nothing: the browser keeps the answer from that page


def test_the_server_header_names_no_version(synthetic: DemoServer) -> None:
    """In every kind of answer: the page, a prediction, 400, 403, 404, 405, 411, 413."""
    port = synthetic.server_address[1]
    named = f"Host: {host(synthetic)}\r\n".encode()
    answers_ = [
        raw(synthetic, b"GET / HTTP/1.1\r\n" + named + b"\r\n"),
        raw(synthetic, b"GET /nothing HTTP/1.1\r\n" + named + b"\r\n"),
        raw(synthetic, b"DELETE / HTTP/1.1\r\n" + named + b"\r\n"),
        raw(synthetic, b"\x16\x03\x01junk\r\n\r\n"),
        raw(synthetic, b"GET / HTTP/1.1\r\n\r\n"),
        raw(synthetic, f"GET / HTTP/1.1\r\nHost: rebind.example:{port}\r\n\r\n".encode()),
        raw(synthetic, b"POST /api/predict HTTP/1.1\r\n" + named + b"\r\n"),
        raw(
            synthetic,
            b"POST /api/predict HTTP/1.1\r\n" + named + b"Content-Length: 9999999\r\n\r\n",
        ),
    ]
    status, headers, _ = request(synthetic, "POST", "/api/predict", png(digit_like(7, 280)))
    assert status == 200 and headers["Server"] == "scratchlr"
    codes = [statuses(got)[0] for got in answers_]
    assert codes == [b"200", b"404", b"405", b"400", b"400", b"403", b"411", b"413"]
    for got in answers_:
        assert re.findall(rb"\r\nServer: ([^\r]*)\r\n", got) == [b"scratchlr"], got[:200]
