"""Run webhooks end to end: a dev host POSTs the signed run to a local receiver when it ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost

ADMIN_KEY = "admin-" + "k" * 40


@dataclass
class Receiver:
    """A local webhook receiver: records each request; answers the queued statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver server on a free loopback port."""
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = state.statuses.pop(0) if state.statuses else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", params=BACKENDS)
def host(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host that may call loopback receivers (ASCENT_WEBHOOK_ALLOW_PRIVATE=true)."""
    found = start_devhost(
        tmp_path_factory.mktemp("webhooks"),
        database_url=POSTGRES_URL if request.param == "postgres" else None,
        extra_env={
            "ASCENT_ADMIN_KEY": ADMIN_KEY,
            "ASCENT_WEBHOOK_ALLOW_PRIVATE": "true",
            "ASCENT_EVENTS_RETRY_SECONDS": "0.05",
        },
    )
    yield found
    found.stop()


def _secret(host: DevHost) -> str:
    response = httpx.get(
        f"{host.base_url}/platform/tenants/dev/webhook-secret",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    response.raise_for_status()
    return str(response.json()["secret"])


def _wait_for(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.05)


def _run(host: DevHost, url: str) -> dict[str, object]:
    with host.client() as client:
        response = client.post(
            "/runs/wait", json={"agent_id": "triage", "input": "Hello", "webhook": url}
        )
    assert response.status_code == 200, response.text
    return dict(response.json()["run"]) if "run" in response.json() else dict(response.json())


def test_the_webhook_verifies_with_the_standard_webhooks_library(
    host: DevHost, receiver: Receiver
) -> None:
    """The `standardwebhooks` library, given the tenant's `whsec_` secret, verifies the POST."""
    run = _run(host, receiver.url)
    _wait_for(lambda: len(receiver.requests) >= 1)
    headers, body = receiver.requests[0]
    secret = _secret(host)
    assert secret.startswith("whsec_")
    sent = Webhook(secret).verify(body, headers)
    assert sent["run_id"] == run["run_id"]
    assert sent["status"] == "success"
    assert headers["webhook-id"]


def test_a_tampered_webhook_is_refused_by_the_library(host: DevHost, receiver: Receiver) -> None:
    """A changed body, another message id or another secret fails Standard Webhooks verification."""
    _run(host, receiver.url)
    _wait_for(lambda: len(receiver.requests) >= 1)
    headers, body = receiver.requests[0]
    webhook = Webhook(_secret(host))
    tampered = body.replace(b'"success"', b'"error"')
    assert tampered != body
    with pytest.raises(WebhookVerificationError):
        webhook.verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        webhook.verify(body, {**headers, "webhook-id": headers["webhook-id"] + "x"})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(body, headers)


def test_a_failing_webhook_is_retried_until_it_succeeds_and_recorded(
    host: DevHost, receiver: Receiver
) -> None:
    """A 500 answer is retried with backoff; the delivery records its attempts and outcome."""
    receiver.statuses[:] = [500, 500]
    run = _run(host, receiver.url)
    _wait_for(lambda: len(receiver.requests) >= 3)
    ids = {h["webhook-id"] for h, _ in receiver.requests}
    assert len(ids) == 1  # the same event every time, so receivers can deduplicate

    def delivered() -> bool:
        with host.client() as client:
            found = client.get(f"/runs/{run['run_id']}/webhooks")
        rows = found.json()["deliveries"] if found.status_code == 200 else []
        return bool(rows) and rows[0]["status"] == "delivered"

    _wait_for(delivered)
    with host.client() as client:
        row = client.get(f"/runs/{run['run_id']}/webhooks").json()["deliveries"][0]
    assert row["attempts"] == 3
    assert row["last_status"] == 200


def test_a_webhook_that_is_not_http_is_rejected_at_creation(host: DevHost) -> None:
    """Only http and https webhooks are accepted (422 otherwise)."""
    with host.client() as client:
        response = client.post(
            "/runs", json={"agent_id": "triage", "input": "Hi", "webhook": "file:///etc/passwd"}
        )
    assert response.status_code == 422
