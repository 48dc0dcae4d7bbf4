"""API keys and JWTs: every refusal of the issue, first as Auth decides it (no socket), then as a client sees it.

A refusal happens before the WebSocket opens: HTTP 401, ``WWW-Authenticate:
Bearer`` (with ``error="invalid_token"`` when a credential was sent) and the
reason as one line of plain text.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from rpc_server import RpcServer
from rpc_server.auth import Auth, Grant, Patterns, Refusal, bearer_token, read_api_keys
from rpc_server.errors import ConfigError
from rpc_server.handshake import Admission, json_response

from ..rpc_server.test_handshake import http_get
from ..rpc_server.wire import StartServer, rpc
from .kit import KEY_ALL, KEY_MATH, SECRET, forge_hs256, mint, pem, private_keys, refused, tools, write

KEYS = {KEY_ALL: [], KEY_MATH: ["multiply", "math_*"]}


def request(path: str = "/ws", *headers: tuple[str, str]) -> Request:
    return Request(path, Headers([("Host", "127.0.0.1"), *headers]))


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


# -- where the credential travels ---------------------------------------------------------


def test_the_credential_is_read_from_the_authorization_header_or_the_query() -> None:
    """'Authorization: Bearer X' (any case of 'Bearer') and ?access_token=X give X; nothing gives 'missing'."""
    assert bearer_token(request("/ws", ("Authorization", "bearer abc.def"))) == "abc.def"
    assert bearer_token(request("/ws?x=1&access_token=a%2Bb")) == "a+b"
    missing = bearer_token(request("/ws"))
    assert isinstance(missing, Refusal) and missing.error is None and missing.reason.startswith("missing credential")


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/ws", [("Authorization", "Basic dXNlcjpwYXNz")], "malformed Authorization header"),
        ("/ws", [("Authorization", "Bearer")], "malformed Authorization header"),
        ("/ws?access_token=", [], "malformed credential"),
        ("/ws?access_token=a", [bearer("a")], "more than one credential"),
        ("/ws?access_token=a&access_token=b", [], "more than one credential"),
    ],
    ids=["basic-scheme", "no-token", "empty-query-token", "header-and-query", "query-twice"],
)
def test_a_credential_sent_wrongly_is_an_invalid_request(
    path: str, headers: list[tuple[str, str]], reason: str
) -> None:
    """A malformed header, an empty token or two credentials: refused as invalid_request, saying which."""
    refusal = bearer_token(request(path, *headers))
    assert isinstance(refusal, Refusal) and refusal.error == "invalid_request"
    assert refusal.reason.startswith(reason)


# -- API keys ------------------------------------------------------------------------------


def test_a_key_grants_its_patterns_and_a_key_without_patterns_grants_everything() -> None:
    """KEY_MATH may call multiply and math_* only; KEY_ALL has no patterns: allowed is None (everything)."""
    auth = Auth(api_keys=KEYS)
    math = auth.authenticate(KEY_MATH)
    assert isinstance(math, Grant) and math.allowed is not None
    assert [math.allowed(name) for name in ("multiply", "math_add", "divide", "topic:clock")] == [
        True,
        True,
        False,
        False,
    ]
    everything = auth.authenticate(KEY_ALL)
    assert isinstance(everything, Grant) and everything.allowed is None and everything.expires_at is None


def test_a_key_not_in_the_file_is_an_unknown_key() -> None:
    """A key the server does not hold is refused as 'unknown key', whatever it resembles."""
    auth = Auth(api_keys=KEYS)
    for credential in (KEY_ALL[:-1], KEY_ALL + "x", mint()):
        outcome = auth.authenticate(credential)
        assert outcome == Refusal("unknown key")


def test_a_key_s_identity_names_it_without_revealing_it() -> None:
    """The identity is key: and 8 hex digits, the same for every connection of that key, and never the key."""
    auth = Auth(api_keys=KEYS)
    first, again = auth.authenticate(KEY_MATH), auth.authenticate(KEY_MATH)
    assert isinstance(first, Grant) and isinstance(again, Grant)
    assert first.identity == again.identity and first.identity.startswith("key:") and len(first.identity) == 12
    assert KEY_MATH not in first.identity


def test_the_key_file_skips_comments_and_blank_lines_and_reads_patterns(tmp_path: Path) -> None:
    """'# ...' lines and blank lines are skipped; words after the key are its patterns."""
    path = write(tmp_path, "keys", f"# operators\n\n{KEY_ALL}\n  {KEY_MATH}  multiply  math_*  \n")
    keys = read_api_keys(path)
    assert [(k.key, k.patterns) for k in keys] == [(KEY_ALL, ()), (KEY_MATH, ("multiply", "math_*"))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# nothing here\n", "holds no key"),
        ("short\n", "line 1: a key needs at least 16"),
        (f"{KEY_ALL}\n{KEY_ALL} multiply\n", "line 2: this key is listed twice"),
    ],
    ids=["empty", "weak-key", "repeated-key"],
)
def test_a_key_file_that_cannot_work_stops_the_server_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    """No key, a short key or a repeated key: ConfigError naming the file's line, never quoting the key."""
    path = write(tmp_path, "keys", text)
    with pytest.raises(ConfigError, match=message) as caught:
        Auth.from_files(api_key_file=path)
    assert "short" not in str(caught.value).replace("shortest", "")
    assert KEY_ALL not in str(caught.value)


