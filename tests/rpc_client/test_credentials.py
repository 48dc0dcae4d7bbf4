"""Credentials and TLS from the client's side, against this project's server with real keys, JWTs and certificates.

The server checks API keys and PyJWT tokens (tests/security/kit.py) before the
upgrade; certificates are made by trustme for each run. Tokens that expire do
so LIFETIME seconds after they are minted, with no leeway on the server; every
wait is bounded and no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from websockets.datastructures import Headers
from websockets.http11 import Response

from rpc_client import (
    AuthenticationError,
    Backoff,
    Client,
    ConnectError,
    MemoryConnector,
    RpcConnectionError,
    websockets_asyncio,
)
from rpc_client import websocket as websocket_module
from rpc_client.cli import EXIT_AUTHENTICATION, EXIT_USAGE, main
from rpc_client.credentials import Credentials, refusal
from rpc_client.sync import connect_sync
from rpc_server import Auth, RpcServer
from rpc_server.testing import ServerThread, serve, serve_memory, serve_sync
from rpc_server.tls import server_context

from ..rpc_server.rawws import WAIT
from ..rpc_server.wire import StartServer
from ..security.kit import KEY_ALL, KEY_MATH, SECRET, client_context, mint, tools, write

LIFETIME = 2
FAST = Backoff(initial=0.01, maximum=0.05)
KEYS = {KEY_ALL: [], KEY_MATH: ["multiply", "whoami"]}


def key_identity(key: str) -> str:
    return Auth(api_keys={key: []}).authenticate(key).identity  # type: ignore[union-attr]


@pytest.fixture
async def secured(start_server: StartServer) -> RpcServer:
    """A server taking the API keys of KEYS and HS256 tokens with no leeway; ``whoami`` names the caller."""
    return await start_server(tools(), auth=Auth(api_keys=KEYS, jwt_secret=SECRET, jwt_leeway_s=0))


def drop_connections(server: RpcServer) -> None:
    for connection in list(server.connections):
        connection.close()


async def eventually(what: str, attempt: Callable[[], Any]) -> Any:
    """``await attempt()`` until it gives something other than None, across lost connections; WAIT beyond LIFETIME."""
    try:
        async with asyncio.timeout(WAIT + LIFETIME):
            while True:
                try:
                    result = await attempt()
                except RpcConnectionError as exc:
                    if isinstance(exc, AuthenticationError):
                        raise
                    result = None
                if result is not None:
                    return result
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"gave up waiting: {what}")


class Minter:
    """A token provider, plain or async, that mints a new JWT per call (``sub`` caller-1, caller-2...).

    Args:
        lifetimes: the lifetime of each token in turn (the last one repeats); None: no new token, the last again.
    """

    def __init__(self, *lifetimes: float | None, is_async: bool = False) -> None:
        self.lifetimes = list(lifetimes)
        self.given: list[str] = []
        self.is_async = is_async

    def mint(self) -> str:
        lifetime = self.lifetimes.pop(0) if len(self.lifetimes) > 1 else self.lifetimes[0]
        if lifetime is None:
            token = self.given[-1]
        else:
            token = mint(sub=f"caller-{len(self.given) + 1}", exp=int(time.time() + lifetime))
        self.given.append(token)
        return token

    @property
    def provider(self) -> Callable[[], Any]:
        if not self.is_async:
            return self.mint

        async def provide() -> str:
            await asyncio.sleep(0)  # a real one would ask an issuer
            return self.mint()

        return provide


class Counting:
    """The default connector, counting its attempts and keeping the headers each one sent."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def __call__(self, url: str, **options: Any) -> Any:
        self.headers.append(dict(options.get("additional_headers", [])))
        return await websocket_module.connect(url, **options)


# -- the token --------------------------------------------------------------------------------------


async def test_a_token_string_is_sent_as_a_bearer_credential(secured: RpcServer) -> None:
    """An API key and a JWT given as token= admit the client, as the caller they name."""
    async with Client(secured.url, token=KEY_ALL) as client:
        assert await client.call("whoami") == key_identity(KEY_ALL)
    async with Client(secured.url, token=mint(sub="ada")) as client:
        assert await client.call("whoami") == "ada"


