"""OpenTelemetry for Ascent: one trace per run across processes, metrics, exporters by setting.

What is traced (docs/observability.md has the span tree): the HTTP request (shared/api/http.py),
the enqueue with W3C `traceparent` in the queue message (shared/runs/dispatch.py), the queue
trigger's span as its child on whichever instance takes it (shared/runs/service.py), the run
(shared/runs/engine.py), the Agents SDK's agent, model, tool (function and MCP), handoff and
guardrail spans (fed in by `AgentsSpanBridge`, a processor of the SDK's tracing-processor API),
the review pause and its resume (linked through the review's audit row), outbox publish (the
`traceparent` CloudEvent extension), webhook delivery, cron firing and ACA jobs.

Exporters (`configure`, called once per process on first use, never at import):
- APPLICATIONINSIGHTS_CONNECTION_STRING set: the Azure Monitor distro, authenticated with the
  managed identity (AZURE_CLIENT_ID), traces, metrics and logs;
- OTEL_EXPORTER_OTLP_ENDPOINT set: OTLP/HTTP traces and metrics (the compose collector);
- neither: nothing. The providers stay the API's no-op ones, the SDK's tracing stays disabled,
  and no call leaves the process.

Both packages load only inside `configure`, so `function_app.py` imports none of them. Tests
install in-memory providers with `use()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from agents.tracing import Span as SdkSpan
from agents.tracing import Trace as SdkTrace
from agents.tracing import TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    CustomSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    MCPListToolsSpanData,
    ResponseSpanData,
)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
)
from opentelemetry.trace import Link as Link
from opentelemetry.trace import Span, Tracer, TracerProvider
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace import Status as Status
from opentelemetry.trace import StatusCode as StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.core.settings import Settings, get_settings

log = logging.getLogger(__name__)

SCOPE: Final = "ascent"
TRACEPARENT: Final = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()

Attrs = dict[str, str | int | float | bool]


class _State:
    """The providers in use and the instruments made from them (replaced together)."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ):
        """No providers: tracing and metrics are off (the API's no-op objects)."""
        self.on = tracer_provider is not None
        self.tracer: Tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer(SCOPE)
        meter: Meter = (meter_provider or NoOpMeterProvider()).get_meter(SCOPE)
        self.meter = meter
        self.runs_started: Counter = meter.create_counter(
            "ascent.runs.started", "{run}", "Runs that began executing"
        )
        self.runs_ended: Counter = meter.create_counter(
            "ascent.runs.ended", "{run}", "Runs that ended, paused or were lost, by status"
        )
        self.run_duration: Histogram = meter.create_histogram(
            "ascent.run.duration", "s", "Execution time of a run"
        )
        self.first_token: Histogram = meter.create_histogram(
            "ascent.run.time_to_first_token", "s", "From a run's start to its first output token"
        )
        self.tokens: Counter = meter.create_counter(
            "ascent.run.tokens", "{token}", "Model tokens of runs, by gen_ai.token.type"
        )
        self.review_wait: Histogram = meter.create_histogram(
            "ascent.review.wait", "s", "From a review's request to its decision"
        )
        self.http_duration: Histogram = meter.create_histogram(
            "http.server.request.duration", "s", "Duration of HTTP requests"
        )
        self.job_runs: Counter = meter.create_counter(
            "ascent.job.runs", "{run}", "ACA job runs, by job and outcome"
        )
        self.job_duration: Histogram = meter.create_histogram(
            "ascent.job.duration", "s", "Duration of an ACA job run"
        )
        self.job_rows: Counter = meter.create_counter(
            "ascent.job.rows", "{row}", "Rows an ACA job handled"
        )
        self.cron_fired: Counter = meter.create_counter(
            "ascent.crons.fired", "{run}", "User crons fired"
        )


_STATE = _State(None, None)
_CONFIGURED = False
_LOCK = threading.Lock()
_SHUTDOWN: list[Callable[[], None]] = []


def state() -> _State:
    """The current providers and instruments (configured on first use)."""
    if not _CONFIGURED:
        configure()
    return _STATE


def active() -> bool:
    """Whether spans are recorded (an exporter or a test's providers are installed)."""
    return state().on


def capture_content() -> bool:
    """Whether message content may go on spans (ASCENT_OTEL_CAPTURE_CONTENT)."""
    return get_settings().otel_capture_content


