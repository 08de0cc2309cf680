"""Helpers for the security tests: RSA keys, a loopback JWKS server, tokens, admin calls."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ADMIN_KEY = "adm_" + "k" * 12 + uuid.uuid4().hex  # >= 32 chars; unique per test session


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of a key, as an IdP publishes it."""
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


def make_token(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    """Sign claims with RS256; `exp` defaults to an hour from now."""
    now = int(time.time())
    body = {"iat": now, "nbf": now, "exp": now + 3600, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@dataclass
class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose key set the test can change; counts its requests."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        """Serve until the block ends."""
        server_state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server_state.hits += 1
                body = json.dumps({"keys": server_state.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}/discovery/v2.0/keys"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()


def admin(base_url: str, key: str = ADMIN_KEY) -> httpx.Client:
    """A client for the platform admin API of a dev host."""
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)


def new_tenant_with_key(base_url: str) -> tuple[str, dict[str, Any]]:
    """Create a uniquely named tenant and issue it a key; return (tenant id, issued key)."""
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    with admin(base_url) as client:
        created = client.post("/platform/tenants", json={"name": "Security test", "id": tenant_id})
        assert created.status_code == 201, created.text
        issued = client.post(f"/platform/tenants/{tenant_id}/keys", json={"name": "test"})
        assert issued.status_code == 201, issued.text
    return tenant_id, issued.json()
