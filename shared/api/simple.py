"""The simple route, `POST /api/agents/{agent}/runs`: run an agent and answer in one request.

An adapter over the run engine (shared/runs/service.py `run_here`): the request's input
becomes a run on a new thread (or the given one, which must be idle: 409 while another run
holds it), executed on this instance, and its outcome becomes the answer:

- `success`: 200 with the output, the last agent and the usage;
- paused for a human (a write/spend tool, or an answer held for review): 200 with
  `status: "interrupted"` and `interrupts`, one per review (`review_id`, kind, tool and
  arguments, or the reason). Decide it with `POST /api/reviews/{review_id}/decision`; the run
  then continues in the background, and `GET /api/runs/{run_id}/wait` returns its answer;
- cancelled (`POST /api/runs/{run_id}/cancel` from anywhere): 200 with `status:
  "interrupted"`, `cancel_reason: "cancelled"` and what was produced so far;
- refused by an input or output guardrail: 422 (`guardrail-tripped`), nothing of the refused
  input kept;
- the model failed or gave no usable answer, or the run timed out: 502.
"""

from __future__ import annotations

from typing import Any

from shared.api.schemas import AgentRunRequest, AgentRunResponse, Interrupt, Usage
from shared.core.errors import GuardrailTripped, ServiceUnavailable, UpstreamModelError
from shared.db.availability import RETRY_AFTER_SECONDS
from shared.db.models import new_id
from shared.runs import service
from shared.runs.engine import Outcome
from shared.runs.records import NewRun
from shared.security import thread_access
from shared.security.auth import Principal


def raise_for_failure(outcome: Outcome) -> None:
    """Raise the problem a failed outcome means for a caller waiting for an answer."""
    if outcome.status not in ("error", "timeout"):
        return
    ids: dict[str, Any] = {"run_id": outcome.run_id, "thread_id": outcome.thread_id}
    if outcome.cause in ("input_guardrail", "output_guardrail"):
        what = "input" if outcome.cause == "input_guardrail" else "answer"
        raise GuardrailTripped(
            f"The {what} was refused by the {outcome.guardrail!r} guardrail.",
            guardrail=outcome.guardrail,
            **ids,
        )
    if outcome.cause == "unavailable":
        raise ServiceUnavailable(
            "The database dropped the run's connection; retry shortly.",
            retry_after=RETRY_AFTER_SECONDS,
            **ids,
        )
    if outcome.cause == "model":
        raise UpstreamModelError("The agent did not produce an answer.", **ids)
    if outcome.status == "timeout":
        raise UpstreamModelError("The run took too long and was stopped.", **ids)
    raise UpstreamModelError("The run failed.", **ids)


def interrupts_of(outcome: Outcome) -> list[Interrupt]:
    """The reviews a paused run waits for, as the simple route shows them."""
    return [
        Interrupt(
            review_id=r["review_id"],
            kind=r["kind"],
            tool=r.get("tool"),
            arguments=r.get("arguments"),
            reason=r.get("reason"),
        )
        for r in outcome.reviews
    ]


async def run_agent(principal: Principal, agent: str, body: AgentRunRequest) -> AgentRunResponse:
    """Run `agent` on the request's input (new thread, or the given one) and answer."""
    new = NewRun(
        run_id=new_id(),
        tenant_id=principal.tenant_id,
        agent=agent,
        input_text=body.input,
        entry_point="agents",
        user_id=principal.user_id or principal.key_id,
        thread_id=str(body.thread_id) if body.thread_id else None,
        thread_visible=thread_access.thread_visible(principal),
        new_thread_owner=thread_access.owner_for(principal),
    )
    handle = await service.run_here(new, principal=principal)
    outcome = await handle.outcome()
    raise_for_failure(outcome)
    return AgentRunResponse(
        run_id=outcome.run_id,
        thread_id=outcome.thread_id or handle.run.thread_id or "",
        agent=agent,
        last_agent=outcome.last_agent,
        status=outcome.status,
        output=outcome.output,
        usage=Usage(**outcome.usage) if outcome.usage else Usage.zero(),
        cancel_reason="cancelled" if outcome.cancelled else None,
        interrupts=interrupts_of(outcome),
    )
