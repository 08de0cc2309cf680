"""Users within a tenant see the threads they own or were granted; tenant-wide principals (API
keys, users with the tenant admin role) see every thread. Against a live dev host, with bearer
tokens signed by a loopback JWKS and ACA client principals.

A thread a user may not see answers exactly like a missing one: the same 404 problem, with the
same body once the id is swapped. The route-table matrix below checks that for every route that
takes a thread, run, review or cron id, so a new route is covered the day it is added.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import function_app
from shared.api.openapi import app_functions
from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import pending_review, start_paused_run
from tests.e2e.problems import assert_openai_error, assert_problem
from tests.e2e.protocol_helpers import new_thread
from tests.security_support import (
    ADMIN_KEY,
    JwksServer,
    admin,
    make_token,
    new_tenant_with_key,
    public_jwk,
    rsa_key,
)

pytestmark = pytest.mark.e2e

AUDIENCE = "api://ascent-thread-owners-test"
ADMIN_ROLE = "Ascent.TenantAdmin"  # ASCENT_TENANT_ADMIN_ROLE's default
ASK = {"agent_id": "assistant", "input": "What is 6*7?"}


@dataclass
class Tenant:
    """A fresh tenant on a dev host: its API key and an identity provider for its users."""

    host: DevHost
    tenant_id: str
    key: str
    signing_key: rsa.RSAPrivateKey
    kid: str
    entra_tid: str
    issuer: str

    def token(self, user: str, *roles: str) -> str:
        """A valid bearer token for `user` of the tenant, carrying these app roles."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "tid": self.entra_tid,
            "oid": user,
            "sub": user,
        }
        if roles:
            claims["roles"] = list(roles)
        return make_token(self.signing_key, self.kid, **claims)

    def user(self, user: str, *roles: str) -> httpx.Client:
        """A client acting as `user` (with these app roles) through a bearer token."""
        return self.host.client(self.token(user, *roles))

    def api_key(self) -> httpx.Client:
        """A client acting with the tenant's API key (tenant-wide)."""
        return self.host.client(self.key)

    def aca(self, user: str, *roles: str) -> httpx.Client:
        """A client acting as `user` through an ACA built-in auth client principal header."""
        claims = [
            {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": self.entra_tid},
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user},
            {"typ": "aud", "val": AUDIENCE},
            *({"typ": "roles", "val": role} for role in roles),
        ]
        data = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
        header = base64.b64encode(json.dumps(data).encode()).decode()
        return httpx.Client(
            base_url=self.host.base_url, headers={"X-MS-CLIENT-PRINCIPAL": header}, timeout=30.0
        )


@pytest.fixture(scope="module", params=BACKENDS)
def tenant(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenant]:
    """A dev host (SQLite, and Postgres when set) trusting ACA auth, with a new tenant whose
    identity provider is a JWKS server on loopback."""
    url = POSTGRES_URL if request.param == "postgres" else None
    key, kid, entra_tid = rsa_key(), "kid-owners", str(uuid.uuid4())
    issuer = f"https://login.microsoftonline.com/{entra_tid}/v2.0"
    with JwksServer(keys=[public_jwk(key, kid)]).running() as jwks:
        data_dir: Path = tmp_path_factory.mktemp("owners")
        env = {"ASCENT_ADMIN_KEY": ADMIN_KEY, "ASCENT_TRUST_ACA_AUTH": "true"}
        host = start_devhost(data_dir, database_url=url, extra_env=env)
        try:
            tenant_id, issued = new_tenant_with_key(host.base_url)
            config = {
                "issuer": issuer,
                "audience": AUDIENCE,
                "jwks_url": jwks.url,
                "entra_tenant_id": entra_tid,
            }
            with admin(host.base_url) as client:
                saved = client.put(f"/platform/tenants/{tenant_id}/identity", json=config)
            assert saved.status_code == 200, saved.text
            yield Tenant(host, tenant_id, issued["key"], key, kid, entra_tid, issuer)
        finally:
            host.stop()


