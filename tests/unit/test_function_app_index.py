"""Index function_app.py the way the Azure Functions Python worker does, and check it."""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from azurefunctions.extensions.base.web import (
    HttpV2FeatureChecker,
    RequestTrackerMeta,
    ResponseTrackerMeta,
)

ROOT = Path(__file__).resolve().parents[2]

# What the walking skeleton must serve: function name -> (route, methods).
EXPECTED = {
    "health": ("health", ["GET"]),
    "list_agents": ("agents", ["GET"]),
    "create_agent_run": ("agents/{agent}/runs", ["POST"]),
    "get_thread_messages": ("threads/{thread_id}/messages", ["GET"]),
}


@dataclass(frozen=True)
class Indexed:
    """One worker-style indexing of function_app: its module, its app and its functions."""

    module: ModuleType
    app: func.FunctionRegister
    functions: list[Any]

    def http(self) -> dict[str, Any]:
        """The HTTP-triggered functions by name."""
        return {
            f.get_function_name(): f
            for f in self.functions
            if f.get_trigger() is not None and f.get_trigger().get_binding_name() == "httpTrigger"
        }


@pytest.fixture(scope="module")
def indexed() -> Indexed:
    """Load function_app.py afresh and call get_functions() once, as the worker does.

    `FunctionApp.get_functions()` is not idempotent (a second call reports every name as a
    duplicate), so the app is indexed exactly once, from its own fresh module object.
    """
    spec = importlib.util.spec_from_file_location("function_app_indexed", ROOT / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    assert len(found) == 1, f"expected exactly one FunctionApp, found {len(found)}"
    return Indexed(module, found[0], list(found[0].get_functions()))


def methods_of(trigger: Any) -> list[str]:
    """A trigger's HTTP methods as upper-case strings."""
    return sorted(str(getattr(m, "value", m)).upper() for m in trigger.methods)


class TestDiscovery:
    def test_exactly_one_function_app(self, indexed: Indexed) -> None:
        """function_app exposes exactly one FunctionRegister, and it is a FunctionApp."""
        registers = [
            v for v in vars(indexed.module).values() if isinstance(v, func.FunctionRegister)
        ]
        assert registers == [indexed.app] and isinstance(indexed.app, func.FunctionApp)

    def test_blueprints_are_not_function_registers(self) -> None:
        """A Blueprint is not a FunctionRegister, so the worker never indexes one as the app."""
        from functions import agents_http

        assert not isinstance(agents_http.bp, func.FunctionRegister)

    def test_every_expected_function_is_indexed(self, indexed: Indexed) -> None:
        """Each walking-skeleton HTTP function is indexed."""
        assert set(EXPECTED) <= set(indexed.http())

    def test_function_names_are_unique(self, indexed: Indexed) -> None:
        """No two indexed functions share a name (the host refuses duplicates)."""
        names = [f.get_function_name() for f in indexed.functions]
        assert len(names) == len(set(names))

    def test_http_routes_and_methods_are_unique(self, indexed: Indexed) -> None:
        """No two HTTP functions claim the same route and method."""
        pairs = [
            (f.get_trigger().route, m)
            for f in indexed.http().values()
            for m in methods_of(f.get_trigger())
        ]
        assert len(pairs) == len(set(pairs))


class TestTriggerMetadata:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_route_and_methods(self, indexed: Indexed, name: str) -> None:
        """Each function's trigger has its expected route and methods."""
        trigger = indexed.http()[name].get_trigger()
        assert (trigger.route, methods_of(trigger)) == EXPECTED[name]

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_auth_level_is_anonymous(self, indexed: Indexed, name: str) -> None:
        """The platform lets requests through; Ascent authenticates them itself."""
        trigger = indexed.http()[name].get_trigger()
        assert trigger.auth_level == func.AuthLevel.ANONYMOUS

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_binding_type_and_arg_name(self, indexed: Indexed, name: str) -> None:
        """The trigger is an httpTrigger bound to the user function's `req` parameter."""
        function = indexed.http()[name]
        trigger = function.get_trigger()
        assert (trigger.get_binding_name(), trigger.name) == ("httpTrigger", "req")
        assert list(inspect.signature(function.get_user_function()).parameters) == ["req"]

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_function_json_has_the_http_output(self, indexed: Indexed, name: str) -> None:
        """The generated function.json pairs the trigger with a `$return` http output."""
        import json

        bindings = json.loads(indexed.http()[name].get_function_json())["bindings"]
        assert {(b["type"], b["direction"], b["name"]) for b in bindings} >= {
            ("httpTrigger", "IN", "req"),
            ("http", "OUT", "$return"),
        }

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_user_function_is_async(self, indexed: Indexed, name: str) -> None:
        """HTTP functions are coroutines, so responses can stream."""
        assert inspect.iscoroutinefunction(indexed.http()[name].get_user_function())

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_uses_the_fastapi_http_types(self, indexed: Indexed, name: str) -> None:
        """Parameter and return types resolve to the FastAPI extension's request/response."""
        function = indexed.http()[name]
        hints = typing.get_type_hints(function.get_user_function())
        assert HttpV2FeatureChecker.http_v2_enabled()
        assert RequestTrackerMeta.check_type(hints["req"])
        assert ResponseTrackerMeta.check_type(hints["return"])


class TestImportIsSideEffectFree:
    def test_import_does_no_io(self, tmp_path: Path) -> None:
        """Importing function_app with an unreachable database succeeds and writes nothing; with
        both telemetry exporters set, it loads neither (they load on first use)."""
        # MODEL_PROVIDER=openai without a key is invalid too: an import that read settings fails.
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        env = {
            **os.environ,
            "ASCENT_DATA_DIR": str(data_dir),
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
            "MODEL_PROVIDER": "openai",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=0;IngestionEndpoint=http://127.0.0.1:1/",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        }
        env.pop("OPENAI_API_KEY", None)
        heavy = "('opentelemetry.sdk', 'opentelemetry.exporter', 'azure.monitor')"
        check = (
            f"import sys, function_app; print([m for m in sys.modules if m.startswith({heavy})])"
        )
        done = subprocess.run(
            [sys.executable, "-c", check],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert list(data_dir.iterdir()) == []
        assert done.stdout.strip() == "[]"

    def test_mcp_tool_server_loads_on_first_request_only(self) -> None:
        """Indexing the app does not load the MCP tool server (it is built on the first call)."""
        check = "import sys, function_app; print('shared.api.mcp_server' in sys.modules)"
        done = subprocess.run(
            [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"
