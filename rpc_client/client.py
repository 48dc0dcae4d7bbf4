"""The asyncio client: one connection, many concurrent calls, each answer to its own caller.

:mod:`.messages` builds the requests and reads the answers; a
:class:`~rpc_client.transport.Transport` (WebSocket by default,
:mod:`.websocket`) carries them; :class:`~rpc_client.pending.PendingCalls`
matches them by id. The engine under this class is
:class:`~rpc_client.session.Session`; this module is the public face.

The URL is checked when the client is made (with the default connector):
one that cannot name a WebSocket server raises :class:`InvalidURL` there.
Connecting takes at most ``connect_timeout`` seconds; when it is not given,
10 s or the call timeout, whichever is shorter.

Credentials and TLS (``token``, ``headers``, ``ssl``, ``cafile``) go with
each opening handshake; a token provider is called for every connection the
client opens (see :mod:`rpc_client.credentials`). A handshake refused with
HTTP 401 or 403 raises :class:`AuthenticationError`, with the server's reason.

Connection loss, and reconnecting (``reconnect=True``):

- Calls in flight when the connection drops fail at once with
  :class:`ConnectionLost` and are **not** re-sent: the server may or may not
  have run them, and a call need not be idempotent. Retry them yourself if
  they are safe to repeat.
- With ``reconnect=True`` the client then reconnects in the background with
  exponential backoff and jitter (:class:`~rpc_client.backoff.Backoff`);
  calls made meanwhile wait for the new connection within their own timeout.
- With ``reconnect=False`` (the default) calls after a drop fail at once with
  :class:`ConnectionLost`.
- The first connection (``async with`` / :meth:`Client.connect`) is not
  retried: a wrong URL or a server that is not up fails fast, with
  :class:`ConnectError`.
- A reconnection refused with :class:`AuthenticationError` is not retried,
  since the same credential would be refused again, unless ``token`` is a
  provider and gives a token other than the one refused. Once the client gives
  up, calls waiting for a connection, and later ones, fail with that error.
- Subscriptions end with the connection (their iteration raises the
  connection error); subscribe again once reconnected.

Server push (the server's ``rpc.*`` convention, see ``rpc_server/session.py``):

- :meth:`Client.stream` and ``call(..., progress=...)`` send ``"stream": true``
  and take the ``rpc.part`` / ``rpc.progress`` notifications for their id;
  :meth:`Client.subscribe` takes the ``rpc.event`` notifications of its
  subscription. The reader routes them through
  :class:`~rpc_client.pending.PendingCalls`, as it does answers.
- Cancellation is ordinary task cancellation: when the task awaiting a call
  (or iterating a stream) is cancelled, when the call times out, or when a
  stream is left before its end, the client sends ``rpc.cancel`` with that id
  by itself. It never waits for that send and never fails because of it: it
  goes out in the background, on the connection the call was sent on, if that
  is still open.
"""

from __future__ import annotations

import enum
import os
import ssl as ssl_module
from collections.abc import AsyncGenerator, Callable, Iterable
from types import TracebackType
from typing import Any

from jsonrpcclient import Ok

from . import streams
from .backoff import Backoff
from .batch import Batch
from .credentials import Credentials, Headers, Token
from .errors import ProtocolError
from .messages import Members, Params, Response, batch_pair, check_request, outcome_value, params_from, unwrap
from .push import DEFAULT_EVENT_BUFFER, ProgressCallback
from .session import Session
from .subscription import Subscription
from .transport import Connector
from .url import check_url
from .websocket import connect as websocket_connect

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_TIMEOUT", "Client", "session_of"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0


class _Default(enum.Enum):
    """The marker of a connect_timeout not given: 10 s, or the call timeout if shorter."""

    CONNECT_TIMEOUT = "DEFAULT_CONNECT_TIMEOUT, or timeout if shorter"

    def __repr__(self) -> str:
        return self.value


def _connect_timeout(given: float | _Default | None, timeout: float | None) -> float | None:
    if given is not _Default.CONNECT_TIMEOUT:
        return given
    if timeout is None:
        return DEFAULT_CONNECT_TIMEOUT
    return min(DEFAULT_CONNECT_TIMEOUT, timeout)


