"""Which web pages may open a connection: the browser's ``Origin``, checked before the WebSocket opens.

A browser lets any page it shows open a WebSocket to any address, the user's
own machine included, and says which page asked in the ``Origin`` header. So
a server that took every ``Origin`` would let any web site the user visits
call its tools. The policy (:class:`OriginPolicy`):

- a request with no ``Origin`` (a script, a service: not a browser) is always
  accepted: the origin check is about browsers;
- with no list of origins, a browser is accepted only from a page on this
  very server (an ``Origin`` equal to the request's ``Host``, when that host
  is an IP address or the name the server was told to listen on) or from
  ``localhost``, ``127.0.0.1`` or ``[::1]`` on any port; a name the server was
  not given is refused even when it equals ``Host``, since that is what a
  DNS-rebinding page sends;
- with a list, only its origins; ``*`` accepts every origin.

Every other origin is refused with 403. Origins are compared normalised
(:func:`normalise`): scheme and host in lower case, no trailing ``/``, no
default port.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable

from websockets.http11 import Request, Response

from .errors import ConfigError
from .handshake import Admission, refuse

__all__ = ["ANY", "LOCAL_HOSTS", "OriginPolicy", "normalise"]

ANY = "*"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _split(origin: str) -> tuple[str, str, int | None]:
    """Scheme, host (IPv6 in brackets) and port of an origin, in lower case.

    Raises:
        ValueError: not ``scheme://host[:port]``; the message says what is wrong.
    """
    parts = urllib.parse.urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError("an origin is scheme://host[:port], as in https://app.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"an origin has no path, query or user: did you mean {parts.scheme}://{parts.hostname}?")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("its port is not a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in host):
        raise ValueError("it names no host")
    if ":" in host:
        host = f"[{host}]"
    scheme = parts.scheme.lower()
    return scheme, host, None if port == _DEFAULT_PORTS.get(scheme) else port


def normalise(origin: str) -> str:
    """``origin`` as browsers write it: scheme and host in lower case, no trailing ``/``, no default port.

    >>> normalise("HTTPS://App.Example:443/")
    'https://app.example'

    Raises:
        ValueError: not ``scheme://host[:port]``; the message says what is wrong.
    """
    return _join(*_split(origin))


def _join(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class OriginPolicy:
    """The ``Origin`` check, as a :data:`~.handshake.Gate` (see the module docstring).

    Args:
        allowed: the origins accepted; ``["*"]`` for every one; None for this
            server's own pages and local ones. ``None`` items (clients that
            send no ``Origin``, which are always accepted) are ignored.
        host: the address the server was told to listen on: a page served
            from that name is one of its own.

    Raises:
        ConfigError: an origin of the list is malformed; the message names it.
    """

    def __init__(self, allowed: Iterable[str | None] | None = None, *, host: str = "127.0.0.1") -> None:
        self.any = False
        self.allowed: frozenset[str] | None = None
        if allowed is not None:
            listed = [origin for origin in allowed if origin is not None]
            self.any = ANY in listed
            normalised = set()
            for origin in listed:
                if origin != ANY:
                    try:
                        normalised.add(normalise(origin))
                    except ValueError as exc:
                        raise ConfigError(f"malformed allowed origin {origin!r}: {exc}") from None
            self.allowed = frozenset(normalised)
        self.host = host.lower()

    def accepts(self, origin: str, host_header: str | None) -> bool:
        """Whether a browser page of ``origin`` may connect, through a request whose ``Host`` is ``host_header``."""
        if self.any:
            return True
        try:
            scheme, host, port = _split(origin)
        except ValueError:
            return False
        if self.allowed is not None:
            return _join(scheme, host, port) in self.allowed
        if scheme not in ("http", "https"):
            return False
        if host in LOCAL_HOSTS:
            return True
        if not (_is_ip(host) or host.strip("[]") == self.host) or not host_header:
            return False
        # A page of this server has as origin the authority the browser connects to: the Host header.
        try:
            return _split(f"{scheme}://{host_header}") == (scheme, host, port)
        except ValueError:
            return False

    def gate(self, request: Request, admission: Admission) -> Response | None:
        """The :data:`~.handshake.Gate`: a 403 for a page that may not connect, else None."""
        origins = request.headers.get_all("Origin")
        if not origins:
            return None
        if len(origins) > 1:
            return refuse(403, "more than one Origin header", peer=admission.peer, why="origin")
        origin = origins[0]
        if self.accepts(origin, request.headers.get("Host")):
            return None
        shown = origin if len(origin) <= 200 and origin.isprintable() else f"{origin[:200]!r}"
        return refuse(
            403,
            f"origin {shown} is not allowed: the server's --allowed-origin lists the web pages that may connect",
            peer=admission.peer,
            why="origin",
        )
