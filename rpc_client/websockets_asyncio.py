"""websockets' asyncio client as a transport: an alternative connector, for what the default one does not do.

The default, :func:`rpc_client.websocket.connect`, drives websockets'
Sans-I/O protocol itself and is several times cheaper per call (issue 13);
this one goes through websockets' asyncio connection, with its HTTP proxy
support (``proxy=``) and its redirects. Use it as
``Client(url, connector=rpc_client.websockets_asyncio.connect)``, or with
options of :func:`websockets.asyncio.client.connect`:
``connector=functools.partial(rpc_client.websockets_asyncio.connect, proxy="http://...")``.
It only moves text frames and turns websockets' exceptions into this
package's, each a sentence naming the URL and what happened.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .credentials import AUTH_STATUSES, refusal
from .errors import ConnectError, ConnectionLost
from .websocket import describe_close

__all__ = ["WebSocketTransport", "connect"]


class WebSocketTransport:
    """A :class:`~rpc_client.transport.Transport` over one websockets client connection.

    Args:
        ws: the open connection.
        url: its URL, for messages.
    """

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self.url = url

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"the connection to {self.url} is closed ({exc})") from None

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        try:
            async for message in self._ws:
                yield message
        except ConnectionClosed:
            # An abnormal close ends the stream like a normal one; close_reason tells them apart.
            return

    @property
    def close_reason(self) -> str:
        return describe_close(self._ws.protocol)

    async def close(self) -> None:
        await self._ws.close()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    return exc.strerror or str(exc) or type(exc).__name__


async def connect(url: str, **options: Any) -> WebSocketTransport:
    """Open a WebSocket connection to ``url``.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        options: passed to :func:`websockets.asyncio.client.connect`; compression
            is off unless asked for (``compression="deflate"``), as on the server.

    Raises:
        AuthenticationError: the server refused the handshake with HTTP 401 or 403; its reason says why.
        ConnectError: the connection could not be opened; the message says why.
    """
    options.setdefault("compression", None)
    try:
        ws = await ws_connect(url, **options)
    except InvalidURI as exc:
        raise ConnectError(f"cannot connect to {url}: not a WebSocket URL ({exc.msg})") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in AUTH_STATUSES:
            raise refusal(url, exc.response) from None
        raise ConnectError(f"cannot connect to {url}: the server answered HTTP {status}, not a WebSocket") from None
    except InvalidHandshake as exc:
        raise ConnectError(f"cannot connect to {url}: the WebSocket handshake failed ({exc})") from None
    except TimeoutError:
        raise ConnectError(f"cannot connect to {url}: the server did not complete the handshake in time") from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {url}: {_os_reason(exc)}") from None
    return WebSocketTransport(ws, url)