def someone(name: str) -> str:
    """A user id no other test uses (tests share the module's tenant)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def run_on(client: httpx.Client, thread_id: str, **extra: Any) -> dict[str, Any]:
    """Run the assistant on the thread to its end; return the run."""
    done = client.post(f"/threads/{thread_id}/runs/wait", json={**ASK, **extra})
    assert done.status_code == 200, done.text
    run: dict[str, Any] = done.json()["run"]
    assert run["status"] == "success", run
    return run


def assert_hidden(
    client: httpx.Client, method: str, template: str, thread_id: str, body: Any = None
) -> None:
    """The request answers for this thread exactly what it answers for a missing one: 404."""
    missing = str(uuid.uuid4())
    probe = client.request(method, template.format(thread_id), json=body)
    baseline = client.request(method, template.format(missing), json=body)
    assert_problem(probe, 404, "not-found")
    assert probe.json() == json.loads(baseline.text.replace(missing, thread_id))


def search_ids(client: httpx.Client, path: str, marker: str, field: str) -> set[str]:
    """The ids (`field`) a search finds among the objects tagged with this marker."""
    found = client.post(path, json={"metadata": {"marker": marker}, "limit": 1000})
    assert found.status_code == 200, found.text
    return {str(item[field]) for item in found.json()}


# --- visibility ------------------------------------------------------------------------------


def test_a_user_sees_the_threads_they_create(tenant: Tenant) -> None:
    """A user reads back their own thread, its history and its runs."""
    with tenant.user(someone("alice")) as alice:
        thread_id = new_thread(alice)
        run = run_on(alice, thread_id)
        assert alice.get(f"/threads/{thread_id}").status_code == 200
        assert alice.get(f"/threads/{thread_id}/messages").json()["items"]
        assert alice.get(f"/threads/{thread_id}/history").status_code == 200
        assert [r["run_id"] for r in alice.get(f"/threads/{thread_id}/runs").json()] == [
            run["run_id"]
        ]


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        pytest.param("GET", "/threads/{}", None, id="get"),
        pytest.param("GET", "/threads/{}/messages", None, id="messages"),
        pytest.param("GET", "/threads/{}/history", None, id="history"),
        pytest.param("GET", "/threads/{}/runs", None, id="runs"),
        pytest.param("POST", "/threads/{}/runs/wait", ASK, id="run"),
        pytest.param("PATCH", "/threads/{}", {"metadata": {"x": 1}}, id="patch"),
        pytest.param("POST", "/threads/{}/copy", None, id="copy"),
        pytest.param("DELETE", "/threads/{}", None, id="delete"),
    ],
)
def test_another_users_thread_answers_like_a_missing_one(
    tenant: Tenant, method: str, template: str, body: Any
) -> None:
    """Another user of the same tenant gets the missing-thread 404, body and all."""
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        thread_id = new_thread(alice)
        run_on(alice, thread_id)
        assert_hidden(bob, method, template, thread_id, body)
        assert alice.get(f"/threads/{thread_id}/messages").json()["items"]


def test_another_users_runs_answer_like_missing_ones(tenant: Tenant) -> None:
    """Another user's run id is a 404 on every run path, and their runs are not searchable."""
    marker = uuid.uuid4().hex
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        thread_id = new_thread(alice)
        run = run_on(alice, thread_id, metadata={"marker": marker})
        assert_hidden(bob, "GET", "/runs/{}", run["run_id"])
        assert_hidden(bob, "GET", "/runs/{}/wait", run["run_id"])
        assert search_ids(bob, "/runs/search", marker, "run_id") == set()
        assert search_ids(alice, "/runs/search", marker, "run_id") == {run["run_id"]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/agents/assistant/runs", {"input": "Hi"}, id="simple-run"),
        pytest.param("/runs/wait", ASK, id="protocol-run"),
        pytest.param("/runs/search", {}, id="run-search"),
        pytest.param("/runs/crons", {**ASK, "schedule": "0 0 1 1 *"}, id="cron"),
    ],
)
def test_a_body_naming_another_users_thread_is_refused(
    tenant: Tenant, path: str, body: dict[str, Any]
) -> None:
    """Naming another user's thread in a request body is a 404 (or finds nothing)."""
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        thread_id = new_thread(alice)
        run_on(alice, thread_id)
        answer = bob.post(path, json={**body, "thread_id": thread_id})
    if path == "/runs/search":
        assert answer.status_code == 200 and answer.json() == []
    else:
        assert_problem(answer, 404, "not-found")


def test_threads_of_api_keys_are_hidden_from_users(tenant: Tenant) -> None:
    """A thread an API key created (no owner) is invisible to a user without a grant."""
    with tenant.api_key() as key, tenant.user(someone("alice")) as alice:
        thread_id = new_thread(key)
        assert_hidden(alice, "GET", "/threads/{}", thread_id)