async def test_headers_go_with_the_handshake_and_the_credential_may_be_one_of_them(secured: RpcServer) -> None:
    """headers= adds handshake headers; an Authorization header there is a credential like token=."""
    counting = Counting()
    headers = {"X-Tenant": "blue", "Authorization": f"Bearer {KEY_MATH}"}
    async with Client(secured.url, headers=headers, connector=counting) as client:
        assert await client.call("whoami") == key_identity(KEY_MATH)
    assert counting.headers == [headers]


@pytest.mark.parametrize("is_async", [False, True], ids=["plain", "async"])
async def test_a_token_provider_is_asked_again_for_each_reconnection(secured: RpcServer, is_async: bool) -> None:
    """A provider, plain or async, is called for every connection: after a drop the client is back with a new token."""
    minter = Minter(300, is_async=is_async)
    async with Client(secured.url, token=minter.provider, reconnect=True, backoff=FAST) as client:
        assert await client.call("whoami") == "caller-1"
        drop_connections(secured)
        assert await eventually("a reconnection", lambda: _who_is_not(client, "caller-1")) == "caller-2"
    assert len(minter.given) == 2


async def _who_is_not(client: Client, old: str) -> str | None:
    who: str = await client.call("whoami")
    return None if who == old else who


async def _nothing_while_answered(client: Client) -> None:
    await client.call("whoami")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing credential: send 'Authorization: Bearer <token>' or the access_token query parameter"),
        ("not-a-key-of-the-server", "unknown key"),
        (mint(lifetime=-10), "token expired"),
        (mint(key=bytes(32)), "bad signature"),
    ],
    ids=["none", "unknown-key", "expired", "bad-signature"],
)
async def test_a_refused_credential_raises_authentication_error_with_the_server_s_reason(
    secured: RpcServer, token: str | None, reason: str
) -> None:
    """The 401's one-line body becomes the error's reason; it is a ConnectError, and its message names the URL."""
    with pytest.raises(AuthenticationError) as caught:
        async with Client(secured.url, token=token, reconnect=True):
            pass
    refused = caught.value
    assert (refused.status, refused.reason) == (401, reason)
    assert refused.challenge is not None and refused.challenge.startswith('Bearer realm="rpc"')
    assert str(refused) == f"cannot connect to {secured.url}: refused with HTTP 401 (Unauthorized): {reason}"
    assert isinstance(refused, ConnectError) and not refused.refused


async def test_a_refused_origin_is_an_authentication_error_with_status_403(start_server: StartServer) -> None:
    """A 403 (a web page's origin not allowed) is refused the same way: the client names the reason."""
    server = await start_server()
    with pytest.raises(AuthenticationError) as caught:
        async with Client(server.url, headers={"Origin": "https://evil.example"}):
            pass
    assert caught.value.status == 403
    assert caught.value.reason.startswith("origin https://evil.example is not allowed")


async def test_the_websockets_asyncio_connector_takes_the_credentials_too(secured: RpcServer) -> None:
    """websockets' asyncio client, the alternative connector, sends the token and reads a refusal the same way."""
    async with Client(secured.url, token=KEY_ALL, connector=websockets_asyncio.connect) as client:
        assert await client.call("whoami") == key_identity(KEY_ALL)
    with pytest.raises(AuthenticationError, match=r"unknown key$") as caught:
        async with Client(secured.url, token="not-a-key-of-the-server", connector=websockets_asyncio.connect):
            pass
    assert caught.value.status == 401


# -- a token that expires ------------------------------------------------------------------------


