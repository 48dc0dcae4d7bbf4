"""The client over the in-memory transport: the test plays the server and answers as it likes."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from rpc_client import (
    Backoff,
    CallTimeout,
    Client,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    MemoryConnector,
    MemoryTransport,
    ProtocolError,
    RpcConnectionError,
    RpcError,
)

URL = "memory://test"
FAST = Backoff(initial=0.001, maximum=0.01)


async def receive(peer: MemoryTransport):
    async with asyncio.timeout(5):
        return json.loads(await peer.receive())


async def answer(peer: MemoryTransport, result, id):
    await peer.send(json.dumps({"jsonrpc": "2.0", "result": result, "id": id}))


@pytest.fixture
async def connector():
    return MemoryConnector()


@pytest.fixture
async def connected(connector):
    """A client on the in-memory transport, and the peer end of its connection."""
    async with Client(URL, connector=connector, timeout=5) as client:
        async with asyncio.timeout(5):
            peer = await connector.accept()
        yield client, peer


async def test_a_call_sends_a_jsonrpc_request_and_returns_the_result(connected):
    """call("multiply", 3, 4) sends a 2.0 request with params by position and returns the answer's result."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("multiply", 3, 4))
    request = await receive(peer)
    assert request == {"jsonrpc": "2.0", "method": "multiply", "params": [3, 4], "id": request["id"]}
    await answer(peer, 12, request["id"])
    assert await call == 12


async def test_named_params_are_sent_as_an_object(connected):
    """Keyword arguments become a params object."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("subtract", minuend=42, subtrahend=23))
    request = await receive(peer)
    assert request["params"] == {"minuend": 42, "subtrahend": 23}
    await answer(peer, 19, request["id"])
    assert await call == 19


async def test_mixing_positional_and_named_params_is_a_type_error_and_sends_nothing(connected):
    """A call with both kinds of params fails locally with TypeError and nothing reaches the peer."""
    client, peer = connected
    with pytest.raises(TypeError, match="by position or by name, not both"):
        await client.call("subtract", 42, subtrahend=23)
    with pytest.raises(ValueError):
        await client.call("add", float("nan"), 1)  # NaN is not JSON
    await client.notify("marker")
    assert (await receive(peer))["method"] == "marker"  # the first thing the peer ever got
    assert client.in_flight == 0


async def test_answers_out_of_order_reach_their_own_callers(connected):
    """Ten calls answered in reverse order each get their own answer."""
    client, peer = connected
    calls = [asyncio.ensure_future(client.call("echo", n)) for n in range(10)]
    requests = [await receive(peer) for _ in range(10)]
    for request in reversed(requests):
        await answer(peer, request["params"][0] * 100, request["id"])
    assert await asyncio.gather(*calls) == [n * 100 for n in range(10)]
    assert len({r["id"] for r in requests}) == 10


async def test_an_unknown_id_is_dropped_and_the_right_answer_still_arrives(connected, caplog):
    """An answer for an id nobody asked is logged at debug and the pending call is unaffected."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("echo", "x"))
    request = await receive(peer)
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        await answer(peer, "stranger", request["id"] + 1000)
        await peer.send("this is not JSON")
        await answer(peer, "mine", request["id"])
        assert await call == "mine"
    assert "unknown or late id" in caplog.text
    assert "not JSON" in caplog.text


