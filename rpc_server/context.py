"""What a tool sees of its call: :class:`Context`, passed to tools that declare it.

Apart from :mod:`.session` because :mod:`.schema` recognises the type when it
reads a tool's signature, and the schema layer must not depend on the
per-connection state.
"""

from __future__ import annotations

from typing import Any

from .session import Session

__all__ = ["Context"]


class Context:
    """What a tool sees of its call, when it declares a parameter of this type.

    ``async def long_job(seconds: float, ctx: Context)``: the parameter is not
    part of the params schema; the server passes it by name.
    """

    __slots__ = ("request_id", "session", "streaming")

    def __init__(self, session: Session, request_id: Any, streaming: bool) -> None:
        self.session = session
        self.request_id = request_id
        self.streaming = streaming

    async def report(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress; reaches the caller only if it asked to (``"stream": true``)."""
        if self.streaming:
            params = {"id": self.request_id, "done": done, "total": total, "message": message}
            await self.session.notify("rpc.progress", params)
