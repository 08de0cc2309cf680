"""OpenTelemetry in one process: the span tree of a run, GenAI attributes, metrics, no content.

The providers are the SDK's in-memory span exporter and metric reader, installed with
`observability.use`; the API is the real one over ASGI (tests/engine_support.py), on SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.platform import observability
from tests.engine_support import Api, api_app, use_model

SECRET_INPUT = "my zebra-4217 question"
SECRET_OUTPUT = "the koala-7789 answer"


@dataclass
class Telemetry:
    """What the in-memory providers collected."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        """The ended spans, oldest first."""
        return list(self.spans.get_finished_spans())

    def metric_points(self) -> dict[str, list[Any]]:
        """Every metric's data points by name."""
        data = self.metrics.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """In-memory span exporter and metric reader as this process's telemetry."""
    spans = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    observability.use(tracer, MeterProvider(metric_readers=[reader]))
    yield Telemetry(spans, reader)
    observability.use(None, None)


@pytest.fixture
async def api(
    telemetry: Telemetry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The in-process API on SQLite."""
    cache = tmp_path_factory.getbasetemp() / "engine-template"
    cache.mkdir(exist_ok=True)
    async with api_app(None, monkeypatch, tmp_path, cache) as app:
        yield app


def tool_then_answer(answer: str) -> ScriptedModel:
    """A script: call the calculator, then answer."""
    return ScriptedModel(
        [
            [function_call("calculate", {"expression": "6 * 7"}, call_id="c1")],
            [assistant_message(answer)],
        ],
        emit_traces=True,  # its model spans, as the SDK's own models make them
    )


def by_name(spans: list[ReadableSpan], prefix: str) -> ReadableSpan:
    """The one span whose name starts with `prefix`."""
    found = [s for s in spans if s.name.startswith(prefix)]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    """The span id of a span's parent."""
    return span.parent.span_id if span.parent is not None else None


async def test_a_run_is_one_trace_from_request_to_model_and_tool(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP request > run > agent > model call and tool call, one trace, GenAI attributes."""
    use_model(monkeypatch, tool_then_answer("It is 42."))
    reply = await api.client.post("/agents/assistant/runs", json={"input": "what is 6 * 7?"})
    assert reply.status_code == 200, reply.text
    spans = telemetry.finished()
    request = by_name(spans, "POST ")
    run = by_name(spans, "run assistant")
    agent = by_name(spans, "invoke_agent assistant")
    tool = by_name(spans, "execute_tool calculate")
    models = [s for s in spans if s.name.startswith("chat")]
    assert len({s.context.trace_id for s in spans}) == 1
    assert parent_of(run) == request.context.span_id
    assert parent_of(agent) == run.context.span_id
    assert parent_of(tool) == agent.context.span_id
    assert len(models) == 2 and all(parent_of(m) == agent.context.span_id for m in models)
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "calculate"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    model = models[0].attributes
    assert model is not None and model["gen_ai.operation.name"] == "chat"
    assert model["gen_ai.provider.name"] == "ascent.offline"
    assert run.attributes is not None and run.attributes["ascent.run.status"] == "success"
    assert run.attributes["gen_ai.agent.name"] == "assistant"


async def test_run_and_http_metrics_are_recorded(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run counts as started and ended by agent, status and entry point; HTTP is timed."""
    use_model(monkeypatch, tool_then_answer("It is 42."))
    reply = await api.client.post("/agents/assistant/runs", json={"input": "what is 6 * 7?"})
    assert reply.status_code == 200, reply.text
    points = telemetry.metric_points()
    ended = points["ascent.runs.ended"]
    assert [dict(p.attributes) for p in ended] == [
        {
            "gen_ai.agent.name": "assistant",
            "ascent.entry_point": "create_agent_run",
            "ascent.run.status": "success",
        }
    ]
    assert sum(p.value for p in points["ascent.runs.started"]) == 1
    assert points["ascent.run.duration"][0].count == 1
    routes = {p.attributes["http.route"] for p in points["http.server.request.duration"]}
    assert "create_agent_run" in routes


async def test_no_span_or_log_carries_content_when_capture_is_off(
    api: Api,
    telemetry: Telemetry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With content capture off, the user's input and the model's output are on no span or log."""
    use_model(monkeypatch, tool_then_answer(SECRET_OUTPUT))
    caplog.set_level(logging.DEBUG)
    reply = await api.client.post("/agents/assistant/runs", json={"input": SECRET_INPUT})
    assert reply.status_code == 200, reply.text
    assert SECRET_OUTPUT in reply.text  # the run did answer with it
    spans = telemetry.finished()
    assert any(s.name.startswith("chat") for s in spans)
    for span in spans:
        text = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
        assert "zebra-4217" not in text and "koala-7789" not in text, span.name
    for record in caplog.records:
        line = record.getMessage()
        assert "zebra-4217" not in line and "koala-7789" not in line, line
