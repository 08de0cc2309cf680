"""Standard Webhooks signing (shared/outbox/webhooks.py), checked by `standardwebhooks`."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from shared.outbox.webhooks import as_standard_secret, new_secret, signed_headers

BODY = b'{"run_id":"r1","status":"success"}'


def test_a_new_secret_is_in_the_spec_format() -> None:
    """A fresh secret is `whsec_` + base64 of 32 random bytes, different every time."""
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_a_pre_standard_secret_keeps_its_hmac_key() -> None:
    """A stored bare secret is shown as `whsec_`+base64 of its bytes: the same HMAC key."""
    stored = "old-token_urlsafe-secret"
    secret = as_standard_secret(stored)
    headers = signed_headers(secret, "evt_1", BODY, datetime.now(UTC))
    to_sign = f"evt_1.{headers['webhook-timestamp']}.".encode() + BODY
    mac = base64.b64encode(hmac.new(stored.encode(), to_sign, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{mac}"
    assert as_standard_secret(secret) == secret
    assert Webhook(secret).verify(BODY, headers) == {"run_id": "r1", "status": "success"}


def test_a_stale_timestamp_is_refused() -> None:
    """A message signed more than 5 minutes ago fails verification (replay protection)."""
    secret = new_secret()
    old = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 600, UTC)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, signed_headers(secret, "evt_1", BODY, old))