async def test_an_error_answer_raises_rpc_error_with_code_message_and_data(connected):
    """A JSON-RPC error becomes RpcError carrying the server's code, message and data."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("divide", 1, 0))
    request = await receive(peer)
    error = {"code": 1001, "message": "Division by zero", "data": "divisor is 0"}
    await peer.send(json.dumps({"jsonrpc": "2.0", "error": error, "id": request["id"]}))
    with pytest.raises(RpcError) as caught:
        await call
    assert (caught.value.code, caught.value.message, caught.value.data) == (1001, "Division by zero", "divisor is 0")
    assert str(caught.value) == "Division by zero (1001): divisor is 0"


async def test_a_timeout_raises_timeout_error_and_leaves_nothing_pending(connected, caplog):
    """A call with no answer raises a TimeoutError, leaves no entry, and its late answer is dropped."""
    client, peer = connected
    with pytest.raises(TimeoutError) as caught:
        await client.call("sleep", 10, timeout=0.05)
    assert isinstance(caught.value, CallTimeout)
    assert "no answer to 'sleep' within 0.05 s" in str(caught.value)
    assert client.in_flight == 0
    request = await receive(peer)
    # The timeout also cancels the call on the server (issue 5).
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        await answer(peer, "late", request["id"])
        call = asyncio.ensure_future(client.call("echo", 1))  # the connection still works
        second = await receive(peer)
        await answer(peer, 1, second["id"])
        assert await call == 1
    assert "unknown or late id" in caplog.text
    assert client.in_flight == 0


async def test_a_per_call_timeout_overrides_the_client_default(connector):
    """The client's default timeout applies unless the call gives its own."""
    async with Client(URL, connector=connector, timeout=0.05) as client:
        with pytest.raises(CallTimeout, match=r"within 0\.05 s"):
            await client.call("sleep", 10)
        peer = await connector.accept()
        call = asyncio.ensure_future(client.call("sleep", 10, timeout=5))
        await receive(peer)
        assert (await receive(peer))["method"] == "rpc.cancel"  # for the call that timed out (issue 5)
        request = await receive(peer)
        await answer(peer, "done", request["id"])
        assert await call == "done"


async def test_closing_the_client_fails_every_pending_call(connected):
    """close() fails every call still waiting with ClientClosedError, and later calls too."""
    client, peer = connected
    calls = [asyncio.ensure_future(client.call("sleep", 10)) for _ in range(5)]
    for _ in range(5):
        await receive(peer)
    await client.close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ClientClosedError) for r in results)
    assert client.in_flight == 0
    with pytest.raises(ClientClosedError):
        await client.call("echo", 1)


async def test_losing_the_connection_fails_every_pending_call_at_once(connected):
    """When the peer closes, every call in flight fails with ConnectionLost, and without reconnect so do later ones."""
    client, peer = connected
    calls = [asyncio.ensure_future(client.call("sleep", 10)) for _ in range(5)]
    for _ in range(5):
        await receive(peer)
    await peer.close("the server went away")
    async with asyncio.timeout(5):
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ConnectionLost) for r in results)
    assert "the server went away" in str(results[0])
    assert "not re-sent" in str(results[0])
    assert client.in_flight == 0
    with pytest.raises(ConnectionLost, match="does not reconnect"):
        await client.call("echo", 1)


async def test_the_first_connection_failing_raises_connect_error(connector):
    """A connector that refuses makes entering the client raise ConnectError naming the URL."""
    connector.refuse = "connection refused"
    with pytest.raises(ConnectError, match="cannot connect to memory://test: connection refused"):
        async with Client(URL, connector=connector):
            pass


async def test_reconnect_fails_in_flight_calls_and_lets_later_calls_wait_for_the_new_connection(connector):
    """With reconnect=True the call in flight fails and is not re-sent; a call made while down is sent once back."""
    async with Client(URL, connector=connector, reconnect=True, backoff=FAST, timeout=5) as client:
        first_peer = await connector.accept()
        in_flight = asyncio.ensure_future(client.call("sleep", 10))
        await receive(first_peer)
        connector.refuse = "the server is restarting"
        await first_peer.close("the server went away")
        with pytest.raises(ConnectionLost):
            await in_flight
        waiting = asyncio.ensure_future(client.call("echo", "after"))
        async with asyncio.timeout(5):
            for _ in range(3):
                await connector.next_refusal()
        assert not waiting.done()
        assert connector.opened == 1
        connector.refuse = None
        async with asyncio.timeout(5):
            second_peer = await connector.accept()
        request = await receive(second_peer)
        assert request["method"] == "echo"  # the call that was in flight was not re-sent
        await answer(second_peer, "back", request["id"])
        assert await waiting == "back"
        assert client.connected


async def test_a_call_waiting_for_a_reconnection_times_out_within_its_own_timeout(connector):
    """A call made while reconnecting that sees no connection in time raises CallTimeout saying so."""
    async with Client(URL, connector=connector, reconnect=True, backoff=FAST) as client:
        peer = await connector.accept()
        in_flight = asyncio.ensure_future(client.call("sleep", 10))
        await receive(peer)
        connector.refuse = "still down"
        await peer.close()
        with pytest.raises(ConnectionLost):
            await in_flight  # by now the client knows the connection is gone
        with pytest.raises(CallTimeout, match=r"no connection to send 'echo' within 0\.05 s"):
            await client.call("echo", 1, timeout=0.05)
        assert client.in_flight == 0


