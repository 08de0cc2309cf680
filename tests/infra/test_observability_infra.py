"""Compose and Bicep agree on the OpenTelemetry exporters (issue 16): which, and how set."""

from __future__ import annotations

import json
import re
from typing import Any

from aca_jobs.k8s import compose_value
from tests.infra.infra_helpers import (
    BICEP_DIR,
    accessor,
    bicep,
    bicep_files,
    compose,
    compose_env,
    env_entries,
)

EXPORTER_SETTINGS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_METRICS_EXPORTER",
    "ASCENT_OTEL_CAPTURE_CONTENT",
    "ASCENT_OTEL_METRIC_EXPORT_SECONDS",
    "ASCENT_LOG_FORMAT",
    "ASCENT_TRACE_EXPORT",
}


def _bicep_env() -> dict[str, dict[str, Any]]:
    """main.bicep's shared settings plus the tunables of app/settings.json, by name."""
    shared = env_entries(bicep("main.bicep")["variables"]["sharedEnv"]["value"])
    tunables = json.loads((BICEP_DIR / "app" / "settings.json").read_text())
    return {**shared, **{k: {"name": k, "value": v} for k, v in tunables.items()}}


def test_bicep_and_compose_set_the_same_exporter_settings_on_app_and_jobs() -> None:
    """Every exporter setting is set by Bicep (app and jobs) and by compose (app and jobs)."""
    assert set(_bicep_env()) >= EXPORTER_SETTINGS
    for service in ("functions", "jobs", "migrate"):
        assert set(compose_env(service)) >= EXPORTER_SETTINGS, service


def test_the_cloud_exports_to_azure_monitor_from_the_monitoring_module() -> None:
    """Bicep's APPLICATIONINSIGHTS_CONNECTION_STRING is the monitoring module's output, for
    the app and the jobs alike; the app's host authenticates to it with the identity."""
    entry = _bicep_env()["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert accessor(entry["value"]) == "monitoring.outputs.applicationInsightsConnectionString"
    platform = env_entries(bicep("app/functions.bicep")["variables"]["platformEnv"]["value"])
    assert "AAD" in json.dumps(platform["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"])


def test_no_instrumentation_key_is_written_anywhere() -> None:
    """No Bicep file or compose value carries an instrumentation key (the identity is used)."""
    for path in bicep_files():
        assert not re.search(r"InstrumentationKey=", path.read_text()), path
    for value in compose()["x-ascent-env"].values():
        assert "InstrumentationKey=" not in str(value)


def test_compose_points_the_app_and_jobs_at_its_collector() -> None:
    """Compose exports OTLP/HTTP to its jaeger service, which the app and jobs wait for."""
    services = compose()["services"]
    for service in ("functions", "jobs"):
        endpoint = compose_value(compose_env(service)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint == "http://jaeger:4318", service
        assert services[service]["depends_on"]["jaeger"]["condition"] == "service_healthy"
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_content_capture_is_off_and_openai_export_is_off_in_both() -> None:
    """Neither stage puts message content on spans or sends SDK traces to OpenAI by default."""
    env = _bicep_env()
    assert env["ASCENT_OTEL_CAPTURE_CONTENT"]["value"] == "false"
    params = bicep("main.bicep")["parameters"]
    assert params["traceExport"]["default"] is False
    for service in ("functions", "jobs"):
        compose_settings = compose_env(service)
        assert compose_value(compose_settings["ASCENT_OTEL_CAPTURE_CONTENT"]) == "false"
        assert compose_value(compose_settings["ASCENT_TRACE_EXPORT"]) == "false"
