"""OpenTelemetry plumbing without a database: off by default, the queue message's trace
context, and the Agents SDK bridge's parenting under concurrent traces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents.tracing import agent_span, function_span, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.platform import observability
from shared.runs.dispatch import RunMessage, parse_run_message

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """In-memory spans as this process's telemetry, removed afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.use(provider, None)
    yield exporter
    observability.use(None, None)


def test_nothing_is_exported_or_traced_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an exporter setting telemetry is off: no spans, no SDK tracing, no traceparent."""
    observability.use(None, None)
    monkeypatch.setattr(observability, "_CONFIGURED", False)  # as in a fresh process
    assert observability.configure() is False
    assert not observability.active() and not observability.sdk_tracing_on()
    with observability.span("anything"):
        assert observability.traceparent() is None


def test_a_run_message_carries_its_trace_context() -> None:
    """The queue message keeps `traceparent` through JSON; an oversized one is dropped."""
    message = RunMessage(run_id="r1", tenant_id="t1", traceparent=TRACEPARENT)
    assert parse_run_message(message.to_json()) == message
    plain = parse_run_message(
        '{"run_id": "r1", "tenant_id": "t1", "traceparent": "' + "x" * 200 + '"}'
    )
    assert plain.traceparent is None


def test_a_span_continues_the_trace_a_message_carried(spans: InMemorySpanExporter) -> None:
    """A span started from an extracted `traceparent` is in that trace, under that span."""
    with observability.span("child", parent=observability.extract({"traceparent": TRACEPARENT})):
        pass
    (child,) = spans.get_finished_spans()
    assert format(child.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert (
        child.parent is not None
        and format(child.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    )


def test_interleaved_sdk_traces_keep_their_own_parents(spans: InMemorySpanExporter) -> None:
    """Two SDK traces open at once: each tool span hangs from its own trace's agent span."""
    with observability.span("run one") as one_run:
        first = trace("one")
        first.start(mark_as_current=False)
    with observability.span("run two") as two_run:
        second = trace("two")
        second.start(mark_as_current=False)
    agent_one = agent_span("a", parent=first)
    agent_two = agent_span("a", parent=second)
    agent_one.start()
    agent_two.start()
    tool_two = function_span("calc", parent=agent_two)
    tool_one = function_span("calc", parent=agent_one)
    for started in (tool_two, tool_one):
        started.start()
    for ended in (tool_one, tool_two, agent_one, agent_two):
        ended.finish()
    first.finish()
    second.finish()
    done = {(s.name, s.context.trace_id): s for s in spans.get_finished_spans()}
    for run in (one_run, two_run):
        trace_id = run.get_span_context().trace_id
        agent = done[("invoke_agent a", trace_id)]
        tool = done[("execute_tool calc", trace_id)]
        assert agent.parent is not None and agent.parent.span_id == run.get_span_context().span_id
        assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