async def test_a_batch_returns_results_in_order_with_errors_as_values(connected):
    """batch_call sends one array and returns each member's outcome in the order asked, whatever the answer order."""
    client, peer = connected
    batch = asyncio.ensure_future(client.batch_call([("add", [1, 2]), ("divide", [1, 0]), ("echo", {"x": 1})]))
    requests = await receive(peer)
    assert isinstance(requests, list)
    assert [r["method"] for r in requests] == ["add", "divide", "echo"]
    add, divide, echo = requests
    await peer.send(
        json.dumps(
            [
                {"jsonrpc": "2.0", "result": {"x": 1}, "id": echo["id"]},
                {"jsonrpc": "2.0", "error": {"code": 1001, "message": "Division by zero"}, "id": divide["id"]},
                {"jsonrpc": "2.0", "result": 3, "id": add["id"]},
            ]
        )
    )
    first, second, third = await batch
    assert first == 3
    assert isinstance(second, RpcError) and second.code == 1001
    assert third == {"x": 1}
    assert client.in_flight == 0


async def test_a_batch_builder_sends_calls_and_notifications_together(connected):
    """The async-with batch sends its calls and notifications as one array and fills each handle."""
    client, peer = connected

    async def fill():
        async with client.batch() as batch:
            product = batch.call("multiply", 3, 4)
            difference = batch.call("subtract", minuend=42, subtrahend=23)
            batch.notify("log", "hello")
        return product, difference

    task = asyncio.ensure_future(fill())
    requests = await receive(peer)
    assert [("id" in r, r["method"]) for r in requests] == [(True, "multiply"), (True, "subtract"), (False, "log")]
    await peer.send(
        json.dumps(
            [{"jsonrpc": "2.0", "result": 12 if r["method"] == "multiply" else 19, "id": r["id"]} for r in requests[:2]]
        )
    )
    product, difference = await task
    assert (product.result(), difference.result()) == (12, 19)


async def test_a_batch_raises_connection_lost_when_the_connection_drops_before_all_answers(connected):
    """Stray answers do not settle a half-answered batch; the lost connection then fails it as a whole."""
    client, peer = connected
    batch = asyncio.ensure_future(client.batch_call([("a", None), ("b", None)]))
    first, _ = await receive(peer)
    await answer(peer, "only", first["id"])  # a single object, then the array without the second
    await peer.send(json.dumps([]))
    await peer.send(json.dumps([{"jsonrpc": "2.0", "result": "x", "id": 999}]))
    assert not batch.done()
    await peer.close()
    with pytest.raises(ConnectionLost):
        await batch


async def test_a_batch_whose_array_lacks_a_member_settles_at_once(connected):
    """When the batch's array arrives without one member's answer, the batch returns with a ProtocolError for it."""
    client, peer = connected
    batch = asyncio.ensure_future(client.batch_call([("a", None), ("b", None)]))
    first, _ = await receive(peer)
    await peer.send(json.dumps([{"jsonrpc": "2.0", "result": "A", "id": first["id"]}]))
    async with asyncio.timeout(5):
        a, b = await batch
    assert a == "A"
    assert isinstance(b, ProtocolError)


async def test_a_notification_has_no_id_and_awaits_no_answer(connected):
    """notify() sends a request without an id and returns without any answer."""
    client, peer = connected
    async with asyncio.timeout(5):
        await client.notify("log", "hello")
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "log", "params": ["hello"]}
    assert client.in_flight == 0


async def test_an_empty_batch_sends_nothing(connected):
    """An empty batch returns [] without sending the invalid empty array."""
    client, peer = connected
    assert await client.batch_call([]) == []
    await client.notify("marker")
    assert (await receive(peer))["method"] == "marker"


async def test_a_thousand_calls_answered_in_a_shuffled_order_each_get_their_own_answer(connected):
    """1,000 concurrent calls answered in a scrambled order on one connection each get the answer for their id."""
    client, peer = connected
    calls = asyncio.gather(*(client.call("echo", n) for n in range(1000)))
    requests = [await receive(peer) for _ in range(1000)]
    # A fixed scramble: every 7th request first, and so on.
    for offset in range(7):
        for request in requests[offset::7]:
            await answer(peer, request["params"][0], request["id"])
    async with asyncio.timeout(10):
        assert await calls == list(range(1000))
    assert client.in_flight == 0


