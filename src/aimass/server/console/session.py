"""Console sessions: an API key exchanged once for a signed, expiring cookie.

The cookie holds the key's id, an expiry and a random nonce, signed with
HMAC-SHA256 under a key derived from the home's secret; never the API key. Every
request looks the key up again (:meth:`~aimass.workspace.keys.KeyRing.principal_of`),
so revoking the key ends its sessions at once. The CSRF token of a session is
derived from its nonce, so a form posted from another site, which cannot read the
cookie, cannot carry it. Signing out remembers the nonce until the session would
have expired, so a copied cookie dies with it (in this process).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

__all__ = ["COOKIE", "Session", "SessionCodec"]

COOKIE = "aimass_session"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose key, until when, and its CSRF token."""

    key_id: str
    expires: float
    nonce: str
    csrf: str


class SessionCodec:
    """Issues and checks session cookies.

    Args:
        secret: The signing key (``Workspace.derived_key("console-sessions")``).
        lifetime: Seconds a session lasts after sign-in.
    """

    def __init__(self, secret: bytes, *, lifetime: float) -> None:
        self._secret = secret
        self.lifetime = lifetime
        self._ended: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, key_id: str) -> tuple[str, Session]:
        """A new session for ``key_id``: ``(cookie value, session)``."""
        payload = {"k": key_id, "e": time.time() + self.lifetime, "n": secrets.token_urlsafe(18)}
        data = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        value = f"{data}.{self._sign(data)}"
        session = self.read(value)
        assert session is not None  # just made
        return value, session

    def read(self, value: str | None) -> Session | None:
        """The session a cookie value names, or ``None`` (absent, forged, expired, ended)."""
        if not value or value.count(".") != 1 or len(value) > 512:
            return None
        data, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(data)):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            key_id, expires, nonce = str(payload["k"]), float(payload["e"]), str(payload["n"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= time.time():
            return None
        with self._lock:
            if nonce in self._ended:
                return None
        return Session(key_id=key_id, expires=expires, nonce=nonce, csrf=self._csrf(nonce))

    def end(self, session: Session) -> None:
        """Sign ``session`` out: its cookie is refused from now on."""
        now = time.time()
        with self._lock:
            self._ended = {n: e for n, e in self._ended.items() if e > now}
            self._ended[session.nonce] = session.expires

    def _sign(self, data: str) -> str:
        digest = hmac.new(self._secret, data.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _csrf(self, nonce: str) -> str:
        digest = hmac.new(self._secret, f"csrf:{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()