def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    """A missing file: ConfigError naming it and why."""
    with pytest.raises(ConfigError, match=r"cannot read the API key file .*nope.*No such file"):
        Auth.from_files(api_key_file=tmp_path / "nope")


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A key file readable by group or others still works, with a warning saying to chmod 600 it."""
    path = write(tmp_path, "keys", KEY_ALL + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "rpc_server"):
        Auth.from_files(api_key_file=path)
    assert "readable by other users: chmod 600" in caplog.text


# -- JWT --------------------------------------------------------------------------------------


def hs_auth(**options: Any) -> Auth:
    return Auth(jwt_secret=SECRET, **options)


def test_a_valid_token_grants_its_scope_names_its_sub_and_ends_at_its_exp() -> None:
    """scope 'multiply topic:*' limits the names; sub is the identity; expires_at is exp plus the leeway."""
    exp = int(time.time()) + 300
    grant = hs_auth(jwt_leeway_s=10).authenticate(mint(exp=exp, scope="multiply topic:*"))
    assert isinstance(grant, Grant) and grant.identity == "alice" and grant.expires_at == exp + 10
    assert grant.allowed is not None
    assert (grant.allowed("multiply"), grant.allowed("divide"), grant.allowed("topic:clock")) == (True, False, True)


def test_a_token_without_scope_grants_everything() -> None:
    """No scope claim: every name (allowed is None)."""
    grant = hs_auth().authenticate(mint())
    assert isinstance(grant, Grant) and grant.allowed is None


def good_token(**claims: Any) -> str:
    """A token for the guarded servers here (audience 'rpc', issuer https://id.example), claims overridden."""
    return mint(**{"aud": "rpc", "iss": "https://id.example", **claims})


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: good_token(exp=int(time.time()) - 3600), "token expired"),
        (lambda: good_token(nbf=int(time.time()) + 3600), "token not yet valid"),
        (lambda: good_token(iat=int(time.time()) + 3600, lifetime=None), "token not yet valid"),
        (lambda: good_token(aud="another-service"), "wrong audience"),
        (lambda: good_token(iss="https://elsewhere.example"), "wrong issuer"),
        (lambda: good_token(iss=None), "token has no 'iss' claim"),
        (lambda: good_token(key=bytes(32)), "bad signature"),
        (lambda: good_token(lifetime=None, iat=int(time.time()) - 3600), "token too old"),
        (lambda: good_token(lifetime=None, iat=None), "token has neither 'exp' nor 'iat'"),
        (lambda: good_token(scope=["multiply"]), "malformed token: scope"),
        (lambda: "abc.def.ghi", "malformed token"),
        (lambda: "not-a-jwt", "malformed token: not a JWT"),
        (lambda: good_token(key=None, algorithm="none"), "algorithm 'none' not accepted"),
    ],
    ids=[
        "expired",
        "nbf-in-future",
        "iat-in-future",
        "wrong-audience",
        "wrong-issuer",
        "missing-issuer",
        "wrong-secret",
        "no-exp-old-iat",
        "no-exp-no-iat",
        "scope-not-string",
        "garbage",
        "not-a-jwt",
        "alg-none",
    ],
)
def test_each_bad_token_is_refused_with_its_reason(token: Any, reason: str) -> None:
    """Expired, not yet valid, wrong audience or issuer, wrong secret, too old, alg none...: each says so."""
    auth = hs_auth(jwt_audience="rpc", jwt_issuer="https://id.example", jwt_leeway_s=0)
    outcome = auth.authenticate(token())
    assert isinstance(outcome, Refusal), outcome
    assert outcome.reason.startswith(reason) and outcome.error == "invalid_token"