def configure(settings: Settings | None = None) -> bool:
    """Set up the exporters the settings ask for, once per process; True when telemetry is on."""
    global _CONFIGURED
    if _CONFIGURED:
        return _STATE.on
    with _LOCK:
        if _CONFIGURED:
            return _STATE.on
        settings = settings or get_settings()
        providers: tuple[TracerProvider, MeterProvider] | None = None
        try:
            if settings.applicationinsights_connection_string is not None:
                providers = _azure_monitor(settings)
            elif settings.otel_exporter_otlp_endpoint:
                providers = _otlp(settings)
        except Exception:
            # Telemetry must never take the service down: run on without it, and say so.
            log.exception("OpenTelemetry exporters could not be set up; telemetry is off")
            providers = None
        if providers is not None:
            _install(*providers, settings=settings)
        _CONFIGURED = True
        return _STATE.on


def use(tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
    """Install these providers (tests, the benchmark); None for both turns telemetry off."""
    global _CONFIGURED
    with _LOCK:
        if tracer_provider is None:
            _set_state(_State(None, None))
            _bridge_sdk(None, get_settings())
        else:
            _install(
                tracer_provider, meter_provider or NoOpMeterProvider(), settings=get_settings()
            )
        _CONFIGURED = True


def _set_state(new: _State) -> None:
    global _STATE
    _STATE = new


def _install(tracer: TracerProvider, meter: MeterProvider, *, settings: Settings) -> None:
    _set_state(_State(tracer, meter))
    _observe_backlogs(_STATE.meter)
    _bridge_sdk(_STATE.tracer, settings)


def _resource(settings: Settings) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    return Resource.create({SERVICE_NAME: settings.otel_service_name})


def _otlp(settings: Settings) -> tuple[TracerProvider, MeterProvider]:
    """OTLP/HTTP exporters to OTEL_EXPORTER_OTLP_ENDPOINT (they read the OTEL_* env vars)."""
    # Function-local: the SDK and exporters load only in a process that exports.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = (settings.otel_exporter_otlp_endpoint or "").rstrip("/")
    resource = _resource(settings)
    tracer = SdkTracerProvider(resource=resource)
    tracer.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    readers = []
    if settings.otel_metrics_exporter == "otlp":
        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                export_interval_millis=settings.otel_metric_export_seconds * 1000,
            )
        )
    meter = SdkMeterProvider(resource=resource, metric_readers=readers)
    _SHUTDOWN.extend([tracer.shutdown, meter.shutdown])
    return tracer, meter


