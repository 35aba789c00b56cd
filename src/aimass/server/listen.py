"""Where and how ``aimass serve`` listens: loopback or not, TLS, trusted proxies.

On loopback only this machine can connect. Beyond it the API is reachable from
the network, so plain HTTP there is refused (API keys and data would cross the
network in clear text) unless the operator says TLS is terminated in front of
the server (``--insecure``); ``--tls-cert``/``--tls-key`` serve HTTPS directly.
The TLS files are checked before anything starts: both readable, the key open
to its owner only, and the key matching the certificate.

Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are trusted from no one
unless ``--forwarded-allow-ips`` names the proxies: the client address they carry
is what failed authentications are counted against, so trusting them from
anyone would let a client pick a fresh address for every guess.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Any

from aimass.errors import FailedPrecondition, InvalidArgument

__all__ = ["check_listen", "check_tls_files", "is_loopback", "uvicorn_options"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``) are; the
    wildcards ``0.0.0.0`` and ``::``, every other address and every other name
    (it may resolve anywhere) are not.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen(host: str, *, tls: bool, insecure: bool) -> None:
    """Refuse plain HTTP beyond loopback unless ``insecure`` (TLS terminated in front)."""
    if tls or insecure or is_loopback(host):
        return
    raise InvalidArgument(
        f"refusing to serve plain HTTP on {host}: beyond loopback, API keys and data would "
        "cross the network unencrypted. Serve HTTPS with --tls-cert CERT.pem --tls-key "
        "KEY.pem (or AIMASS_TLS_CERT / AIMASS_TLS_KEY), or pass --insecure if a reverse "
        "proxy in front of aimass terminates TLS",
        host=host,
    )


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Check the TLS certificate and key before the server starts (no-op without both).

    Raises:
        InvalidArgument: Only one of the two is given, a file is missing or
            unreadable, or the pair does not load (not PEM, or a key that does not
            match the certificate).
        FailedPrecondition: The key file is open to its group or other users.
    """
    if cert is None and key is None:
        return
    if cert is None or key is None:
        raise InvalidArgument(
            "--tls-cert and --tls-key go together (AIMASS_TLS_CERT / AIMASS_TLS_KEY): give "
            "both the certificate and its private key, or neither"
        )
    _check_readable(cert, "--tls-cert")
    _check_readable(key, "--tls-key")
    mode = key.stat().st_mode & 0o777
    if mode & 0o077:
        raise FailedPrecondition(
            f"the TLS key {key} is open to other users (mode {mode:o}); run 'chmod 600 {key}'",
            path=str(key),
            mode=f"{mode:o}",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An encrypted key would make OpenSSL prompt on the terminal; an empty password
        # makes it fail here instead.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise InvalidArgument(
            f"cannot use the TLS certificate {cert} with the key {key}: {exc.reason or exc}. "
            "Both must be PEM files, the key unencrypted and matching the certificate",
            cert=str(cert),
            key=str(key),
        ) from exc


def _check_readable(path: Path, flag: str) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InvalidArgument(
            f"{flag} {path}: {exc.strerror or exc}; give the path of a readable PEM file",
            path=str(path),
        ) from exc


def uvicorn_options(
    host: str,
    port: int,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    forwarded_allow_ips: str | None = None,
    http: str = "auto",
    loop: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for this listener.

    Args:
        host: Address to bind.
        port: TCP port.
        tls_cert: Serve HTTPS with this certificate (and ``tls_key``).
        tls_key: The certificate's private key.
        forwarded_allow_ips: Comma-separated proxy addresses whose ``X-Forwarded-*``
            headers are trusted; ``None`` trusts them from no one.
        http: uvicorn's HTTP implementation: ``auto`` (httptools when installed),
            ``httptools`` or ``h11``.
        loop: uvicorn's event loop: ``auto`` (uvloop when installed), ``uvloop`` or
            ``asyncio``.
    """
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": forwarded_allow_ips is not None,
        "http": http,
        "loop": loop,
    }
    if forwarded_allow_ips is not None:
        options["forwarded_allow_ips"] = forwarded_allow_ips
    if tls_cert is not None and tls_key is not None:
        options["ssl_certfile"] = str(tls_cert)
        options["ssl_keyfile"] = str(tls_key)
    return options
