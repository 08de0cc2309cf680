"""Live: one run through MODEL_PROVIDER=openai on a dev host (needs OPENAI_API_KEY)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LIVE_KEY, DevHost, start_devhost

pytestmark = [pytest.mark.live, pytest.mark.e2e]


@pytest.fixture
def openai_host(tmp_path: Path) -> Iterator[DevHost]:
    """A dev host on SQLite whose agents run on OpenAI with the live key."""
    assert LIVE_KEY, "conftest skips live tests without OPENAI_API_KEY"
    host = start_devhost(
        tmp_path / "data",
        extra_env={
            "MODEL_PROVIDER": "openai",
            "OPENAI_API_KEY": LIVE_KEY,
            "ASCENT_TRACE_EXPORT": "false",
        },
    )
    yield host
    host.stop()


class TestLiveOpenAI:
    def test_assistant_answers_through_openai(self, openai_host: DevHost) -> None:
        """The assistant answers an arithmetic question through OpenAI and its calculator."""
        with openai_host.client(timeout=120) as client:
            health = client.get("/health").json()
            response = client.post(
                "/agents/assistant/runs",
                json={"input": "Use your calculate tool: what is 12 * (3 + 4)?"},
            )
        assert health["model_provider"] == "openai"
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success" and "84" in body["output"]
        assert body["usage"]["total_tokens"] > 0