class Client:
    """A JSON-RPC 2.0 client on one connection, for many concurrent calls.

    Use as ``async with Client(url) as client:``; then ``await client.call(...)``
    from as many tasks as you like.

    Args:
        url: the server's endpoint, e.g. ``ws://127.0.0.1:8000/ws``.
        timeout: the default for every call, in seconds, from the call to its
            answer (waiting for a connection included); None waits forever.
        connect_timeout: how long opening a connection may take, in seconds.
        reconnect: reconnect when the connection drops (see the module docstring).
        backoff: the delays between reconnection attempts.
        token: sent on each opening handshake as ``Authorization: Bearer <token>``: a
            string, or a function (plain or async) returning one, called for every
            connection the client opens, so that a reconnection carries a fresh token.
            A plain function runs on the event loop: keep it quick (read a file, a cache).
        headers: more headers for the opening handshake, a dict or ``(name, value)`` pairs.
        ssl: the :class:`ssl.SSLContext` for a ``wss://`` URL: the CAs to trust, a
            client certificate (mutual TLS). The system's default context otherwise.
        cafile: the short form of ``ssl``: trust the CA certificates in this PEM file.
        connector: opens connections; WebSocket by default
            (:func:`rpc_client.websocket.connect`), an in-memory one in tests. With
            credentials or TLS set, it is called as ``connector(url,
            additional_headers=..., ssl=...)`` (only those set), as both WebSocket
            connectors of this package take them.
        send_cancel: send ``rpc.cancel`` for a call its caller abandoned
            (see the module docstring). Turn it off for a server that does not
            know ``rpc.cancel`` and answers it with an error.
        on_unmatched_error: called with each error response whose id is null
            (the server could not read a message, so no call can be matched
            to it by the specification's rules); it is logged either way.

    Raises:
        InvalidURL: the URL cannot name a WebSocket server (with the default connector).
        TypeError, ValueError: a token that cannot be a bearer token, an ``Authorization``
            header beside ``token``, both ``ssl`` and ``cafile``, or either with a ``ws://`` URL.
        OSError, ssl.SSLError: ``cafile`` cannot be read as PEM certificates.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | _Default | None = _Default.CONNECT_TIMEOUT,
        reconnect: bool = False,
        backoff: Backoff | None = None,
        token: Token | None = None,
        headers: Headers | None = None,
        ssl: ssl_module.SSLContext | None = None,
        cafile: str | os.PathLike[str] | None = None,
        connector: Connector | None = None,
        send_cancel: bool = True,
        on_unmatched_error: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if connector is None:
            check_url(url)  # where the mistake is: no connection attempt could mend it
        credentials = None
        if token is not None or headers is not None or ssl is not None or cafile is not None:
            credentials = Credentials(url, token=token, headers=headers, ssl=ssl, cafile=cafile)
        self._session = Session(
            url,
            timeout=timeout,
            connect_timeout=_connect_timeout(connect_timeout, timeout),
            reconnect=reconnect,
            backoff=backoff if backoff is not None else Backoff(),
            connector=connector if connector is not None else websocket_connect,
            credentials=credentials,
            send_cancel=send_cancel,
            on_unmatched_error=on_unmatched_error,
        )

    # -- state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's endpoint."""
        return self._session.url

    @property
    def timeout(self) -> float | None:
        """The default timeout of a call, in seconds; None waits forever. It may be changed."""
        return self._session.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._session.timeout = value

    @property
    def connect_timeout(self) -> float | None:
        """How long opening a connection may take, in seconds; None: as long as the system allows."""
        return self._session.connect_timeout

    @connect_timeout.setter
    def connect_timeout(self, value: float | None) -> None:
        self._session.connect_timeout = value

    @property
    def reconnect(self) -> bool:
        """Whether the client reconnects when the connection drops."""
        return self._session.reconnect

    @property
    def backoff(self) -> Backoff:
        """The delays between reconnection attempts."""
        return self._session.backoff

    @property
    def send_cancel(self) -> bool:
        """Whether a call its caller abandoned is cancelled on the server (``rpc.cancel``). It may be changed."""
        return self._session.send_cancel

    @send_cancel.setter
    def send_cancel(self, value: bool) -> None:
        self._session.send_cancel = value

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._session.link is not None

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered (a batch counts each of its calls)."""
        return len(self._session.pending)

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection (``async with`` does it for you); a no-op when open.

        It takes at most ``connect_timeout`` seconds, and is not retried.

        Raises:
            AuthenticationError: the server refused it (HTTP 401 or 403); its ``reason`` says why.
            ConnectError: it cannot be opened; ``refused`` is True when nothing listens there.
            ClientClosedError: the client is closed.
        """
        await self._session.connect()

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with :class:`ClientClosedError`."""
        await self._session.close()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- calls -----------------------------------------------------------------

    async def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and return its result.

        ``call("multiply", 3, 4)`` sends params by position, ``call("subtract",
        minuend=42, subtrahend=23)`` by name. For a param named ``timeout`` or
        ``progress``, use :meth:`request`.

        Cancelling the task that awaits the call, or its timeout, sends
        ``rpc.cancel`` for it (see the module docstring).

        Args:
            method: the method's name.
            args: params by position.
            timeout: seconds to wait for the answer; None for the client's default.
            progress: ``callback(done, total, message)``, plain or async, called
                in this task for each progress report, before the result comes.
                The request then carries ``"stream": true``; if the method
                streams parts, they are gathered and returned as one list, as
                without it (except that a stream of no parts answers 0, not []).
            kwargs: params by name.

        Raises:
            TypeError: params given both by position and by name, or not JSON
                (also ValueError for NaN or infinity); nothing is sent.
            RpcError: the server answered with an error.
            CallTimeout: no answer within the timeout.
            RpcConnectionError: no connection, or it was lost while waiting.
            ProtocolError: the server's answer (or a progress report) is not JSON-RPC 2.0
                as this client reads it; StreamError, when parts were lost.
        """
        params = params_from(args, kwargs) if kwargs else args
        if progress is not None:
            return unwrap(await streams.request_with_progress(self._session, method, params, timeout, progress))
        session = self._session
        link = session.link
        if link is None:  # connecting, or reconnecting: the session's general way waits for it
            return unwrap(await session.request(method, params, timeout))
        # The fast way, awaited right here: one coroutine a call (the caller's), not two.
        id, future, timer = session.send_call(link, method, params, timeout)
        try:
            response = await future
        except BaseException:
            session.let_go(link, id, timer, future)  # cancelled or timed out: rpc.cancel if it still runs
            raise
        if timer is not None:
            timer.cancel()
        if type(response) is Ok:
            return response[0]  # the result; as unwrap() reads it, one call less
        return unwrap(response)

    async def discover(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's OpenRPC document (``rpc.discover``): the methods this caller may call, and its topics."""
        document: dict[str, Any] = await self.call("rpc.discover", timeout=timeout)
        return document

    async def request(
        self,
        method: str,
        params: Params = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Call ``method`` with params as they go on the wire; return the answer as a value.

        Returns jsonrpcclient's ``Ok(result, id)`` or ``Error(code, message, data, id)``
        rather than raising for a JSON-RPC error. Raises as :meth:`call` does otherwise.
        """
        if progress is not None:
            return await streams.request_with_progress(self._session, method, params, timeout, progress)
        return await self._session.request(method, params, timeout)

    def stream(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        """Call a method that streams its result, and yield each part as it arrives.

        ``async for part in client.stream("count", 5): ...``. The request carries
        ``"stream": true``; the iteration ends when the call's answer comes,
        after every part pushed before it. Leaving the loop early (``break``,
        an exception, cancellation) sends ``rpc.cancel`` for the call: at once
        on cancellation or an exception. After a ``break`` it goes out only when
        the iterator is closed, which does not happen while a reference to it is
        held: leave with ``break`` only inside ``async with contextlib.aclosing(
        client.stream(...)) as parts:``, for the ``rpc.cancel`` to go out at once.

        Args:
            method: the method's name.
            args: params by position.
            timeout: seconds for the whole call, from sending it to its answer,
                counted while this iterator waits; None for the client's default.
            progress: as for :meth:`call`.
            kwargs: params by name.

        Raises:
            RpcError: the call failed, after the parts that came before the error were yielded.
            StreamError: the answer is not the number of parts received (a part
                was lost, or the method does not stream).
            CallTimeout, RpcConnectionError, ProtocolError, TypeError: as for :meth:`call`.
        """
        return streams.parts(self._session, method, params_from(args, kwargs), timeout, progress)

    def subscribe(
        self,
        topic: str,
        params: Params = None,
        /,
        *,
        timeout: float | None = None,
        buffer: int = DEFAULT_EVENT_BUFFER,
        **named: Any,
    ) -> Subscription:
        """Subscribe to a topic, for the duration of an ``async with`` block.

        ``async with client.subscribe("clock", interval=0.5) as events:
        async for event in events: print(event.data)``. Entering sends
        ``rpc.subscribe``; leaving sends ``rpc.unsubscribe``, and waits for its
        answer unless the block ends by cancellation or the connection is gone.

        Args:
            topic: the topic's name.
            params: the topic's params as they go on the wire (a dict or a list),
                for names that clash with this method's own; else give them by name.
            timeout: seconds for the subscribe and unsubscribe calls; None for the client's default.
            buffer: the events kept for a consumer slower than the server;
                past it the oldest are dropped and counted in the next event's ``dropped``.
            named: the topic's params by name.

        Raises:
            TypeError: params given both ways.
            ValueError: ``buffer`` is less than 1.
        """
        if params is not None and named:
            raise TypeError("give the topic's params as one dict or list, or by name, not both")
        return Subscription(self._session, topic, named or params, timeout=timeout, buffer=buffer)

    async def notify(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Send a notification: no id, and no answer is awaited or will come.

        Returns once the message is handed to the connection; the timeout bounds
        the wait for a connection and for room to send. Raises as :meth:`call`
        does, except that there is no answer to fail.
        """
        await self.notification(method, params_from(args, kwargs), timeout=timeout)

    async def notification(self, method: str, params: Params = None, *, timeout: float | None = None) -> None:
        """:meth:`notify`, with params as they go on the wire (a list, a dict, or None)."""
        await self._session.notify(method, params, timeout)

    async def batch_call(self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None) -> list[Any]:
        """Send ``(method, params)`` pairs as one JSON-RPC batch; return their outcomes in that order.

        Like ``asyncio.gather(..., return_exceptions=True)``: each item is the
        call's result, or the :class:`RpcError` (or :class:`ProtocolError`) it
        failed with, whatever order the server answered in. A batch is answered
        as a whole, so a timeout or a lost connection raises instead.

        Raises:
            TypeError: a call is not ``(method, params)``, or its params are not JSON; nothing is sent.
            CallTimeout: no answer within the timeout.
            RpcConnectionError: no connection, or it was lost while waiting.
        """
        return [outcome_value(outcome) for outcome in await self.batch_request(calls, timeout=timeout)]

    async def batch_request(
        self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None
    ) -> list[Response | ProtocolError]:
        """:meth:`batch_call`, with each answer as jsonrpcclient's ``Ok`` or ``Error`` (as :meth:`request`)."""
        members = Members()
        for call in calls:
            method, params = batch_pair(call)
            check_request(method, params)
            members.add(method, params)
        return await self._session.send_batch(members, timeout)

    def batch(self, *, timeout: float | None = None) -> Batch:
        """A batch to fill in an ``async with`` block; it is sent when the block ends.

        ``async with client.batch() as batch: product = batch.call("multiply", 3, 4)``,
        then ``product.result()`` after the block.
        """
        return Batch(self._session, timeout)


def session_of(client: Client) -> Session:
    """The engine under a client, for the package's own layers above it (the blocking facade)."""
    return client._session
