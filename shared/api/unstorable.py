"""The JSON boundary's one rule for text no database can hold: lone surrogates and NUL.

`json.loads` accepts `"\\ud800"` (a lone UTF-16 surrogate) and `"\\u0000"`; neither survives
storage (psycopg cannot encode a surrogate, Postgres text refuses NUL), and a row that did get
written would fail every later read. `read_json` (shared/api/http.py) calls `find_unstorable`
on every decoded body before any handler sees it, so every endpoint refuses such text with a
400 naming the field, and nothing is written first. Object keys are checked as well as values.
"""

from __future__ import annotations

import re
from typing import Any

# A UTF-16 surrogate code point (U+D800..U+DFFF): Python strings can hold one, UTF-8 cannot.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Location = list[str | int]


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL or a lone surrogate), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone surrogate"


def find_unstorable(value: Any, loc: Location | None = None) -> tuple[Location, str] | None:
    """The location (JSON path) and reason of the first unstorable string in a decoded JSON
    value, or None when every string and key can be stored."""
    here: Location = loc or []
    # An explicit stack, not recursion: json.loads already bounds the depth, but a deep body
    # must not cost a second recursion limit here.
    stack: list[tuple[Location, Any]] = [(here, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            reason = unstorable_reason(node)
            if reason is not None:
                return path, reason
        elif isinstance(node, dict):
            for key, child in node.items():
                reason = unstorable_reason(key)
                if reason is not None:
                    return [*path, key], f"key {reason}"
                stack.append(([*path, key], child))
        elif isinstance(node, list):
            stack.extend(([*path, i], child) for i, child in enumerate(node))
    return None


def printable_location(loc: Location) -> list[str | int]:
    """A location safe to put in a JSON answer (surrogates and NULs in keys escaped)."""
    # Neither a surrogate nor a NUL is echoed back: both as escapes (`\\udfff`, `\\x00`).
    return [
        p.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        if isinstance(p, str)
        else p
        for p in loc
    ]
