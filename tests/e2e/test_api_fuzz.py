"""Fuzz every operation of the served OpenAPI document as another tenant: no tenant's data leaks.

Schemathesis generates requests from `/api/openapi.json` (its explicit examples first, then
schema-driven data, a few per operation, derandomized so runs repeat), sends them with tenant
B's key against a host where tenant A owns data, and checks each answer: never A's ids or data,
never a 5xx, and the status code, content type, headers and body the document declares. (Every
schemathesis check over every operation as the owner: tests/chaos/test_schemathesis_all_checks.py;
unstorable text on both backends: tests/chaos/test_unstorable_fuzz.py.) The pytest plugin is not
used: the Python API inside one ordinary test keeps the fixture, the timeout and
`filterwarnings = error` of this suite.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import DevHost, start_devhost
from tests.security_support import ADMIN_KEY, new_tenant_with_key

# The document carries the validators' constraints (patterns, recursive storable JSON), so
# generating examples costs more than the suite's default timeout allows on a loaded box
# (measured: 5 s before, 29 s after, for 4 examples of every operation).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLES_PER_OPERATION = 4
NEGATIVE_EXAMPLES_PER_OPERATION = 2
# The fuzzer sends a few hundred requests a minute; the per-key limit would answer 429.
UNLIMITED = {"ASCENT_RATE_LIMIT_PER_MINUTE": "0", "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz_operation(
    operation: Any,
    devhost: DevHost,
    mode: GenerationMode,
    examples: int,
    *,
    key: str | None = None,
    forbidden: tuple[str, ...] = (),
) -> list[str]:
    """Send generated requests for one operation; return the failures, one line each.

    `key` authenticates (the dev key by default); no response body may contain a `forbidden`
    string (another tenant's ids and data).
    """
    auth = {"Authorization": f"Bearer {key or devhost.api_key}"}
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=devhost.base_url, headers=auth, timeout=30)
        leaked = [marker for marker in forbidden if marker in response.text]
        assert not leaked, f"{case.method} {case.path} answered another tenant's {leaked}"
        case.validate_response(response, checks=checks, headers=auth)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to negate: the operation takes no parameters and no body
    except (FailureGroup, Exception) as exc:  # collect every failure, then report them all
        failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


@pytest.fixture(scope="module")
def two_tenants(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DevHost, str, tuple[str, ...]]]:
    """A dev host where tenant A (dev) owns a thread, runs, a store item and a cron, and tenant
    B has a key: (host, B's key, A's ids and data markers)."""
    env = {**UNLIMITED, "ASCENT_ADMIN_KEY": ADMIN_KEY}
    host = start_devhost(tmp_path_factory.mktemp("fuzz-tenants"), extra_env=env)
    secret = f"tenant-a-secret-{uuid.uuid4().hex[:8]}"
    try:
        with host.client() as a:
            run = a.post("/agents/assistant/runs", json={"input": f"remember {secret}"})
            assert run.status_code == 200, run.text
            stored = a.put(
                "/store/items",
                json={"namespace": ["notes"], "key": "k1", "value": {"text": secret}},
            )
            assert stored.status_code in (200, 204), stored.text
            cron = a.post(
                "/runs/crons",
                json={"assistant_id": "assistant", "input": secret, "schedule": "0 0 1 1 *"},
            )
            assert cron.status_code == 200, cron.text
        _, issued = new_tenant_with_key(host.base_url)
        markers = (
            secret,
            run.json()["thread_id"],
            run.json()["run_id"],
            cron.json()["cron_id"],
        )
        yield host, issued["key"], markers
    finally:
        host.stop()


def test_fuzzing_as_another_tenant_never_returns_tenant_as_data(
    two_tenants: tuple[DevHost, str, tuple[str, ...]],
) -> None:
    """Tenant B fuzzing every operation gets no 5xx and never a byte of tenant A's data."""
    host, b_key, markers = two_tenants
    schema = schemathesis.openapi.from_url(f"{host.base_url}/openapi.json", timeout=30)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()  # type: ignore[union-attr]  # an Err means a bad document
        failures += fuzz_operation(
            operation,
            host,
            GenerationMode.POSITIVE,
            EXAMPLES_PER_OPERATION,
            key=b_key,
            forbidden=markers,
        )
    assert not failures, "\n\n".join(failures)
