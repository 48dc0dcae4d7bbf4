"""Who may open a connection, and what it may call: API keys and JWTs, checked once per connection.

A caller presents one credential on the opening request, as
``Authorization: Bearer <credential>`` or, for browsers (which cannot set
headers on a WebSocket), as the ``access_token`` query parameter (RFC 6750
section 2.3). :class:`Auth` checks it before the WebSocket opens, in the way of
geth's JWT handler: a refusal is an HTTP 401 with ``WWW-Authenticate: Bearer``
and a one-line reason, and no protocol code runs. An admitted connection
carries its caller's identity, the names it may call and when its credential
expires (:class:`~.handshake.Admission`); per call there is only the
permission lookup, cached per credential.

- **API keys**: a file of lines ``KEY [PATTERN ...]``; the patterns are
  shell-style (``fnmatch``: ``multiply``, ``math_*``, ``*``), none meaning
  everything. Keys are compared in constant time and never logged: a key's
  identity is ``key:`` and the first 8 hex digits of its SHA-256.
- **JWTs** (PyJWT): an HS256 secret and/or public keys (RS256, ES256, EdDSA);
  the algorithm is pinned by the kind of key, so ``none`` and an HS token
  checked against a public key are refused. A token carries ``exp``, or else an
  ``iat`` within ``max_age_s`` of now; its ``scope`` claim (space-separated
  patterns) limits what it may call; its ``sub`` is the identity.

Names are tools (``multiply``) and topics, as ``topic:NAME`` (``topic:clock``),
which ``rpc.subscribe`` checks; ``*`` matches both.

Nothing here reads a socket; the key files are read once, when :class:`Auth`
is made.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import hmac
import logging
import math
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.exceptions import InvalidSubjectError
from websockets.http11 import Request, Response

from .errors import ConfigError
from .handshake import Admission, refuse
from .session import TOPIC_PREFIX

__all__ = [
    "DEFAULT_LEEWAY_S",
    "DEFAULT_MAX_AGE_S",
    "MIN_KEY_CHARS",
    "MIN_SECRET_BYTES",
    "TOPIC_PREFIX",
    "ApiKey",
    "Auth",
    "Grant",
    "Patterns",
    "Refusal",
    "bearer_token",
    "read_api_keys",
    "read_jwt_public_keys",
    "read_jwt_secret",
]

logger = logging.getLogger("rpc_server")

DEFAULT_LEEWAY_S = 60.0
DEFAULT_MAX_AGE_S = 60.0
MIN_KEY_CHARS = 16
MIN_SECRET_BYTES = 32
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
MAKE_SECRET = "openssl rand -hex 32"


class Patterns:
    """The names a credential grants: shell-style patterns (``fnmatch``, case-sensitive).

    An instance is the ``allowed`` callable of a connection: called per call, it
    remembers its answers (the names asked about are the server's tools and
    topics, a bounded set).

    >>> allowed = Patterns(["math_*", "topic:clock"])
    >>> allowed("math_add"), allowed("divide"), allowed("topic:clock")
    (True, False, True)
    """

    __slots__ = ("_match", "_seen", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        regex = "|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.patterns)
        self._match = re.compile(regex).match if self.patterns else None
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        seen = self._seen.get(name)
        if seen is not None:
            return seen
        granted = self._match is not None and self._match(name) is not None
        if len(self._seen) < 4096:
            self._seen[name] = granted
        return granted

    def __repr__(self) -> str:
        return f"Patterns({list(self.patterns)!r})"


@functools.lru_cache(maxsize=256)
def _scope_patterns(scope: str) -> Patterns:
    # Tokens of one issuer share a few scopes: one Patterns (and its cache) per scope.
    return Patterns(scope.split())


@dataclass(frozen=True, slots=True)
class Grant:
    """What an accepted credential grants.

    Attributes:
        identity: who the caller is, for logs and per-caller limits.
        allowed: the names it may call (None: all of them).
        expires_at: when the credential ends, in seconds since the epoch (None: never).
    """

    identity: str
    allowed: Callable[[str], bool] | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a credential was refused.

    Attributes:
        reason: one line for the caller and the log; it never quotes the credential.
        error: the RFC 6750 error code: None when no credential was sent,
            ``invalid_request`` for a request that does not say it properly,
            ``invalid_token`` for a credential that is not accepted.
    """

    reason: str
    error: str | None = "invalid_token"

    def response(self, peer: str | None = None) -> Response:
        """The HTTP 401 that says it (``WWW-Authenticate: Bearer`` with the error, the reason as the body), logged."""
        challenge = 'Bearer realm="rpc"'
        if self.error is not None:
            # A quoted-string of printable ASCII (RFC 6750 section 3), whatever the reason holds.
            description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in self.reason)
            challenge += f', error="{self.error}", error_description="{description}"'
        return refuse(401, self.reason, [("WWW-Authenticate", challenge)], peer=peer)