async def test_a_token_expiring_mid_connection_is_replaced_by_the_provider_s_fresh_one(
    secured: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At exp the server closes with 1008 'token expired'; the client reconnects with the provider's next token."""
    minter = Minter(LIFETIME, 300)
    async with Client(secured.url, token=minter.provider, reconnect=True, backoff=FAST) as client:
        assert await client.call("whoami") == "caller-1"
        with caplog.at_level(logging.WARNING, logger="rpc_client"):
            assert await eventually("the reconnection", lambda: _who_is_not(client, "caller-1")) == "caller-2"
    lost = [r.getMessage() for r in caplog.records if "was lost" in r.getMessage()]
    assert lost and "1008" in lost[0] and "token expired" in lost[0], lost


async def test_an_expired_token_string_is_not_retried(secured: RpcServer) -> None:
    """A token string refused on reconnection is not sent again: calls fail with AuthenticationError at once."""
    counting = Counting()
    token = mint(exp=int(time.time() + LIFETIME))
    async with Client(secured.url, token=token, reconnect=True, backoff=FAST, connector=counting) as client:
        with pytest.raises(AuthenticationError, match="token expired") as caught:
            await eventually("the refusal", lambda: _nothing_while_answered(client))  # answered until exp
        assert caught.value.status == 401
        with pytest.raises(AuthenticationError, match="token expired"):
            await client.call("whoami")
        assert not client.connected
    assert len(counting.headers) == 2  # the first connection, and one reconnection


async def test_a_provider_giving_the_refused_token_again_ends_the_reconnecting(secured: RpcServer) -> None:
    """After a refusal the provider is asked once more; the same token again is not sent, and the client gives up."""
    counting = Counting()
    minter = Minter(LIFETIME, None)  # one short token, then that same token for ever
    async with Client(secured.url, token=minter.provider, reconnect=True, backoff=FAST, connector=counting) as client:
        with pytest.raises(AuthenticationError, match="token expired"):
            await eventually("the refusal", lambda: _nothing_while_answered(client))
    assert len(counting.headers) == 2
    assert len(minter.given) == 3 and len(set(minter.given)) == 1


async def test_a_provider_giving_a_new_token_after_a_refusal_gets_the_client_back_in(secured: RpcServer) -> None:
    """A refused reconnection is retried when the provider's next token differs: here expired, then fresh."""
    counting = Counting()
    minter = Minter(LIFETIME, -10, 300)
    async with Client(secured.url, token=minter.provider, reconnect=True, backoff=FAST, connector=counting) as client:
        assert await client.call("whoami") == "caller-1"
        assert await eventually("the reconnection", lambda: _who_is_not(client, "caller-1")) == "caller-3"
    assert len(counting.headers) == 3
    assert [h["Authorization"] for h in counting.headers] == [f"Bearer {token}" for token in minter.given]


async def test_a_failing_provider_is_a_connect_error_naming_it(secured: RpcServer) -> None:
    """A provider that raises, or gives what is no token, fails the connection with a ConnectError saying so."""

    def broken() -> str:
        raise LookupError("no token in the cache")

    with pytest.raises(ConnectError, match=r"the token provider failed \(LookupError: no token in the cache\)"):
        async with Client(secured.url, token=broken):
            pass
    with pytest.raises(ConnectError, match="the token provider's token must be a string, not NoneType"):
        async with Client(secured.url, token=lambda: None):  # type: ignore[arg-type, return-value]
            pass


# -- TLS -------------------------------------------------------------------------------------------


async def test_wss_with_cafile_or_an_ssl_context_and_refused_without(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """cafile= and ssl= both trust the server's CA; with neither, the certificate is refused and cafile= is named."""
    certfile, keyfile, cafile = pem_files
    server = await start_server(ssl=server_context(certfile, keyfile))
    async with Client(server.url, cafile=cafile) as client:
        assert await client.call("multiply", 3, 4) == 12
    async with Client(server.url, ssl=client_context(ca)) as client:
        assert await client.call("multiply", 5, 4) == 20
    with pytest.raises(ConnectError, match=r"TLS certificate was not accepted.*cafile=") as caught:
        async with Client(server.url):
            pass
    assert not isinstance(caught.value, AuthenticationError)


async def test_mutual_tls_with_a_client_certificate_in_the_ssl_context(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """A client certificate configured in ssl= admits the client, named by its certificate's subject."""
    certfile, keyfile, cafile = pem_files
    server = await start_server(tools(), ssl=server_context(certfile, keyfile, client_ca_file=cafile))
    alice = ca.issue_cert("alice@example.org", common_name="alice")
    context = client_context(ca, alice)
    subject = x509.load_pem_x509_certificate(alice.cert_chain_pems[0].bytes()).subject.rfc4514_string()
    async with Client(server.url, ssl=context) as client:
        assert await client.call("whoami") == subject
    with pytest.raises(ConnectError, match="if it asks for a client certificate"):
        async with Client(server.url, cafile=cafile):  # trusts the server, but shows no certificate
            pass


# -- checked where they are given --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"token": ""}, ValueError, "token is empty"),
        ({"token": "two words"}, ValueError, "a bearer token is one word"),
        ({"token": "line\r\nX-Injected: 1"}, ValueError, "a bearer token is one word"),
        ({"token": 42}, TypeError, "token must be a string or a function"),
        ({"token": KEY_ALL, "headers": {"authorization": "Bearer x"}}, ValueError, "not both"),
        ({"headers": {"X-A": 1}}, TypeError, "headers are a dict of strings"),
        ({"ssl": ssl.create_default_context(), "cafile": "ca.pem"}, TypeError, "not both"),
        ({"ssl": True}, TypeError, "ssl must be an ssl.SSLContext"),
    ],
)
def test_bad_credentials_are_refused_when_the_client_is_made(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each mistake raises in Client(...), before any connection is tried."""
    with pytest.raises(error, match=match):
        Client("wss://127.0.0.1:8000/ws", **options)


def test_tls_settings_for_a_ws_url_and_an_unreadable_cafile_are_refused(tmp_path: Path) -> None:
    """ssl=/cafile= with ws:// is a mistake; a cafile that is missing or holds no certificate fails at once."""
    with pytest.raises(ValueError, match=r"for wss:// URLs, not ws://127\.0\.0\.1:8000/ws"):
        Client("ws://127.0.0.1:8000/ws", cafile="ca.pem")
    with pytest.raises(FileNotFoundError):
        Client("wss://127.0.0.1:8000/ws", cafile=tmp_path / "missing.pem")
    with pytest.raises(ssl.SSLError):
        Client("wss://127.0.0.1:8000/ws", cafile=write(tmp_path, "junk.pem", "not a certificate"))


def _response(status: int, body: bytes, challenge: str | None = None) -> Response:
    headers = Headers() if challenge is None else Headers({"WWW-Authenticate": challenge})
    phrase = {401: "Unauthorized", 403: "Forbidden"}[status]
    return Response(status, phrase, headers, body)


def test_the_refusal_s_reason_is_one_clean_line_from_the_body_the_challenge_or_the_phrase() -> None:
    """The body's first line; else the challenge's error_description; else the phrase; control characters go."""
    url = "ws://h/ws"
    assert refusal(url, _response(401, b"token expired\nmore\n")).reason == "token expired"
    challenge = 'Bearer realm="rpc", error="invalid_token", error_description="bad signature"'
    assert refusal(url, _response(401, b"", challenge)).reason == "bad signature"
    assert refusal(url, _response(403, b"")).reason == "Forbidden"
    assert refusal(url, _response(401, b"\x1b[31mred\x1b[0m")).reason == "?[31mred?[0m"
    assert len(refusal(url, _response(401, b"x" * 5000)).reason) == 300


def test_the_connector_gets_only_the_options_that_are_set() -> None:
    """No credential, no TLS: the connector is called with the URL alone (connectors of one argument still work)."""
    credentials = Credentials("wss://h/ws", headers=[("X-A", "1")])
    assert credentials.options(None) == {"additional_headers": [("X-A", "1")]}
    assert credentials.options("t0k") == {"additional_headers": [("X-A", "1"), ("Authorization", "Bearer t0k")]}


async def test_a_memory_connector_keeps_the_options_it_would_have_sent() -> None:
    """The in-memory connection has no handshake; its connector keeps the options of each attempt for a test."""
    connector = MemoryConnector()
    async with Client("memory://", connector=connector, token="t0k"):
        pass
    assert connector.options == [{"additional_headers": [("Authorization", "Bearer t0k")]}]


# -- the blocking facade, the test helpers and the pytest plugin ------------------------------------


def test_connect_sync_takes_the_same_credentials(pem_files: tuple[Path, Path, Path]) -> None:
    """connect_sync(url, token=..., cafile=...) passes them to its Client; a refusal raises AuthenticationError."""
    certfile, keyfile, cafile = pem_files
    auth = Auth(api_keys=KEYS)
    with ServerThread(tools(), auth=auth, ssl=server_context(certfile, keyfile)) as server:
        with connect_sync(server.url, token=lambda: KEY_ALL, cafile=cafile) as client:
            assert client.call("whoami") == key_identity(KEY_ALL)
        with pytest.raises(AuthenticationError, match="unknown key"):
            connect_sync(server.url, token="not-a-key-of-the-server", cafile=cafile)


async def test_the_test_helpers_pass_the_token_through_client_options() -> None:
    """serve() and serve_memory() hand client_options' token to their Client."""
    auth = Auth(api_keys=KEYS)
    async with serve(tools(), auth=auth, client_options={"token": KEY_MATH}) as client:
        assert await client.call("whoami") == key_identity(KEY_MATH)
    # The memory server does not model the handshake: the token has nowhere to go, and is not refused.
    async with serve_memory(tools(), auth=auth, client_options={"token": KEY_MATH}) as client:
        assert await client.call("multiply", 2, 3) == 6


def test_serve_sync_passes_the_token_through_client_options() -> None:
    """serve_sync() hands client_options' token to connect_sync."""
    with serve_sync(tools(), auth=Auth(api_keys=KEYS), client_options={"token": KEY_ALL}) as client:
        assert client.call("whoami") == key_identity(KEY_ALL)


PLUGIN_SETUP = {"registry": tools(), "auth": Auth(api_keys=KEYS), "client_options": {"token": KEY_MATH}}


@pytest.mark.rpc_tools(**PLUGIN_SETUP)
async def test_the_pytest_plugin_s_client_takes_a_token_from_the_marker(rpc_client: Client) -> None:
    """The plugin's rpc_client fixture connects with the marker's client_options token."""
    assert await rpc_client.call("whoami") == key_identity(KEY_MATH)


@pytest.mark.rpc_tools(**PLUGIN_SETUP)
def test_the_pytest_plugin_s_sync_client_takes_a_token_from_the_marker(rpc_sync_client: Any) -> None:
    """The plugin's rpc_sync_client fixture connects with it too."""
    assert rpc_sync_client.call("whoami") == key_identity(KEY_MATH)


# -- the command line ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_server() -> Iterator[str]:
    """The URL of a server taking KEYS and HS256 tokens, in a thread of its own (main() runs its own loop)."""
    with ServerThread(tools(), auth=Auth(api_keys=KEYS, jwt_secret=SECRET, jwt_leeway_s=0)) as server:
        yield server.url


def test_the_cli_exits_5_with_the_server_s_reason(cli_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A refused credential prints one line with the server's reason and exits 5; no credential adds how to give one."""
    assert main(["--url", cli_server, "--token", mint(lifetime=-10), "whoami"]) == EXIT_AUTHENTICATION == 5
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"rpc-client: cannot connect to {cli_server}: refused with HTTP 401 (Unauthorized): token expired\n"
    assert main(["--url", cli_server, "whoami"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "missing credential" in err and err.endswith("; give a credential with --token, --token-file or RPC_TOKEN\n")


def test_the_cli_takes_the_token_from_the_flag_the_environment_or_a_file(
    cli_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--token, RPC_TOKEN and --token-file (spaces around the token ignored) each carry the credential."""
    assert main(["--url", cli_server, "--token", KEY_ALL, "whoami"]) == 0
    monkeypatch.setenv("RPC_TOKEN", KEY_MATH)
    assert main(["--url", cli_server, "whoami"]) == 0
    token_file = write(tmp_path, "token", f"  {mint(sub='from-a-file')}\n")
    assert main(["--url", cli_server, "--token-file", str(token_file), "whoami"]) == 0  # the file wins over RPC_TOKEN
    assert capsys.readouterr().out.splitlines() == [
        f'"{key_identity(KEY_ALL)}"',
        f'"{key_identity(KEY_MATH)}"',
        '"from-a-file"',
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token", KEY_ALL, "--token-file", "t"], "give --token or --token-file, not both"),
        (["--token-file", "/nonexistent/token"], "cannot read --token-file /nonexistent/token: No such file"),
        (["--token", "two words"], "the token of --token holds a space"),
        (["--cafile", "ca.pem"], "--cafile is for wss:// URLs, not ws://127.0.0.1:9/ws"),
        (["--url", "wss://127.0.0.1:9/ws", "--cafile", "/nonexistent/ca.pem"], "cannot read --cafile"),
    ],
)
def test_the_cli_s_credential_mistakes_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both --token and --token-file, an unreadable file, a bad token, --cafile with ws://: exit 2, saying which."""
    assert main(["--url", "ws://127.0.0.1:9/ws", *argv, "multiply", "3", "4"]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_the_cli_reaches_a_wss_server_with_cafile(
    pem_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """--cafile trusts the CA that signed the server's certificate; without it, exit 3 names --cafile."""
    certfile, keyfile, cafile = pem_files
    with ServerThread(ssl=server_context(certfile, keyfile)) as server:
        assert main(["--url", server.url, "--cafile", str(cafile), "multiply", "3", "4"]) == 0
        assert capsys.readouterr().out == "12\n"
        assert main(["--url", server.url, "multiply", "3", "4"]) == 3
        assert "(--cafile)" in capsys.readouterr().err