async def test_a_call_on_a_client_never_connected_says_how_to_connect(connector):
    """Calling before connecting raises a connection error that says to connect first, and opens nothing."""
    client = Client(URL, connector=connector)
    with pytest.raises(RpcConnectionError, match="not connected") as caught:
        await client.call("echo", 1)
    assert not isinstance(caught.value, ConnectionLost)
    assert connector.opened == 0


# -- connecting while closing, or twice at once ---------------------------------


class GatedConnector:
    """A MemoryConnector whose opens wait until ``expected`` of them have started, then all go on."""

    def __init__(self, expected: int) -> None:
        self.inner = MemoryConnector()
        self.expected = expected
        self.started = 0
        self.all_started = asyncio.Event()
        self.gate = asyncio.Event()
        self.opened: list[MemoryTransport] = []

    async def __call__(self, url: str) -> MemoryTransport:
        self.started += 1
        if self.started == self.expected:
            self.all_started.set()
        await self.gate.wait()
        transport = await self.inner(url)
        self.opened.append(transport)
        return transport


async def test_close_while_connect_is_opening_closes_what_it_opened_and_connect_raises():
    """close() during connect() leaves no open connection and no reader: connect() raises ClientClosedError."""
    connector = GatedConnector(expected=1)
    client = Client(URL, connector=connector)
    connecting = asyncio.ensure_future(client.connect())
    async with asyncio.timeout(5):
        await connector.all_started.wait()
    await client.close()
    connector.gate.set()
    with pytest.raises(ClientClosedError, match="closed while connecting"):
        async with asyncio.timeout(5):
            await connecting
    assert not client.connected
    assert client._session.link is None
    assert [transport.closed for transport in connector.opened] == [True]


async def test_two_concurrent_connects_keep_one_connection_and_close_the_other():
    """Two connect() calls at once leave one connection in use; the other one opened is closed, not leaked."""
    connector = GatedConnector(expected=2)
    client = Client(URL, connector=connector)
    both = asyncio.gather(client.connect(), client.connect())
    async with asyncio.timeout(5):
        await connector.all_started.wait()
        connector.gate.set()
        await both
    try:
        assert len(connector.opened) == 2
        in_use = [transport for transport in connector.opened if transport is client._session.link.transport]
        assert len(in_use) == 1 and not in_use[0].closed
        assert [
            transport.closed for transport in connector.opened if transport is not client._session.link.transport
        ] == [True]
    finally:
        await client.close()


async def test_a_failing_on_unmatched_error_callback_is_logged_and_the_connection_reads_on(connector, caplog):
    """An exception from on_unmatched_error is logged; the call in flight still gets its answer on that connection."""

    def broken(error):
        raise KeyError("bug in the callback")

    async with Client(URL, connector=connector, timeout=5, on_unmatched_error=broken) as client:
        async with asyncio.timeout(5):
            peer = await connector.accept()
        call = asyncio.ensure_future(client.call("add", 1, 2))
        request = await receive(peer)
        await peer.send(json.dumps({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}))
        await answer(peer, 3, request["id"])
        async with asyncio.timeout(5):
            assert await call == 3
        assert client.connected
    assert "a callback failed" in caplog.text and "bug in the callback" in caplog.text


def _crafted_answers(requests: list[dict]) -> list[object]:
    """The server's array for a batch of three calls: an error, an answer that is no Response, the third missing."""
    first, second, _third = (request["id"] for request in requests)
    return [
        {"jsonrpc": "2.0", "error": {"code": 1001, "message": "Division by zero", "data": "divisor is 0"}, "id": first},
        {"jsonrpc": "2.0", "id": second},
        {"jsonrpc": "2.0", "result": 99, "id": 12345},  # no call of ours
    ]


def _shown(outcome: object) -> str:
    """An outcome as text, its request id left out (the two batches have different ones)."""
    return re.sub(r"(request id |'id': )\d+", r"\1N", f"{type(outcome).__name__}: {outcome}")


