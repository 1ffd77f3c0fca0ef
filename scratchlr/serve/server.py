"""The demo page's HTTP server: the standard library's ``ThreadingHTTPServer``, hardened.

Routes (anything else is 404; a known path asked with another method is 405):

==========================  ======  ===============================================
``/``, ``/page.js``,         GET     the page, its script and its style (package data,
``/page.css``                        read once at start; no path reaches the file system)
``/api/templates``           GET     :func:`scratchlr.serve.api.templates`
``/api/test/{i}``            GET     :func:`scratchlr.serve.api.test_image` of test image i
``/api/predict``             POST    the body, a PNG or JPEG file's bytes ->
                                     :func:`scratchlr.serve.api.explanation`
==========================  ======  ===============================================

Against bad clients: a body over ``MAX_BODY`` bytes gets 413 unread, and one without a
``Content-Length`` 411; every connection has a timeout, so a client that stops halfway holds
its thread only that long (408); a bad, empty or blank image gets 400 with a JSON error that
names the problem. Every response has a ``Content-Type``, a ``Content-Length`` and
``X-Content-Type-Options: nosniff``; the page also a ``Content-Security-Policy`` that allows
its own script and style only. The model's arrays are made read-only, so the threads share
them safely. One access-log line per request goes to stderr unless ``quiet``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..dataset.mnist import Split
from ..files import images
from . import api

MAX_BODY = 4 * 1024 * 1024  # bytes of an uploaded image
TIMEOUT_S = 10.0  # seconds a connection may sit idle, or stall in the middle of a request
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/page.js": ("page.js", "text/javascript; charset=utf-8"),
              "/page.css": ("page.css", "text/css; charset=utf-8")}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TEST_PATH = re.compile(r"/api/test/([0-9]{1,9})")
ALLOWED = {"page": "GET, HEAD", "templates": "GET, HEAD", "test": "GET, HEAD", "predict": "POST"}


def page_files() -> dict[str, tuple[bytes, str]]:
    """Each page path's bytes and content type, read from the package's ``page`` folder."""
    folder = resources.files(__package__).joinpath("page")
    return {path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in PAGE_FILES.items()}


def route(path: str) -> str | None:
    """Which resource a request's path names (``page``, ``templates``, ``test``, ``predict``), or None."""
    if path in PAGE_FILES:
        return "page"
    if path == "/api/templates":
        return "templates"
    if path == "/api/predict":
        return "predict"
    return "test" if TEST_PATH.fullmatch(path) else None


class DemoServer(ThreadingHTTPServer):
    """The server of one model: W and b read-only, the test images, the page's files, and
    whether to log. Binds at construction (``OSError`` if it cannot)."""

    daemon_threads = True  # a stalled client's thread does not hold up Ctrl-C
    request_queue_size = 128  # connections waiting to be accepted (the standard library's 5 drops a crowd's SYNs)

    def __init__(self, address: tuple[str, int], W: np.ndarray, b: np.ndarray, test: Split, quiet: bool = False,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.W, self.b, self.test, self.quiet, self.timeout_s = W.copy(), b.copy(), test, quiet, timeout_s
        self.W.flags.writeable = self.b.flags.writeable = False
        self.files = page_files()
        self.templates = json.dumps(api.templates(self.W, self.b, len(test.labels))).encode()
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is one log line; anything else, the traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            return super().handle_error(request, client_address)
        if not self.quiet:
            print(f"{client_address[0]} - - connection lost: {type(exc).__name__}", file=sys.stderr)

    def url(self) -> str:
        """``http://HOST:PORT/``, with the port bound (an ephemeral one if 0 was asked)."""
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1, kept alive until the client or an error closes it)."""

    server: DemoServer
    protocol_version = "HTTP/1.1"
    server_version = "scratchlr-serve"
    error_content_type = "application/json"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.timeout_s)  # each read of a stalled client gives up after it
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the body does not wait for an ACK

    def do_GET(self) -> None:
        self.answer_get(body=True)

    def do_HEAD(self) -> None:
        self.answer_get(body=False)

    def do_POST(self) -> None:
        if self.allowed("POST"):
            data = self.read_body()
            if data is not None:
                self.predict(data)

    def allowed(self, method: str) -> bool:
        """Whether ``method`` may be used on the path; if not, the 404 or 405 is sent."""
        name = route(urlsplit(self.path).path)
        ok = name is not None and method in ALLOWED[name].split(", ")
        if name != "predict" and ("Content-Length" in self.headers or "Transfer-Encoding" in self.headers):
            self.close_connection = True  # a body that is never read: the connection cannot be reused
        if name is None:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {urlsplit(self.path).path}"})
            return False
        if not ok:
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} is not allowed here"},
                           {"Allow": ALLOWED[name]})
            return False
        return True

    def answer_get(self, body: bool) -> None:
        """GET or HEAD of the page's files, the templates or a test image."""
        if not self.allowed(self.command):
            return
        path = urlsplit(self.path).path
        if path in PAGE_FILES:
            content, kind = self.server.files[path]
            return self.send(HTTPStatus.OK, content, kind, {"Content-Security-Policy": POLICY} if path == "/" else {},
                             body)
        if path == "/api/templates":
            return self.send(HTTPStatus.OK, self.server.templates, "application/json", {}, body)
        try:
            answer = api.test_image(self.server.W, self.server.b, self.server.test, int(path.rsplit("/", 1)[1]))
        except IndexError as exc:
            return self.send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)}, body=body)
        self.send_json(HTTPStatus.OK, answer, body=body)

    def read_body(self) -> bytes | None:
        """The request's body, or None after answering 411, 413, 400 or 408 (and closing)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or "Content-Length" not in self.headers:
            self.close_connection = True
            self.send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "send the image with a Content-Length"})
            return None
        length = self.headers["Content-Length"].strip()
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": f"bad Content-Length: {length!r}"})
            return None
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           {"error": f"the image is {int(length):,} bytes; at most {MAX_BODY:,} are accepted"})
            return None
        try:
            data = self.rfile.read(int(length))
        except TimeoutError:
            self.close_connection = True
            self.send_json(HTTPStatus.REQUEST_TIMEOUT, {"error": f"the body stalled for {self.server.timeout_s:g} s"})
            return None
        if len(data) < int(length):
            self.close_connection = True
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": f"truncated body: {len(data)} of {length} bytes"})
            return None
        return data

    def predict(self, data: bytes) -> None:
        """POST /api/predict: the image's explanation, or 400 naming what is wrong with it."""
        try:
            x = images.from_bytes(data)
        except images.ImageError as exc:
            return self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:  # a decoder's surprise on hostile bytes: answered, logged, and served on
            self.log_error("image reader failed: %s: %s", type(exc).__name__, exc)
            return self.send_json(HTTPStatus.BAD_REQUEST, {"error": f"unreadable image ({type(exc).__name__})"})
        self.send_json(HTTPStatus.OK, api.explanation(self.server.W, self.server.b, x))

    def send_json(self, status: HTTPStatus, obj: Any, headers: dict[str, str] | None = None, body: bool = True) -> None:
        """A JSON response."""
        self.send(status, json.dumps(obj).encode(), "application/json", headers or {}, body)

    def send(self, status: HTTPStatus, content: bytes, kind: str, headers: dict[str, str], body: bool = True) -> None:
        """A response with its type, length and headers; its content unless ``body`` is False (HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (a bad request line, a timeout, ...), as JSON; a
        method with no ``do_`` here (its 501) gets the 404 or 405 of any other method."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line and headers, even to a request line of junk
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self.allowed(self.command)
            return
        self.send_json(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase}, body=self.command != "HEAD")

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)
