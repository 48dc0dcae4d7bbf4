"""What the security tests share: credentials made on the spot, and a refused handshake read back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from rpc_server import Context, Registry, builtin_tools

__all__ = [
    "KEY_ALL",
    "KEY_MATH",
    "SECRET",
    "client_context",
    "forge_hs256",
    "mint",
    "pem",
    "private_keys",
    "refused",
    "tls_files",
    "tools",
    "write",
]

# API keys as an operator would make them (secrets.token_urlsafe), one for everything, one for two tools.
KEY_ALL = "kq3vZ8Hn0cT2yWf9RjLp4sXa"
KEY_MATH = "m7GdQ1eBv6NwYz5KtUo8HrCs"
SECRET = bytes(range(32))


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(0o600)
    return path


def tls_files(ca: trustme.CA, directory: Path) -> tuple[Path, Path, Path]:
    """A server's certificate chain and key (for 127.0.0.1 and localhost) signed by ``ca``, and ``ca``, as PEM files."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(certfile), append=True)
    leaf.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return certfile, keyfile, cafile


def client_context(ca: trustme.CA, certificate: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client's TLS context trusting ``ca``, showing ``certificate`` if given (mutual TLS)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if certificate is not None:
        certificate.configure_cert(context)
    return context


def private_keys() -> dict[str, Any]:
    """A new private key for each asymmetric algorithm the server takes, by algorithm."""
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def pem(private_key: Any) -> bytes:
    """The PEM of ``private_key``'s public key."""
    return private_key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def mint(key: Any = SECRET, algorithm: str = "HS256", lifetime: float | None = 300, **claims: Any) -> str:
    """A JWT signed with ``key``; it expires ``lifetime`` seconds from now (None: no exp)."""
    payload: dict[str, Any] = {"sub": "alice", "iat": int(time.time())}
    if lifetime is not None:
        payload["exp"] = int(time.time() + lifetime)
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(secret: bytes, **claims: Any) -> str:
    """An HS256 token signed with ``secret`` by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    payload = {"sub": "mallory", "exp": int(time.time() + 300), **claims}
    signing_input = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


async def refused(url: str, **options: Any) -> Response:
    """The response that refused a handshake to ``url`` (``options`` go to websockets' connect)."""
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, open_timeout=5, **options):
            pass
    return caught.value.response


def tools() -> Registry:
    """The built-in tools, and ``whoami``: the caller's identity as the server knows it."""
    registry = builtin_tools()

    @registry.tool
    def whoami(ctx: Context) -> str | None:
        return ctx.session.identity

    return registry
