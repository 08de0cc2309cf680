"""Traces across dev host processes, exported over OTLP/HTTP to a receiver in the test.

Host A serves HTTP only (`--no-queues`); host B, on the same SQLite data dir, takes the queue.
A background run created on A and executed on B is one trace; its review's resume (approved
on A, executed on B) is another trace whose run span links to the paused run's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from local.devhost_process import spawn, wait_healthy
from tests.conftest import DevHost
from tests.e2e.hitl_helpers import decide, pending_review, start_paused_run
from tests.e2e.protocol_helpers import wait_status
from tests.fakes.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver


@dataclass
class Hosts:
    """Two dev hosts exporting to one receiver."""

    a: DevHost
    b: DevHost
    receiver: Receiver


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """Host A (HTTP only) and host B (queue consumer), one data dir, one OTLP receiver."""
    data = tmp_path_factory.mktemp("otel")
    with otlp_receiver() as receiver:

        def env(name: str) -> dict[str, str]:
            return {
                "ASCENT_ENV": "test",
                "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
                "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_SERVICE_NAME": name,
                "OTEL_BSP_SCHEDULE_DELAY": "50",  # export spans within 50 ms
            }

        a = spawn(data, env=env("host-a"), extra_args=["--no-queues", "--no-jobs"])
        started = [a]
        try:
            wait_healthy(a, poll=0.1)
            b = spawn(
                data,
                env={**env("host-b"), "ASCENT_DEV_API_KEY": a.api_key},
                extra_args=["--no-jobs"],
            )
            started.append(b)
            wait_healthy(b, poll=0.1)
            yield Hosts(a, b, receiver)
        finally:
            for host in started:
                host.stop()


def one(spans: list[ReceivedSpan], service: str, prefix: str, trace: str) -> ReceivedSpan | None:
    """The span of `trace` from `service` whose name starts with `prefix`, if exported yet."""
    found = [
        s
        for s in spans
        if s.trace_id == trace and s.service == service and s.name.startswith(prefix)
    ]
    return found[0] if len(found) == 1 else None


def run_span(spans: list[ReceivedSpan], run_id: str, resumed: bool) -> ReceivedSpan | None:
    """The run span of `run_id` (the first execution, or the resumed one)."""
    for s in spans:
        ours = s.name.startswith("run ") and s.attributes.get("ascent.run.id") == run_id
        if ours and bool(s.attributes.get("ascent.run.resumed")) == resumed:
            return s
    return None


def test_a_background_run_is_one_trace_across_hosts_and_its_resume_links_back(
    hosts: Hosts,
) -> None:
    """Created on A, executed on B: one trace (request > publish > process > run > agent >
    model); approved on A, resumed on B: a new trace whose run span links to the paused one,
    with the tool call under its agent."""
    with hosts.a.client() as a:
        run = start_paused_run(a)
        run_id = run["run_id"]
        received = hosts.receiver
        paused = received.wait_for(lambda s: run_span(s, run_id, False), "paused run span")
        trace = paused.trace_id
        process = received.wait_for(
            lambda s: one(s, "host-b", "agent-runs process", trace), "process span"
        )
        publish = received.wait_for(
            lambda s: one(s, "host-a", "agent-runs publish", trace), "publish span"
        )
        request = received.wait_for(lambda s: one(s, "host-a", "POST ", trace), "request span")
        agent = received.wait_for(
            lambda s: one(s, "host-b", "invoke_agent billing", trace), "agent span"
        )
        model = received.wait_for(lambda s: one(s, "host-b", "chat", trace), "model span")
        assert paused.service == "host-b"
        assert publish.parent_id == request.span_id
        assert process.parent_id == publish.span_id
        assert paused.parent_id == process.span_id
        assert agent.parent_id == paused.span_id
        assert model.parent_id == agent.span_id
        assert model.attributes["gen_ai.operation.name"] == "chat"
        assert model.attributes["gen_ai.request.model"] == "ascent-offline"
        assert model.attributes["gen_ai.usage.input_tokens"] > 0
        assert "gen_ai.input.messages" not in model.attributes

        review = pending_review(a, run_id)
        assert decide(a, review["review_id"], "approve", reviewer="ops@example.com").is_success
        assert wait_status(a, run_id, "success", "error") == "success"
        resumed = received.wait_for(lambda s: run_span(s, run_id, True), "resumed run span")
        assert resumed.service == "host-b"
        assert resumed.trace_id != trace
        assert (paused.trace_id, paused.span_id) in resumed.links
        again = received.wait_for(
            lambda s: one(s, "host-b", "invoke_agent billing", resumed.trace_id), "agent span"
        )
        tool = received.wait_for(
            lambda s: one(s, "host-b", "execute_tool issue_refund", resumed.trace_id), "tool span"
        )
        assert again.parent_id == resumed.span_id
        assert tool.parent_id == again.span_id
        assert tool.attributes["gen_ai.tool.name"] == "issue_refund"
