"""The blocking facade's loop, run by the thread that waits on it (rpc_client/sharedloop.py), against a real server.

Each way the loop can be run is driven here: by the calling thread (the fast
path), by another thread that runs it already (work handed over), by the
background thread when nobody calls (the connection still read), and for a
thread that runs an event loop of its own. Waits are bounded; no test asserts
how long anything took.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rpc_client import (
    CallTimeout,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    RpcError,
    SyncClient,
    connect_sync,
)
from rpc_server import Context, Registry, builtin_tools
from rpc_server.testing import ServerThread

WAIT = 10.0


class Held:
    """A server whose ``hold`` tool answers only once released, and whose ``wait_for_cancel`` records rpc.cancel."""

    def __init__(self) -> None:
        self.registry: Registry = builtin_tools()
        self.started = threading.Event()
        self.cancelled: list[str] = []
        self.cancelled_event = threading.Event()
        self._release: asyncio.Event | None = None

        @self.registry.tool
        async def hold() -> str:
            self._release = asyncio.Event()
            self.started.set()
            await self._release.wait()
            return "released"

        @self.registry.tool
        async def wait_for_cancel(ctx: Context) -> None:
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append("rpc.cancel" if ctx.request_id in ctx.session.cancelling else "closing")
                self.cancelled_event.set()
                raise

    def release(self, server: ServerThread) -> None:
        assert self.started.wait(WAIT), "the held call never started"
        server.call(lambda: self._release.set())  # type: ignore[union-attr]


@pytest.fixture
def held() -> Iterator[tuple[Held, ServerThread]]:
    tools = Held()
    with ServerThread(tools.registry) as server:
        yield tools, server


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.001)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def runner(client: SyncClient) -> int | None:
    """The thread that runs the client's loop now, by ident."""
    return client._shared._runner


def test_a_call_runs_the_loop_in_the_calling_thread_and_lets_it_go(held: tuple[Held, ServerThread]) -> None:
    """While a call waits, its own thread runs the loop; once answered, no thread does until the next call."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        thread, outcome = in_thread(lambda: client.call("hold"))
        until(lambda: tools.started.is_set(), "the held call")
        assert runner(client) == thread.ident
        tools.release(server)
        thread.join(WAIT)
        assert outcome == ["released"]
        assert runner(client) in (None, client._shared._thread.ident)


def test_a_thread_calling_while_another_runs_the_loop_is_answered_through_it(held: tuple[Held, ServerThread]) -> None:
    """A call from a second thread is handed to the loop the first thread runs, and answered while the first waits."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        thread, outcome = in_thread(lambda: client.call("hold"))
        until(lambda: tools.started.is_set(), "the held call")
        assert client.call("multiply", 6, 7) == 42  # handed over to the thread holding the loop
        assert client.in_flight == 1 and outcome == []
        tools.release(server)
        thread.join(WAIT)
        assert outcome == ["released"]


def test_a_waiting_thread_runs_the_loop_in_its_turn_when_the_first_lets_go(held: tuple[Held, ServerThread]) -> None:
    """The thread running the loop is answered first and leaves; the one still waiting runs the loop itself then."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        first, first_outcome = in_thread(lambda: client.call("sleep", 0.2, "first"))
        until(lambda: runner(client) == first.ident, "the first thread running the loop")
        second, second_outcome = in_thread(lambda: client.call("hold"))
        until(lambda: tools.started.is_set(), "the held call")
        first.join(WAIT)
        assert first_outcome == ["first"]
        until(lambda: runner(client) == second.ident, "the second thread running the loop")
        tools.release(server)
        second.join(WAIT)
        assert second_outcome == ["released"]


def test_between_calls_the_background_thread_reads_the_connection(held: tuple[Held, ServerThread]) -> None:
    """With no call, the background thread runs the loop: the server closing the connection is seen at once."""
    _, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        assert client.call("add", 1, 2) == 3
        until(lambda: runner(client) == client._shared._thread.ident, "the background thread taking the loop")
        server.call(lambda: [connection.close() for connection in list(server.server.connections)])
        until(lambda: not client.connected, "the client seeing the connection closed")


def test_a_call_takes_the_loop_back_from_the_background_thread(held: tuple[Held, ServerThread]) -> None:
    """After an idle spell the background thread runs the loop; the next call gets it back and is answered."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        until(lambda: runner(client) == client._shared._thread.ident, "the background thread taking the loop")
        thread, outcome = in_thread(lambda: client.call("hold"))
        until(lambda: runner(client) == thread.ident, "the calling thread taking the loop back")
        tools.release(server)
        thread.join(WAIT)
        assert outcome == ["released"]


