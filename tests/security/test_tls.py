"""TLS and mutual TLS, with certificates made by trustme for each run (none is committed)."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from rpc_server import RpcServer
from rpc_server.auth import Auth
from rpc_server.errors import ConfigError
from rpc_server.tls import server_context, subject
from rpc_server.traffic import Traffic

from ..rpc_server.wire import WAIT, StartServer, rpc
from .kit import KEY_ALL, client_context, tools

# What a client sees when the server refuses its certificate: with TLS 1.3 the client's side of the
# handshake completes first, and the refusal shows as a connection closed before any HTTP answer.
HANDSHAKE_FAILED = (ssl.SSLError, ConnectionError, InvalidMessage)


async def test_tls_serves_wss_and_answers_calls(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """With a certificate and key the URL is wss://, and a client that trusts the CA gets answers."""
    certfile, keyfile, _ = pem_files
    server = await start_server(ssl=server_context(certfile, keyfile))
    assert server.url.startswith("wss://127.0.0.1:")
    async with connect(server.url, ssl=client_context(ca)) as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_mutual_tls_names_the_caller_by_its_certificate_s_subject(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """A client certificate signed by --client-ca-file admits; its subject, as RFC 4514 writes it, is the identity."""
    certfile, keyfile, cafile = pem_files
    server = await start_server(tools(), ssl=server_context(certfile, keyfile, client_ca_file=cafile))
    alice = ca.issue_cert("alice@example.org", common_name="alice")
    expected = x509.load_pem_x509_certificate(alice.cert_chain_pems[0].bytes()).subject.rfc4514_string()
    async with connect(server.url, ssl=client_context(ca, alice)) as ws:
        assert (await rpc(ws, "whoami"))["result"] == expected
    assert expected.startswith("CN=alice,")


@pytest.mark.parametrize("certificate", ["none", "other-ca"])
async def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA, certificate: str
) -> None:
    """No client certificate, or one from another CA: the TLS handshake fails and no WebSocket opens."""
    certfile, keyfile, cafile = pem_files
    server = await start_server(tools(), ssl=server_context(certfile, keyfile, client_ca_file=cafile))
    presented = trustme.CA().issue_cert("mallory@example.org") if certificate == "other-ca" else None
    with pytest.raises(HANDSHAKE_FAILED):
        async with connect(server.url, ssl=client_context(ca, presented), open_timeout=5) as ws:
            await rpc(ws, "whoami")
    assert not server.connections or all(not c.accepted for c in server.connections)


async def counted(traffic: Traffic, reason: str) -> None:
    """Wait (bounded) until the server has counted a refusal for ``reason``: it sees the failure after the client."""
    async with asyncio.timeout(WAIT):
        while not traffic.refused[reason]:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("certificate", "reason"),
    [("none", "TLS: no client certificate"), ("other-ca", "TLS: client certificate not trusted (")],
)
async def test_a_refused_client_certificate_is_logged_once_and_counted_as_auth(
    start_server: StartServer,
    pem_files: tuple[Path, Path, Path],
    ca: trustme.CA,
    caplog: pytest.LogCaptureFixture,
    certificate: str,
    reason: str,
) -> None:
    """As a refused token is: one WARNING 'refused PEER: TLS: ...' and rpc_handshakes_refused_total{reason="auth"}."""
    certfile, keyfile, cafile = pem_files
    server = await start_server(tools(), ssl=server_context(certfile, keyfile, client_ca_file=cafile))
    server.traffic = traffic = Traffic()
    presented = trustme.CA().issue_cert("mallory@example.org") if certificate == "other-ca" else None
    with caplog.at_level(logging.INFO, "rpc_server"):
        with pytest.raises(HANDSHAKE_FAILED):
            async with connect(server.url, ssl=client_context(ca, presented), open_timeout=5) as ws:
                await rpc(ws, "whoami")
        await counted(traffic, "auth")
    lines = [r.getMessage() for r in caplog.records if r.name == "rpc_server" and r.levelno == logging.WARNING]
    assert len(lines) == 1 and re.fullmatch(r"refused 127\.0\.0\.1:\d+: " + re.escape(reason) + ".*", lines[0])
    assert traffic.refused == {"origin": 0, "auth": 1, "limit": 0, "invalid": 0}


async def test_plain_http_on_a_tls_port_is_counted_as_invalid_and_tls_clients_are_served_on(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """A ws:// client on the wss:// port fails the TLS handshake: an 'invalid' refusal; the next client is served."""
    certfile, keyfile, _ = pem_files
    server = await start_server(tools(), ssl=server_context(certfile, keyfile))
    server.traffic = traffic = Traffic()
    with pytest.raises(HANDSHAKE_FAILED):
        async with connect(server.url.replace("wss://", "ws://"), open_timeout=5):
            pass
    await counted(traffic, "invalid")
    assert traffic.refused["auth"] == 0
    async with connect(server.url, ssl=client_context(ca)) as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_a_token_on_top_of_mutual_tls_names_the_caller(
    start_server: StartServer, pem_files: tuple[Path, Path, Path], ca: trustme.CA
) -> None:
    """Client certificates and API keys together: both are needed, and the key names the caller."""
    certfile, keyfile, cafile = pem_files
    context = server_context(certfile, keyfile, client_ca_file=cafile)
    server: RpcServer = await start_server(tools(), ssl=context, auth=Auth(api_keys={KEY_ALL: []}))
    alice = client_context(ca, ca.issue_cert("alice@example.org", common_name="alice"))
    async with connect(server.url, ssl=alice, additional_headers={"Authorization": f"Bearer {KEY_ALL}"}) as ws:
        assert (await rpc(ws, "whoami"))["result"].startswith("key:")
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.url, ssl=alice):
            pass
    assert caught.value.response.status_code == 401


def test_the_subject_escapes_what_rfc_4514_escapes() -> None:
    """A comma or a plus inside a value is escaped, so the identity reads back unambiguously."""
    certificate = {"subject": ((("organizationName", "Acme, Inc+Co"),), (("commonName", "bob"),))}
    assert subject(certificate) == "CN=bob,O=Acme\\, Inc\\+Co"


def test_files_that_cannot_be_loaded_stop_the_server_naming_them(
    tmp_path: Path, pem_files: tuple[Path, Path, Path]
) -> None:
    """A missing key, a certificate file without its key, or a CA file that is not PEM: ConfigError naming the file."""
    certfile, _, _ = pem_files
    with pytest.raises(ConfigError, match=r"cannot load the TLS certificate and key from .*cert\.pem and .*nope\.pem"):
        server_context(certfile, tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"^.*cert\.pem holds no private key: give its key file too \(--keyfile\)$"):
        server_context(certfile)  # the key is in key.pem, not in cert.pem
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"cannot load the client CA file .*bad-ca\.pem"):
        server_context(certfile, pem_files[1], client_ca_file=bad)
