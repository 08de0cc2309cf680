"""The crons API over real HTTP on the dev host: contract and tenant isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.security_support import ADMIN_KEY, new_tenant_with_key

pytestmark = pytest.mark.e2e
BODY = {"assistant_id": "assistant", "input": "daily report", "schedule": "0 9 * * *"}


@pytest.fixture(scope="module", params=BACKENDS)
def host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host with the admin API on (to make a second tenant), jobs off."""
    url = POSTGRES_URL if request.param == "postgres" else None
    started = start_devhost(
        tmp_path_factory.mktemp("crons"),
        database_url=url,
        extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY},
    )
    yield started
    started.stop()


def test_create_search_and_delete_a_cron(host: DevHost) -> None:
    """POST /runs/crons returns the cron; search lists it; DELETE removes it (then 404)."""
    marker = uuid.uuid4().hex
    with host.client() as client:
        created = client.post("/runs/crons", json={**BODY, "metadata": {"m": marker}})
        assert created.status_code == 200, created.text
        cron = created.json()
        assert cron["assistant_id"] == "assistant" and cron["schedule"] == "0 9 * * *"
        assert cron["thread_id"] is None and cron["next_run_date"].endswith("09:00:00+00:00")
        found = client.post("/runs/crons/search", json={"metadata": {"m": marker}}).json()
        assert [c["cron_id"] for c in found] == [cron["cron_id"]]
        assert client.delete(f"/runs/crons/{cron['cron_id']}").status_code == 204
        assert client.post("/runs/crons/search", json={"metadata": {"m": marker}}).json() == []
        assert client.delete(f"/runs/crons/{cron['cron_id']}").status_code == 404


def test_thread_cron_is_bound_to_the_thread(host: DevHost) -> None:
    """POST /threads/{id}/runs/crons makes a cron on that thread; search by thread finds it."""
    with host.client() as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        created = client.post(f"/threads/{thread}/runs/crons", json=BODY)
        assert created.status_code == 200, created.text
        assert created.json()["thread_id"] == thread
        found = client.post("/runs/crons/search", json={"thread_id": thread}).json()
        assert [c["cron_id"] for c in found] == [created.json()["cron_id"]]


def test_invalid_crons_are_refused(host: DevHost) -> None:
    """A bad schedule is 422, an unknown agent or thread 404, all as problem+json."""
    with host.client() as client:
        bad = client.post("/runs/crons", json={**BODY, "schedule": "every day"})
        six = client.post("/runs/crons", json={**BODY, "schedule": "0 0 9 * * *"})
        agent = client.post("/runs/crons", json={**BODY, "assistant_id": "nope"})
        thread = client.post(f"/threads/{uuid.uuid4()}/runs/crons", json=BODY)
    assert (bad.status_code, six.status_code) == (422, 422)
    assert (agent.status_code, thread.status_code) == (404, 404)
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_another_tenant_cannot_see_or_delete_a_cron(host: DevHost) -> None:
    """Tenant B's search omits A's cron, deleting it is 404, and A still has it."""
    _, issued = new_tenant_with_key(host.base_url)
    with host.client() as a:
        thread = a.post("/threads", json={}).json()["thread_id"]
        cron = a.post("/runs/crons", json=BODY).json()
    with host.client(issued["key"]) as b:
        assert b.post("/runs/crons/search", json={}).json() == []
        assert b.delete(f"/runs/crons/{cron['cron_id']}").status_code == 404
        assert b.post(f"/threads/{thread}/runs/crons", json=BODY).status_code == 404
    with host.client() as a:
        ids = [c["cron_id"] for c in a.post("/runs/crons/search", json={"limit": 1000}).json()]
    assert cron["cron_id"] in ids
