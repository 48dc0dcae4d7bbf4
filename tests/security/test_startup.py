"""Safe defaults and the security flags: what refuses to start, and what the command line builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect

from rpc_server import RpcServer, cli
from rpc_server.auth import Auth
from rpc_server.errors import ConfigError

from ..rpc_server.test_cli import rpc_server_process
from ..rpc_server.wire import rpc
from .kit import KEY_ALL, KEY_MATH, SECRET, refused, write


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """What main() wrote to stderr, checked to be a single 'error:' line with no usage or traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "myhost.lan", ""])
def test_a_reachable_address_with_no_credential_refuses_to_start(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--host 0.0.0.0 (or any non-loopback address or name) with no credential: exit 2, one line naming the fix."""
    for name in list(os.environ):
        if name.startswith("RPC_"):
            monkeypatch.delenv(name)
    assert cli.main(["--host", host, "--port", "0"], prog="rpc-server") == 2
    err = one_line_error(capsys)
    assert err.startswith("rpc-server: error: refusing to listen on ")
    assert "--api-key-file" in err and "--allow-unauthenticated" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_a_loopback_address_needs_no_credential(host: str) -> None:
    """Only this machine can reach a loopback address: the server is built without a credential."""
    args = cli.build_parser().parse_args(["--host", host])
    assert isinstance(cli.server_from(args, cli.builtin_tools()), RpcServer)


@pytest.mark.parametrize(
    "flags",
    [["--allow-unauthenticated"], ["--api-key-file", "{keys}"], ["--jwt-secret-file", "{secret}"]],
    ids=["allow-unauthenticated", "api-keys", "jwt-secret"],
)
def test_a_credential_or_the_explicit_flag_lets_a_reachable_address_start(tmp_path: Path, flags: list[str]) -> None:
    """With a credential, or --allow-unauthenticated, the server for 0.0.0.0 is built (it is not started here)."""
    files = {"keys": write(tmp_path, "keys", KEY_ALL + "\n"), "secret": write(tmp_path, "jwt.hex", SECRET.hex())}
    argv = ["--host", "0.0.0.0", *(flag.format(**files) for flag in flags)]
    server = cli.server_from(cli.build_parser().parse_args(argv), cli.builtin_tools())
    assert isinstance(server, RpcServer) and server.host == "0.0.0.0"


def test_client_certificates_count_as_a_credential(tmp_path: Path) -> None:
    """--client-ca-file makes every caller show a certificate: 0.0.0.0 is then allowed."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    argv = [
        "--host",
        "0.0.0.0",
        "--certfile",
        str(tmp_path / "server.pem"),
        "--client-ca-file",
        str(tmp_path / "ca.pem"),
    ]
    server = cli.server_from(cli.build_parser().parse_args(argv), cli.builtin_tools())
    assert server.ssl is not None


def test_the_library_refuses_a_reachable_address_with_no_credential_too() -> None:
    """RpcServer(host='0.0.0.0') with no auth is a ConfigError naming auth= and allow_unauthenticated=True."""
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 .*auth=.*allow_unauthenticated=True"):
        RpcServer(host="0.0.0.0")
    assert RpcServer(host="0.0.0.0", auth=Auth(api_keys={KEY_ALL: []})).host == "0.0.0.0"
    assert RpcServer(host="0.0.0.0", allow_unauthenticated=True).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--allowed-origin", "app.example"], "malformed allowed origin 'app.example'"),
        (["--api-key-file", "{missing}"], "cannot read the API key file"),
        (["--jwt-secret-file", "{short}"], "at least 32 are needed"),
        (["--keyfile", "k.pem"], "--keyfile and --client-ca-file need --certfile"),
        (["--jwt-audience", "rpc"], "--jwt-audience and --jwt-issuer need"),
        (["--certfile", "{missing}"], "cannot load the TLS certificate"),
    ],
    ids=["malformed-origin", "missing-key-file", "short-secret", "keyfile-alone", "audience-alone", "missing-cert"],
)
def test_security_settings_that_cannot_work_stop_the_server_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Exit 2 and one 'error:' line that says what is wrong, before anything listens."""
    files = {"missing": str(tmp_path / "missing"), "short": str(write(tmp_path, "short", "0x" + bytes(8).hex()))}
    assert cli.main(["--port", "0", *(a.format(**files) for a in argv)], prog="rpc-server") == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize(
    ("env", "value", "dest", "expected"),
    [
        ("RPC_API_KEY_FILE", "/k", "api_key_file", "/k"),
        ("RPC_JWT_SECRET_FILE", "/s", "jwt_secret_file", "/s"),
        ("RPC_JWT_PUBLIC_KEY_FILE", "/p", "jwt_public_key_file", "/p"),
        ("RPC_JWT_AUDIENCE", "rpc", "jwt_audience", "rpc"),
        ("RPC_JWT_ISSUER", "https://id.example", "jwt_issuer", "https://id.example"),
        ("RPC_JWT_LEEWAY", "5", "jwt_leeway", 5.0),
        ("RPC_JWT_MAX_AGE", "30", "jwt_max_age", 30.0),
        ("RPC_CERTFILE", "/c", "certfile", "/c"),
        ("RPC_KEYFILE", "/k", "keyfile", "/k"),
        ("RPC_CLIENT_CA_FILE", "/ca", "client_ca_file", "/ca"),
        ("RPC_ALLOW_UNAUTHENTICATED", "1", "allow_unauthenticated", True),
        ("RPC_ALLOWED_ORIGIN", "https://a.example,*", "origins", ["https://a.example", "*"]),
    ],
)
def test_each_security_variable_sets_its_flag(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, dest: str, expected: object
) -> None:
    """Every security flag can come from its RPC_* environment variable."""
    monkeypatch.setenv(env, value)
    assert getattr(cli.build_parser().parse_args([]), dest) == expected


def test_the_security_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential, leeway and max age 60 s, no TLS, no origin list, no --allow-unauthenticated."""
    for name in list(os.environ):
        if name.startswith("RPC_"):
            monkeypatch.delenv(name)
    args = cli.build_parser().parse_args([])
    assert cli.auth_from(args) is None and cli.ssl_from(args) is None
    assert (args.jwt_leeway, args.jwt_max_age, args.origins, args.allow_unauthenticated) == (60.0, 60.0, [], False)


# -- the real command -------------------------------------------------------------------------


async def test_the_command_serves_wss_with_mutual_tls_and_api_keys_from_the_environment(tmp_path: Path) -> None:
    """RPC_API_KEY_FILE, --certfile, --keyfile, --client-ca-file: 'listening on wss://', a keyed call, a 401."""
    import ssl

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    keys = write(tmp_path, "keys", f"{KEY_MATH} multiply\n")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca.issue_cert("client@example.org", common_name="client").configure_cert(client)
    tls = ["--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")]
    env = {"RPC_API_KEY_FILE": str(keys)}
    async with rpc_server_process(*tls, "--client-ca-file", str(tmp_path / "ca.pem"), env=env) as running:
        url = running.url
        assert url.startswith("wss://")
        async with connect(url, ssl=client, additional_headers={"Authorization": f"Bearer {KEY_MATH}"}) as ws:
            assert (await rpc(ws, "multiply", [6, 7]))["result"] == 42
            assert (await rpc(ws, "divide", [6, 3], id=2))["error"]["code"] == -32004
        response = await refused(url, ssl=client, additional_headers={"Authorization": f"Bearer {KEY_ALL}"})
        assert (response.status_code, response.body) == (401, b"unknown key\n")
