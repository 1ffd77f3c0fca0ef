"""Which requests the demo server answers: by the name they give it (``Host``), and, for those
that may change something, by the page they come from (``Origin``).

DNS rebinding: a page of another site, whose name is then made to resolve to 127.0.0.1, reaches
this server under that name, and as that site's own page could read everything and start
trainings. So a request must name this server as the user does: by an IP literal (``127.0.0.1``,
``[::1]``, any other; a literal cannot be rebound, the attack needs a name), ``localhost``, or
the name it was started on (``--host``), each with the server's port (no port only if it is 80).
Another name gets 403; an HTTP/1.1 request without a ``Host`` (or with two) gets 400.

A request other than GET or HEAD also must not come from another site's page. Its ``Origin``,
if any, must be the request's own ``Host`` (the page it was served from), or a loopback
address, ``localhost`` or the ``--host`` given, with the port: another IP literal is another
site's page (``http://203.0.113.5:8000``). Any other ``Origin``, ``Origin: null`` (a sandboxed
or local-file page), or ``Sec-Fetch-Site: cross-site`` gets 403. Clients that are not browsers
(curl, scripts) send no ``Origin``, and are served.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from urllib.parse import urlsplit

from .protocol import printable

LOOPBACK = "localhost"  # the one name accepted whatever the server was started on
SAFE = ("GET", "HEAD")  # the methods that change nothing, served from any page
SHOWN = 100  # characters of a refused Host or Origin that the error quotes


@dataclass(frozen=True)
class Site:
    """The address the server was started on (``--host``: a name, an IP literal, or empty for
    all of the machine's) and the port it is bound to."""

    host: str
    port: int

    def names(self) -> set[str]:
        """The names (not IP literals) a ``Host`` may give, lowercase."""
        given = self.host.lower()
        return {LOOPBACK} | ({given} if given and not ip_literal(given) else set())

    def port_is(self, port: str | None) -> bool:
        """Whether ``port`` (text, None if absent) is the server's."""
        return port == str(self.port) or (port is None and self.port == 80)

    def accepts(self, host: str, port: str | None) -> bool:
        """Whether a request that names ``host`` and ``port`` (text, None if absent) names this
        server."""
        return self.port_is(port) and (ip_literal(host) or host in self.names())

    def own(self, host: str, port: str | None) -> bool:
        """Whether ``host`` and ``port`` are this server's whatever page asks: a loopback
        address, ``localhost`` or the ``--host`` given, with the server's port."""
        given = self.host.lower()
        ours = host in self.names() or host in (given, f"[{given}]") or loopback(host)
        return self.port_is(port) and ours

    def example(self) -> str:
        """The names this server answers to, for an error: ``127.0.0.1:8000 or localhost:8000``."""
        names = [self.shown_ip(), *sorted(self.names() - {LOOPBACK}), LOOPBACK]
        shown = [f"{name}:{self.port}" for name in names]
        return ", ".join(shown[:-1]) + " or " + shown[-1]

    def shown_ip(self) -> str:
        """The IP literal an error shows: the one started on, or 127.0.0.1 if started on a name
        or on all addresses."""
        given = self.host.strip("[]")
        if not ip_literal(given) or ipaddress.ip_address(given).is_unspecified:
            return "127.0.0.1"
        return f"[{given}]" if ":" in given else given


def ip_literal(host: str) -> bool:
    """Whether ``host`` is an IP address: IPv4 dotted, IPv6 bracketed (as a ``Host`` gives it)
    or bare (as ``--host`` does)."""
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return False
    return address.version == 6 or not bracketed


def loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP literal (127.0.0.0/8, ``[::1]``)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return ip_literal(host) and ipaddress.ip_address(bare).is_loopback


def split_host(text: str) -> tuple[str, str | None] | None:
    """A ``Host`` value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) -> (host, port text or
    None), lowercase; None if it is not one."""
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]") + 1
        if end == 0:
            return None
        host = text[:end]
        rest = text[end:]
    else:
        host, colon, after = text.partition(":")
        rest = colon + after
    if not host or (rest and not rest.startswith(":")):
        return None
    port = rest[1:] if rest else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    return host, port


def quoted(text: str) -> str:
    """A header's value as an error quotes it: control characters escaped, cut short."""
    return printable(text[:SHOWN] + ("..." if len(text) > SHOWN else ""))


def host_problem(site: Site, version: str, headers: Message) -> tuple[HTTPStatus, str] | None:
    """Why a request's ``Host`` is refused (status, one line), or None if it names this server."""
    hosts = headers.get_all("Host") or []
    if len(hosts) > 1:
        return HTTPStatus.BAD_REQUEST, "more than one Host header"
    if not hosts:
        if version == "HTTP/1.0":
            return None  # HTTP/1.0 had no Host; browsers always send one
        return HTTPStatus.BAD_REQUEST, "no Host header: an HTTP/1.1 request must name the server"
    parts = split_host(hosts[0])
    if parts is not None and site.accepts(*parts):
        return None
    return (
        HTTPStatus.FORBIDDEN,
        f"this server answers to {site.example()}, not Host {quoted(hosts[0])}",
    )


def origin_problem(site: Site, command: str, headers: Message) -> str | None:
    """Why a request that may change something is refused as another site's (one line), or
    None: its ``Origin``, if any, is this server, and it is not ``Sec-Fetch-Site: cross-site``."""
    if command in SAFE:
        return None
    if (headers.get("Sec-Fetch-Site") or "").strip().lower() == "cross-site":
        return "a request from another site's page may not change anything here"
    origins = headers.get_all("Origin") or []
    if not origins:
        return None  # not from a browser's page: curl, a script
    if len(origins) == 1 and same_origin(site, origins[0], headers.get("Host") or ""):
        return None
    return (
        f"a request from another page (Origin {quoted(', '.join(origins))}) may not change "
        "anything here"
    )


def same_origin(site: Site, origin: str, host: str) -> bool:
    """Whether an ``Origin`` (``http://host:port``) is the page of the request's ``host`` (its
    Host header) or one of this server's own (:meth:`Site.own`)."""
    try:
        url = urlsplit(origin.strip())
    except ValueError:
        return False
    if url.scheme != "http" or url.path or url.query or url.fragment or "@" in url.netloc:
        return False
    parts = split_host(url.netloc)
    if parts is None:
        return False
    return parts == split_host(host) or site.own(*parts)


def refusal(
    site: Site, command: str, version: str, headers: Message
) -> tuple[HTTPStatus, dict[str, str]] | None:
    """Why the server will not answer a request (status and JSON error), or None: a ``Host``
    that is not this server's, or a request that may change something from another page."""
    problem = host_problem(site, version, headers)
    if problem is not None:
        return problem[0], {"error": problem[1]}
    origin = origin_problem(site, command, headers)
    return None if origin is None else (HTTPStatus.FORBIDDEN, {"error": origin})
