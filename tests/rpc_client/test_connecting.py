"""Opening a connection: URLs checked where they are written, connect timeouts, and errors that say what happened."""

from __future__ import annotations

import asyncio

import pytest

from rpc_client import (
    DEFAULT_CONNECT_TIMEOUT,
    Client,
    ConnectError,
    InvalidURL,
    MemoryTransport,
    RpcClientError,
    connect_sync,
)
from rpc_client.transport import TransportLink, as_link
from rpc_client.websockets_asyncio import connect as websockets_asyncio_connect

# Outer bounds that fail a test rather than let it hang; none of them is what a test asserts.
GUARD = 8.0

# (url, what the error says), shared with the command line's tests.
BAD_URLS = [
    ("ws://127.0.0.1:99999/ws", "the port is out of range"),
    ("ws://127.0.0.1:abc/ws", "the port is not a number"),
    ("ws://[::1", "not closed by ']'"),
    (
        "http://127.0.0.1:8000/ws",
        "is an HTTP URL; a WebSocket URL starts with ws:// or wss:// (ws://127.0.0.1:8000/ws)",
    ),
    ("127.0.0.1:8000", "must start with ws:// or wss://"),
    ("ws:///ws", "names no host"),
    ("ws://127.0.0.1:0/ws", "port 0"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_a_url_that_cannot_work_raises_invalid_url_from_the_constructor(url, message):
    """Client(url) with a malformed or non-WebSocket URL raises InvalidURL, an RpcClientError and a ValueError."""
    with pytest.raises(InvalidURL) as caught:
        Client(url)
    assert message in str(caught.value)
    assert url in str(caught.value)
    assert isinstance(caught.value, RpcClientError) and isinstance(caught.value, ValueError)


def test_connect_sync_checks_the_url_before_starting_anything():
    """connect_sync() with a bad URL raises InvalidURL at once."""
    with pytest.raises(InvalidURL, match="out of range"):
        connect_sync("ws://127.0.0.1:99999/ws")


def test_a_custom_connector_gets_whatever_url_it_understands():
    """With a connector of one's own the URL is that connector's business: memory:// is accepted."""
    assert Client("memory://", connector=lambda url: None).url == "memory://"  # type: ignore[arg-type, return-value]


def test_connect_timeout_defaults_to_ten_seconds_or_the_call_timeout_if_shorter():
    """Not given, connect_timeout is 10 s, or the call timeout when that is shorter; given, it is what was given."""
    assert Client("ws://127.0.0.1:1/ws").connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert Client("ws://127.0.0.1:1/ws", timeout=1).connect_timeout == 1
    assert Client("ws://127.0.0.1:1/ws", timeout=None).connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert Client("ws://127.0.0.1:1/ws", timeout=1, connect_timeout=5).connect_timeout == 5
    assert Client("ws://127.0.0.1:1/ws", connect_timeout=None).connect_timeout is None


async def test_a_server_that_never_answers_the_handshake_fails_within_the_call_timeout(silent_url):
    """timeout=0.3 against a socket that accepts TCP and never answers: ConnectError within it, not after 10 s."""
    client = Client(silent_url, timeout=0.3)
    with pytest.raises(ConnectError) as caught:
        async with asyncio.timeout(GUARD):  # well under the 10 s default: the call timeout bounded it
            await client.connect()
    assert str(caught.value) == f"cannot connect to {silent_url}: no WebSocket connection within 0.3 s"
    assert not caught.value.refused


async def test_an_explicit_connect_timeout_bounds_connecting(silent_url):
    """connect_timeout=0.2 with a long call timeout fails connecting within 0.2 s."""
    client = Client(silent_url, timeout=60, connect_timeout=0.2)
    with pytest.raises(ConnectError, match=r"within 0\.2 s"):
        async with asyncio.timeout(GUARD):
            await client.connect()


async def test_nothing_listening_is_a_refusal(unused_url):
    """A port where nothing listens gives ConnectError with refused set and 'connection refused' in its sentence."""
    with pytest.raises(ConnectError) as caught:
        await Client(unused_url).connect()
    assert str(caught.value) == f"cannot connect to {unused_url}: connection refused"
    assert caught.value.refused


async def test_a_wrong_path_says_the_server_answered_404(server):
    """A path the server does not serve says HTTP 404 and asks whether the path is right; it is no refusal."""
    url = server.url.rsplit("/", 1)[0] + "/nope"
    with pytest.raises(ConnectError) as caught:
        await Client(url).connect()
    assert "the server answered HTTP 404" in str(caught.value) and "is the path right?" in str(caught.value)
    assert not caught.value.refused


async def test_wss_against_a_server_without_tls_says_it_does_not_speak_tls(server):
    """wss:// to a plain ws:// server says the server does not speak TLS and names the ws:// URL to use."""
    url = server.url.replace("ws://", "wss://")
    with pytest.raises(ConnectError) as caught:
        async with asyncio.timeout(GUARD):
            await Client(url, timeout=5).connect()
    message = str(caught.value)
    assert "the server does not speak TLS" in message
    assert server.url in message
    assert "ConnectionResetError" not in message


async def test_the_websockets_asyncio_connector_still_works(server):
    """websockets' asyncio client, kept as an alternative connector, carries calls as the default one does."""
    async with Client(server.url, connector=websockets_asyncio_connect) as client:
        assert await asyncio.gather(*(client.call("multiply", n, 2) for n in range(50))) == [2 * n for n in range(50)]
        async with client.batch() as batch:
            product = batch.call("multiply", 3, 4)
        assert product.result() == 12


def test_a_transport_is_told_from_a_link_without_reading_its_properties():
    """as_link() looks at methods only: a Transport whose close_reason fails before closing still gets wrapped."""

    class Touchy(MemoryTransport):
        @property
        def close_reason(self) -> str:
            raise AssertionError("connection isn't closed yet")  # as websockets' close_exc says

    assert isinstance(as_link(Touchy()), TransportLink)
