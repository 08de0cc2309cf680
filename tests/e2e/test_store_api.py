"""The Agent Protocol store over real HTTP, through the dev host (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.settings import Settings
from shared.db import repo
from shared.db.engine import build_engine
from shared.security import auth
from tests.conftest import POSTGRES_URL, DevHost

pytestmark = pytest.mark.e2e


def _new_tenant_key(host: DevHost, postgres: bool) -> str:
    """Create a fresh tenant with an API key in the host's database; return the key."""

    async def create() -> str:
        url = Settings(
            DATABASE_URL=POSTGRES_URL if postgres else None,
            ASCENT_DATA_DIR=host.log_path.parent,
        ).sqlalchemy_url
        engine = build_engine(url)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as db:
                tenant_id = f"store-e2e-{uuid.uuid4().hex[:12]}"
                await repo.create_tenant(session=db, name="store e2e", tenant_id=tenant_id)
                key = await auth.issue_api_key(session=db, tenant_id=tenant_id)
                await db.commit()
                return key
        finally:
            await engine.dispose()

    return asyncio.run(create())


@pytest.fixture
def ns() -> list[str]:
    """A namespace no other test (or earlier run on the shared database) has used."""
    return ["e2e", uuid.uuid4().hex[:12]]


class TestStoreItems:
    """PUT / GET / DELETE /api/store/items."""

    def test_put_get_delete(self, devhost: DevHost, ns: list[str]) -> None:
        """An item put is read back (both namespace query forms) and then deleted."""
        with devhost.client() as http:
            body = {"namespace": ns, "key": "k1", "value": {"text": "hello"}}
            assert http.put("/store/items", json=body).status_code == 204
            got = http.get("/store/items", params={"namespace": ns, "key": "k1"})
            assert got.status_code == 200
            item = got.json()
            assert (item["namespace"], item["key"], item["value"]) == (ns, "k1", {"text": "hello"})
            assert {"created_at", "updated_at"} <= item.keys()
            dotted = http.get("/store/items", params={"namespace": ".".join(ns), "key": "k1"})
            assert dotted.json() == item
            gone = http.request("DELETE", "/store/items", json={"namespace": ns, "key": "k1"})
            assert gone.status_code == 204
            assert (
                http.get("/store/items", params={"namespace": ns, "key": "k1"}).status_code == 404
            )
            again = http.request("DELETE", "/store/items", json={"namespace": ns, "key": "k1"})
            assert again.status_code == 404

    def test_missing_item_is_404_problem(self, devhost: DevHost, ns: list[str]) -> None:
        """Getting an absent item answers 404 problem+json."""
        with devhost.client() as http:
            response = http.get("/store/items", params={"namespace": ns, "key": "nope"})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


class TestSearchAndNamespaces:
    """POST /api/store/items/search and /api/store/namespaces."""

    def test_search_by_meaning(self, devhost: DevHost, ns: list[str]) -> None:
        """A paraphrased query returns the matching item first, with a score."""
        facts = {
            "color": "My favorite color is blue",
            "home": "I live in Lisbon with my wife",
            "outage": "The payment server crashed with error E500",
        }
        with devhost.client() as http:
            for key, text in facts.items():
                body = {"namespace": [*ns, "facts"], "key": key, "value": {"text": text}}
                assert http.put("/store/items", json=body).status_code == 204
            response = http.post(
                "/store/items/search",
                json={"namespace_prefix": ns, "query": "which colour do I like best", "limit": 2},
            )
        assert response.status_code == 200
        items = response.json()["items"]
        assert [i["key"] for i in items][0] == "color"
        assert len(items) == 2
        assert items[0]["score"] > items[1]["score"]

    def test_list_namespaces(self, devhost: DevHost, ns: list[str]) -> None:
        """Namespaces come back as label arrays, filtered by prefix and cut by max_depth."""
        with devhost.client() as http:
            for sub in ("a", "b"):
                body = {"namespace": [*ns, sub], "key": "k", "value": {}}
                assert http.put("/store/items", json=body).status_code == 204
            full = http.post("/store/namespaces", json={"prefix": ns}).json()
            cut = http.post("/store/namespaces", json={"prefix": ns, "max_depth": 2}).json()
        assert full == [[*ns, "a"], [*ns, "b"]]
        assert cut == [ns]


class TestTenantIsolation:
    """Another tenant's key sees none of this tenant's store."""

    def test_other_tenant_sees_nothing(
        self, devhost: DevHost, ns: list[str], request: pytest.FixtureRequest
    ) -> None:
        """Get answers 404, search and namespace listing come back empty."""
        postgres = request.node.callspec.params.get("devhost") == "postgres"
        other = _new_tenant_key(devhost, postgres)
        with devhost.client() as http:
            body = {"namespace": ns, "key": "k", "value": {"text": "secret plans"}}
            assert http.put("/store/items", json=body).status_code == 204
        with devhost.client(other) as http:
            assert http.get("/store/items", params={"namespace": ns, "key": "k"}).status_code == 404
            search = http.post("/store/items/search", json={"query": "secret plans"})
            assert search.json() == {"items": []}
            assert http.post("/store/namespaces", json={}).json() == []


class TestBadInput:
    """Malformed or out-of-range requests get problem+json 4xx answers."""

    @pytest.mark.parametrize(
        ("method", "path", "body", "status"),
        [
            pytest.param("PUT", "/store/items", b"{not json", 400, id="put-not-json"),
            pytest.param(
                "PUT", "/store/items", {"namespace": ["a"], "key": "k"}, 422, id="no-value"
            ),
            pytest.param(
                "PUT",
                "/store/items",
                {"namespace": [], "key": "k", "value": {}},
                422,
                id="empty-ns",
            ),
            pytest.param(
                "PUT",
                "/store/items",
                {"namespace": ["a.b"], "key": "k", "value": {}},
                422,
                id="dotted-label",
            ),
            pytest.param(
                "PUT",
                "/store/items",
                {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1},
                422,
                id="negative-ttl",
            ),
            pytest.param(
                "PUT",
                "/store/items",
                {"namespace": ["a"], "key": "k", "value": {"t": "x" * 100_000}},
                413,
                id="value-too-large",
            ),
            pytest.param("POST", "/store/items/search", {"limit": 0}, 422, id="search-limit-0"),
            pytest.param(
                "POST", "/store/items/search", {"filter": {"n": {"$regex": "x"}}}, 422, id="bad-op"
            ),
            pytest.param("POST", "/store/namespaces", {"max_depth": 0}, 422, id="max-depth-0"),
            pytest.param("DELETE", "/store/items", {"namespace": ["a"]}, 422, id="delete-no-key"),
        ],
    )
    def test_rejected(
        self, devhost: DevHost, method: str, path: str, body: object, status: int
    ) -> None:
        """The request is refused with the expected status as problem+json."""
        with devhost.client() as http:
            if isinstance(body, bytes):
                response = http.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
            else:
                response = http.request(method, path, json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    def test_get_without_key_is_422(self, devhost: DevHost) -> None:
        """GET /store/items needs the key query parameter."""
        with devhost.client() as http:
            response = http.get("/store/items", params={"namespace": "a"})
        assert response.status_code == 422

    def test_no_credentials_is_401(self, devhost: DevHost, ns: list[str]) -> None:
        """Every store endpoint needs an API key."""
        with devhost.client("asc_bad_key") as http:
            http.headers.pop("Authorization")
            response = http.post("/store/namespaces", json={})
        assert response.status_code == 401
