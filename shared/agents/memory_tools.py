"""`remember` and `recall`: function tools over the long-term memory store (shared/memory/store.py).

The tools act for the tenant and user of the run, which they read from the run context
(`RunContextWrapper.context`): the run engine passes a `RunContext` (shared/core/context.py);
any object with `tenant_id` and `user_id` attributes (or a mapping with those keys) works too.
Each user's memories live in the namespace `("users", <user>, "memories")`, so what a user said
in one thread can be recalled in any other thread of the same tenant. Without a context the tools do
nothing and tell the model that memory is unavailable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from agents import RunContextWrapper, function_tool
from pydantic import Field

from shared.core.context import RunContext
from shared.core.errors import AscentError
from shared.memory import store as memory

NO_CONTEXT = (
    "Long-term memory is not available in this conversation (the run has no tenant and "
    "user context), so nothing was saved or recalled."
)
# Below this cosine similarity a memory is treated as unrelated to the question.
RECALL_MIN_SCORE = 0.08
MAX_FACT_CHARS = 2_000
RECALL_LIMIT = 5


def user_namespace(user_id: str) -> tuple[str, ...]:
    """The namespace of a user's memories (the id is escaped into one valid label)."""
    label = quote(user_id, safe="").replace(".", "%2E")
    if len(label) > memory.MAX_LABEL_CHARS:
        label = "h-" + hashlib.sha256(user_id.encode()).hexdigest()[:40]
    return ("users", label, "memories")


def memory_context(context: Any) -> RunContext | None:
    """Read the tenant and user from a run context object, or None when it has none."""
    if isinstance(context, RunContext):
        return context if context.tenant_id and context.user_id else None
    if isinstance(context, Mapping):
        tenant, user = context.get("tenant_id"), context.get("user_id")
    else:
        tenant, user = getattr(context, "tenant_id", None), getattr(context, "user_id", None)
    if isinstance(tenant, str) and tenant and isinstance(user, str) and user:
        return RunContext(tenant_id=tenant, user_id=user)
    return None


def fact_key(fact: str) -> str:
    """A stable key for a fact, so saving the same fact twice keeps one copy."""
    normalized = " ".join(fact.lower().split())
    return "fact-" + hashlib.sha256(normalized.encode()).hexdigest()[:24]


@function_tool
async def remember(
    ctx: RunContextWrapper[Any],
    fact: Annotated[str, Field(min_length=1, max_length=MAX_FACT_CHARS)],
) -> str:
    """Save a lasting fact about the user to long-term memory for later conversations.

    Args:
        fact: The fact, as one self-contained sentence, e.g. "The user's favorite color is blue."
    """
    who = memory_context(ctx.context)
    if who is None:
        return NO_CONTEXT
    try:
        await memory.put(
            tenant_id=who.tenant_id,
            namespace=user_namespace(who.user_id),
            key=fact_key(fact),
            value={"text": fact.strip(), "kind": "fact"},
        )
    except AscentError as exc:
        return f"Could not save that to memory: {exc.detail}"
    return f"Remembered: {fact.strip()}"


@function_tool
async def recall(
    ctx: RunContextWrapper[Any],
    query: Annotated[str, Field(min_length=1, max_length=500)],
) -> str:
    """Recall facts about the user from long-term memory, including earlier conversations.

    Args:
        query: What to look for, e.g. "the user's favorite color".
    """
    who = memory_context(ctx.context)
    if who is None:
        return NO_CONTEXT
    try:
        items = await memory.search(
            tenant_id=who.tenant_id,
            namespace_prefix=user_namespace(who.user_id),
            query=query,
            limit=RECALL_LIMIT,
        )
    except AscentError as exc:
        return f"Could not search memory: {exc.detail}"
    relevant = [i for i in items if i.score is None or i.score >= RECALL_MIN_SCORE]
    if not relevant:
        return "No relevant memories."
    return "\n".join(f"- {i.value.get('text', i.value)}" for i in relevant)


MEMORY_TOOLS = [remember, recall]