async def test_a_batch_read_lazily_gives_each_call_what_batch_call_gives(connected):
    """client.batch() (answers kept raw, read when asked) and batch_call() (read at once) agree member by member."""
    client, peer = connected
    calls = [("divide", [1, 0]), ("multiply", [3, 4]), ("add", [1, 2])]
    eager = asyncio.ensure_future(client.batch_call(calls))
    await peer.send(json.dumps(_crafted_answers(await receive(peer))))
    async with asyncio.timeout(5):
        expected = [_shown(outcome) for outcome in await eager]

    async def lazily() -> list:
        async with client.batch() as batch:
            handles = [batch.call(method, *params) for method, params in calls]
        return handles

    handles_made = asyncio.ensure_future(lazily())
    await peer.send(json.dumps(_crafted_answers(await receive(peer))))
    async with asyncio.timeout(5):
        handles = await handles_made
    got = []
    for handle in handles:
        try:
            got.append(_shown(handle.result()))
        except (RpcError, ProtocolError) as exc:
            got.append(_shown(exc))
    assert got == expected
    assert [shown.split(":")[0] for shown in got] == ["RpcError", "ProtocolError", "ProtocolError"]
    assert client.in_flight == 0


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


async def test_an_answer_too_deep_to_read_fails_its_call_alone_and_the_connection_goes_on(connected, caplog):
    """A result nested past the parser's reach fails that call with ProtocolError; the others are answered."""
    client, peer = connected
    deep = asyncio.ensure_future(client.call("deep"))
    other = asyncio.ensure_future(client.call("echo", "other"))
    deep_id, other_id = (await receive(peer))["id"], (await receive(peer))["id"]
    with caplog.at_level(logging.WARNING, logger="rpc_client"):
        await peer.send('{"jsonrpc": "2.0", "result": ' + _deep(5000) + f', "id": {deep_id}}}')
        with pytest.raises(ProtocolError, match=f"request id {deep_id} cannot be read: .* nested more than"):
            await deep
    assert "nested more than about 1,000 levels deep" in caplog.text
    assert not other.done()
    await answer(peer, "still here", other_id)
    assert await other == "still here"
    later = asyncio.ensure_future(client.call("echo", 1))
    await answer(peer, 1, (await receive(peer))["id"])
    assert await later == 1 and client.connected and client.in_flight == 0


@pytest.mark.parametrize("way", ["batch_call", "batch"])
async def test_a_batch_member_too_deep_to_read_fails_alone_and_the_others_keep_their_answers(connected, way):
    """In a batch's answer, the deep member's outcome is a ProtocolError; the members beside it have theirs."""
    client, peer = connected
    if way == "batch_call":
        sent = asyncio.ensure_future(client.batch_call([("echo", [1]), ("deep", None), ("echo", [3])]))
    else:

        async def build() -> list:
            async with client.batch() as batch:
                handles = [batch.call("echo", 1), batch.call("deep"), batch.call("echo", 3)]
            return [h.result() if h is not handles[1] else _outcome(h) for h in handles]

        sent = asyncio.ensure_future(build())
    ids = [request["id"] for request in await receive(peer)]
    await peer.send(
        f'[{{"jsonrpc": "2.0", "result": 1, "id": {ids[0]}}}, '
        + '{"jsonrpc": "2.0", "result": '
        + _deep(5000)
        + f', "id": {ids[1]}}}, {{"jsonrpc": "2.0", "result": 3, "id": {ids[2]}}}]'
    )
    async with asyncio.timeout(5):
        first, second, third = await sent
    assert (first, third) == (1, 3)
    assert isinstance(second, ProtocolError) and "cannot be read" in str(second)
    assert client.connected and client.in_flight == 0


def _outcome(handle):
    try:
        return handle.result()
    except ProtocolError as exc:
        return exc


async def test_params_too_deep_to_write_raise_value_error_and_send_nothing(connected):
    """A call whose params are nested past the writer's reach raises ValueError at once; nothing reaches the peer."""
    client, peer = connected
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(ValueError, match="nested more than about 1,000 levels deep"):
        await client.call("echo", value)
    with pytest.raises(ValueError, match="nested more than about 1,000 levels deep"):
        await client.batch_call([("echo", [value])])
    await client.notify("marker")
    assert (await receive(peer))["method"] == "marker"
    assert client.in_flight == 0
