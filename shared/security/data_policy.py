"""The tenant data policy: sensitive text refused or redacted before anything is stored.

A platform policy, not an agent option: it applies to every agent (catalog or assistant) and
every entry point, because it runs where every run is created (`shared.runs.service.bind`,
before `create_run` writes the run, its thread, events or history) and where message text is
stored without a run (crons, `update_state`). It reads user and assistant messages alike:
the run's input text and, in its input items, every message's text and every tool output.

Rules: Luhn-valid payment card numbers (rule `no_card_numbers`, always on unless the policy is
`off`) and the patterns the tenant's platform admin adds (`{name, regex}`, Python syntax).
Actions:

- `refuse` (the default, ASCENT_DATA_POLICY): 422 `guardrail-tripped` naming the rule; nothing
  is written, so `runs.input`, the history, run events and logs never see the text;
- `redact`: each match becomes `[REDACTED:<rule>]` and the run goes ahead on the redacted text,
  so everything stored and everything the model sees is the redacted form;
- `off`: nothing is checked (a tenant that processes test card numbers, say); the per-agent
  guardrails (`no_card_numbers` on triage and assistant) still apply on top, as they do with
  the other actions.

A tenant's policy lives in `tenant_data_policies` (admin API
`GET/PUT /api/platform/tenants/{tenant_id}/data-policy`). A change applies at once on the
instance that served the PUT and within LOCAL_TTL_SECONDS on the others (a process cache).
Limits: tenant patterns are set by the platform admin and trusted like configuration (Python
`re` has no timeout, so a pathological pattern costs CPU on each run); metadata, config and
store items are not messages and are not checked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import GuardrailTripped
from shared.core.sensitive import card_spans
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.models import utcnow
from shared.db.security_models import TenantDataPolicy
from shared.security.tenant_limits import require_tenant

Action = Literal["refuse", "redact", "off"]
CARD_RULE = "no_card_numbers"
LOCAL_TTL_SECONDS = 5.0
MAX_PATTERNS = 32
Json = dict[str, Any]
Spans = Callable[[str], list[tuple[int, int]]]


def _compiles(regex: str) -> str:
    try:
        re.compile(regex)  # a match of no text is allowed, and ignored (_regex_spans)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc.msg}") from None
    return regex


class PolicyPattern(BaseModel):
    """A tenant's own rule: text matching `regex` is refused or redacted like a card number."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$", description="Rule name."
    )
    regex: Annotated[str, AfterValidator(_compiles)] = Field(
        min_length=1,
        max_length=500,
        description="A Python regular expression (matches of no text are ignored).",
        json_schema_extra={"format": "regex"},
    )


class DataPolicyUpdate(BaseModel):
    """Body of `PUT .../data-policy`: the action (null: the deployment default) and the
    tenant's own patterns (replacing the previous list)."""

    model_config = ConfigDict(extra="forbid")
    action: Action | None = Field(description="`refuse`, `redact`, `off`, or null.")
    patterns: list[PolicyPattern] = Field(default_factory=list, max_length=MAX_PATTERNS)


class DataPolicyOut(BaseModel):
    """A tenant's data policy as the admin API shows it: its settings and what applies."""

    tenant_id: str
    action: Action | None = Field(description="The tenant's action; null: the default.")
    patterns: list[PolicyPattern]
    effective_action: Action
    rules: list[str] = Field(description="The rules checked now (none when `off`).")


