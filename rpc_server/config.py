"""The server's limits, in one frozen object passed down from the command line or the caller.

Every limit has its default and its unit in its name (``_bytes``, ``_s``), in
the spirit of websockets' ``serve(max_size=..., ping_interval=...)`` and
jsonrpsee's server builder: one visible place for all of them. The command
line and its environment variables only fill this object in
(:mod:`.cli`); :class:`~.server.RpcServer` and what it creates only read it.

>>> limits = Limits(max_in_flight=16, max_batch=100)
>>> limits.max_message_bytes
1048576
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection, and the server as a whole, may use.

    Attributes:
        max_in_flight: per connection, the calls awaiting async tools before
            the server stops reading from it (backpressure).
        max_batch: the longest batch accepted; a longer one is one -32600 error.
        max_message_bytes: the largest incoming message; a larger one closes
            the connection with code 1009, as WebSocket prescribes.
        max_subscriptions: the subscriptions one connection may hold at once.
        subscription_buffer: events kept per subscription for a slow reader;
            past it the oldest are dropped (see :mod:`.topics`).
        ping_interval_s: seconds between keepalive pings.
        ping_timeout_s: a peer that has not answered a ping within this is cut off.
        open_timeout_s: seconds a client has to complete the opening handshake.
        close_timeout_s: seconds a peer has to complete the closing handshake.

    Raises:
        ValueError: a limit out of range.
    """

    max_in_flight: int = 128
    max_batch: int = 1000
    max_message_bytes: int = 2**20
    max_subscriptions: int = 32
    subscription_buffer: int = 100
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and value <= 0:
                raise ValueError(f"{field.name} must be more than 0, not {value!r}")

    def replace(self, **changes: Any) -> Limits:
        """A copy with some limits changed.

        Raises:
            TypeError: a name that is not a limit.
            ValueError: a limit out of range.
        """
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> frozenset[str]:
        """The names of the limits, to sort a mixed set of options."""
        return frozenset(field.name for field in dataclasses.fields(cls))
