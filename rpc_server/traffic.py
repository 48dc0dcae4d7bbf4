"""What crosses the server's sockets, counted in plain integers for the metrics.

The connections add to one :class:`Traffic` as frames and handshakes go by (a
few integer additions per message: the hot path stays cheap), and so do the
handshake's gates, wrapped by :mod:`.metrics`, for the upgrades they refuse;
:mod:`.metrics` reads it when Prometheus scrapes. ``None`` in its place turns
the counting off (``--no-metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["REFUSALS", "Traffic", "reason_of"]

# Why an upgrade was refused: a foreign web page, a missing or wrong credential, a
# server at its limits, or a request that is no valid WebSocket handshake.
REFUSALS = ("origin", "auth", "limit", "invalid")


def reason_of(status: int) -> str:
    """The reason a refusal with ``status`` stands for, when who refused does not say."""
    if status in (401, 403):
        return "auth"
    if status in (429, 503):
        return "limit"
    return "invalid"


@dataclass(slots=True)
class Traffic:
    """Counters since the process started; ``connections_open`` goes up and down."""

    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    connections_accepted: int = 0
    connections_open: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSALS, 0))
