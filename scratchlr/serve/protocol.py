"""What a request to the demo server may be: its routes, its limits, and how its bytes are read.

The numbers: ``MAX_BODY`` bytes of image, ``TIMEOUT_S`` seconds for a request to arrive
whole (and for an idle connection to wait), ``MAX_CONNECTIONS`` served at once. The page's
files are the only paths that reach the package's data, read once at start (one not in the
package is 404).
"""

from __future__ import annotations

import io
import math
import re
import socket
import time
from email.message import Message
from http import HTTPStatus
from importlib import resources
from typing import Any

MAX_BODY = 1024 * 1024  # bytes of an uploaded image (a drawing: a few KB; a photo JPEG: ~300 KB)
MAX_PIXELS = 1_000_000  # pixels of an uploaded image decoded: a 1000 x 1000 photo
SERVER = "scratchlr"  # the Server header: no version of Python or of the package
TIMEOUT_S = 10.0  # seconds for a request to arrive whole, or for an idle connection to wait for one
MAX_CONNECTIONS = 64  # connections served at once; more get 503
REFUSING = 16  # 503s being sent at once; connections past those are closed unanswered
MAX_STREAMS = 16  # event streams open at once (each holds a connection for as long as it likes)
STREAMS_PER_RUN = 4  # event streams open on one run (its page, and reconnects not yet noticed)
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/train.js": ("train.js", "text/javascript; charset=utf-8"),
    "/train.css": ("train.css", "text/css; charset=utf-8"),
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TEST_PATH = re.compile(r"/api/test/([0-9]{1,9})")
RUN_PATH = re.compile(r"/api/runs/([A-Za-z0-9_-]{1,64})(/events|/model)?")
ALLOWED = {
    "page": "GET, HEAD",
    "templates": "GET, HEAD",
    "test": "GET, HEAD",
    "predict": "POST",
    "settings": "GET, HEAD",
    "check": "POST",
    "runs": "POST",
    "run": "POST",
    "events": "GET",
    "model": "GET, HEAD",
}
TAKES_BODY = ("predict", "check", "runs", "run")  # the routes whose POST body is read
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def page_files() -> dict[str, tuple[bytes, str]]:
    """Each page path's bytes and content type, read from the package's ``page`` folder."""
    folder = resources.files(__package__).joinpath("page")
    return {
        path: (folder.joinpath(name).read_bytes(), kind)
        for path, (name, kind) in PAGE_FILES.items()
    }


def route(path: str) -> str | None:
    """Which resource a request's path names (``page``, ``templates``, ``test``, ``predict``,
    ``settings``, ``check``, ``runs``, and a run's ``run``, ``events`` and ``model``), or
    None."""
    if path in PAGE_FILES:
        return "page"
    named = {
        "/api/templates": "templates",
        "/api/predict": "predict",
        "/api/settings": "settings",
        "/api/check": "check",
        "/api/runs": "runs",
    }
    if path in named:
        return named[path]
    found = RUN_PATH.fullmatch(path)
    if found:
        return found.group(2)[1:] if found.group(2) else "run"
    return "test" if TEST_PATH.fullmatch(path) else None


def run_id(path: str) -> str:
    """The run's id in a path of the ``run``, ``events`` or ``model`` route."""
    found = RUN_PATH.fullmatch(path)
    return found.group(1) if found else ""


def body_problem(headers: Message) -> tuple[HTTPStatus, dict[str, str]] | None:
    """Why a request's body will not be read (status and JSON error), or None: no single
    ``Content-Length``, a ``Transfer-Encoding`` (not supported), or over ``MAX_BODY``."""
    lengths = headers.get_all("Content-Length") or []
    if "Transfer-Encoding" in headers or not lengths:
        return HTTPStatus.LENGTH_REQUIRED, {
            "error": "send the image with a Content-Length, and no Transfer-Encoding"
        }
    text = lengths[0].strip()
    if len(lengths) > 1 or not (text.isascii() and text.isdigit()):
        return HTTPStatus.BAD_REQUEST, {"error": f"bad Content-Length: {', '.join(lengths)!r}"}
    if int(text) > MAX_BODY:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
            "error": f"the image is {int(text):,} bytes; at most {MAX_BODY:,} are accepted"
        }
    return None


class DeadlineReader(io.RawIOBase):
    """A connection's bytes, each read given only the time left before the request's deadline,
    so a client that trickles a byte at a time still runs out of time (``socket.timeout``).
    ``file`` is the buffered reader the handler reads from."""

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self.connection = connection
        self.deadline = math.inf
        self.file = io.BufferedReader(self)

    def deadline_in(self, seconds: float) -> None:
        """The next request must have arrived ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.connection.settimeout(left)
        return self.connection.recv_into(buffer)


def drain(connection: socket.socket, seconds: float = 2.0) -> None:
    """After refusing a body: stop sending, and read and drop what the client still sends for
    a moment, so that it reads the refusal rather than a connection reset."""
    try:
        connection.shutdown(socket.SHUT_WR)
        end = time.monotonic() + seconds
        dropped = 0
        while dropped < 16 * MAX_BODY and time.monotonic() < end:
            connection.settimeout(max(end - time.monotonic(), 0.01))
            chunk = connection.recv(1 << 16)
            if not chunk:
                break
            dropped += len(chunk)
    except OSError:
        pass


def refuse_busy(connection: socket.socket) -> None:
    """A 503 to a connection beyond ``MAX_CONNECTIONS``, then :func:`drain` for half a second,
    so that the client reads it rather than a reset."""
    body = b'{"error": "the server is busy: too many connections; try again"}'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Server: {SERVER}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        connection.settimeout(1.0)
        connection.sendall(head + body)
    except OSError:
        return
    drain(connection, 0.5)


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``): safe to write to a terminal."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