def test_search_returns_only_own_and_granted_threads(tenant: Tenant) -> None:
    """A user's thread search finds their own and granted threads, nobody else's."""
    marker = uuid.uuid4().hex
    tag = {"metadata": {"marker": marker}}
    alice_id, carol_id = someone("alice"), someone("carol")
    with (
        tenant.user(alice_id) as alice,
        tenant.user(someone("bob")) as bob,
        tenant.user(carol_id) as carol,
        tenant.api_key() as key,
    ):
        own = new_thread(alice, **tag)
        new_thread(bob, **tag)
        granted = new_thread(carol, **tag)
        new_thread(key, **tag)
        assert carol.put(f"/threads/{granted}/grants/{alice_id}").status_code == 200
        assert search_ids(alice, "/threads/search", marker, "thread_id") == {own, granted}


# --- grants ----------------------------------------------------------------------------------


def test_a_grant_makes_the_thread_visible(tenant: Tenant) -> None:
    """Once the owner grants a user the thread, that user reads, lists and runs on it."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        run = run_on(alice, thread_id)
        granted = alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        assert granted.status_code == 200, granted.text
        assert granted.json()["user_id"] == bob_id
        assert bob.get(f"/threads/{thread_id}").status_code == 200
        assert bob.get(f"/threads/{thread_id}/messages").json()["items"]
        assert bob.get(f"/runs/{run['run_id']}").status_code == 200
        assert run_on(bob, thread_id)["thread_id"] == thread_id


def test_revoking_a_grant_hides_the_thread_again(tenant: Tenant) -> None:
    """After the owner revokes the grant, the user gets the missing-thread 404 again."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        assert bob.get(f"/threads/{thread_id}").status_code == 200
        revoked = alice.delete(f"/threads/{thread_id}/grants/{bob_id}")
        assert revoked.status_code == 204, revoked.text
        assert_hidden(bob, "GET", "/threads/{}", thread_id)


def test_granting_twice_keeps_one_grant(tenant: Tenant) -> None:
    """PUT of a grant is idempotent: the second answers the same grant, and one is listed."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice:
        thread_id = new_thread(alice)
        first = alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        second = alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        listed = alice.get(f"/threads/{thread_id}/grants")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert [g["user_id"] for g in listed.json()["grants"]] == [bob_id]


def test_revoking_a_missing_grant_is_fine(tenant: Tenant) -> None:
    """DELETE of a grant that does not exist is 204 too (revocation is idempotent)."""
    with tenant.user(someone("alice")) as alice:
        thread_id = new_thread(alice)
        assert alice.delete(f"/threads/{thread_id}/grants/{someone('x')}").status_code == 204


def test_the_grant_list_names_the_owner_and_the_granter(tenant: Tenant) -> None:
    """GET grants shows the owner and, per grant, who granted it."""
    alice_id, bob_id = someone("alice"), someone("bob")
    with tenant.user(alice_id) as alice:
        thread_id = new_thread(alice)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        listed = alice.get(f"/threads/{thread_id}/grants").json()
    assert listed["owner_id"] == alice_id
    assert [(g["user_id"], g["granted_by"]) for g in listed["grants"]] == [(bob_id, alice_id)]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "grants"), ("PUT", "grants/{carol}"), ("DELETE", "grants/{bob}")],
)
def test_a_grantee_may_not_manage_grants(tenant: Tenant, method: str, path: str) -> None:
    """A user who sees the thread through a grant gets 403 on its grant endpoints."""
    bob_id, carol_id = someone("bob"), someone("carol")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        answer = bob.request(
            method, f"/threads/{thread_id}/" + path.format(bob=bob_id, carol=carol_id)
        )
        assert_problem(answer, 403, "forbidden")
        assert [
            g["user_id"] for g in alice.get(f"/threads/{thread_id}/grants").json()["grants"]
        ] == [bob_id]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "grants"), ("PUT", "grants/{bob}"), ("DELETE", "grants/{bob}")],
)
def test_a_user_who_does_not_see_the_thread_gets_404_on_its_grants(
    tenant: Tenant, method: str, path: str
) -> None:
    """Grant endpoints of another user's thread answer like those of a missing thread."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        assert_hidden(bob, method, "/threads/{}/" + path.format(bob=bob_id), thread_id)


