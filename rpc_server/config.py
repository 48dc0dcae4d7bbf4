"""The server's limits, in one frozen object passed down from the command line or the caller.

Every limit has its default and its unit in its name (``_bytes``, ``_s``), in
the spirit of websockets' ``serve(max_size=..., ping_interval=...)`` and
jsonrpsee's server builder: one visible place for all of them. The command
line and its environment variables only fill this object in
(:mod:`.cli`); :class:`~.server.RpcServer` and what it creates only read it.

>>> limits = Limits(max_in_flight=16, max_batch=100)
>>> limits.max_message_bytes
1048576
>>> limits.replace(call_timeout_s=30).call_timeout_s
30
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["MIN_MESSAGE_BYTES", "MIN_RESPONSE_BYTES", "Limits"]

# A short request and its frame header: below it, no call could be read at all.
MIN_MESSAGE_BYTES = 64
MIN_RESPONSE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection, and the server as a whole, may use.

    Attributes:
        max_in_flight: per connection, the calls running (each member of a
            batch counts) before the server stops reading from it
            (backpressure). A batch larger than what is left is started only
            once the connection's other calls have finished.
        max_in_flight_bytes: per connection, the size of the messages whose
            calls are still running; past it, as past ``max_in_flight``, the
            next message waits. A message alone is always let through.
        max_batch: the longest batch accepted; a longer one is one -32600 error.
        max_message_bytes: the largest incoming message, each frame's header
            counted with its payload; a larger one closes the connection with
            code 1009, as WebSocket prescribes.
        max_response_bytes: the largest answer to one message (a batch's
            whole array); a larger one is error -32003 for each call.
        max_gathered_parts: the parts of generator tools gathered into the
            answer to one message (a batch's members together), when the
            caller did not ask for a stream; past it, -32003 too. Producing
            a part costs more than its bytes: this bounds the CPU a small
            request buys.
        max_send_buffer_bytes: per connection, answers written and not yet
            taken by a peer that does not read; past it the server reads
            nothing more from that connection until it drains.
        max_connections: connections open at once; past it an upgrade is
            refused with HTTP 503 and ``Retry-After``. None: derived from the
            descriptor limit at start-up (see :mod:`.capacity`).
        max_subscriptions: the subscriptions one connection may hold at once.
        max_subscriptions_total: the subscriptions all connections together may hold.
        subscription_buffer: events kept per subscription for a slow reader;
            past it the oldest are dropped (see :mod:`.topics`).
        call_timeout_s: a call running longer is cancelled and answered
            -32002. None: no limit. Plain (inline) tools are not timed: they
            must be quick, or declared ``blocking=True``.
        rate_limit_calls_per_s: calls (each batch member counts) one
            connection, or one identity across its connections, may make per
            second on average; past it a call is answered -32005. None: no limit.
        rate_limit_burst_calls: the calls that may come at once before the
            rate applies; None: one second's worth.
        drain_timeout_s: on a graceful stop (:meth:`~.server.RpcServer.drain`),
            how long calls in flight have to finish before they are cancelled.
        ping_interval_s: seconds between keepalive pings.
        ping_timeout_s: a peer that has not answered a ping within this is cut off.
        open_timeout_s: seconds a client has to complete the opening handshake.
        close_timeout_s: seconds a peer has to complete the closing handshake.

    Raises:
        ConfigError: a limit that is not a number, or out of range (also a ValueError).
    """

    max_in_flight: int = 128
    max_in_flight_bytes: int = 4 * 2**20
    max_batch: int = 1000
    max_message_bytes: int = 2**20
    max_response_bytes: int = 16 * 2**20
    max_gathered_parts: int = 100_000
    max_send_buffer_bytes: int = 256 * 2**10
    max_connections: int | None = None
    max_subscriptions: int = 32
    max_subscriptions_total: int = 1024
    subscription_buffer: int = 100
    call_timeout_s: float | None = None
    rate_limit_calls_per_s: float | None = None
    rate_limit_burst_calls: int | None = None
    drain_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if type(value) not in (int, float):  # bool is an int, and no limit
                raise ConfigError(f"{field.name} must be a number, not {value!r}")
            if not value > 0:  # "not >": NaN is out of range too
                raise ConfigError(f"{field.name} must be more than 0, not {value!r}")
        if self.max_message_bytes < MIN_MESSAGE_BYTES:
            raise ConfigError(
                f"max_message_bytes must be at least {MIN_MESSAGE_BYTES} (a short request with its frame header), "
                f"not {self.max_message_bytes}"
            )
        if self.max_response_bytes < MIN_RESPONSE_BYTES:
            # Room for any error answer, so that refusing an answer never needs refusing.
            raise ConfigError(
                f"max_response_bytes must be at least {MIN_RESPONSE_BYTES}, not {self.max_response_bytes}"
            )

    @property
    def burst_calls(self) -> int:
        """The rate limit's burst: ``rate_limit_burst_calls``, or one second of the rate (at least 1)."""
        if self.rate_limit_burst_calls is not None:
            return self.rate_limit_burst_calls
        return max(1, round(self.rate_limit_calls_per_s or 1))

    def replace(self, **changes: Any) -> Limits:
        """A copy with some limits changed.

        Raises:
            TypeError: a name that is not a limit.
            ConfigError: a limit out of range.
        """
        return dataclasses.replace(self, **changes)

    @classmethod
    def names(cls) -> frozenset[str]:
        """The names of the limits, to sort a mixed set of options."""
        return frozenset(field.name for field in dataclasses.fields(cls))
