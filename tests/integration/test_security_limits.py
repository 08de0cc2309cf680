"""Reusable input limits: metadata size/shape and message counts for request models."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from shared.security.limits import Metadata, bounded_messages


class Body(BaseModel):
    """A request model using the shared limits as other endpoints would."""

    metadata: Metadata = None
    messages: list[str] = []

    @field_validator("messages")
    @classmethod
    def _count(cls, value: list[str]) -> list[str]:
        return list(bounded_messages(value))


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 KiB of metadata and 3 messages."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_MAX_METADATA_BYTES", "1024")
    monkeypatch.setenv("ASCENT_MAX_MESSAGES", "3")
    get_settings.cache_clear()


def test_metadata_within_limits_is_accepted() -> None:
    """Small metadata passes unchanged."""
    assert Body(metadata={"team": "a", "n": [1, 2]}).metadata == {"team": "a", "n": [1, 2]}


def test_oversized_metadata_is_refused() -> None:
    """Metadata over ASCENT_MAX_METADATA_BYTES of JSON is a validation error."""
    with pytest.raises(ValidationError, match="at most 1024 bytes"):
        Body(metadata={"blob": "x" * 2000})


def test_too_many_metadata_keys_are_refused() -> None:
    """More than 64 metadata keys are refused."""
    with pytest.raises(ValidationError, match="64 keys"):
        Body(metadata={f"k{i}": 1 for i in range(65)})


def test_deeply_nested_metadata_is_refused() -> None:
    """Metadata nested deeper than 8 levels is refused."""
    nested: dict[str, object] = {}
    for _ in range(10):
        nested = {"a": nested}
    with pytest.raises(ValidationError, match="nest"):
        Body(metadata=nested)


def test_too_many_messages_are_refused() -> None:
    """More than ASCENT_MAX_MESSAGES messages are refused."""
    with pytest.raises(ValidationError, match="at most 3 messages"):
        Body(messages=["a", "b", "c", "d"])
