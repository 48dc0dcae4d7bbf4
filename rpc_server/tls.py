"""TLS: serving ``wss://``, and client certificates (mutual TLS) as a credential.

:func:`server_context` makes the :class:`ssl.SSLContext` that
:class:`~.server.RpcServer` takes as ``ssl=``. With ``client_ca_file`` every
client must present a certificate signed by that CA, or the TLS handshake
fails before any HTTP is read; the certificate's subject (``CN=alice,O=Example``)
is then the caller's identity (:func:`certificate_gate`), unless a token
checked after it names the caller.

:class:`TlsHandshake` runs each socket's TLS handshake before its connection
gets it, so that a handshake that fails is seen: a client certificate
missing or not trusted is a refused attempt, logged once with the peer and
the reason and counted, like a refused token (asyncio's own TLS server
swallows these failures, logging them only in debug mode).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from websockets.http11 import Request, Response

from .errors import ConfigError
from .handshake import Admission, peer_name

__all__ = [
    "TlsHandshake",
    "TlsRefused",
    "certificate_gate",
    "requires_client_certificates",
    "server_context",
    "subject",
    "why_refused",
]

# Told of each TLS handshake that failed: the peer, why (one line), and the kind of refusal, as the
# metrics count it: "auth" (the client's certificate), "invalid" (a client that does not speak TLS as
# it should), or None (a client that went away or gave up: nothing to count).
TlsRefused = Callable[[str, str, str | None], None]

# The attribute names of a certificate's subject, as RFC 4514 writes them.
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "streetAddress": "STREET",
    "userId": "UID",
}


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    *,
    client_ca_file: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A server's TLS context: TLS 1.2 or later, with the certificate chain of ``certfile``.

    Args:
        certfile: the server's certificate (PEM), followed by any intermediates.
        keyfile: its private key (PEM); None when ``certfile`` holds it too.
        client_ca_file: when given, clients must present a certificate signed
            by one of these CAs (mutual TLS).

    Raises:
        ConfigError: a file cannot be read, or the key does not match the certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        if keyfile is None and not _holds_private_key(certfile):
            no_key = f"{os.fspath(certfile)} holds no private key: give its key file too (--keyfile)"
            raise ConfigError(no_key) from None
        files = os.fspath(certfile) + (f" and {os.fspath(keyfile)}" if keyfile is not None else "")
        raise ConfigError(f"cannot load the TLS certificate and key from {files}: {_why(exc)}") from None
    if client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client CA file {os.fspath(client_ca_file)}: {_why(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _holds_private_key(path: str | os.PathLike[str]) -> bool:
    """Whether a PEM file holds a private key; True when it cannot be read (the error then says why)."""
    try:
        return b"PRIVATE KEY-----" in Path(path).read_bytes()
    except OSError:
        return True


def _why(exc: OSError) -> str:
    return str(exc.strerror or exc) if not isinstance(exc, ssl.SSLError) else str(exc.reason or exc)


def requires_client_certificates(context: ssl.SSLContext | None) -> bool:
    """Whether ``context`` admits only clients with a certificate it trusts (a credential of its own)."""
    return context is not None and context.verify_mode == ssl.CERT_REQUIRED


def subject(certificate: dict[str, Any]) -> str:
    """A certificate's subject as RFC 4514 writes it, most specific first: ``CN=alice,O=Example``."""
    parts = []
    for rdn in reversed(certificate.get("subject", ())):
        attributes = []
        for name, value in rdn:
            escaped = "".join("\\" + c if c in ',+"\\<>;=' else c for c in str(value))
            attributes.append(f"{_SHORT.get(name, name)}={escaped}")
        parts.append("+".join(attributes))
    return ",".join(parts)


def certificate_gate(request: Request, admission: Admission) -> Response | None:
    """The :data:`~.handshake.Gate` naming a caller by its TLS client certificate, when it presented one."""
    if admission.certificate:
        admission.identity = subject(admission.certificate)
    return None


# OpenSSL's reasons for a client certificate refused, as one line each.
_CERTIFICATE_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate",
    "CERTIFICATE_VERIFY_FAILED": "client certificate not trusted",
}


def why_refused(exc: BaseException) -> tuple[str, str | None]:
    """A failed TLS handshake in one line, and its kind (see :data:`TlsRefused`)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: client certificate not trusted ({exc.verify_message})", "auth"
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        reason = str(exc.reason or exc)
        if reason in _CERTIFICATE_REASONS:
            return f"TLS: {_CERTIFICATE_REASONS[reason]}", "auth"
        return f"TLS handshake failed: {reason.lower().replace('_', ' ')}", "invalid"
    return f"TLS handshake not finished: {str(exc) or type(exc).__name__}", None


class TlsHandshake(asyncio.Protocol):
    """A socket's TLS handshake, before the protocol that serves it gets it; the server's protocol factory.

    Args:
        protocol: makes the protocol that serves a socket once its handshake succeeds.
        context: the server's TLS context.
        timeout_s: the longest a handshake may take.
        refused: told of each handshake that failed.
    """

    def __init__(
        self,
        protocol: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        timeout_s: float,
        refused: TlsRefused,
    ) -> None:
        self.protocol = protocol
        self.context = context
        self.timeout_s = timeout_s
        self.refused = refused
        self.task: asyncio.Task[None] | None = None
        # What the TLS layer delivers between the handshake's end and the hand-over to the protocol
        # (it reads on at once, before start_tls returns): kept, then passed on in order.
        self.early: list[bytes] = []
        self.eof = False
        self.lost: list[Exception | None] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's are not, and do all this needs.
        transport = cast(asyncio.Transport, transport)
        transport.pause_reading()  # the ClientHello is for start_tls, not for this protocol
        self.task = asyncio.get_running_loop().create_task(self._handshake(transport), name="rpc TLS handshake")

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True  # the protocol it is handed to decides

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        peer = peer_name(transport.get_extra_info("peername")) or "a client"
        try:
            tls = await loop.start_tls(
                transport, self, self.context, server_side=True, ssl_handshake_timeout=self.timeout_s
            )
        except (OSError, TimeoutError) as exc:  # start_tls has closed the socket
            self.refused(peer, *why_refused(exc))
            return
        if tls is None:  # the peer went away in the meantime
            return
        protocol = self.protocol()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        for data in self.early:
            protocol.data_received(data)
        if self.eof and not protocol.eof_received():
            tls.close()
        for lost in self.lost:
            protocol.connection_lost(lost)
