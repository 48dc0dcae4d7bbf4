"""What crosses the server's sockets, counted in plain integers for the metrics.

The connections add to one :class:`Traffic` as frames and handshakes go by (a
few integer additions per message: the hot path stays cheap), refused
upgrades included, by the reason their :class:`~.handshake.Refusal` gives;
:mod:`.metrics` reads it when Prometheus scrapes. ``None`` in its place turns
the counting off (``--no-metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .handshake import REFUSALS

__all__ = ["Traffic"]


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