def test_a_thread_running_an_event_loop_of_its_own_is_answered_through_the_background_thread(
    held: tuple[Held, ServerThread],
) -> None:
    """Blocking on the client inside a running event loop (as in Jupyter) works: another thread runs the client's."""
    _, server = held
    with connect_sync(server.url, timeout=WAIT) as client:

        async def notebook_cell() -> tuple[Any, Any]:
            return client.call("multiply", 3, 4), client.batch_call([("add", [1, 2])])

        assert asyncio.run(notebook_cell()) == (12, [3])


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("multiply", [3, 4]),
        ("subtract", {"minuend": 42, "subtrahend": 23}),
        ("divide", [1, 0]),
        ("nope", None),
        ("multiply", ["ab", 3]),
        ("sleep", [0.01, {"nested": [1, 2.5, None]}]),
    ],
)
def test_a_call_on_the_fast_path_answers_as_the_coroutine_handed_over_does(
    held: tuple[Held, ServerThread], method: str, params: Any
) -> None:
    """request() run by the calling thread (no task) gives what the async client's coroutine gives, handed over."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        fast = client.request(method, params)
        thread, _ = in_thread(lambda: client.call("hold"))  # holds the loop: the next call is handed over
        until(lambda: tools.started.is_set() and runner(client) == thread.ident, "the held call")
        slow = client.request(method, params)
        tools.release(server)
        thread.join(WAIT)
    assert type(fast) is type(slow)
    assert fast._replace(id=None) == slow._replace(id=None)


def test_a_timed_out_call_on_the_fast_path_is_cancelled_on_the_server(held: tuple[Held, ServerThread]) -> None:
    """CallTimeout, rpc.cancel sent before the loop is let go, nothing left in flight, and the client goes on."""
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        with pytest.raises(CallTimeout, match="wait_for_cancel"):
            client.call("wait_for_cancel", timeout=0.2)
        assert client.in_flight == 0
        assert tools.cancelled_event.wait(WAIT) and tools.cancelled == ["rpc.cancel"]
        assert client.call("add", 1, 2) == 3


@pytest.mark.parametrize("path", ["call", "stream"])
def test_ctrl_c_in_the_main_thread_cancels_the_call_and_the_client_goes_on(
    held: tuple[Held, ServerThread], path: str
) -> None:
    """SIGINT while the main thread runs the loop cancels the call (rpc.cancel), then raises KeyboardInterrupt."""
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    tools, server = held
    with connect_sync(server.url, timeout=WAIT) as client:

        def interrupt() -> None:
            if tools.started.wait(WAIT):
                os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            if path == "call":
                client.call("wait_for_cancel")
            else:
                list(client.stream("wait_for_cancel"))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert tools.cancelled_event.wait(WAIT) and tools.cancelled == ["rpc.cancel"]
        assert client.call("multiply", 3, 4) == 12
        with pytest.raises(RpcError, match="Method not found"):
            client.call("nope")


def test_many_threads_calling_one_client_at_once_each_get_their_own_answers(held: tuple[Held, ServerThread]) -> None:
    """Eight threads call at once (plain calls, calls overlapping on the server, batches): each gets its own answers."""
    _, server = held
    threads = 8
    with connect_sync(server.url, timeout=WAIT) as client:
        start = threading.Barrier(threads)

        def work(t: int) -> list[Any]:
            start.wait(WAIT)
            got: list[Any] = []
            for i in range(60):
                if i % 10 == 0:
                    got.append(client.batch_call([("multiply", [i, t]), ("add", [i, t])]))
                elif i % 3 == 0:
                    got.append(client.call("sleep", 0.002, [t, i]))
                else:
                    got.append(client.call("multiply", i, t))
            return got

        running = [in_thread(lambda t=t: work(t)) for t in range(threads)]  # type: ignore[misc]
        for thread, _ in running:
            thread.join(WAIT)
        for t, (thread, outcome) in enumerate(running):
            assert not thread.is_alive()
            expected = [[i * t, i + t] if i % 10 == 0 else [t, i] if i % 3 == 0 else i * t for i in range(60)]
            assert outcome == [expected]
        assert client.in_flight == 0


def test_calls_timing_out_in_several_threads_at_once_each_raise_call_timeout(held: tuple[Held, ServerThread]) -> None:
    """Each thread's call times out on its own (whichever thread runs the loop), and the client goes on."""
    _, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        running = [in_thread(lambda: client.call("wait_for_cancel", timeout=0.2)) for _ in range(4)]
        for thread, _ in running:
            thread.join(WAIT)
        for thread, outcome in running:
            assert not thread.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], CallTimeout), outcome
        assert client.in_flight == 0
        assert client.call("multiply", 3, 4) == 12


