"""The UI's settings and the sealed credential a signed-in session carries.

The UI is stateless: the only place a person's credential lives is their Chainlit session
token (a signed, HttpOnly cookie), and there only sealed (Fernet, keyed from
`CHAINLIT_AUTH_SECRET`), so the browser never holds the API key or Entra token in clear and any
UI replica with the same secret can open it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken


@dataclass(frozen=True)
class UiSettings:
    """Where the API is and how people sign in (`ASCENT_UI_AUTH`: `key` or `entra`)."""

    api_url: str
    auth: str
    api_scope: str | None

    @classmethod
    def from_env(cls) -> UiSettings:
        """Read the settings from the environment (docs/ui.md lists them)."""
        auth = os.environ.get("ASCENT_UI_AUTH", "key").strip().lower()
        if auth not in ("key", "entra"):
            raise SystemExit("ASCENT_UI_AUTH must be `key` or `entra`")
        return cls(
            api_url=os.environ.get("ASCENT_API_URL", "http://127.0.0.1:7071/api").rstrip("/"),
            auth=auth,
            api_scope=os.environ.get("ASCENT_UI_API_SCOPE") or None,
        )


def _fernet() -> Fernet:
    secret = os.environ.get("CHAINLIT_AUTH_SECRET")
    if not secret:
        raise SystemExit("CHAINLIT_AUTH_SECRET must be set (chainlit create-secret makes one)")
    digest = hashlib.sha256(b"ascent-ui-credential\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(credential: str) -> str:
    """The credential, encrypted for the session token."""
    return _fernet().encrypt(credential.encode()).decode()


def unseal(sealed: str) -> str | None:
    """The credential back, or None when it was sealed under another secret or tampered with."""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None