def _azure_monitor(settings: Settings) -> tuple[TracerProvider, MeterProvider]:
    """The Azure Monitor distro, with the managed identity (never an instrumentation key)."""
    # Function-local: the distro is heavy and only the cloud stage needs it.
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    connection = settings.applicationinsights_connection_string
    assert connection is not None
    credential = (
        ManagedIdentityCredential(client_id=settings.azure_client_id)
        if settings.azure_client_id
        else ManagedIdentityCredential()
    )
    configure_azure_monitor(
        connection_string=connection,
        credential=credential,
        resource=_resource(settings),
        logger_name="",
    )
    tracer_provider = trace.get_tracer_provider()
    if settings.otel_exporter_otlp_endpoint:
        # Both asked for: the OTLP collector gets the traces too.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        base = settings.otel_exporter_otlp_endpoint.rstrip("/")
        add = getattr(tracer_provider, "add_span_processor", None)
        if add is not None:
            add(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    from opentelemetry import metrics

    return tracer_provider, metrics.get_meter_provider()


def shutdown() -> None:
    """Flush and stop the exporters this module created (one-shot processes: ACA jobs)."""
    while _SHUTDOWN:
        with _suppress():
            _SHUTDOWN.pop()()


@contextmanager
def _suppress() -> Iterator[None]:
    try:
        yield
    except Exception:
        log.warning("telemetry shutdown failed", exc_info=True)


# --- propagation -------------------------------------------------------------------------------


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current context as W3C headers (`traceparent`, maybe `tracestate`); {} when none."""
    out: dict[str, str] = dict(carrier or {})
    if _STATE.on:
        _PROPAGATOR.inject(out)
    return out


def traceparent() -> str | None:
    """The current span's W3C `traceparent`, or None (telemetry off, or no span)."""
    return inject().get(TRACEPARENT)


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a `traceparent` carrier names (empty context when none or malformed)."""
    if not carrier:
        return otel_context.Context()
    return _PROPAGATOR.extract(dict(carrier), context=otel_context.Context())


def link_to(parent: str | None) -> list[Link]:
    """A span link to the span a stored `traceparent` names ([] when none or malformed)."""
    if not parent:
        return []
    found = trace.get_current_span(extract({TRACEPARENT: parent})).get_span_context()
    return [Link(found, {"ascent.link": "paused_run"})] if found.is_valid else []


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attrs | None = None,
    parent: otel_context.Context | None = None,
    links: Iterable[Link] = (),
) -> Iterator[Span]:
    """Start a span as the current one; an exception marks it failed (class only, no message)."""
    tracer = state().tracer
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        links=list(links),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            # The class, never the message: messages may carry input or secrets.
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            current.set_attribute("error.type", type(exc).__qualname__)
            raise


_ROUTE: ContextVar[str | None] = ContextVar("ascent_route", default=None)


@contextmanager
def route_scope(route: str) -> Iterator[None]:
    """Name the HTTP function serving this task (runs it starts report it as entry point)."""
    token = _ROUTE.set(route)
    try:
        yield
    finally:
        _ROUTE.reset(token)


def current_route() -> str | None:
    """The HTTP function serving this task, if any."""
    return _ROUTE.get()


# --- metrics -----------------------------------------------------------------------------------


def run_started(agent: str, entry_point: str) -> None:
    """Count a run that began executing."""
    if _STATE.on:
        _STATE.runs_started.add(1, {"gen_ai.agent.name": agent, "ascent.entry_point": entry_point})


def run_ended(
    agent: str,
    entry_point: str,
    status: str,
    *,
    seconds: float,
    first_token: float | None,
    usage: Mapping[str, int],
) -> None:
    """Record a run's end: count, duration, time to first token and tokens in and out."""
    if not _STATE.on:
        return
    attrs: Attrs = {"gen_ai.agent.name": agent, "ascent.entry_point": entry_point}
    ended: Attrs = {**attrs, "ascent.run.status": status}
    _STATE.runs_ended.add(1, ended)
    _STATE.run_duration.record(seconds, ended)
    if first_token is not None:
        _STATE.first_token.record(first_token, attrs)
    for kind in ("input", "output"):
        count = int(usage.get(f"{kind}_tokens", 0))
        if count:
            _STATE.tokens.add(count, {**attrs, "gen_ai.token.type": kind})


def review_decided(seconds: float, status: str) -> None:
    """Record how long a review waited for its decision."""
    if _STATE.on:
        _STATE.review_wait.record(max(0.0, seconds), {"ascent.review.status": status})


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record an HTTP request's duration (the semantic conventions' server histogram)."""
    if _STATE.on:
        _STATE.http_duration.record(
            seconds,
            {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
            },
        )


def cron_fired(count: int) -> None:
    """Count user crons fired."""
    if _STATE.on and count:
        _STATE.cron_fired.add(count)


def job_ended(job: str, *, ok: bool, seconds: float, rows: int | None) -> None:
    """Record an ACA job run: outcome, duration and the rows it handled."""
    if not _STATE.on:
        return
    attrs: Attrs = {"ascent.job.name": job}
    _STATE.job_runs.add(1, {**attrs, "ascent.job.outcome": "success" if ok else "failure"})
    _STATE.job_duration.record(seconds, attrs)
    if rows is not None:
        _STATE.job_rows.add(rows, attrs)


# Backlog gauges read the database when the metric reader collects (every export interval,
# in the reader's thread), through the registered readers below: set by shared/runs, which
# owns those tables, so this wing imports nothing above it.
BacklogReader = Callable[[], Mapping[str, float]]
_BACKLOGS: dict[str, BacklogReader] = {}


def register_backlog(name: str, reader: BacklogReader) -> None:
    """Serve gauge values `{metric name: value}` from `reader` (queue, reviews, outbox)."""
    _BACKLOGS[name] = reader


_GAUGES: Final = {
    "ascent.queue.depth": ("{message}", "Messages waiting on the agent-runs queue"),
    "ascent.queue.oldest_age": ("s", "Age of the oldest message waiting on the agent-runs queue"),
    "ascent.reviews.pending": ("{review}", "Reviews waiting for a human decision"),
    "ascent.reviews.oldest_wait": ("s", "How long the oldest pending review has waited"),
    "ascent.outbox.backlog": ("{event}", "Outbox events and webhook deliveries not yet sent"),
}
_READINGS: dict[str, float] = {}
_FIRST_GAUGE: Final = next(iter(_GAUGES))


def _readings(refresh: bool) -> dict[str, float]:
    """The backlog readings: read afresh by the first gauge of a collection, shared by the
    others (one database pass per collection; callbacks run in registration order)."""
    if refresh:
        fresh: dict[str, float] = {}
        for name, reader in list(_BACKLOGS.items()):
            try:
                fresh.update(reader())
            except Exception:
                log.warning("backlog reading %s failed", name, exc_info=True)
        _READINGS.clear()
        _READINGS.update(fresh)
    return _READINGS


def _observe_backlogs(meter: Meter) -> None:
    for name, (unit, description) in _GAUGES.items():

        def observe(options: CallbackOptions, name: str = name) -> Iterable[Observation]:
            value = _readings(refresh=name == _FIRST_GAUGE).get(name)
            return [] if value is None else [Observation(value)]

        meter.create_observable_gauge(name, [observe], unit, description)


# --- the Agents SDK's spans ------------------------------------------------------------------


def _bridge_sdk(tracer: Tracer | None, settings: Settings) -> None:
    """Route the Agents SDK's spans: into OpenTelemetry when on, to OpenAI only when asked."""
    from agents import set_trace_processors
    from agents.tracing.processors import default_processor

    processors: list[TracingProcessor] = []
    if tracer is not None:
        processors.append(AgentsSpanBridge(tracer))
    if settings.exports_traces:
        processors.append(default_processor())
    set_trace_processors(processors)


