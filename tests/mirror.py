"""A scriptable HTTP mirror on 127.0.0.1 for the downloader's tests."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class Mirror:
    """Serves ``routes[path]``: bytes (200), an int (that status), or a callable taking
    the handler (for misbehaviour). Records every request path in ``requests``."""

    def __init__(self, routes: dict[str, object]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                mirror.requests.append(self.path)
                mirror.user_agents.append(self.headers.get("User-Agent", ""))
                route = mirror.routes.get(self.path.lstrip("/"), 404)
                if callable(route):
                    route(self)
                elif isinstance(route, int):
                    self.send_error(route)
                else:
                    send(self, route)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, body: bytes, length: int | None = None) -> None:
    """200 with ``body``; ``length`` overrides Content-Length (to announce more than sent)."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def dropping(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    """Announce the whole file, send half, then drop the connection."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        send(handler, body[: len(body) // 2], length=len(body))
        handler.wfile.flush()
        handler.close_connection = True

    return route


def stalling(seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """Accept, then say nothing for ``seconds`` (a read timeout for the client)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        handler.close_connection = True

    return route