def test_a_token_with_an_audience_is_refused_by_a_server_that_has_none() -> None:
    """RFC 7519 4.1.3: a token meant for some audience is not for a server that names none."""
    assert hs_auth().authenticate(mint(aud="billing")) == Refusal("wrong audience")


def test_the_leeway_admits_a_token_just_expired_and_keeps_its_connection_that_long() -> None:
    """exp 30 s ago is admitted with 60 s of leeway; the connection then ends 30 s from now."""
    exp = int(time.time()) - 30
    grant = hs_auth(jwt_leeway_s=60).authenticate(mint(exp=exp))
    assert isinstance(grant, Grant) and grant.expires_at == exp + 60


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_public_key_tokens_are_verified_with_the_algorithm_their_key_pins(tmp_path: Path, algorithm: str) -> None:
    """RS256, ES256 and EdDSA tokens pass with their public key, and a token of another key is a bad signature."""
    keys = private_keys()
    path = write(tmp_path, "public.pem", pem(keys[algorithm]))
    auth = Auth.from_files(jwt_public_key_file=path)
    assert auth.algorithms == [algorithm]
    grant = auth.authenticate(mint(keys[algorithm], algorithm, sub="svc"))
    assert isinstance(grant, Grant) and grant.identity == "svc"
    other = private_keys()[algorithm]
    assert auth.authenticate(mint(other, algorithm)) == Refusal("bad signature")


def test_an_hs256_token_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """Algorithm confusion: HS256 'signed' with the server's public PEM as secret is refused, not verified."""
    private = private_keys()["RS256"]
    auth = Auth(jwt_public_keys=[private.public_key()])
    outcome = auth.authenticate(forge_hs256(pem(private)))
    assert outcome == Refusal("algorithm 'HS256' not accepted (this server takes RS256)")


def test_a_rotation_file_with_two_public_keys_accepts_tokens_of_either(tmp_path: Path) -> None:
    """Two PEM blocks of one kind: a token of the old key and one of the new both pass."""
    old, new = private_keys()["ES256"], private_keys()["ES256"]
    auth = Auth.from_files(jwt_public_key_file=write(tmp_path, "keys.pem", pem(old) + pem(new)))
    assert all(isinstance(auth.authenticate(mint(k, "ES256")), Grant) for k in (old, new))


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("0x" + SECRET.hex() + "\n", SECRET),
        (SECRET.hex().upper(), SECRET),
        ("correct horse battery staple, and more words", b"correct horse battery staple, and more words"),
    ],
    ids=["hex-0x", "hex", "raw-text"],
)
def test_the_secret_file_holds_hex_or_raw_text(tmp_path: Path, text: str, secret: bytes) -> None:
    """Hex with or without 0x is decoded (geth's jwt.hex); anything else is the secret as written."""
    auth = Auth.from_files(jwt_secret_file=write(tmp_path, "jwt.hex", text))
    assert isinstance(auth.authenticate(mint(secret)), Grant)


@pytest.mark.parametrize("text", ["0x" + bytes(31).hex(), "too short a secret"], ids=["hex-31-bytes", "raw-short"])
def test_a_secret_under_32_bytes_stops_the_server(tmp_path: Path, text: str) -> None:
    """A short secret is a ConfigError that says how many bytes it has and how to make a good one."""
    with pytest.raises(ConfigError, match=r"bytes; at least 32 are needed \(make one with: openssl rand -hex 32\)"):
        Auth.from_files(jwt_secret_file=write(tmp_path, "jwt.hex", text))


