"""Webhook targets are checked before any request: SSRF refusal is recorded, never sent."""

from __future__ import annotations

import uuid

import pytest

from shared.db import repo
from shared.db.engine import db_session
from shared.db.models import Run
from shared.outbox.drain import drain
from shared.outbox.events import RUN_COMPLETED
from shared.outbox.webhooks import WebhookRefused, check_target, list_deliveries, record_run_end
from tests.integration.events_support import tenant

__all__ = ["tenant"]


async def _finished_run_with_webhook(tenant_id: str, url: str) -> str:
    """A run with a webhook whose terminal event commits with the run (owing the webhook)."""
    async with db_session() as db:
        thread = await repo.create_thread(session=db, tenant_id=tenant_id)
        run = Run(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            thread_id=thread.id,
            agent="triage",
            input="hi",
            status="success",
            webhook=url,
        )
        db.add(run)
        await db.flush()
        await record_run_end(
            session=db, tenant_id=tenant_id, run_id=run.id, type=RUN_COMPLETED, data={}
        )
        await db.commit()
    return run.id


async def test_a_loopback_webhook_is_refused_and_recorded(tenant: str) -> None:
    """With ASCENT_WEBHOOK_ALLOW_PRIVATE unset, a loopback target is refused and not retried."""
    run_id = await _finished_run_with_webhook(tenant, "http://127.0.0.1:9/hook")
    await drain()
    [delivery] = await list_deliveries(tenant_id=tenant, run_id=run_id)
    assert delivery.status == "refused"
    assert delivery.attempts == 1
    assert delivery.last_status is None  # no request was made
    assert "private" in (delivery.last_error or "")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "ftp://example.com/x",
        "http:///no-host",
    ],
)
async def test_non_public_or_non_http_targets_are_refused(url: str) -> None:
    """Loopback, private, link-local (cloud metadata), mapped IPv6 and non-HTTP URLs fail."""
    with pytest.raises(WebhookRefused):
        await check_target(url)
