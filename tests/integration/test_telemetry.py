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
    """A run counts as started and ended by agent, status and entry point, its tokens in and
    out are counted (the offline model reports usage), and HTTP requests are timed."""
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
    assert points["ascent.run.time_to_first_token"][0].count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points["ascent.run.tokens"]}
    assert set(tokens) == {"input", "output"} and min(tokens.values()) > 0
    routes = {p.attributes["http.route"] for p in points["http.server.request.duration"]}
    assert "create_agent_run" in routes


def carried(spans: list[ReadableSpan], text: str) -> list[str]:
    """The names of the spans with `text` in an attribute or event."""
    return [
        s.name
        for s in spans
        if text in repr(dict(s.attributes or {})) + repr([e.attributes for e in s.events])
    ]


async def test_no_span_or_log_carries_content_when_capture_is_off(
    api: Api, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """With content capture off (the default), the user's input and the model's output are on
    no span and no log line (the offline model, which fills its model spans like the SDK's)."""
    caplog.set_level(logging.DEBUG)
    reply = await api.client.post("/agents/assistant/runs", json={"input": SECRET_INPUT})
    assert reply.status_code == 200, reply.text
    output = reply.json()["output"]
    assert len(output) > 20
    spans = telemetry.finished()
    assert any(s.name.startswith("chat") for s in spans)
    assert carried(spans, "zebra-4217") == [] and carried(spans, output) == []
    for record in caplog.records:
        line = record.getMessage()
        assert "zebra-4217" not in line and output not in line, line


async def test_content_capture_puts_messages_on_the_model_spans(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASCENT_OTEL_CAPTURE_CONTENT=true records the input and output messages (GenAI names)."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_OTEL_CAPTURE_CONTENT", "true")
    get_settings.cache_clear()
    reply = await api.client.post("/agents/assistant/runs", json={"input": SECRET_INPUT})
    assert reply.status_code == 200, reply.text
    spans = telemetry.finished()
    model = [s for s in spans if s.name.startswith("chat")][0]
    assert model.attributes is not None
    assert "zebra-4217" in str(model.attributes["gen_ai.input.messages"])
    assert "gen_ai.output.messages" in model.attributes


async def test_the_runs_cloudevents_carry_its_trace(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every outbox CloudEvent of a run carries a `traceparent` in the run's trace."""
    from sqlmodel import select

    from shared.db.engine import db_session
    from shared.db.event_models import OutboxEvent

    use_model(monkeypatch, tool_then_answer("It is 42."))
    reply = await api.client.post("/agents/assistant/runs", json={"input": "what is 6 * 7?"})
    assert reply.status_code == 200, reply.text
    run = by_name(telemetry.finished(), "run assistant")
    run_id = run.attributes["ascent.run.id"] if run.attributes else None
    async with db_session() as db:
        found = (await db.exec(select(OutboxEvent).where(OutboxEvent.subject == run_id))).all()
    assert {e.type for e in found} >= {"run.started", "run.completed"}
    trace_hex = format(run.context.trace_id, "032x")
    for event in found:
        version, trace_id, _span, _flags = event.envelope["traceparent"].split("-")
        assert (version, trace_id) == ("00", trace_hex), event.type


async def test_log_lines_of_a_run_carry_its_ids(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line logged during a run (here by its tool) has tenant, run, thread and trace ids,
    and the JSON formatter writes them."""
    import json

    from examples import assistant
    from shared.core.telemetry import JsonFormatter, install_redaction

    install_redaction()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logging.getLogger("tests.tool").addHandler(keep)
    real = assistant.calculate.on_invoke_tool

    async def logged(ctx: Any, args: str) -> Any:
        logging.getLogger("tests.tool").warning("calculating")
        return await real(ctx, args)

    monkeypatch.setattr(assistant.calculate, "on_invoke_tool", logged)
    use_model(monkeypatch, tool_then_answer("It is 42."))
    try:
        reply = await api.client.post("/agents/assistant/runs", json={"input": "what is 6 * 7?"})
    finally:
        logging.getLogger("tests.tool").removeHandler(keep)
    assert reply.status_code == 200, reply.text
    run = by_name(telemetry.finished(), "run assistant")
    assert run.attributes is not None
    line = json.loads(JsonFormatter().format(seen[0]))
    assert line["message"] == "calculating"
    assert line["tenant_id"] == api.tenant_id
    assert line["run_id"] == run.attributes["ascent.run.id"]
    assert line["thread_id"] == run.attributes["ascent.thread.id"]
    assert line["trace_id"] == format(run.context.trace_id, "032x")


async def test_review_gauges_and_wait_follow_a_paused_run(
    api: Api, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run paused for review shows as one pending review (gauge, read from the database);
    deciding it records the review's wait and empties the gauge."""
    script = ScriptedModel(
        [
            [function_call("issue_refund", {"amount": 40}, call_id="r1")],
            [assistant_message("Refund issued.")],
        ]
    )
    use_model(monkeypatch, script)
    reply = await api.client.post("/agents/billing/runs", json={"input": "refund 40 please"})
    assert reply.status_code == 200, reply.text
    points = telemetry.metric_points()
    assert [p.value for p in points["ascent.reviews.pending"]] == [1.0]
    assert points["ascent.reviews.oldest_wait"][0].value >= 0
    listed = await api.client.get("/reviews")
    (review,) = listed.json()
    decided = await api.client.post(
        f"/reviews/{review['review_id']}/decision", json={"decision": "reject"}
    )
    assert decided.status_code == 200, decided.text
    points = telemetry.metric_points()
    assert [p.value for p in points["ascent.reviews.pending"]] == [0.0]
    waits = points["ascent.review.wait"]
    assert [dict(p.attributes) for p in waits] == [{"ascent.review.status": "rejected"}]


def test_an_aca_job_run_is_a_span_with_its_rows_and_metrics(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m aca_jobs <name>` runs the job in a `job <name>` span that records its exit
    code and rows, and counts the run, its duration and its rows by job name."""
    from aca_jobs.__main__ import main

    # The process's root logging is pytest's here: the job must not replace its handlers.
    monkeypatch.setattr("shared.core.telemetry.setup_logging", lambda *a, **k: None)
    assert main(["migrate"]) == 0
    assert main(["expire_reviews"]) == 0
    spans = {s.name: s for s in telemetry.finished()}
    job = spans["job expire_reviews"]
    assert job.attributes is not None
    assert (job.attributes["ascent.job.exit_code"], job.attributes["ascent.job.rows"]) == (0, 0)
    assert spans["job migrate"].parent is None
    points = telemetry.metric_points()
    runs = {
        (p.attributes["ascent.job.name"], p.attributes["ascent.job.outcome"])
        for p in points["ascent.job.runs"]
    }
    assert runs == {("migrate", "success"), ("expire_reviews", "success")}
    assert [p.attributes["ascent.job.name"] for p in points["ascent.job.rows"]] == [
        "expire_reviews"
    ]