def test_deleting_a_shared_thread_deletes_its_grants(tenant: Tenant) -> None:
    """The owner deletes a thread that has grants (204); the grantee then gets 404."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        run_on(alice, thread_id)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        deleted = alice.delete(f"/threads/{thread_id}")
        assert deleted.status_code == 204, deleted.text
        assert_hidden(bob, "GET", "/threads/{}", thread_id)


def test_a_grantee_may_delete_the_thread(tenant: Tenant) -> None:
    """A grant gives full use of the thread, deletion included."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        assert bob.delete(f"/threads/{thread_id}").status_code == 204
        assert alice.get(f"/threads/{thread_id}").status_code == 404


def test_a_copy_belongs_to_the_copier(tenant: Tenant) -> None:
    """A grantee's copy is theirs: listed with them as owner, hidden from the original owner."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        thread_id = new_thread(alice)
        run_on(alice, thread_id)
        alice.put(f"/threads/{thread_id}/grants/{bob_id}")
        copied = bob.post(f"/threads/{thread_id}/copy")
        assert copied.status_code == 200, copied.text
        copy_id = copied.json()["thread_id"]
        assert copied.json()["messages"]
        assert bob.get(f"/threads/{copy_id}/grants").json()["owner_id"] == bob_id
        assert_hidden(alice, "GET", "/threads/{}", copy_id)


# --- tenant-wide principals ------------------------------------------------------------------


def test_an_api_key_sees_every_users_thread(tenant: Tenant) -> None:
    """The tenant's API key reads and finds every user's threads."""
    marker = uuid.uuid4().hex
    with (
        tenant.user(someone("alice")) as alice,
        tenant.user(someone("bob")) as bob,
        tenant.api_key() as key,
    ):
        mine = new_thread(alice, metadata={"marker": marker})
        theirs = new_thread(bob, metadata={"marker": marker})
        assert key.get(f"/threads/{mine}").status_code == 200
        assert search_ids(key, "/threads/search", marker, "thread_id") == {mine, theirs}


def test_an_api_key_may_share_its_thread_with_a_user(tenant: Tenant) -> None:
    """An API key grants a user its (ownerless) thread, which the user then sees."""
    alice_id = someone("alice")
    with tenant.api_key() as key, tenant.user(alice_id) as alice:
        thread_id = new_thread(key)
        assert key.put(f"/threads/{thread_id}/grants/{alice_id}").status_code == 200
        assert alice.get(f"/threads/{thread_id}").status_code == 200
        listed = key.get(f"/threads/{thread_id}/grants").json()
    assert listed["owner_id"] is None
    assert listed["grants"][0]["granted_by"].startswith("key:")


def test_a_tenant_admin_sees_every_thread(tenant: Tenant) -> None:
    """A user whose token carries the admin role reads and finds every thread of the tenant."""
    marker = uuid.uuid4().hex
    with (
        tenant.user(someone("alice")) as alice,
        tenant.api_key() as key,
        tenant.user(someone("admin"), ADMIN_ROLE) as boss,
    ):
        users = new_thread(alice, metadata={"marker": marker})
        keys = new_thread(key, metadata={"marker": marker})
        assert boss.get(f"/threads/{users}/messages").status_code == 200
        assert search_ids(boss, "/threads/search", marker, "thread_id") == {users, keys}


def test_a_tenant_admin_manages_any_threads_grants(tenant: Tenant) -> None:
    """A tenant admin grants another user's thread to a third user."""
    carol_id = someone("carol")
    with (
        tenant.user(someone("alice")) as alice,
        tenant.user(someone("admin"), ADMIN_ROLE) as boss,
        tenant.user(carol_id) as carol,
    ):
        thread_id = new_thread(alice)
        assert boss.put(f"/threads/{thread_id}/grants/{carol_id}").status_code == 200
        assert carol.get(f"/threads/{thread_id}").status_code == 200


def test_another_role_is_not_the_admin_role(tenant: Tenant) -> None:
    """A token with other roles (or the admin role's name in other case) stays a plain user."""
    with (
        tenant.user(someone("alice")) as alice,
        tenant.user(someone("bob"), "Ascent.Reader", ADMIN_ROLE.lower()) as bob,
    ):
        thread_id = new_thread(alice)
        assert_hidden(bob, "GET", "/threads/{}", thread_id)


def test_an_aca_principal_with_the_admin_role_sees_every_thread(tenant: Tenant) -> None:
    """An ACA client principal whose role claims include the admin role is tenant-wide."""
    with tenant.user(someone("alice")) as alice, tenant.aca(someone("admin"), ADMIN_ROLE) as boss:
        thread_id = new_thread(alice)
        assert boss.get(f"/threads/{thread_id}").status_code == 200