def test_a_private_key_given_as_public_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    """The server must not hold the signing key: a private PEM stops it, saying how to extract the public one."""
    from cryptography.hazmat.primitives import serialization

    private = private_keys()["EdDSA"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match=r"holds a private key.*-pubout"):
        Auth.from_files(jwt_public_key_file=write(tmp_path, "key.pem", private))


def test_keys_and_tokens_together_each_admit() -> None:
    """With both configured, an API key and a JWT each admit; a key-shaped stranger is an unknown key."""
    auth = Auth(api_keys=KEYS, jwt_secret=SECRET)
    assert isinstance(auth.authenticate(KEY_ALL), Grant)
    assert isinstance(auth.authenticate(mint()), Grant)
    assert auth.authenticate("x" * 24) == Refusal("unknown key")


def test_patterns_are_shell_style_and_case_sensitive() -> None:
    """fnmatch patterns: * and ? and [..]; 'Multiply' is not 'multiply'."""
    allowed = Patterns(["multiply", "math_?", "topic:[ab]*"])
    assert [allowed(n) for n in ("multiply", "Multiply", "math_x", "math_xy", "topic:alpha", "topic:clock")] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]


# -- over a socket: what a client sees ---------------------------------------------------------


@pytest.fixture
async def guarded(start_server: StartServer) -> RpcServer:
    """A server taking the API keys of KEYS and HS256 tokens for audience 'rpc' from https://id.example."""
    auth = Auth(api_keys=KEYS, jwt_secret=SECRET, jwt_audience="rpc", jwt_issuer="https://id.example")
    return await start_server(tools(), auth=auth)


def check_refusal(response: Response, reason: str, error: str | None = "invalid_token") -> None:
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    body = (response.body or b"").decode()
    assert body.endswith("\n") and body.count("\n") == 1, body
    assert body.startswith(reason), body


@pytest.mark.parametrize(
    ("headers", "reason", "error"),
    [
        ({}, "missing credential", None),
        ({"Authorization": "Token abc"}, "malformed Authorization header", "invalid_request"),
        ({"Authorization": "Bearer " + KEY_ALL[:-1] + "?"}, "unknown key", "invalid_token"),
        ({"Authorization": "Bearer " + good_token(exp=int(time.time()) - 3600)}, "token expired", "invalid_token"),
        (
            {"Authorization": "Bearer " + good_token(nbf=int(time.time()) + 3600)},
            "token not yet valid",
            "invalid_token",
        ),
        # Minted at collection: a day's lifetime, so that a slow run cannot find them expired first.
        ({"Authorization": "Bearer " + good_token(aud="other", lifetime=86400)}, "wrong audience", "invalid_token"),
        (
            {"Authorization": "Bearer " + good_token(iss="https://x.example", lifetime=86400)},
            "wrong issuer",
            "invalid_token",
        ),
        ({"Authorization": "Bearer " + good_token(key=b"w" * 32)}, "bad signature", "invalid_token"),
        ({"Authorization": "Bearer " + good_token(key=None, algorithm="none")}, "algorithm 'none'", "invalid_token"),
    ],
    ids=[
        "missing",
        "malformed",
        "key-not-in-file",
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "wrong-secret",
        "alg-none",
    ],
)
async def test_a_refused_credential_gets_401_with_a_challenge_and_one_line_why(
    guarded: RpcServer, headers: dict[str, str], reason: str, error: str | None
) -> None:
    """Before any WebSocket: 401, WWW-Authenticate: Bearer (error= when a credential came), the reason as one line."""
    check_refusal(await refused(guarded.url, additional_headers=headers), reason, error)


async def test_an_hs256_token_forged_with_the_public_key_is_refused_over_the_wire(start_server: StartServer) -> None:
    """A server holding an RSA public key refuses an HS256 token made with that key's PEM, as a client sees it."""
    private = private_keys()["RS256"]
    server = await start_server(auth=Auth(jwt_public_keys=[private.public_key()]))
    response = await refused(server.url, additional_headers={"Authorization": "Bearer " + forge_hs256(pem(private))})
    check_refusal(response, "algorithm 'HS256' not accepted")


