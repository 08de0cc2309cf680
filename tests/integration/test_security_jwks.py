"""JWKS retrieval and caching: refresh on an unknown kid, bounded refetches, safe URLs."""

from __future__ import annotations

import pytest

from shared.core.errors import Unauthorized, ValidationFailed
from shared.security.jwt_auth import JwksCache, check_jwks_url
from tests.security_support import JwksServer, public_jwk, rsa_key


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


async def test_known_kid_is_served_from_cache() -> None:
    """A second lookup of a known kid does not refetch the JWKS."""
    with JwksServer(keys=[public_jwk(rsa_key(), "k1")]).running() as server:
        cache = JwksCache(clock=Clock())
        await cache.signing_key(server.url, "k1")
        await cache.signing_key(server.url, "k1")
    assert server.hits == 1


async def test_unknown_kid_triggers_a_refresh() -> None:
    """After the IdP rotates keys, a token with the new kid is verified after one refetch."""
    clock = Clock()
    with JwksServer(keys=[public_jwk(rsa_key(), "old")]).running() as server:
        cache = JwksCache(clock=clock, min_refresh=30)
        await cache.signing_key(server.url, "old")
        server.keys = [public_jwk(rsa_key(), "new")]
        clock.now = 31
        key = await cache.signing_key(server.url, "new")
    assert (key.key_id, server.hits) == ("new", 2)


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    """Bogus kids within the minimum refresh interval do not hammer the IdP."""
    clock = Clock()
    with JwksServer(keys=[public_jwk(rsa_key(), "k1")]).running() as server:
        cache = JwksCache(clock=clock, min_refresh=30)
        await cache.signing_key(server.url, "k1")
        for _ in range(5):
            with pytest.raises(Unauthorized):
                await cache.signing_key(server.url, "bogus")
    assert server.hits == 1


async def test_keys_expire_after_ttl() -> None:
    """Cached keys are refetched once the TTL has passed."""
    clock = Clock()
    with JwksServer(keys=[public_jwk(rsa_key(), "k1")]).running() as server:
        cache = JwksCache(clock=clock, ttl=100)
        await cache.signing_key(server.url, "k1")
        clock.now = 101
        await cache.signing_key(server.url, "k1")
    assert server.hits == 2


def test_plain_http_jwks_url_is_refused_off_loopback() -> None:
    """A JWKS URL must be https, except on loopback."""
    with pytest.raises(ValidationFailed):
        check_jwks_url("http://login.example.com/keys")


def test_https_jwks_url_is_accepted() -> None:
    """An https JWKS URL is accepted."""
    url = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    assert check_jwks_url(url) == url
