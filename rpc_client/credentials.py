"""What a client shows the server to be let in, and the server's refusal read back; no I/O but a provider's.

The opening handshake carries the credential, once per connection (issue 10):

- ``token``: sent as ``Authorization: Bearer <token>``. A string, or a
  provider: a function, plain or async, called for every connection the
  client opens (the first and each reconnection), so that short-lived JWTs
  are fresh each time.
- ``headers``: more headers for the handshake (``X-Tenant``, ...).
- ``ssl`` (an :class:`ssl.SSLContext`: a CA to trust, a client certificate
  for mutual TLS) or ``cafile`` (the short form: trust the CAs of this PEM file).

A connector is then called as ``connector(url, additional_headers=[...],
ssl=context)``, with only the options set: :func:`rpc_client.websocket.connect`
and :func:`rpc_client.websockets_asyncio.connect` take them by those names.

An upgrade refused with HTTP 401 or 403 becomes :class:`AuthenticationError`
(:func:`refusal`), with the reason the server gave in its one-line body.
"""

from __future__ import annotations

import inspect
import os
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

from websockets.http11 import Response

from .errors import AuthenticationError

__all__ = ["AUTH_STATUSES", "Credentials", "Headers", "Token", "TokenProvider", "refusal"]

# A token, or what gives one for each connection.
TokenProvider: TypeAlias = Callable[[], str | Awaitable[str]]
Token: TypeAlias = str | TokenProvider
Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]

# The statuses that refuse the caller rather than the request: retrying with the same credential is useless.
AUTH_STATUSES = frozenset((401, 403))
_REASON_CHARS = 300


def check_token(token: object, where: str = "token") -> str:
    """``token`` if it can travel as a bearer token: a non-empty string of printable ASCII without spaces.

    Raises:
        TypeError: it is not a string.
        ValueError: it is empty, or holds another character (a line break would end the header).
    """
    if not isinstance(token, str):
        raise TypeError(f"{where} must be a string, not {type(token).__name__}")
    if not token:
        raise ValueError(f"{where} is empty")
    if not all("!" <= c <= "~" for c in token):
        raise ValueError(f"{where} holds a space, a control or a non-ASCII character: a bearer token is one word")
    return token


class Credentials:
    """The handshake's credential, headers and TLS context for one client (see the module docstring).

    Args:
        url: the server's URL (``ssl`` and ``cafile`` need ``wss://``).
        token: a bearer token, or a function (plain or async) returning one, called for each connection.
        headers: more handshake headers.
        ssl: the TLS context for ``wss://``.
        cafile: trust the CA certificates of this PEM file (instead of ``ssl``).

    Raises:
        TypeError: an argument of the wrong type, or both ``ssl`` and ``cafile``.
        ValueError: a token that cannot be a bearer token, an ``Authorization`` header
            beside ``token``, or TLS settings for a ``ws://`` URL.
        OSError, ssl.SSLError: ``cafile`` cannot be read as PEM certificates.
    """

    def __init__(
        self,
        url: str,
        *,
        token: Token | None = None,
        headers: Headers | None = None,
        ssl: ssl_module.SSLContext | None = None,
        cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(token, str):
            check_token(token)
        elif token is not None and not callable(token):
            raise TypeError(f"token must be a string or a function returning one, not {type(token).__name__}")
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
                raise TypeError(f"headers are a dict of strings, or (name, value) pairs of strings, not {pair!r}")
        if token is not None and any(name.lower() == "authorization" for name, _ in pairs):
            raise ValueError("give the credential as token= or as an Authorization header in headers=, not both")
        if ssl is not None and cafile is not None:
            raise TypeError("give ssl= (a context) or cafile= (its short form), not both")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext, not {type(ssl).__name__}")
        if (ssl is not None or cafile is not None) and url.lower().startswith("ws://"):
            raise ValueError(f"ssl= and cafile= are for wss:// URLs, not {url}")
        if cafile is not None:
            ssl = ssl_module.create_default_context(cafile=cafile)
        self._token = token
        self._headers = pairs
        self.ssl = ssl

    @property
    def refreshes(self) -> bool:
        """Whether the token comes from a provider, which may give another one next time."""
        return callable(self._token)

    async def token(self) -> str | None:
        """The token for a new connection: the string, or what the provider gives now; None for none.

        Raises:
            Exception: whatever the provider raised; TypeError or ValueError if what it gave is no token.
        """
        token = self._token
        if token is None or isinstance(token, str):
            return token
        given = token()
        if inspect.isawaitable(given):
            given = await given
        return check_token(given, "the token provider's token")

    def options(self, token: str | None) -> dict[str, Any]:
        """The connector's keyword arguments for a connection with ``token``: only those set."""
        options: dict[str, Any] = {}
        headers = list(self._headers)
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        if headers:
            options["additional_headers"] = headers
        if self.ssl is not None:
            options["ssl"] = self.ssl
        return options


def refusal(url: str, response: Response) -> AuthenticationError:
    """The :class:`AuthenticationError` for a handshake refused with ``response`` (HTTP 401 or 403).

    Its reason is the first line of the server's plain-text body, else the
    ``error_description`` of its ``WWW-Authenticate``, else the status's phrase;
    cut short and stripped of control characters, since a server wrote it.
    """
    challenge = response.headers.get("WWW-Authenticate")
    body = (response.body or b"").decode("utf-8", errors="replace").strip()
    reason = body.splitlines()[0] if body else _description(challenge) or response.reason_phrase
    reason = "".join(c if c.isprintable() else "?" for c in reason)
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 3] + "..."
    status = response.status_code
    return AuthenticationError(
        f"cannot connect to {url}: refused with HTTP {status} ({response.reason_phrase}): {reason}",
        status=status,
        reason=reason,
        challenge=challenge,
    )


def _description(challenge: str | None) -> str | None:
    """The ``error_description`` of a Bearer challenge (RFC 6750 section 3), if it has one."""
    if not challenge:
        return None
    _, found, rest = challenge.partition('error_description="')
    return rest.split('"', 1)[0] or None if found else None