async def test_an_admitted_caller_is_named_by_its_key_or_its_token_s_sub(guarded: RpcServer) -> None:
    """The key's fingerprint or the token's sub is session.identity, as a tool sees it."""
    grant = Auth(api_keys=KEYS).authenticate(KEY_ALL)
    assert isinstance(grant, Grant)
    async with connect(guarded.url, additional_headers={"Authorization": f"Bearer {KEY_ALL}"}) as ws:
        assert (await rpc(ws, "whoami"))["result"] == grant.identity
    async with connect(guarded.url, additional_headers={"Authorization": "Bearer " + good_token(sub="bob")}) as ws:
        assert (await rpc(ws, "whoami"))["result"] == "bob"


async def test_a_browser_s_token_in_the_query_admits_and_is_never_logged(
    guarded: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    """?access_token= admits like the header; with every logger at DEBUG, neither token nor key shows in the logs."""
    token = good_token()
    # websockets' own level too: the command line (run by other tests in this process) raises it to WARNING.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "websockets"):
        async with connect(f"{guarded.url}?access_token={token}") as ws:
            assert (await rpc(ws, "multiply", [6, 7]))["result"] == 42
        async with connect(guarded.url, additional_headers={"Authorization": f"Bearer {KEY_ALL}"}) as ws:
            assert (await rpc(ws, "multiply", [6, 7]))["result"] == 42
        await refused(f"{guarded.url}?access_token={KEY_MATH}x")
    # The server's logs, not those of the test's own client (which logs what it sends at DEBUG).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "[redacted]" in logged  # websockets did log the request line and headers at DEBUG
    for secret in (token, KEY_ALL, KEY_MATH, token.split(".")[2]):
        assert secret not in logged


async def test_a_refusal_is_logged_once_with_the_peer_and_the_reason(
    guarded: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    """One WARNING line per refused attempt: the peer's address and the reason, not the credential."""
    token = good_token(aud="other")
    with caplog.at_level(logging.INFO, "rpc_server"):
        await refused(guarded.url, additional_headers={"Authorization": f"Bearer {token}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "rpc_server" and r.levelno == logging.WARNING]
    assert len(lines) == 1
    assert lines[0].startswith("refused 127.0.0.1:") and lines[0].endswith(": wrong audience")
    assert token not in caplog.text


async def test_an_http_route_can_require_the_same_credentials(guarded: RpcServer) -> None:
    """A guarded plain HTTP route: the same 401 without a credential; with one, the handler sees the caller."""
    assert guarded.auth is not None
    auth = guarded.auth

    def metrics(req: Request, admission: Admission) -> Response:
        return json_response(200, {"caller": admission.identity})

    guarded.handshake.routes.add("/metrics", metrics, guarded=True)
    assert isinstance(auth.check(request("/metrics", bearer(good_token(sub="ops")))), Admission)
    status, headers, body = await http_get(guarded.port, "/metrics")
    assert (status, headers["WWW-Authenticate"], body) == (
        401,
        'Bearer realm="rpc"',
        b"missing credential: send 'Authorization: Bearer <token>' or the access_token query parameter\n",
    )
    status, _, body = await http_get(guarded.port, f"/metrics?access_token={good_token(sub='ops')}")
    assert (status, body) == (200, b'{"caller":"ops"}')


def _b64json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "crit": ["x"]},
        {"alg": "HS256", "kid": 1},
        {"alg": ["HS256"]},
        {"alg": None},
        "not an object",
        {"alg": "HS256\r\nSet-Cookie: a=b"},
    ],
    ids=["unknown-crit", "kid-not-string", "alg-list", "alg-null", "header-not-object", "alg-with-crlf"],
)
def test_a_token_header_pyjwt_rejects_is_a_refusal_that_quotes_nothing_it_holds(header: Any) -> None:
    """Odd headers are refused, never raised; the reason and the challenge stay one printable line of ours."""
    token = f"{_b64json(header)}.{_b64json({'exp': int(time.time()) + 60})}.c2ln"
    outcome = Auth(jwt_secret=SECRET).authenticate(token)
    assert isinstance(outcome, Refusal)
    assert "Set-Cookie" not in outcome.reason and "HS256\r" not in outcome.reason
    response = outcome.response()
    assert all(" " <= c <= "~" for c in response.headers["WWW-Authenticate"])
    assert (response.body or b"").count(b"\n") == 1