MISSING = Refusal("missing credential: send 'Authorization: Bearer <token>' or the access_token query parameter", None)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key: the key, the patterns of what it may call (none: everything), and where it was read.

    Its identity in logs is ``key:`` and the first 8 hex digits of its SHA-256,
    which names it without revealing it.
    """

    key: str
    patterns: tuple[str, ...] = ()
    where: str = ""

    @property
    def identity(self) -> str:
        return "key:" + hashlib.sha256(self.key.encode()).hexdigest()[:8]


def bearer_token(request: Request) -> str | Refusal:
    """The credential the request carries, or why there is none to check.

    From ``Authorization: Bearer <token>`` or the ``access_token`` query
    parameter; a request that sends both, or either twice, is refused (RFC
    6750 section 2: one method only).
    """
    headers = request.headers.get_all("Authorization")
    _, _, query = request.path.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True).get("access_token", []) if query else []
    if len(headers) + len(params) > 1:
        return Refusal(
            "more than one credential: send it once, in the Authorization header or the access_token parameter",
            "invalid_request",
        )
    if headers:
        scheme, _, token = headers[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return Refusal("malformed Authorization header: expected 'Bearer <token>'", "invalid_request")
        return token
    if params:
        if not params[0]:
            return Refusal("malformed credential: the access_token parameter is empty", "invalid_request")
        return params[0]
    return MISSING


_ALGORITHM = re.compile(r"[A-Za-z0-9]{1,16}")

# PyJWT's errors, from the most specific, as one line each.
_JWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidIssuedAtError, "malformed token: iat is not a number"),
    (InvalidSubjectError, "malformed token: sub is not a string"),
    (jwt.DecodeError, "malformed token"),
)


class Auth:
    """The credentials a server accepts; either kind admits (see the module docstring).

    >>> auth = Auth(api_keys=[ApiKey("a-long-enough-api-key", ("multiply",))])
    >>> auth.authenticate("a-long-enough-api-key").allowed("multiply")
    True

    Args:
        api_keys: the accepted API keys: :class:`ApiKey` objects, or a dict
            of key to patterns (an empty list: every name).
        jwt_secret: the HS256 secret (at least 32 bytes).
        jwt_public_keys: public keys (RSA, P-256/384/521, Ed25519/Ed448) for
            RS256, ES256/384/512 and EdDSA tokens.
        jwt_audience: when given, a token's ``aud`` must name it; when not, a
            token with an ``aud`` is refused (RFC 7519 section 4.1.3).
        jwt_issuer: when given, a token's ``iss`` must be it.
        jwt_leeway_s: tolerated clock difference with the issuer, in seconds,
            for ``exp``, ``nbf`` and ``iat``. A connection lasts until ``exp``
            plus this.
        jwt_max_age_s: a token without ``exp`` needs an ``iat`` within this
            many seconds of now (geth's rule for its engine API); its
            connection lasts until ``iat`` plus this plus the leeway.

    Raises:
        ConfigError: no credential at all, a short secret, a weak or repeated key.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[ApiKey] | Mapping[str, Sequence[str]] = (),
        jwt_secret: bytes | None = None,
        jwt_public_keys: Sequence[Any] = (),
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        jwt_leeway_s: float = DEFAULT_LEEWAY_S,
        jwt_max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        if isinstance(api_keys, Mapping):
            api_keys = [ApiKey(key, tuple(patterns)) for key, patterns in api_keys.items()]
        self.api_keys = tuple(api_keys)
        self._check_keys()
        # What a key grants, by its digest (made once: every connection of a key shares its cache).
        self._keys = [
            (_digest(key.key), Grant(key.identity, Patterns(key.patterns) if key.patterns else None))
            for key in self.api_keys
        ]
        self._jwt_keys: dict[str, list[Any]] = {}
        if jwt_secret is not None:
            if len(jwt_secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"the JWT secret is {len(jwt_secret)} bytes; at least {MIN_SECRET_BYTES} are needed "
                    f"(make one with: {MAKE_SECRET})"
                )
            self._jwt_keys["HS256"] = [jwt_secret]
        for key in jwt_public_keys:
            self._jwt_keys.setdefault(_algorithm_of(key), []).append(key)
        if not self.api_keys and not self._jwt_keys:
            raise ConfigError("no credential to accept: give API keys, a JWT secret or a JWT public key")
        if jwt_leeway_s < 0 or jwt_max_age_s <= 0:
            raise ConfigError("the JWT leeway must be 0 or more seconds, and the maximum age more than 0")
        self.jwt_audience = jwt_audience
        self.jwt_issuer = jwt_issuer
        self.jwt_leeway_s = jwt_leeway_s
        self.jwt_max_age_s = jwt_max_age_s

    @classmethod
    def from_files(
        cls,
        *,
        api_key_file: str | os.PathLike[str] | None = None,
        jwt_secret_file: str | os.PathLike[str] | None = None,
        jwt_public_key_file: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Auth:
        """An :class:`Auth` from the files the command line names; ``options`` as for the constructor.

        Raises:
            ConfigError: a file cannot be read or holds no valid credential; the message names it.
        """
        return cls(
            api_keys=read_api_keys(api_key_file) if api_key_file is not None else (),
            jwt_secret=read_jwt_secret(jwt_secret_file) if jwt_secret_file is not None else None,
            jwt_public_keys=read_jwt_public_keys(jwt_public_key_file) if jwt_public_key_file is not None else (),
            **options,
        )

    @property
    def algorithms(self) -> list[str]:
        """The JWT algorithms accepted, by the keys held."""
        return sorted(self._jwt_keys)

    def _check_keys(self) -> None:
        seen: set[str] = set()
        for number, key in enumerate(self.api_keys, 1):
            # Named by position, never by the key or its digest: a weak key's digest gives it away.
            where = key.where or f"API key {number}"
            if len(key.key) < MIN_KEY_CHARS or not (key.key.isascii() and key.key.isprintable()) or " " in key.key:
                raise ConfigError(
                    f"{where}: a key needs at least {MIN_KEY_CHARS} printable ASCII characters and no spaces "
                    f"(make one with: {MAKE_KEY})"
                )
            if key.key in seen:
                raise ConfigError(f"{where}: this key is listed twice")
            seen.add(key.key)

    # -- checking ----------------------------------------------------------------

    def authenticate(self, credential: str) -> Grant | Refusal:
        """What ``credential`` (an API key or a JWT) grants, or why it is refused."""
        if self._keys:
            digest = _digest(credential)
            found: Grant | None = None
            # Every key is compared, in constant time: how long this takes says nothing of the keys.
            for key_digest, grant in self._keys:
                if hmac.compare_digest(digest, key_digest):
                    found = grant
            if found is not None:
                return found
        if self._jwt_keys and credential.count(".") == 2:
            return self._decode(credential)
        return Refusal("unknown key" if self._keys else "malformed token: not a JWT")

    def _decode(self, token: str) -> Grant | Refusal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:  # not a JWS, or one with a header PyJWT will not handle (crit, a bad kid)
            return Refusal("malformed token")
        keys = self._jwt_keys.get(algorithm) if isinstance(algorithm, str) else None
        if keys is None or not isinstance(algorithm, str):
            # The header is the caller's: it is named only when it looks like an algorithm.
            named = isinstance(algorithm, str) and _ALGORITHM.fullmatch(algorithm)
            which = f"algorithm {algorithm!r}" if named else "the token's algorithm is"
            return Refusal(f"{which} not accepted (this server takes {', '.join(self.algorithms)})")
        require = ["aud"] if self.jwt_audience is not None else []
        if self.jwt_issuer is not None:
            require.append("iss")
        claims: dict[str, Any] | None = None
        refusal = Refusal("bad signature")
        for key in keys:  # several public keys of one kind: a rotation in progress
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.jwt_audience,
                    issuer=self.jwt_issuer,
                    leeway=self.jwt_leeway_s,
                    options={"require": require},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.MissingRequiredClaimError as exc:
                return Refusal(f"token has no {exc.claim!r} claim")
            except jwt.PyJWTError as exc:  # InvalidKeyError too: a refusal, never a failed handshake
                return Refusal(next((reason for kind, reason in _JWT_REASONS if isinstance(exc, kind)), "bad token"))
        if claims is None:
            return refusal
        return self._grant(claims)

    def _grant(self, claims: dict[str, Any]) -> Grant | Refusal:
        expires_at: float | None = None
        if "exp" in claims:
            ends = _seconds(claims["exp"]) + self.jwt_leeway_s
            expires_at = ends if math.isfinite(ends) else None  # beyond any clock: it never ends
        else:
            issued = claims.get("iat")
            if issued is None:
                return Refusal("token has neither 'exp' nor 'iat'")
            issued_at = _seconds(issued)
            if abs(time.time() - issued_at) > self.jwt_max_age_s:
                return Refusal(f"token too old: without 'exp', 'iat' must be within {self.jwt_max_age_s:g} s of now")
            # The token is good for max_age after iat: a connection it opened must not outlive it.
            expires_at = issued_at + self.jwt_max_age_s + self.jwt_leeway_s
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            return Refusal("malformed token: scope is not a string")
        subject = claims.get("sub")
        identity = subject if isinstance(subject, str) and subject else "jwt"
        return Grant(identity, _scope_patterns(scope) if scope is not None else None, expires_at)

    def check(self, request: Request, admission: Admission | None = None) -> Response | Admission:
        """The request's credential checked: a 401 to send, or the admission it earns.

        For plain HTTP routes that need the same credentials as the WebSocket
        (``/metrics``, say): ``return outcome if isinstance(outcome, Response) else ...``.
        A refusal is logged once, with ``admission.peer`` when given, never the credential.
        """
        admission = admission if admission is not None else Admission()
        credential = bearer_token(request)
        outcome = self.authenticate(credential) if isinstance(credential, str) else credential
        if isinstance(outcome, Refusal):
            return outcome.response(admission.peer)
        admission.identity = outcome.identity
        admission.allowed = outcome.allowed
        admission.expires_at = outcome.expires_at
        return admission

    def gate(self, request: Request, admission: Admission) -> Response | None:
        """The :data:`~.handshake.Gate`: a 401, or None with the admission filled in."""
        outcome = self.check(request, admission)
        return outcome if isinstance(outcome, Response) else None


def _seconds(claim: Any) -> float:
    """A time claim PyJWT accepted (an integer, however large, or a float) as a float; infinite past a float's range."""
    try:
        return float(claim)
    except OverflowError:  # a signed {"exp": 1000...0} of 400 digits is still a valid JWT
        return math.inf if claim > 0 else -math.inf


def _digest(text: str) -> bytes:
    # Digests of equal length, so that compare_digest's time does not depend on the key's length either.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def _algorithm_of(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"an RSA key of {key.key_size} bits is too weak for RS256: at least 2048")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name not in by_curve:
            raise ConfigError(f"an EC key on curve {key.curve.name} has no JWT algorithm: use P-256 (ES256)")
        return by_curve[key.curve.name]
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return "EdDSA"
    raise ConfigError(f"a {type(key).__name__} is not a JWT public key: use an RSA, EC (P-256) or Ed25519 key")


# -- the files ------------------------------------------------------------------------


def _read(path: str | os.PathLike[str], what: str, *, secret: bool = True) -> bytes:
    try:
        data = Path(path).read_bytes()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {os.fspath(path)!r}: {exc.strerror or exc}") from None
    if secret and mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("the %s %s is readable by other users: chmod 600 it", what, os.fspath(path))
    return data


def read_api_keys(path: str | os.PathLike[str]) -> list[ApiKey]:
    """The keys of an API key file: lines ``KEY [PATTERN ...]``, ``#`` comments and blank lines skipped.

    Raises:
        ConfigError: the file cannot be read, or holds no key.
    """
    keys = []
    text = _read(path, "API key file").decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if words and not words[0].startswith("#"):
            keys.append(ApiKey(words[0], tuple(words[1:]), f"{os.fspath(path)} line {number}"))
    if not keys:
        raise ConfigError(f"the API key file {os.fspath(path)!r} holds no key (one a line: KEY [PATTERN ...])")
    return keys


_HEX = re.compile(rb"(?:0[xX])?((?:[0-9a-fA-F]{2})+)")


def read_jwt_secret(path: str | os.PathLike[str]) -> bytes:
    """The HS256 secret of a file: hex, with or without ``0x`` (like geth's ``jwt.hex``), else the raw text.

    Raises:
        ConfigError: the file cannot be read, or the secret is under 32 bytes.
    """
    data = _read(path, "JWT secret file").strip()
    found = _HEX.fullmatch(data)
    secret = bytes.fromhex(found.group(1).decode()) if found else data
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the JWT secret in {os.fspath(path)!r} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are "
            f"needed (make one with: {MAKE_SECRET})"
        )
    return secret


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def read_jwt_public_keys(path: str | os.PathLike[str]) -> list[Any]:
    """The public keys of a PEM file (one or more ``PUBLIC KEY`` blocks).

    Raises:
        ConfigError: the file cannot be read, holds a private key, or no public key.
    """
    name = os.fspath(path)
    blocks = list(_PEM.finditer(_read(path, "JWT public key file", secret=False)))  # public: anyone may read it
    if any(b"PRIVATE" in block.group(1) for block in blocks):
        raise ConfigError(
            f"{name!r} holds a private key: give the server only the public key "
            "(openssl pkey -in private.pem -pubout -out public.pem)"
        )
    keys = []
    for block in blocks:
        try:
            keys.append(serialization.load_pem_public_key(block.group(0)))
        except ValueError as exc:
            raise ConfigError(f"{name!r} holds a PEM block that is not a public key: {exc}") from None
    if not keys:
        raise ConfigError(f"{name!r} holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
    for key in keys:
        _algorithm_of(key)
    return keys
