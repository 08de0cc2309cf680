"""Reusable input limits for request models: metadata size and message counts.

Use in any pydantic model:

    from shared.security.limits import Metadata, bounded_messages

    class CreateThread(BaseModel):
        metadata: Metadata = None                   # <= ASCENT_MAX_METADATA_BYTES as JSON

        @field_validator("messages")
        @classmethod
        def _count(cls, value: list[Message]) -> list[Message]:
            return bounded_messages(value)          # <= ASCENT_MAX_MESSAGES items

Errors are raised as ValueError, so `shared.api.http.read_json` answers 422 without echoing input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator

from shared.core.settings import get_settings

MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_DEPTH = 8

T = TypeVar("T")


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def bounded_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check a metadata object: at most ASCENT_MAX_METADATA_BYTES of JSON, 64 keys, depth 8."""
    if value is None:
        return None
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata may have at most {MAX_METADATA_KEYS} keys")
    if any(len(k) > MAX_METADATA_KEY_CHARS for k in value):
        raise ValueError(f"metadata keys may be at most {MAX_METADATA_KEY_CHARS} characters")
    if _depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata may nest at most {MAX_METADATA_DEPTH} levels")
    limit = get_settings().max_metadata_bytes
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise ValueError(f"metadata may be at most {limit} bytes of JSON")
    return value


def bounded_messages(value: Sequence[T]) -> Sequence[T]:
    """Check a list of messages/items holds at most ASCENT_MAX_MESSAGES entries."""
    limit = get_settings().max_messages
    if len(value) > limit:
        raise ValueError(f"at most {limit} messages are allowed")
    return value


Metadata = Annotated[dict[str, Any] | None, AfterValidator(bounded_metadata)]
"""A metadata field bounded by `bounded_metadata` (use as `metadata: Metadata = None`)."""
