"""The demo page's HTTP server: the standard library's ``ThreadingHTTPServer``, hardened.

Routes (anything else is 404; a known path asked with another method is 405):

==========================  ======  ===============================================
``/``, ``/page.js``,         GET     the page, its scripts and its styles (package data,
``/page.css``, ``/train.js``,        read once at start; no path reaches the file system)
``/train.css``
``/api/templates``           GET     :func:`scratchlr.serve.api.templates`
``/api/test/{i}``            GET     :func:`scratchlr.serve.api.test_image` of test image i
``/api/predict``             POST    the body, a PNG or JPEG file's bytes ->
                                     :func:`scratchlr.serve.api.explanation`
``/api/settings``            GET     what a run may set (:mod:`.settings`), the presets,
                                     the speeds, ``max_runs``, the served model's name
``/api/check``               POST    ``{"settings"}`` -> the command line and the steps
``/api/runs``                POST    ``{"settings", "speed", "paused"}`` -> a new run (201),
                                     400 bad settings, 503 busy (:mod:`.runs`)
``/api/runs/{id}``           POST    ``{"action", "speed"}``: pause, resume, step, stop
``/api/runs/{id}/events``    GET     the run's frames, as server-sent events
``/api/runs/{id}/model``     GET     the run's model file now
==========================  ======  ===============================================

``/api/predict``, ``/api/test/{i}`` and ``/api/templates`` take ``?run=ID``: the run's
weights now instead of the served model's (zero weights when none is served), and the
answer's ``step`` says which (null: the served model). An events stream has no
``Content-Length``: it ends when its connection closes. A run's snapshot is replaced whole,
never written, so the threads share it as they share the model's read-only arrays.

Against bad clients (:mod:`.protocol` holds the numbers and reads the requests):
- a request must name this server in its ``Host`` (an IP literal, ``localhost`` or the
  ``--host`` given, with the port), and one that may change something must not come from
  another site's page (:mod:`.guard`; 400 or 403, and the connection closed);
- a request must arrive whole within ``TIMEOUT_S`` of its first read, however slowly it
  trickles in (408 if its body is late; a late request line or header is just closed), and
  an idle kept-alive connection is closed after as long;
- at most ``MAX_CONNECTIONS`` connections are served at once (503 beyond), of which at most
  ``MAX_STREAMS`` event streams (``STREAMS_PER_RUN`` a run; they stay open while their page
  does), and at most one image per core is decoded at once;
- a body over ``MAX_BODY`` bytes gets 413 (before the client sends it, when it asks with
  ``Expect: 100-continue``), one without a single ``Content-Length`` 411 or 400, and a body
  is never left unread on a connection that stays open (a refused one is closed, and what
  the client sends anyway dropped);
- a bad, empty, blank or too large image (over ``MAX_PIXELS``) gets 400 with a JSON error
  that names the problem in the user's words (the decoder's own go to the log).
Every response has a ``Content-Type``, a ``Content-Length``, ``X-Content-Type-Options:
nosniff`` and ``Server: scratchlr`` (no version); the page also a ``Content-Security-Policy``
that allows its own script and style only. The model's arrays are read-only, so the threads
share them safely. One access-log line per request goes to stderr unless ``quiet``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..dataset.records import DATASETS, Dataset
from ..dataset.splits import Split
from ..files import images
from . import api, guard, protocol
from .protocol import ALLOWED, PAGE_FILES, POLICY, route
from .runs import ALIVE_S, Busy, Conflict, Run, Runs, check_speed
from .settings import command_line, describe

FRAMES_PER_S = 20  # an events stream's most frames a second


class DemoServer(ThreadingHTTPServer):
    """The server of one model (W and b read-only; None: zero weights and no model), the test
    images, the page's files, whether to log, and the page's ``runs`` (None: no training
    view); ``model`` is the served file's name ("the served model" if W comes without one).
    Binds at construction (``OSError`` if it cannot)."""

    daemon_threads = True  # a stalled client's thread does not hold up Ctrl-C
    request_queue_size = (
        128  # connections waiting to be accepted (the standard library's 5 drops a crowd's SYNs)
    )

    def __init__(
        self,
        address: tuple[str, int],
        W: np.ndarray | None,
        b: np.ndarray | None,
        test: Split,
        quiet: bool = False,
        timeout_s: float = protocol.TIMEOUT_S,
        max_connections: int = protocol.MAX_CONNECTIONS,
        runs: Runs | None = None,
        model: str | None = None,
        dataset: Dataset = DATASETS["mnist"],
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        zero = np.zeros((dataset.pixels, dataset.num_classes), np.float32)
        self.W = zero if W is None else W.copy()
        self.b = zero[0].copy() if b is None else b.copy()
        self.test = test
        self.runs = runs
        self.model = model if model is not None or W is None else "the served model"
        self.dataset = dataset
        self.quiet = quiet
        self.timeout_s = timeout_s
        self.W.flags.writeable = self.b.flags.writeable = False
        self.files = protocol.page_files()
        self.templates = json.dumps(api.templates(self.W, self.b, len(test.labels))).encode()
        self.connections = threading.BoundedSemaphore(max_connections)
        self.refusing = threading.BoundedSemaphore(protocol.REFUSING)
        self.decoding = threading.BoundedSemaphore(os.cpu_count() or 1)
        self.streams = threading.BoundedSemaphore(protocol.MAX_STREAMS)
        super().__init__(address, Handler)
        self.site = guard.Site(address[0], self.server_address[1])  # the names it answers to

    def settings(self) -> dict[str, Any]:
        """The /api/settings answer (the contract: the module docstring's table)."""
        max_runs = self.runs.max_runs if self.runs is not None else 0
        return {
            **describe(self.dataset.name),
            "max_runs": max_runs,
            "training": max_runs > 0,
            "model": self.model,
            "dataset": self.dataset.name,
            "classes": list(self.dataset.classes),
        }

    def server_close(self) -> None:
        if self.runs is not None:
            self.runs.close()
        super().server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if one of the ``max_connections`` is free; else a short
        one that answers 503 (at most ``REFUSING`` of those at once; past them, just closed)."""
        if self.connections.acquire(blocking=False):
            return super().process_request(request, client_address)
        if self.refusing.acquire(blocking=False):
            return threading.Thread(target=self.refuse, args=(request,), daemon=True).start()
        self.shutdown_request(request)

    def refuse(self, request: Any) -> None:
        try:
            protocol.refuse_busy(request)
        finally:
            self.shutdown_request(request)
            self.refusing.release()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is one log line; anything else, the traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, socket.timeout)):
            return super().handle_error(request, client_address)
        self.log(f"{client_address[0]} - - connection lost: {type(exc).__name__}")

    def log(self, line: str) -> None:
        """One line on stderr, written whole (threads do not interleave), unless quiet."""
        if not self.quiet:
            sys.stderr.write(line + "\n")

    def url(self) -> str:
        """``http://HOST:PORT/``, with the port bound (an ephemeral one if 0 was asked)."""
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1, kept alive until the client or an error closes it)."""

    server: DemoServer
    protocol_version = "HTTP/1.1"
    error_content_type = "application/json"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )  # the body does not wait for an ACK
        # read through the deadline instead: every read gives up when the request's time is up
        self.rfile.close()
        self.reader = protocol.DeadlineReader(self.connection)
        self.rfile = self.reader.file

    def handle_one_request(self) -> None:
        self.reader.deadline_in(self.server.timeout_s)
        self.raw_requestline = b""  # none yet: a timeout now is an idle connection's
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # no headers could be sent back
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 is not served")
            return False
        if self.refused():
            return False
        if self.has_body() and not (
            self.command == "POST" and route(urlsplit(self.path).path) in protocol.TAKES_BODY
        ):
            self.close_connection = (
                True  # a body that is never read: the connection cannot be reused
            )
        return True

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: say no to a body that would be refused, before it is sent;
        then close, dropping what the client sends anyway (never read as a request)."""
        if self.refused():
            return False
        problem = protocol.body_problem(self.headers)
        if problem is not None and self.command == "POST":
            self.close_connection = True
            self.send_json(*problem)
            protocol.drain(self.connection)
            return False
        return super().handle_expect_100()

    def refused(self) -> bool:
        """Whether :mod:`.guard` refuses the request (a name or a page not this server's); if
        so, its 400 or 403 is sent and the connection closed (a body dropped, never read)."""
        problem = guard.refusal(self.server.site, self.command, self.request_version, self.headers)
        if problem is None:
            return False
        self.close_connection = True
        self.send_json(*problem, body=self.command != "HEAD")
        if self.has_body():
            protocol.drain(self.connection)
        return True

    def has_body(self) -> bool:
        return "Content-Length" in self.headers or "Transfer-Encoding" in self.headers

    def do_GET(self) -> None:
        self.answer_get(body=True)

    def do_HEAD(self) -> None:
        self.answer_get(body=False)

    def do_POST(self) -> None:
        if self.allowed("POST"):
            data = self.read_body()
            if data is None:
                return
            name = route(urlsplit(self.path).path)
            if name == "predict":
                return self.predict(data)
            body = self.json_body(data)
            if body is None:
                return
            if name == "check":
                return self.check(body)
            if name == "runs":
                return self.create_run(body)
            self.act(body)

    def allowed(self, method: str) -> bool:
        """Whether ``method`` may be used on the path; if not, the 404 or 405 is sent."""
        name = route(urlsplit(self.path).path)
        body = self.command != "HEAD"
        if name is None:
            self.send_json(
                HTTPStatus.NOT_FOUND,
                {"error": f"no such page: {urlsplit(self.path).path}"},
                body=body,
            )
            return False
        if method not in ALLOWED[name].split(", "):
            self.send_json(
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"error": f"{method} is not allowed here"},
                {"Allow": ALLOWED[name]},
                body=body,
            )
            return False
        return True

    def answer_get(self, body: bool) -> None:
        """GET or HEAD of the page's files, the templates or a test image."""
        if not self.allowed(self.command):
            return
        path = urlsplit(self.path).path
        if path in PAGE_FILES:
            content, kind = self.server.files[path]
            return self.send(
                HTTPStatus.OK,
                content,
                kind,
                {"Content-Security-Policy": POLICY} if path == "/" else {},
                body,
            )
        name = route(path)
        if name == "settings":
            return self.send_json(HTTPStatus.OK, self.server.settings(), body=body)
        if name == "events":
            return self.events()
        if name == "model":
            return self.download(body)
        weights = self.weights(body)
        if weights is None:
            return
        step, W, b = weights
        if name == "templates" and step is None:
            return self.send(HTTPStatus.OK, self.server.templates, "application/json", {}, body)
        if name == "templates":
            answer = {**api.templates(W, b, len(self.server.test.labels)), "step": step}
            return self.send_json(HTTPStatus.OK, answer, body=body)
        try:
            answer = api.test_image(W, b, self.server.test, int(path.rsplit("/", 1)[1]))
        except IndexError as exc:
            return self.send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)}, body=body)
        self.send_json(HTTPStatus.OK, {**answer, "step": step}, body=body)

    def weights(self, body: bool = True) -> tuple[int | None, np.ndarray, np.ndarray] | None:
        """(step, W, b) of the run ``?run=ID`` names now, else (None, the served model's);
        None after a 404 for an unknown run."""
        ids = parse_qs(urlsplit(self.path).query).get("run")
        if not ids:
            return None, self.server.W, self.server.b
        run = self.find_run(ids[0], body)
        return None if run is None else run.weights()

    def find_run(self, run_id: str, body: bool = True) -> Run | None:
        """The run of that id, or None after a 404."""
        run = self.server.runs.get(run_id) if self.server.runs is not None else None
        if run is None:
            self.send_json(
                HTTPStatus.NOT_FOUND,
                {"error": "no such run: it ended and its page went away, or never was"},
                body=body,
            )
        return run

    def json_body(self, data: bytes) -> dict[str, Any] | None:
        """The body's JSON object, or None after a 400."""
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # deep nesting too
            body = None
        if not isinstance(body, dict):
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "the body must be a JSON object"})
            return None
        return body

    def check(self, body: dict[str, Any]) -> None:
        """POST /api/check: the settings' command line and steps, or 400 with the problem."""
        if self.server.runs is None:
            return self.no_training()
        try:
            config = self.server.runs.config(body.get("settings", {}))
        except ValueError as exc:
            return self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        total = self.server.runs.total(config)
        self.send_json(HTTPStatus.OK, {"command": command_line(config), "total": total})

    def create_run(self, body: dict[str, Any]) -> None:
        """POST /api/runs: a new run (201), 400 bad settings, 503 busy."""
        if self.server.runs is None:
            return self.no_training()
        try:
            run = self.server.runs.create(
                body.get("settings", {}), body.get("speed", 0), body.get("paused", False)
            )
        except ValueError as exc:
            return self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Busy as exc:
            return self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
        command = command_line(run.config)
        self.log_message("run %s: %s", run.id[:6], command)
        answer = {"run": run.id, "command": command, "total": run.total}
        self.send_json(HTTPStatus.CREATED, answer)

    def no_training(self) -> None:
        """409: this server trains nothing (``--max-runs 0``)."""
        self.send_json(
            HTTPStatus.CONFLICT, {"error": "this server trains nothing (serve --max-runs 0)"}
        )

    def act(self, body: dict[str, Any]) -> None:
        """POST /api/runs/{id}: pause, resume, step or stop, and a speed; 404, 400 or 409."""
        run = self.find_run(protocol.run_id(urlsplit(self.path).path))
        if run is None:
            return
        action = body.get("action")
        speed = body.get("speed")
        try:
            if action not in ("pause", "resume", "step", "stop", None):
                raise ValueError("action must be pause, resume, step or stop")
            if action is None and speed is None:
                raise ValueError("give an action or a speed")
            state = run.act(action, None if speed is None else check_speed(speed))
        except ValueError as exc:
            return self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Conflict as exc:
            return self.send_json(HTTPStatus.CONFLICT, {"error": str(exc)})
        self.send_json(HTTPStatus.OK, {"state": state})

    def download(self, body: bool) -> None:
        """GET /api/runs/{id}/model: the run's model file now; 409 before its first step."""
        run = self.find_run(protocol.run_id(urlsplit(self.path).path), body)
        if run is None:
            return
        try:
            step, content = run.model_file()
        except Conflict as exc:
            return self.send_json(HTTPStatus.CONFLICT, {"error": str(exc)}, body=body)
        name = f"scratchlr-{step}.npz"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        self.send(HTTPStatus.OK, content, "application/octet-stream", headers, body)

    def events(self) -> None:
        """GET /api/runs/{id}/events: the run's frames as server-sent events, at most
        ``FRAMES_PER_S`` a second and only after a change, ``: alive`` after ``alive_s``
        without one; open until the client goes."""
        run = self.find_run(protocol.run_id(urlsplit(self.path).path))
        if run is None:
            return
        if not self.server.streams.acquire(blocking=False):
            return self.too_many_streams(f"{protocol.MAX_STREAMS} in all")
        if not run.opened(protocol.STREAMS_PER_RUN):
            self.server.streams.release()
            return self.too_many_streams(f"{protocol.STREAMS_PER_RUN} for a run")
        try:
            self.answer_events(run)
        finally:
            run.closed()
            self.server.streams.release()

    def too_many_streams(self, limit: str) -> None:
        """503: no more event streams (they stay open, so they are counted apart)."""
        error = f"too many event streams open (at most {limit}); close a page of this server"
        self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": error})

    def answer_events(self, run: Run) -> None:
        """The events stream's head, then its frames until the client goes."""
        self.close_connection = True
        self.connection.settimeout(self.server.timeout_s)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.stream(run)
        except (ConnectionError, socket.timeout):
            pass  # the page went away

    def stream(self, run: Run) -> None:
        """Frames of ``run`` until the connection fails."""
        alive_s = self.server.runs.alive_s if self.server.runs is not None else ALIVE_S
        seen = -1  # the version last sent
        lines_from = 0
        records_from = 0
        sent_at = 0.0
        while True:
            version = run.wait_change(seen, alive_s)
            if version == seen:
                self.wfile.write(b": alive\n\n")
                continue
            time.sleep(max(0.0, sent_at + 1 / FRAMES_PER_S - time.monotonic()))
            seen = run.version
            frame = run.frame(lines_from, records_from)
            lines_from += len(frame["lines"])
            records_from += len(frame["records"])
            self.wfile.write(b"data: " + json.dumps(frame).encode() + b"\n\n")
            sent_at = time.monotonic()

    def read_body(self) -> bytes | None:
        """The request's body, or None after answering 411, 400, 413 or 408 (and closing)."""
        problem = protocol.body_problem(self.headers)
        if problem is not None:
            self.close_connection = True
            self.send_json(*problem)
            if problem[0] == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                protocol.drain(self.connection)  # so the client reads the 413 instead of a reset
            return None
        length = int(self.headers["Content-Length"])
        try:
            data = self.rfile.read(length)
        except socket.timeout:
            self.close_connection = True
            self.send_json(
                HTTPStatus.REQUEST_TIMEOUT,
                {"error": f"the request took over {self.server.timeout_s:g} s"},
            )
            return None
        if len(data) < length:
            self.close_connection = True
            self.send_json(
                HTTPStatus.BAD_REQUEST, {"error": f"truncated body: {len(data)} of {length} bytes"}
            )
            return None
        return data

    def predict(self, data: bytes) -> None:
        """POST /api/predict: the image's explanation (with ``?run=ID``, by the run's weights
        now), or 400 naming what is wrong with it."""
        weights = self.weights()
        if weights is None:
            return
        with (
            self.server.decoding
        ):  # one image per core at a time: a crowd queues instead of exhausting memory
            try:
                x = images.from_bytes(data, protocol.MAX_PIXELS)
            except images.ImageError as exc:
                # the decoder's own words go to the log, not to the client
                if exc.__cause__ is not None:
                    self.log_error("image refused: %r", exc.__cause__)
                return self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except (
                Exception
            ) as exc:  # a decoder's surprise on hostile bytes: answered, logged, and served on
                self.log_error("image reader failed: %s: %s", type(exc).__name__, exc)
                return self.send_json(
                    HTTPStatus.BAD_REQUEST, {"error": "damaged: the image cannot be decoded"}
                )
            step, W, b = weights
            answer = {**api.explanation(W, b, x), "step": step}
        self.send_json(HTTPStatus.OK, answer)

    def send_json(
        self, status: HTTPStatus, obj: Any, headers: dict[str, str] | None = None, body: bool = True
    ) -> None:
        """A JSON response."""
        self.send(status, json.dumps(obj).encode(), "application/json", headers or {}, body)

    def send(
        self,
        status: HTTPStatus,
        content: bytes,
        kind: str,
        headers: dict[str, str],
        body: bool = True,
    ) -> None:
        """A response with its type, length and headers; its content unless ``body`` is False
        (HEAD)."""
        self.connection.settimeout(
            self.server.timeout_s
        )  # the writes' own time, not what the reads left
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
        """The standard library's own errors (a bad request line, a header too long, ...), as
        JSON; a method with no ``do_`` here (its 501) gets the 404 or 405 of any other method."""
        self.close_connection = True
        self.request_version = (
            self.protocol_version
        )  # a status line and headers, even to a request line of junk
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self.allowed(self.command)
            return
        self.send_json(
            HTTPStatus(code),
            {"error": message or HTTPStatus(code).phrase},
            body=self.command != "HEAD",
        )

    def version_string(self) -> str:
        """The ``Server`` header: the name alone (no Python or package version to look up)."""
        return protocol.SERVER

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_error(self, format: str, *args: Any) -> None:
        if not (
            format.startswith("Request timed out") and not self.raw_requestline
        ):  # an idle connection, closed
            super().log_error(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        message = protocol.printable(format % args)
        self.server.log(f"{self.address_string()} - - [{self.log_date_time_string()}] {message}")
