"""API keys and bearer authentication."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import pytest

from shared.core.errors import Unauthorized
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.security.auth import (
    Principal,
    authenticate,
    bearer_token,
    hash_key,
    issue_api_key,
    key_prefix,
    new_api_key,
)


class TestKeyFormat:
    def test_new_key_has_scheme_prefix_and_secret(self) -> None:
        """A new key looks like asc_<12 hex>_<43 url-safe chars> and returns its prefix."""
        key, prefix = new_api_key()
        assert re.fullmatch(r"asc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
        assert key.startswith(f"asc_{prefix}_")

    def test_new_keys_differ(self) -> None:
        """Two new keys share neither prefix nor secret."""
        (a, pa), (b, pb) = new_api_key(), new_api_key()
        assert a != b and pa != pb


class TestKeyPrefix:
    def test_parses_the_prefix(self) -> None:
        """The prefix is the part between the scheme and the secret."""
        assert key_prefix("asc_abc123_secret") == "abc123"

    def test_secret_may_contain_underscores(self) -> None:
        """Underscores in the secret (token_urlsafe emits them) do not break parsing."""
        assert key_prefix("asc_abc123_se_cr_et") == "abc123"

    @pytest.mark.parametrize(
        "key", ["", "asc", "asc_abc", "asc__secret", "asc_abc_", "sk_abc_secret", "ASC_abc_s"]
    )
    def test_rejects_malformed_keys(self, key: str) -> None:
        """Keys without scheme, prefix or secret have no prefix."""
        assert key_prefix(key) is None


class TestHashKey:
    def test_is_hex_sha256(self) -> None:
        """The stored hash is the hex SHA-256 of the key."""
        assert hash_key("asc_a_b") == hashlib.sha256(b"asc_a_b").hexdigest()

    def test_differs_per_key(self) -> None:
        """Different keys hash differently."""
        assert hash_key("asc_a_b") != hash_key("asc_a_c")


class TestBearerToken:
    @pytest.mark.parametrize(
        ("header", "token"),
        [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc")],
    )
    def test_extracts_the_token(self, header: str, token: str) -> None:
        """The scheme is case-insensitive and surrounding spaces are dropped."""
        assert bearer_token(header) == token

    @pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic abc", "abc"])
    def test_rejects_other_headers(self, header: str | None) -> None:
        """Missing headers, other schemes and empty tokens give no token."""
        assert bearer_token(header) is None


@pytest.fixture
async def tenant_key() -> AsyncIterator[tuple[str, str]]:
    """A migrated SQLite database in the test's data dir with one tenant and its key."""
    await migrate(get_engine())
    async with db_session() as db:
        tenant = await repo.create_tenant(session=db, name="acme")
        key = await issue_api_key(session=db, tenant_id=tenant.id)
        await db.commit()
    yield tenant.id, key
    await get_engine().dispose()


class TestAuthenticate:
    async def test_resolves_a_valid_key_to_its_tenant(self, tenant_key: tuple[str, str]) -> None:
        """A stored key authenticates as a principal of its tenant."""
        tenant_id, key = tenant_key
        async with db_session() as db:
            principal = await authenticate(session=db, authorization=f"Bearer {key}")
        assert isinstance(principal, Principal) and principal.tenant_id == tenant_id

    async def test_rejects_a_wrong_secret(self, tenant_key: tuple[str, str]) -> None:
        """A known prefix with a wrong secret is unauthorized."""
        _, key = tenant_key
        forged = key[: key.rindex("_") + 1] + "x" * 43
        async with db_session() as db:
            with pytest.raises(Unauthorized, match="not valid"):
                await authenticate(session=db, authorization=f"Bearer {forged}")

    async def test_rejects_an_unknown_prefix(self, tenant_key: tuple[str, str]) -> None:
        """A well-formed key that was never issued is unauthorized."""
        async with db_session() as db:
            with pytest.raises(Unauthorized):
                await authenticate(session=db, authorization=f"Bearer {new_api_key()[0]}")

    async def test_rejects_a_missing_header(self, tenant_key: tuple[str, str]) -> None:
        """No Authorization header is unauthorized, with a hint on how to send the key."""
        async with db_session() as db:
            with pytest.raises(Unauthorized, match="Bearer"):
                await authenticate(session=db, authorization=None)

    async def test_only_the_hash_is_stored(self, tenant_key: tuple[str, str]) -> None:
        """The plaintext key is not stored; its SHA-256 is."""
        _, key = tenant_key
        async with db_session() as db:
            stored = await repo.find_api_key(session=db, prefix=key_prefix(key) or "")
        assert stored is not None and stored.key_hash == hash_key(key)
        assert key not in stored.model_dump_json()