def test_the_server_closing_fails_every_thread_s_call_with_connection_lost(held: tuple[Held, ServerThread]) -> None:
    """The connection closed by the server while threads wait: each call fails with ConnectionLost, none hangs."""
    _, server = held
    with connect_sync(server.url, timeout=WAIT) as client:
        running = [in_thread(lambda: client.call("wait_for_cancel")) for _ in range(3)]
        until(lambda: client.in_flight == 3, "three calls in flight")
        server.call(lambda: [connection.close() for connection in list(server.server.connections)])
        for thread, _ in running:
            thread.join(WAIT)
        for thread, outcome in running:
            assert not thread.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLost), outcome
        assert client.in_flight == 0


def test_close_from_another_thread_fails_the_calls_waiting_and_every_call_after(
    held: tuple[Held, ServerThread],
) -> None:
    """close() while threads wait on calls: each fails with ClientClosedError, as does a call after; the loop closes."""
    _, server = held
    client = connect_sync(server.url, timeout=WAIT)
    running = [in_thread(lambda: client.call("wait_for_cancel")) for _ in range(3)]
    until(lambda: client.in_flight == 3, "three calls in flight")
    client.close()
    for thread, _ in running:
        thread.join(WAIT)
    for thread, outcome in running:
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError), outcome
    with pytest.raises(ClientClosedError):
        client.call("add", 1, 2)
    with pytest.raises(ClientClosedError):
        client.batch_call([("add", [1, 2])])
    assert client._shared.loop.is_closed() and not client._shared._thread.is_alive()
    client.close()  # twice: harmless


def test_close_racing_threads_that_keep_calling_ends_each_with_client_closed_error(
    held: tuple[Held, ServerThread],
) -> None:
    """Threads calling in a loop while another closes the client: every one stops with ClientClosedError, none hangs."""
    _, server = held
    client = connect_sync(server.url, timeout=WAIT)
    answered = [0] * 4

    def keep_calling(t: int) -> None:
        i = 0
        while True:
            handover = i % 7 == 0  # now and then a coroutine handed over rather than the fast path
            got = client.batch_call([("multiply", [i, 2])])[0] if handover else client.call("multiply", i, 2)
            assert got == 2 * i
            answered[t] += 1
            i += 1

    running = [in_thread(lambda t=t: keep_calling(t)) for t in range(4)]  # type: ignore[misc]
    until(lambda: min(answered) >= 20, "every thread answered a few times")
    client.close()
    for thread, _ in running:
        thread.join(WAIT)
    for thread, outcome in running:
        assert not thread.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError), outcome
    assert client._shared.loop.is_closed()


def test_connect_sync_inside_a_running_event_loop_calls_and_closes_its_own_loop() -> None:
    """connect_sync() used and closed inside asyncio.run (as in a Jupyter cell): the calls answer, the loop closes."""
    with ServerThread(builtin_tools()) as server:

        async def notebook_cell() -> tuple[SyncClient, Any]:
            with connect_sync(server.url, timeout=WAIT) as client:
                answers = (
                    client.call("multiply", 3, 4),
                    client.batch_call([("add", [1, 2])]),
                    list(client.stream("count", 2)),
                )
            return client, answers

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine ... was never awaited" among others
            client, answers = asyncio.run(notebook_cell())
        assert answers == (12, [3], [1, 2])
        assert client._shared.loop.is_closed() and not client._shared._thread.is_alive()


def test_connect_sync_failing_inside_a_running_event_loop_raises_connect_error() -> None:
    """A connection refused inside asyncio.run raises ConnectError (not RuntimeError), and the loop is closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the connection is tried: refused

    async def notebook_cell() -> None:
        connect_sync(f"ws://127.0.0.1:{port}/ws", timeout=WAIT)

    before = {t for t in threading.enumerate() if t.name.startswith("rpc_client loop")}
    with pytest.raises(ConnectError):
        asyncio.run(notebook_cell())
    leftover = {t for t in threading.enumerate() if t.name.startswith("rpc_client loop")} - before
    for thread in leftover:
        thread.join(WAIT)
        assert not thread.is_alive()
