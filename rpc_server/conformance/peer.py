"""The kit's side of the wire: a plain WebSocket connection, and running one case over it.

It speaks raw WebSocket through websockets' blocking client, never through
a JSON-RPC client, which would correct or hide what the server got wrong:
frames go out as written and come back as received.

Silence cannot be observed, only inferred: after a notification, the kit
sends a request of its own (the probe, a call of a method that no server
has) and reads until the probe's answer. Whatever came before it answered the
notification. A server that answers a notification later than a request sent
after it escapes this check; servers that answer in order, and most that do
not, are caught. The same probe ends every case, so an answer sent twice, or
one nobody asked for, is seen too.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .cases import COMPLETION_ORDER, SILENCE, Answer, Answers, Case, request
from .judge import Deviation, difference, matches, parse, show

__all__ = ["PROBE_METHOD", "Peer", "check", "method_missing"]

PROBE_METHOD = "conformance-kit.no-such-method"
_probes = itertools.count(1)


class Peer:
    """One WebSocket connection to the server under test; every wait is bounded by ``timeout`` seconds.

    Args:
        url: the server's endpoint, ``ws://`` or ``wss://``.
        timeout: seconds to wait for the connection, and for each answer.
        headers: extra headers for the opening handshake (credentials).
    """

    def __init__(self, url: str, *, timeout: float, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.url = url
        self.timeout = timeout
        self.ws: ClientConnection = connect(
            url, open_timeout=timeout, close_timeout=timeout, additional_headers=headers, legacy=True
        )

    def send(self, text: str) -> None:
        self.ws.send(text)

    def receive(self, waiting_for: str = "it", deadline: float | None = None) -> str | bytes:
        """The next frame, within the timeout (and before ``deadline``, a ``time.monotonic()`` time, if given).

        Raises:
            Deviation: none came in time, or the server closed the connection.
        """
        __tracebackhide__ = True
        timeout = self.timeout if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self.ws.recv(timeout=timeout)
        except TimeoutError:
            raise Deviation(f"no answer to {waiting_for} within {self.timeout:g} s") from None
        except ConnectionClosed as exc:
            raise Deviation(f"the server closed the connection instead of answering {waiting_for} ({exc})") from None

    def probe(self) -> list[Any]:
        """Send a request of the kit's own; return what came before its answer, parsed."""
        __tracebackhide__ = True
        id = f"probe-{next(_probes)}"
        self.send(request(PROBE_METHOD, id=id))
        # One bound for the whole wait: a server that keeps sending other frames must not keep the case running.
        deadline = time.monotonic() + self.timeout
        before: list[Any] = []
        while True:
            value = parse(self.receive(f"the kit's probe {request(PROBE_METHOD, id=id)}", deadline))
            if isinstance(value, dict) and value.get("id") == id:
                return before
            before.append(value)

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _sent(frames: Sequence[str]) -> list[str]:
    return [f"  sent:      {frame}" for frame in frames]


def _fail(case: Case, frames: Sequence[str], what: str, details: Sequence[str] = ()) -> Deviation:
    return Deviation("\n".join([f"section {case.section}: {case.rule}", f"  {what}", *_sent(frames), *details]))


def check(case: Case, peer: Peer, names: dict[str, str], slow_params: Any = None) -> None:
    """Run one case over a fresh connection.

    Args:
        case: the case.
        peer: a connection used by no other case.
        names: the server's name for each method role (see :data:`~.cases.METHODS`).
        slow_params: the params of the slow method, for the completion-order case.

    Raises:
        Deviation: the server's answers break the case's rule; the message says
            which rule, what was sent, what was expected and what came back.
    """
    __tracebackhide__ = True  # pytest shows the deviation, not the kit's workings
    if case.expect is COMPLETION_ORDER:
        frames = [request(names["slow"], slow_params, "slow"), request(names["subtract"], [42, 23], "fast")]
    else:
        frames = case.frames(names)
    try:
        for frame in frames:
            peer.send(frame)
        _judge(case, frames, peer)
    except Deviation as exc:
        if str(exc).startswith("section "):
            raise
        raise _fail(case, frames, str(exc)) from None


def _judge(case: Case, frames: list[str], peer: Peer) -> None:
    __tracebackhide__ = True
    expect = case.expect
    if expect is COMPLETION_ORDER:
        _judge_completion_order(case, frames, peer)
        return
    if expect is SILENCE:
        answers = peer.probe()
        if answers:
            raise _fail(
                case, frames, "it was answered, though nothing must be:", [f"  received:  {show(a)}" for a in answers]
            )
        return
    if isinstance(expect, Answers):
        values = [parse(peer.receive()) for _ in frames]
        problem = difference(list(expect.values), values, "the set of answers")
        if problem is not None:
            details = [
                *(f"  expected:  {show(v)}" for v in expect.values),
                *(f"  received:  {show(v)}" for v in values),
            ]
            raise _fail(case, frames, problem, details)
    else:
        assert isinstance(expect, Answer)
        value = parse(peer.receive())
        if not matches(expect.accepted, value):
            problem = difference(expect.accepted[0], value)
            expected = [
                f"  {'expected:' if i == 0 else '       or:'}  {show(a)}" for i, a in enumerate(expect.accepted)
            ]
            raise _fail(
                case, frames, f"{problem} (error.data is not compared)", [*expected, f"  received:  {show(value)}"]
            )
    more = peer.probe()
    if more:
        raise _fail(case, frames, "more was answered than was asked:", [f"  then:      {show(m)}" for m in more])


def _judge_completion_order(case: Case, frames: list[str], peer: Peer) -> None:
    __tracebackhide__ = True
    first = parse(peer.receive())
    second = parse(peer.receive())
    received = [f"  received:  {show(first)}", f"  then:      {show(second)}"]
    fast = {"jsonrpc": "2.0", "result": 19, "id": "fast"}
    if difference(fast, first) is not None:
        if difference(fast, second) is None:
            raise _fail(case, frames, "the fast call was answered only after the slow one:", received)
        raise _fail(case, frames, f"neither answer is the fast call's, {show(fast)}:", received)
    if not isinstance(second, dict) or set(second) != {"jsonrpc", "result", "id"} or second["jsonrpc"] != "2.0":
        raise _fail(case, frames, "the slow call's answer is not a Response object with a result:", received)
    if second["id"] != "slow":
        raise _fail(case, frames, 'the slow call\'s answer does not carry its id, "slow":', received)


def method_missing(peer: Peer, name: str, params: Any = ...) -> bool:
    """Whether the server answers a call of ``name`` with -32601 Method not found (``...``: no params)."""
    peer.send(request(name, params, id="conformance-kit-method-check"))
    value = parse(peer.receive())
    error = value.get("error") if isinstance(value, dict) else None
    return isinstance(error, dict) and error.get("code") == -32601