def sdk_tracing_on() -> bool:
    """Whether runs create the SDK's spans (someone consumes them)."""
    return active() or get_settings().exports_traces


_PROVIDER_NAMES: Final = {"azure": "azure.ai.openai", "offline": "ascent.offline"}


class AgentsSpanBridge(TracingProcessor):
    """The Agents SDK's spans as OpenTelemetry spans with the GenAI semantic conventions.

    Each SDK span becomes an OTel span under its SDK parent (by id, so concurrent runs never
    mix), or, for the trace's first spans, under the span current when the SDK's trace began:
    the run span. Message content (inputs, outputs, tool arguments and results) is added only
    with ASCENT_OTEL_CAPTURE_CONTENT; model, token usage, tool, agent and guardrail names are
    always there.
    """

    def __init__(self, tracer: Tracer) -> None:
        """Feed spans to `tracer`."""
        self._tracer = tracer
        self._roots: dict[str, otel_context.Context] = {}
        self._spans: dict[str, Span] = {}
        self._skipped: dict[str, otel_context.Context | None] = {}
        self._system = _PROVIDER_NAMES.get(get_settings().model_provider, "openai")

    def on_trace_start(self, trace: SdkTrace) -> None:
        """Remember the context the SDK trace began in (the run span's)."""
        self._roots[trace.trace_id] = otel_context.get_current()

    def on_trace_end(self, trace: SdkTrace) -> None:
        """Forget the trace."""
        self._roots.pop(trace.trace_id, None)

    def on_span_start(self, span: SdkSpan[Any]) -> None:
        """Start the OTel span of an SDK span."""
        parent = self._parent(span)
        described = self._describe(span.span_data)
        if described is None:
            # Not mapped (task, turn): its children hang from its own parent.
            self._skipped[span.span_id] = parent
            return
        name, kind, attributes = described
        self._spans[span.span_id] = self._tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes
        )

    def _parent(self, span: SdkSpan[Any]) -> otel_context.Context | None:
        parent_id = span.parent_id or ""
        parent_span = self._spans.get(parent_id)
        if parent_span is not None:
            return trace.set_span_in_context(parent_span)
        if parent_id in self._skipped:
            return self._skipped[parent_id]
        return self._roots.get(span.trace_id)

    def on_span_end(self, span: SdkSpan[Any]) -> None:
        """Add what the SDK span learned (usage, outputs) and end the OTel span."""
        found = self._spans.pop(span.span_id, None)
        if found is None:
            self._skipped.pop(span.span_id, None)
            return
        try:
            self._finish(found, span.span_data)
        except Exception:
            log.debug("could not read an SDK span's data", exc_info=True)
        error = span.error
        if error:
            found.set_status(Status(StatusCode.ERROR, str(error.get("message", ""))[:200]))
        found.end()

    def shutdown(self) -> None:
        """End what is still open."""
        for open_span in self._spans.values():
            open_span.end()
        self._spans.clear()
        self._skipped.clear()
        self._roots.clear()

    def force_flush(self) -> None:
        """Nothing buffered here (the OTel span processors flush)."""

    def _describe(self, data: Any) -> tuple[str, SpanKind, Attrs] | None:
        system = self._system
        if isinstance(data, AgentSpanData):
            return (
                f"invoke_agent {data.name}",
                SpanKind.INTERNAL,
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.provider.name": system,
                    "gen_ai.agent.name": data.name,
                },
            )
        if isinstance(data, GenerationSpanData | ResponseSpanData):
            model = getattr(data, "model", None) or ""
            attrs: Attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": system}
            if model:
                attrs["gen_ai.request.model"] = model
            return (f"chat {model}".strip(), SpanKind.CLIENT, attrs)
        if isinstance(data, FunctionSpanData):
            attrs = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": data.name,
                "gen_ai.tool.type": "extension" if data.mcp_data else "function",
            }
            server = (data.mcp_data or {}).get("server")
            if server:
                attrs["mcp.server.name"] = str(server)
            return (f"execute_tool {data.name}", SpanKind.INTERNAL, attrs)
        if isinstance(data, HandoffSpanData):
            return (
                f"handoff {data.from_agent} -> {data.to_agent}",
                SpanKind.INTERNAL,
                {
                    "gen_ai.operation.name": "handoff",
                    "gen_ai.agent.name": data.from_agent or "",
                    "ascent.handoff.to_agent": data.to_agent or "",
                },
            )
        if isinstance(data, GuardrailSpanData):
            return (
                f"guardrail {data.name}",
                SpanKind.INTERNAL,
                {"ascent.guardrail.name": data.name},
            )
        if isinstance(data, MCPListToolsSpanData):
            return (
                f"mcp list_tools {data.server or ''}".strip(),
                SpanKind.CLIENT,
                {"mcp.server.name": data.server or "", "mcp.method.name": "tools/list"},
            )
        if isinstance(data, CustomSpanData):
            return (data.name, SpanKind.INTERNAL, {})
        return None  # task and turn spans: the run and agent spans already cover them

    def _finish(self, found: Span, data: Any) -> None:
        content = capture_content()
        if isinstance(data, GenerationSpanData | ResponseSpanData):
            usage = data.usage or {}
            if isinstance(data, ResponseSpanData) and data.response is not None:
                response = data.response
                found.set_attribute("gen_ai.response.model", str(response.model))
                found.set_attribute("gen_ai.response.id", str(response.id))
                if response.usage is not None and not usage:
                    usage = response.usage.model_dump()
            elif isinstance(data, GenerationSpanData) and data.model:
                found.set_attribute("gen_ai.response.model", data.model)
            for key, attribute in (
                ("input_tokens", "gen_ai.usage.input_tokens"),
                ("output_tokens", "gen_ai.usage.output_tokens"),
            ):
                value = usage.get(key)
                if isinstance(value, int):
                    found.set_attribute(attribute, value)
            if content:
                _set_json(found, "gen_ai.input.messages", getattr(data, "input", None))
                output = getattr(data, "output", None)
                _set_json(found, "gen_ai.output.messages", output)
        elif isinstance(data, FunctionSpanData):
            if content:
                _set_json(found, "gen_ai.tool.call.arguments", data.input)
                _set_json(found, "gen_ai.tool.call.result", data.output)
        elif isinstance(data, GuardrailSpanData):
            found.set_attribute("ascent.guardrail.triggered", bool(data.triggered))
        elif isinstance(data, MCPListToolsSpanData) and data.result is not None:
            found.set_attribute("mcp.tools.count", len(data.result))


def _set_json(found: Span, name: str, value: Any) -> None:
    if value is None:
        return
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    found.set_attribute(name, text[:16_384])
