"""Which web pages may connect: the Origin matrix, first as the policy decides it, then over real sockets."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.http11 import Request

from rpc_server import RpcServer
from rpc_server.errors import ConfigError
from rpc_server.handshake import Admission
from rpc_server.origins import OriginPolicy, normalise

from ..rpc_server.wire import StartServer, rpc
from .kit import refused


def upgrade(origin: str | None, host: str = "127.0.0.1:8000") -> Request:
    headers = [("Host", host)] + ([("Origin", origin)] if origin is not None else [])
    return Request("/ws", Headers(headers))


# -- the policy, with no socket ------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host_header", "accepted"),
    [
        (None, "127.0.0.1:8000", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://192.168.1.20:8000", "192.168.1.20:8000", True),
        ("https://[::1]:8443", "[::1]:8443", True),
        ("http://localhost:3000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:5173", "127.0.0.1:8000", True),
        ("http://[::1]:5173", "127.0.0.1:8000", True),
        ("https://LOCALHOST", "127.0.0.1:8000", True),
        ("https://evil.example", "127.0.0.1:8000", False),
        ("http://evil.example:8000", "evil.example:8000", False),
        ("http://192.168.1.20:9999", "192.168.1.20:8000", False),
        ("http://localhost.evil.example", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("file://", "127.0.0.1:8000", False),
        ("chrome-extension://abcdef", "127.0.0.1:8000", False),
    ],
    ids=[
        "no-origin",
        "own-origin",
        "own-lan-address",
        "own-ipv6-tls",
        "localhost-any-port",
        "loopback-any-port",
        "ipv6-loopback",
        "localhost-upper-case",
        "foreign-site",
        "dns-rebinding",
        "own-host-other-port",
        "lookalike",
        "null",
        "file",
        "extension",
    ],
)
def test_the_default_policy_takes_own_and_local_pages_only(
    origin: str | None, host_header: str, accepted: bool
) -> None:
    """No list: no Origin, the server's own origin (an IP Host) and localhost pages pass; any other page gets 403."""
    refusal = OriginPolicy().gate(upgrade(origin, host_header), Admission())
    assert (refusal is None) == accepted
    if refusal is not None:
        assert refusal.status_code == 403


def test_a_name_the_server_listens_on_is_its_own_origin() -> None:
    """--host rpc.lan: a page from http://rpc.lan:8000 is the server's own; the same name unconfigured is not."""
    request = upgrade("http://rpc.lan:8000", "rpc.lan:8000")
    assert OriginPolicy(host="rpc.lan").gate(request, Admission()) is None
    assert OriginPolicy(host="0.0.0.0").gate(request, Admission()) is not None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HTTPS://App.Example/", "https://app.example"),
        ("https://app.example:443", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("http://app.example:8080", "http://app.example:8080"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_origins_are_normalised(given: str, expected: str) -> None:
    """Scheme and host lower-cased, the trailing / and the default port dropped."""
    assert normalise(given) == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("app.example", "scheme://host"),
        ("https://app.example/path", "no path"),
        ("https://app.example:99999", "port"),
        ("https://user@app.example", "no path, query or user"),
        ("https://", "scheme://host"),
    ],
)
def test_a_malformed_allowed_origin_stops_the_server(given: str, why: str) -> None:
    """Each malformed value is a ConfigError naming it and what is wrong."""
    with pytest.raises(ConfigError, match=f"malformed allowed origin {given!r}: .*{why}"):
        OriginPolicy([given])


def test_a_list_takes_exactly_its_origins_normalised_and_star_takes_all() -> None:
    """['HTTPS://App.Example:443/'] admits https://app.example only (not localhost); ['*'] admits anything."""
    policy = OriginPolicy(["HTTPS://App.Example:443/", None])
    assert policy.gate(upgrade("https://app.example"), Admission()) is None
    assert policy.gate(upgrade("https://App.Example:443"), Admission()) is None
    for other in ("https://app.example:8443", "http://app.example", "http://localhost:3000"):
        assert policy.gate(upgrade(other), Admission()) is not None, other
    assert policy.gate(upgrade(None), Admission()) is None
    assert OriginPolicy(["*"]).gate(upgrade("https://anything.example"), Admission()) is None


# -- over a socket -------------------------------------------------------------------------


async def test_over_the_wire_own_and_local_pages_connect_and_others_get_403(start_server: StartServer) -> None:
    """With default settings: no Origin, the own origin and a localhost page get answers; a foreign page gets 403."""
    server = await start_server()
    for origin in (None, f"http://127.0.0.1:{server.port}", "http://localhost:5173"):
        async with connect(server.url, origin=origin) as ws:  # type: ignore[arg-type]
            assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12
    response = await refused(server.url, origin="https://evil.example")
    assert response.status_code == 403
    assert response.body == (
        b"origin https://evil.example is not allowed: the server's --allowed-origin lists the web pages that "
        b"may connect\n"
    )


async def test_an_allowed_list_is_compared_normalised_over_the_wire(start_server: StartServer) -> None:
    """origins=['HTTPS://App.Example:443/']: a browser from https://app.example connects; localhost now gets 403."""
    server: RpcServer = await start_server(origins=["HTTPS://App.Example:443/"])
    async with connect(server.url, origin="https://app.example") as ws:  # type: ignore[arg-type]
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12
    assert (await refused(server.url, origin="http://localhost:3000")).status_code == 403


async def test_star_restores_every_origin(start_server: StartServer) -> None:
    """origins=['*']: any page may connect, as before this policy."""
    server = await start_server(origins=["*"])
    async with connect(server.url, origin="https://evil.example") as ws:  # type: ignore[arg-type]
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12
