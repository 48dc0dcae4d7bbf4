"""TLS: serving ``wss://``, and client certificates (mutual TLS) as a credential.

:func:`server_context` makes the :class:`ssl.SSLContext` that
:class:`~.server.RpcServer` takes as ``ssl=``. With ``client_ca_file`` every
client must present a certificate signed by that CA, or the TLS handshake
fails before any HTTP is read; the certificate's subject (``CN=alice,O=Example``)
is then the caller's identity (:func:`certificate_gate`), unless a token
checked after it names the caller.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from websockets.http11 import Request, Response

from .errors import ConfigError
from .handshake import Admission

__all__ = ["certificate_gate", "requires_client_certificates", "server_context", "subject"]

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
