"""Field types shared by the request models of every wing, so the document and the handlers
agree (the OpenAPI document is generated from these same models)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

# Offsets past this many rows are refused (422), not passed to the database (an integer over
# 64 bits made SQL fail with a 500).
MAX_OFFSET = 1_000_000


def _not_bool(value: Any) -> Any:
    # Pydantic's lax mode turns `false` into 0; JSON Schema's integer does not include booleans.
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


# An integer as JSON Schema defines it: `3` and `3.0`, never `true`/`false` nor "3".
JsonInt = Annotated[int, BeforeValidator(_not_bool)]