def test_an_aca_principal_without_the_role_sees_only_its_own(tenant: Tenant) -> None:
    """An ACA client principal without the admin role sees its own threads, not another's."""
    with tenant.user(someone("alice")) as alice, tenant.aca(someone("bob")) as bob:
        theirs = new_thread(alice)
        mine = new_thread(bob)
        assert bob.get(f"/threads/{mine}").status_code == 200
        assert_hidden(bob, "GET", "/threads/{}", theirs)


# --- what hangs off a thread -----------------------------------------------------------------


def test_a_users_stateless_run_stays_visible_to_them(tenant: Tenant) -> None:
    """A run without a thread (deleted when it ended) is still the user's to read, not others'."""
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        done = alice.post("/runs/wait", json=ASK)
        assert done.status_code == 200, done.text
        run_id = done.json()["run"]["run_id"]
        assert alice.get(f"/runs/{run_id}").status_code == 200
        assert_hidden(bob, "GET", "/runs/{}", run_id)


def test_reviews_follow_their_thread(tenant: Tenant) -> None:
    """A paused run's review is listed for its thread's owner and grantees, nobody else."""
    bob_id = someone("bob")
    with tenant.user(someone("alice")) as alice, tenant.user(bob_id) as bob:
        paused = start_paused_run(alice)
        review = pending_review(alice, paused["run_id"])
        listed = bob.get("/reviews", params={"limit": 1000}).json()
        assert review["review_id"] not in {r["review_id"] for r in listed}
        assert_hidden(bob, "GET", "/reviews/{}", review["review_id"])
        alice.put(f"/threads/{paused['thread_id']}/grants/{bob_id}")
        assert bob.get(f"/reviews/{review['review_id']}").status_code == 200


def test_crons_of_another_user_are_hidden(tenant: Tenant) -> None:
    """A user's cron is neither found nor deletable by another user of the tenant."""
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        cron = alice.post("/runs/crons", json={**ASK, "schedule": "0 0 1 1 *"})
        assert cron.status_code == 200, cron.text
        cron_id = cron.json()["cron_id"]
        found = bob.post("/runs/crons/search", json={"limit": 1000}).json()
        assert cron_id not in {c["cron_id"] for c in found}
        assert_hidden(bob, "DELETE", "/runs/crons/{}", cron_id)
        assert cron_id in {
            c["cron_id"] for c in alice.post("/runs/crons/search", json={"limit": 1000}).json()
        }


