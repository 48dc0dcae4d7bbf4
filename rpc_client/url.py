"""WebSocket URLs, checked before any connection is tried; no I/O.

``Client(url)`` checks its URL when it is made (with the default WebSocket
connector), so a URL that can never work fails where it was written, with
:class:`~rpc_client.errors.InvalidURL` and a sentence that says what is wrong,
rather than at each connection attempt.
"""

from __future__ import annotations

import urllib.parse

from websockets.exceptions import InvalidURI
from websockets.uri import WebSocketURI, parse_uri

from .errors import InvalidURL

__all__ = ["check_url"]


def check_url(url: str) -> WebSocketURI:
    """The parts of a ``ws://`` or ``wss://`` URL.

    Raises:
        InvalidURL: it is not one, or its host or port cannot be.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a string like ws://127.0.0.1:8000/ws, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"{url!r} is not a valid URL: {_reason(exc)}") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        suggestion = urllib.parse.urlunsplit(parts._replace(scheme="ws" if scheme == "http" else "wss"))
        raise InvalidURL(f"{url!r} is an HTTP URL; a WebSocket URL starts with ws:// or wss:// ({suggestion})")
    if scheme not in ("ws", "wss"):
        example = "ws://127.0.0.1:8000/ws"
        raise InvalidURL(f"{url!r} is not a WebSocket URL: it must start with ws:// or wss://, as {example}")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"{url!r} names no host: write it as ws://HOST:PORT/PATH")
    if any(c.isspace() for c in url):
        raise InvalidURL(f"{url!r} holds white space")
    if parts.fragment:
        raise InvalidURL(f"{url!r} has a #fragment, which a WebSocket URL cannot carry")
    if port == 0:
        raise InvalidURL(f"{url!r} names port 0, which no server listens on")
    try:
        # websockets' own reading: IRIs to URIs, user info for HTTP Basic authentication.
        return parse_uri(url)
    except InvalidURI as exc:
        raise InvalidURL(f"{url!r} is not a valid WebSocket URL: {exc.msg}") from None
    except ValueError as exc:  # a host name IDNA cannot encode
        raise InvalidURL(f"{url!r} is not a valid WebSocket URL: {exc}") from None


def _reason(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith("Port out of range"):
        return "the port is out of range (1 to 65535)"
    if text.startswith("Port could not be cast"):
        return "the port is not a number"
    if "IPv6" in text:
        return "the IPv6 address is not closed by ']'"
    return text
