"""`POST /api/events/agent-events`: the subscription route of the `agent-events` topic.

Dapr delivers each CloudEvent here (local/components/subscription.yaml); without a sidecar the
outbox drainer calls `agent_events` directly with the same request (shared.outbox.events). The
answer is Dapr's: 200 with `{"status": "SUCCESS" | "RETRY" | "DROP"}`. Events not found in the
outbox
are dropped, so a forged POST does nothing.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response
from pydantic import BaseModel, ConfigDict

from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.protocol import get_run
from shared.db.views import iso
from shared.outbox.events import receive_event
from shared.outbox.webhooks import list_deliveries

bp = func.Blueprint()


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 structured-mode event (extension attributes allowed)."""

    model_config = ConfigDict(extra="allow")
    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    data: object | None = None


class WebhookDeliveryOut(BaseModel):
    """One webhook delivery of a run: its attempts and outcome."""

    id: str
    event_id: str
    url: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: str | None
    delivered_at: str | None


class WebhookDeliveryList(BaseModel):
    """Response of `GET /api/runs/{run_id}/webhooks`."""

    deliveries: list[WebhookDeliveryOut]


class DeliveryAck(BaseModel):
    """Dapr's subscriber answer: SUCCESS, RETRY (redeliver) or DROP (never redeliver)."""

    status: str


@api
async def agent_events(req: Request) -> Response:
    """Receive one CloudEvent of the `agent-events` topic and hand it to the event handlers."""
    # Malformed JSON or a body that is no CloudEvent is a client error (400/422): no sidecar
    # sends one, and retrying it could never succeed. A well-formed event we did not publish
    # is answered DROP.
    event = await read_json(req, CloudEventIn)
    return JSONResponse({"status": await receive_event(event.model_dump(exclude_unset=True))})


bp.route(route="events/agent-events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)(
    documented(
        summary="Receive a domain event (Dapr pub/sub subscription)",
        request=CloudEventIn,
        response=DeliveryAck,
        auth=False,
        tags=["events"],
    )(agent_events)
)


@bp.route(route="runs/{run_id}/webhooks", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="A run's webhook deliveries (attempts, last status and error, next attempt)",
    response=WebhookDeliveryList,
    errors=[404],
    tags=["runs"],
)
@api
async def run_webhook_deliveries(req: Request) -> Response:
    """List the webhook deliveries of one of the tenant's runs."""
    principal = await principal_of(req)
    run = await get_run(principal, req.path_params["run_id"])
    rows = await list_deliveries(tenant_id=principal.tenant_id, run_id=run.id)
    out = [
        WebhookDeliveryOut(
            id=d.id,
            event_id=d.event_id,
            url=d.url,
            status=d.status,
            attempts=d.attempts,
            last_status=d.last_status,
            last_error=d.last_error,
            next_attempt_at=iso(d.next_attempt_at) if d.status == "pending" else None,
            delivered_at=iso(d.delivered_at),
        )
        for d in rows
    ]
    return JSONResponse(WebhookDeliveryList(deliveries=out).model_dump(mode="json"))