def test_openai_conversations_are_per_signed_in_user(tenant: Tenant) -> None:
    """Two users sending the same OpenAI `user` get two conversations; neither reads the other's."""
    request = {
        "model": "assistant",
        "user": "shared-name",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        first = alice.post("/v1/chat/completions", json=request)
        second = bob.post("/v1/chat/completions", json=request)
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        theirs = first.headers["X-Ascent-Thread-Id"]
        assert second.headers["X-Ascent-Thread-Id"] != theirs
        header = {"X-Ascent-Thread-Id": theirs}
        assert_openai_error(bob.post("/v1/chat/completions", json=request, headers=header), 404)


def test_another_users_response_looks_missing(tenant: Tenant) -> None:
    """Bob gets for Alice's response, its input items, its cancel and an approval of her paused
    response exactly the 404 he gets for a response that does not exist."""
    with tenant.user(someone("alice")) as alice, tenant.user(someone("bob")) as bob:
        paused = alice.post(
            "/v1/responses", json={"model": "billing", "input": "please issue a refund of 40"}
        )
        assert paused.status_code == 200, paused.text
        real = paused.json()
        [request] = [i for i in real["output"] if i["type"] == "mcp_approval_request"]
        missing = f"resp_{uuid.uuid4().hex}"
        approve = {
            "model": "billing",
            "input": [
                {
                    "type": "mcp_approval_response",
                    "approval_request_id": request["id"],
                    "approve": True,
                }
            ],
        }
        for method, path, body in [
            ("GET", "/v1/responses/{}", None),
            ("GET", "/v1/responses/{}/input_items", None),
            ("POST", "/v1/responses/{}/cancel", None),
            ("DELETE", "/v1/responses/{}", None),
            ("POST", "/v1/responses", {**approve, "previous_response_id": "{}"}),
        ]:

            def sent(
                value: str, method: str = method, path: str = path, body: Any = body
            ) -> httpx.Response:
                filled = json.loads(json.dumps(body).replace("{}", value)) if body else None
                return bob.request(method, path.format(value), json=filled)

            probe, baseline = sent(real["id"]), sent(missing)
            assert_openai_error(probe, 404, "not-found")
            assert probe.text == baseline.text.replace(missing, real["id"])
        assert alice.get(f"/v1/responses/{real['id']}").json()["status"] == "completed"


# --- the route-table matrix ------------------------------------------------------------------

PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")
# Ids of objects that hang off a user's thread; `user_id` names a grantee, not an object.
OWNED = ("thread_id", "run_id", "review_id", "cron_id")
BODIES = {
    "runs": ASK,
    "runs/wait": ASK,
    "runs/stream": ASK,
    "runs/crons": {**ASK, "schedule": "0 0 1 1 *"},
    "decision": {"decision": "reject", "comment": "probe"},
    "{thread_id}": {"metadata": {"probe": True}},
}


def owned_routes() -> list[Any]:
    """(method, template) of every HTTP route that takes a thread, run, review or cron id."""
    cases = []
    for function in app_functions(function_app.app):
        trigger: Any = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        template = str(trigger.route or function.get_function_name())
        if not set(PARAM.findall(template)) & set(OWNED):
            continue
        for method in trigger.methods or ["GET"]:
            verb = str(getattr(method, "value", method)).upper()
            cases.append(pytest.param(verb, template, id=f"{verb} {template}"))
    return cases


@dataclass
class Alice:
    """A user's thread with a run, a thread cron and a paused run's review, and another user."""

    owned: dict[str, str]
    alice: str
    bob: str


@pytest.fixture(scope="module")
def alices(tenant: Tenant) -> Alice:
    """Alice's objects, made once for the matrix."""
    alice_id, bob_id = someone("alice"), someone("bob")
    with tenant.user(alice_id) as alice:
        thread_id = new_thread(alice)
        run = run_on(alice, thread_id)
        cron = alice.post(f"/threads/{thread_id}/runs/crons", json={**ASK, "schedule": "0 0 1 1 *"})
        assert cron.status_code == 200, cron.text
        paused = start_paused_run(alice)
        review = pending_review(alice, paused["run_id"])
    owned = {
        "thread_id": thread_id,
        "run_id": run["run_id"],
        "cron_id": cron.json()["cron_id"],
        "review_id": review["review_id"],
    }
    return Alice(owned, alice_id, bob_id)


@pytest.mark.parametrize(("method", "template"), owned_routes())
def test_another_users_ids_look_missing_on_every_route(
    tenant: Tenant, alices: Alice, method: str, template: str
) -> None:
    """Bob gets for Alice's ids exactly the answer he gets for ids that do not exist."""
    names = PARAM.findall(template)
    unknown = [n for n in names if n not in OWNED and n not in ("user_id", "checkpoint_id")]
    if unknown:
        pytest.skip(f"not a user-owned route: parameters {unknown}")
    missing = {n: str(uuid.uuid4()) for n in names if n in OWNED or n == "checkpoint_id"}
    # A checkpoint hangs off its thread: Alice's finished run's state is one.
    real = {n: alices.owned["run_id" if n == "checkpoint_id" else n] for n in missing}
    fixed = {"user_id": alices.bob}

    def fill(values: dict[str, str]) -> str:
        return "/" + PARAM.sub(lambda m: {**fixed, **values}[m.group(1)], template)

    body = None
    if method in {"POST", "PUT", "PATCH"}:
        body = next((b for s, b in BODIES.items() if template.endswith(s)), {})
    with tenant.user(alices.bob) as bob:
        baseline = bob.request(method, fill(missing), json=body)
        probe = bob.request(method, fill(real), json=body)
    expected = baseline.text
    for name, value in missing.items():
        expected = expected.replace(value, real[name])
    assert probe.status_code == baseline.status_code, (probe.status_code, probe.text)
    assert probe.status_code not in range(200, 300)
    assert probe.text == expected


def test_alices_objects_survive_the_matrix(tenant: Tenant, alices: Alice) -> None:
    """After Bob's probes, Alice still has her thread's messages, cron and pending review."""
    with tenant.user(alices.alice) as alice:
        thread_id = alices.owned["thread_id"]
        assert alice.get(f"/threads/{thread_id}/messages").json()["items"]
        crons = alice.post("/runs/crons/search", json={"thread_id": thread_id}).json()
        assert [c["cron_id"] for c in crons] == [alices.owned["cron_id"]]
        review = alice.get(f"/reviews/{alices.owned['review_id']}").json()
        assert review["status"] == "pending"
