"""What crosses the server's sockets, counted in plain integers for the metrics.

The connections add to one :class:`Traffic` as frames and handshakes go by (a
few integer additions per message: the hot path stays cheap);
:mod:`.metrics` reads it when Prometheus scrapes. ``None`` in its place turns
the counting off (``--no-metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["REFUSALS", "Traffic"]

# Why an upgrade was refused, by who refused it and with what status.
REFUSALS = ("origin", "auth", "limit", "invalid")


def _reason(status: int, by_gate: bool) -> str:
    if status == 401 or (status == 403 and by_gate):
        return "auth"
    if status == 403:
        return "origin"  # websockets' own Origin check
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

    def refuse(self, status: int, by_gate: bool) -> None:
        """Count an upgrade refused with ``status``: by a gate of the handshake, or by the WebSocket checks."""
        self.refused[_reason(status, by_gate)] += 1
