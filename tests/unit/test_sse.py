"""The one SSE encoder (shared/api/sse.py) every stream frames its events with."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk

from shared.api import sse


def test_an_agent_protocol_event_has_id_event_and_one_json_data_line() -> None:
    """`id:` and `event:` lines, then compact JSON on one `data:` line, then a blank line."""
    framed = sse.encode({"text": "a\nb", "n": 1}, event="values", id="r1/7")
    assert framed == b'id: r1/7\nevent: values\ndata: {"text":"a\\nb","n":1}\n\n'


def test_an_openai_chunk_is_data_only_dumped_by_its_own_type() -> None:
    """A pydantic model is dumped by itself (no id or event line); DONE ends the stream."""
    chunk = ChatCompletionChunk(
        id="c1", object="chat.completion.chunk", created=1, model="m", choices=[]
    )
    assert sse.encode(chunk) == f"data: {chunk.model_dump_json()}\n\n".encode()
    assert sse.DONE == b"data: [DONE]\n\n"
    assert sse.KEEPALIVE.startswith(b":")


def test_a_line_break_in_an_id_or_event_is_refused() -> None:
    """A newline in `id` or `event` would start a new field, so it is refused."""
    with pytest.raises(ValueError):
        sse.encode({}, id="1\nevent: forged")
    with pytest.raises(ValueError):
        sse.encode({}, event="values\r")
