"""What batches, streams and subscriptions need from a client: its exchange of messages with the server.

:mod:`.batch`, :mod:`.streams` and :mod:`.subscription` are built on an
:class:`Exchange` and know nothing else of the client; the client's
:class:`~rpc_client.session.Session` is one, and the client hands it to them.
So each of those modules depends downward only, on this one.
"""

from __future__ import annotations

from typing import Protocol

from .errors import ProtocolError
from .messages import Members, Response
from .pending import Listener, PendingCalls
from .transport import Link

__all__ = ["Exchange"]


class Exchange(Protocol):
    """One client's connection and calls, as the modules above it use them."""

    @property
    def url(self) -> str:
        """The server's URL, for messages."""
        ...

    @property
    def pending(self) -> PendingCalls:
        """The correlation table: request ids, listeners, subscriptions."""
        ...

    @property
    def link(self) -> Link | None:
        """The open connection, or None."""
        ...

    def seconds(self, timeout: float | None) -> float | None:
        """A call's timeout in seconds: ``timeout``, or the client's default when it is None; None for none."""
        ...

    async def connection(self) -> Link:
        """The open connection, waiting for it while the client reconnects.

        Raises:
            RpcConnectionError: there is none and none is coming.
        """
        ...

    async def exchange(
        self,
        data: bytes,
        ids: list[int],
        what: str,
        timeout: float | None,
        *,
        listener: Listener | None = None,
        subscription: bool = False,
    ) -> list[Response | BaseException]:
        """Send ``data`` and await the answers to ``ids`` (none for notifications), within the timeout.

        Raises:
            CallTimeout: no connection, or no answer, within the timeout.
            RpcConnectionError: no connection, or it was lost while waiting.
        """
        ...

    async def send_batch(
        self, members: Members, timeout: float | None, *, raw: bool = False
    ) -> list[Response | ProtocolError]:
        """Send the members as one batch; the calls' answers in their order (none for notifications).

        Args:
            raw: an answer may also be left as the decoded object the server sent, for
                :func:`~rpc_client.messages.outcome_from` to read when it is asked for.
        """
        ...

    def cancel_on_server(self, link: Link, ids: list[int]) -> None:
        """Tell the server to stop calls nobody waits for any more, on the connection they were sent on."""

    def send_in_background(self, link: Link, data: bytes, what: str) -> None:
        """Send a notification on that connection if it is still the open one; never wait, never fail."""
