"""kill -9 during HITL resumes: approved refunds are re-driven within the lease bound, once.

Six billing runs pause for a refund approval (the offline model), on two hosts sharing one
Postgres. Three are approved through host A, which is killed with SIGKILL as soon as the
decisions return (its receivers hold, or are about to hold, the resumed runs). Three are
approved the way a decider that died between its commit and its queue send leaves them:
decided, no message sent. With short leases and the stale-pending sweep at its 15-minute
default, only the dispatch deadline and the claims' heartbeat can resume them within the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.recovery_helpers import (
    SHORT_LEASES,
    TAKEOVER_BOUND,
    aclient,
    busy_threads,
    kill9,
    report,
    rows,
    terminal_counts,
    until,
)
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import REFUND_REQUEST
from tests.fresh_database import fresh_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]

PAUSED = 6


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new Postgres database for this scenario (its hosts migrate it)."""
    assert POSTGRES_URL is not None
    with fresh_postgres_database(POSTGRES_URL, prefix="ascent_chaos_hitl") as url:
        yield url


def test_approved_refunds_resume_once_after_their_host_or_their_send_is_lost(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every approved refund run ends `success` exactly once with one refund row, whether
    its host was killed after approving or its message was never sent; no thread stays busy."""
    a = start_devhost(tmp_path / "a", database_url=postgres_url, extra_env=SHORT_LEASES)
    b = start_devhost(tmp_path / "b", database_url=postgres_url, extra_env=SHORT_LEASES)
    try:
        # This process decides the "lost send" reviews itself, on the scenario's database.
        from shared.core.settings import get_settings

        monkeypatch.setenv("DATABASE_URL", postgres_url)
        for name, value in SHORT_LEASES.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        asyncio.run(_scenario(a, b, postgres_url))
    finally:
        a.stop()
        b.stop()


async def _decide_without_sending(review_id: str) -> None:
    """Decide as the HTTP handler does, then die before `service.resume` sends the message."""
    from shared.runs import reviews
    from shared.security.auth import Principal

    decided = await reviews.decide(
        Principal(tenant_id="dev", key_id="chaos"),
        review_id,
        reviews.ReviewDecision(decision="approve", reviewer="chaos@example.com"),
    )
    assert decided.resume is not None


async def _scenario(a: DevHost, b: DevHost, url: str) -> None:
    from shared.db.direct import aclose_direct
    from shared.db.engine import get_engine

    async with aclient(a) as on_a, aclient(b) as on_b:
        run_ids: list[str] = []
        for _ in range(PAUSED):
            thread = (await on_b.post("/threads", json={})).json()["thread_id"]
            created = await on_b.post(
                f"/threads/{thread}/runs", json={"agent_id": "billing", "input": REFUND_REQUEST}
            )
            assert created.status_code == 200, created.text
            run_ids.append(created.json()["run_id"])

        def pending_reviews() -> dict[str, str]:
            found = rows(
                url,
                "SELECT run_id, id FROM reviews WHERE run_id = ANY(%s) AND status = 'pending'",
                run_ids,
            )
            return {r[0]: r[1] for r in found}

        async def all_paused() -> bool:
            return len(pending_reviews()) == PAUSED

        await until(all_paused, "every billing run to pause for its refund")
        reviews = pending_reviews()
        via_a, lost_send = run_ids[:3], run_ids[3:]
        decided = await asyncio.gather(
            *(
                on_a.post(f"/reviews/{reviews[r]}/decision", json={"decision": "approve"})
                for r in via_a
            )
        )
        assert [d.status_code for d in decided] == [200] * 3
        killed = kill9(a)
        for run_id in lost_send:
            await _decide_without_sending(reviews[run_id])
        await get_engine().dispose()
        await aclose_direct()

        async def all_resumed() -> bool:
            done = rows(
                url,
                "SELECT count(*) FROM runs WHERE id = ANY(%s) AND status = 'success'",
                run_ids,
            )[0][0]
            return done == PAUSED and not busy_threads(url)

        ended = await until(all_resumed, "every approved refund run to succeed")
        refunds = dict(
            rows(
                url,
                "SELECT run_id, count(*) FROM refunds WHERE run_id = ANY(%s) GROUP BY run_id",
                run_ids,
            )
        )
        assert refunds == dict.fromkeys(run_ids, 1), refunds
        assert terminal_counts(url, run_ids) == dict.fromkeys(run_ids, 1)
        outputs = [r[0] for r in rows(url, "SELECT output FROM runs WHERE id = ANY(%s)", run_ids)]
        assert all(o.startswith("Refund of 40.00 issued") for o in outputs), outputs
        report(
            "kill_hitl",
            runs=PAUSED,
            kills=1,
            lost_sends=len(lost_send),
            recoveries=PAUSED,
            longest_recovery_s=round(ended - killed, 2),
            takeover_bound_s=TAKEOVER_BOUND,
            refunds=sum(refunds.values()),
            measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