@dataclass(frozen=True)
class Policy:
    """The policy in force for one tenant: its action and its rules, compiled."""

    action: Action
    rules: tuple[tuple[str, Spans], ...]

    def check(self, text: str) -> str:
        """The text as it may be stored: unchanged, redacted, or GuardrailTripped (refuse)."""
        if self.action == "off" or not text:
            return text
        for name, spans in self.rules:
            found = spans(text)
            if not found:
                continue
            if self.action == "refuse":
                raise GuardrailTripped(
                    f"The input was refused by the tenant's data policy ({name}).",
                    guardrail=name,
                )
            for start, end in reversed(found):
                text = text[:start] + f"[REDACTED:{name}]" + text[end:]
        return text

    def check_items(self, items: Sequence[Json] | None) -> list[Json] | None:
        """Input items as they may be stored: every message's text (any role) and every tool
        output checked; other fields kept as they are."""
        if items is None:
            return None
        return [self._item(item) for item in items]

    def check_deep(self, value: Any) -> Any:
        """Every string in a JSON value checked (thread state values, which hold messages)."""
        if self.action == "off":
            return value
        if isinstance(value, str):
            return self.check(value)
        if isinstance(value, dict):
            return {k: self.check_deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.check_deep(v) for v in value]
        return value

    def _item(self, item: Json) -> Json:
        out = dict(item)
        content = item.get("content")
        if isinstance(content, str):
            out["content"] = self.check(content)
        elif isinstance(content, list):
            out["content"] = [
                {**part, "text": self.check(part["text"])}
                if isinstance(part, dict) and isinstance(part.get("text"), str)
                else part
                for part in content
            ]
        if isinstance(item.get("output"), str):
            out["output"] = self.check(item["output"])
        return out


def _regex_spans(regex: str) -> Spans:
    compiled = re.compile(regex)
    return lambda text: [m.span() for m in compiled.finditer(text) if m.end() > m.start()]


def compile_policy(action: Action, patterns: Sequence[PolicyPattern]) -> Policy:
    """The policy for an action and the tenant's patterns (card numbers first)."""
    if action == "off":
        return Policy(action, ())
    rules: list[tuple[str, Spans]] = [(CARD_RULE, card_spans)]
    rules += [(p.name, _regex_spans(p.regex)) for p in patterns]
    return Policy(action, tuple(rules))


def default_action() -> Action:
    """The deployment's action for tenants without their own (ASCENT_DATA_POLICY)."""
    return get_settings().data_policy


_cache: dict[str, tuple[float, TenantDataPolicy | None]] = {}


async def _row(tenant_id: str) -> TenantDataPolicy | None:
    now = time.monotonic()
    hit = _cache.get(tenant_id)
    if hit is not None and now - hit[0] < LOCAL_TTL_SECONDS:
        return hit[1]
    async with db_session() as db:
        row = await db.get(TenantDataPolicy, tenant_id)
    _cache[tenant_id] = (now, row)
    return row


async def policy_for(tenant_id: str) -> Policy:
    """The policy in force for the tenant (its row over the deployment default)."""
    row = await _row(tenant_id)
    action: Action = row.action if row is not None and row.action else default_action()  # type: ignore[assignment]
    patterns = [PolicyPattern.model_validate(p) for p in (row.patterns if row else [])]
    return compile_policy(action, patterns)


def _out(tenant_id: str, row: TenantDataPolicy | None) -> DataPolicyOut:
    action: Action | None = row.action if row is not None else None  # type: ignore[assignment]
    patterns = [PolicyPattern.model_validate(p) for p in (row.patterns if row else [])]
    effective: Action = action or default_action()
    rules = [] if effective == "off" else [CARD_RULE, *(p.name for p in patterns)]
    return DataPolicyOut(
        tenant_id=tenant_id,
        action=action,
        patterns=patterns,
        effective_action=effective,
        rules=rules,
    )


async def get_data_policy(*, session: AsyncSession, tenant_id: str) -> DataPolicyOut:
    """The tenant's data policy and what applies."""
    await require_tenant(session, tenant_id)
    return _out(tenant_id, await session.get(TenantDataPolicy, tenant_id))


async def set_data_policy(
    *, session: AsyncSession, tenant_id: str, body: DataPolicyUpdate
) -> DataPolicyOut:
    """Replace the tenant's data policy; the next run on this instance follows it."""
    await require_tenant(session, tenant_id)
    row = await session.get(TenantDataPolicy, tenant_id)
    patterns = [p.model_dump() for p in body.patterns]
    if row is None:
        row = TenantDataPolicy(tenant_id=tenant_id, action=body.action, patterns=patterns)
    else:
        row.action, row.patterns, row.updated_at = body.action, patterns, utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    _cache.pop(tenant_id, None)
    return _out(tenant_id, row)
