"""The Chainlit app: chat with any agent or assistant, approve inline, a reviewer's inbox, usage.

Run `chainlit run ui/ascent_ui/app.py` from `ui/` (see ui/run.sh). It talks to the Ascent API
over HTTP only (`ascent_ui.client`); it keeps nothing but the per-connection Chainlit session,
so replicas need no shared state beyond `CHAINLIT_AUTH_SECRET`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import chainlit as cl
import chainlit.oauth_providers as oauth_providers
from chainlit.input_widget import Select

from ascent_ui.client import ApiError, AscentClient, Json, StreamCursor
from ascent_ui.events import (
    Approval,
    Ended,
    Failure,
    Handoff,
    Interpreter,
    Refusal,
    TextDelta,
    ToolCall,
    ToolResult,
    history,
)
from ascent_ui.session import UiSettings, seal, unseal
from ascent_ui.usage_plot import cost_table, svg

SETTINGS = UiSettings.from_env()
ASSISTANT_SUFFIX = "(assistant)"
# How often a chat waiting on a decision made elsewhere (the inbox, another reviewer) looks.
WATCH_SECONDS = 1.0


# --- sign in -------------------------------------------------------------------------------


def _client(user: cl.User | None) -> AscentClient | None:
    sealed = (user.metadata or {}).get("credential") if user is not None else None
    token = unseal(sealed) if isinstance(sealed, str) else None
    return AscentClient(SETTINGS.api_url, token) if token else None


if SETTINGS.auth == "key":

    @cl.password_auth_callback
    async def sign_in_with_key(username: str, password: str) -> cl.User | None:
        """Development sign-in: any name, and an Ascent API key as the password."""
        async with AscentClient(SETTINGS.api_url, password) as client:
            try:
                await client.agents()
            except ApiError:
                return None
        return cl.User(
            identifier=username or "developer",
            metadata={"credential": seal(password), "provider": "api-key"},
        )

else:

    class EntraApiProvider(oauth_providers.AzureADOAuthProvider):  # type: ignore[misc]
        """Entra ID sign-in whose access token is for the Ascent API (`ASCENT_UI_API_SCOPE`),
        so the user's name comes from the token's claims rather than Microsoft Graph."""

        def __init__(self) -> None:
            super().__init__()
            scope = SETTINGS.api_scope or ""
            self.authorize_params["scope"] = f"{scope} openid profile offline_access".strip()

        async def get_user_info(self, token: str) -> tuple[dict[str, Any], cl.User]:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            name = claims.get("preferred_username") or claims.get("upn") or claims.get("oid")
            user = cl.User(identifier=str(name), metadata={"provider": "azure-ad"})
            return claims, user

    oauth_providers.providers = [
        EntraApiProvider() if p.id == "azure-ad" else p for p in oauth_providers.providers
    ]

    @cl.oauth_callback
    async def sign_in_with_entra(
        provider_id: str, token: str, raw_user_data: dict[str, str], default_user: cl.User
    ) -> cl.User | None:
        """Entra ID sign-in: the access token goes to the API as a bearer."""
        if provider_id != "azure-ad":
            return None
        default_user.metadata = {"credential": seal(token), "provider": "azure-ad"}
        return default_user


# --- the agent to chat with: a chat setting ---------------------------------------------------
# A chat setting rather than Chainlit chat profiles: a profile change restarts the session in
# the browser, which loses a message typed meanwhile; a setting changes only the next run.


async def _choices(client: AscentClient) -> dict[str, str]:
    """Label → agent or assistant id: every agent, and each assistant the tenant created."""
    choices = {a["name"]: a["name"] for a in await client.agents()}
    for a in await client.assistants():
        if (a.get("metadata") or {}).get("created_by") != "system":
            choices[f"{a['name']} {ASSISTANT_SUFFIX}"] = str(a["assistant_id"])
    return choices


@cl.on_chat_start
async def start() -> None:
    """Offer the agents and assistants in the chat settings (triage by default)."""
    try:
        choices = await _choices(_session_client())
    except ApiError as exc:
        await _show_error(exc)
        return
    cl.user_session.set("choices", choices)
    cl.user_session.set("agent_id", "triage" if "triage" in choices else next(iter(choices), ""))
    await cl.ChatSettings(
        [
            Select(
                id="agent",
                label="Agent or assistant",
                values=list(choices),
                initial_value="triage" if "triage" in choices else None,
            )
        ]
    ).send()


@cl.on_settings_update
async def settings_update(settings: dict[str, Any]) -> None:
    """Later turns go to the chosen agent (on the same thread: handoff-style continuity)."""
    choices: dict[str, str] = cl.user_session.get("choices") or {}
    label = str(settings.get("agent") or "")
    if label in choices:
        cl.user_session.set("agent_id", choices[label])
        await cl.Message(content=f"Now chatting with **{label}**.").send()


@cl.set_starters
async def starters(_user: cl.User | None) -> list[cl.Starter]:
    """The welcome screen's buttons: the inbox, usage, earlier conversations."""
    return [
        cl.Starter(label="Reviewer inbox", message="/inbox"),
        cl.Starter(label="Usage", message="/usage"),
        cl.Starter(label="Conversations", message="/threads"),
    ]


@cl.on_chat_end
async def end() -> None:
    """Close the session's HTTP client (a restored session makes a new one when it needs it)."""
    client: AscentClient | None = cl.user_session.get("client")
    cl.user_session.set("client", None)
    if client is not None:
        await client.aclose()


def _session_client() -> AscentClient:
    """The session's API client, made from the signed-in user's sealed credential."""
    client: AscentClient | None = cl.user_session.get("client")
    if client is None:
        client = _client(cl.user_session.get("user"))
        if client is None:
            raise ApiError(401, "Your session has no credential: sign in again.")
        cl.user_session.set("client", client)
    return client


async def _show_error(exc: ApiError) -> None:
    await cl.ErrorMessage(content=exc.message).send()


# --- chat --------------------------------------------------------------------------------------


@cl.on_message
async def on_message(message: cl.Message) -> None:
    """Commands, or a turn: start a run on the session's thread and stream it."""
    text = message.content.strip()
    try:
        if text.startswith("/inbox"):
            await show_inbox(text.removeprefix("/inbox").strip() or None)
        elif text.startswith("/usage"):
            await show_usage()
        elif text.startswith("/threads"):
            await show_conversations()
        else:
            await turn(text)
    except ApiError as exc:
        await _show_error(exc)


async def turn(text: str) -> None:
    """One user turn: a background run on the thread, followed by its stream."""
    client = _session_client()
    thread_id: str | None = cl.user_session.get("thread_id")
    agent_id = str(cl.user_session.get("agent_id") or "triage")
    if thread_id is None:
        thread_id = await client.create_thread({"title": text[:80], "agent": agent_id})
        cl.user_session.set("thread_id", thread_id)
    run = await client.start_run(thread_id, agent_id, text)
    await follow(thread_id, str(run["run_id"]), StreamCursor())


async def follow(thread_id: str, run_id: str, cursor: StreamCursor) -> None:
    """Show a run's stream from `cursor` on: tokens, tool and handoff steps, approvals, outcome."""
    client = _session_client()
    cl.user_session.set("run", (thread_id, run_id))
    interpreter = Interpreter()
    answer: cl.Message | None = None
    steps: dict[str, cl.Step] = {}
    paused: list[Json] = []
    try:
        async for event in client.stream_run(thread_id, run_id, cursor):
            for shown in interpreter.read(event):
                if isinstance(shown, TextDelta):
                    if answer is None:
                        answer = cl.Message(content="")
                    await answer.stream_token(shown.text)
                elif isinstance(shown, ToolCall):
                    step = cl.Step(name=shown.name, type="tool", show_input="json")
                    step.input = shown.arguments
                    await step.send()
                    steps[shown.call_id] = step
                elif isinstance(shown, ToolResult) and shown.call_id in steps:
                    steps[shown.call_id].output = shown.output
                    await steps[shown.call_id].update()
                elif isinstance(shown, Handoff):
                    async with cl.Step(name=f"handoff: {shown.source} → {shown.target}") as step:
                        step.output = f"{shown.source} handed the conversation to {shown.target}."
                elif isinstance(shown, Approval):
                    paused.append(shown.review)
                elif isinstance(shown, Refusal):
                    await cl.ErrorMessage(content=f"Refused by a guardrail: {shown.message}").send()
                elif isinstance(shown, Failure):
                    await cl.ErrorMessage(content=f"The run failed: {shown.message}").send()
                elif isinstance(shown, Ended) and shown.status == "interrupted" and not paused:
                    await cl.Message(content="The run was cancelled.").send()
    finally:
        if answer is not None:
            await answer.send()
        cl.user_session.set("run", None)
    for review in paused:
        await approval_card(review, inline=True)
    if paused:
        # The decision may come from here or from the inbox: either way, continue the run here.
        watcher = asyncio.create_task(watch(thread_id, run_id, cursor))
        cl.user_session.set("watcher", watcher)


async def watch(thread_id: str, run_id: str, cursor: StreamCursor) -> None:
    """Wait until a paused run is decided (anywhere), then show the rest of it."""
    client = _session_client()
    try:
        # The decision is made by another session or process (the inbox, another reviewer):
        # nothing in this process to wait on, so look at the run's status.
        while (await client.run(thread_id, run_id))["status"] == "interrupted":  # noqa: ASYNC110
            await asyncio.sleep(WATCH_SECONDS)
        cursor.ended = False
        await follow(thread_id, run_id, cursor)
    except ApiError as exc:
        await _show_error(exc)


@cl.on_stop
async def stop() -> None:
    """The stop button cancels the run in progress."""
    current = cl.user_session.get("run")
    if current:
        try:
            await _session_client().cancel_run(*current)
        except ApiError as exc:
            await _show_error(exc)


# --- approvals ---------------------------------------------------------------------------------


def _describe(review: Json) -> str:
    rid = str(review["review_id"])
    lines = [f"**Approval needed** · review `{rid[:8]}` · agent `{review.get('agent')}`"]
    if review.get("kind") == "tool":
        lines.append(
            f"- tool: `{review.get('tool')}` (risk class: **{review.get('risk') or '?'}**)"
        )
        lines.append(f"- arguments: `{json.dumps(review.get('arguments') or {})}`")
    else:
        lines.append(f"- answer held for review: {review.get('output')!r}")
        if review.get("reason"):
            lines.append(f"- reason: {review['reason']}")
    return "\n".join(lines)


def _decision_actions(review_id: str) -> list[cl.Action]:
    # Stable ids (`approve-<review id>`) let both buttons be removed once either is used.
    return [
        cl.Action(
            id=f"{decision}-{review_id}",
            name="decide",
            payload={"review_id": review_id, "decision": decision},
            label=decision.capitalize(),
            icon="check" if decision == "approve" else "x",
        )
        for decision in ("approve", "reject")
    ]


async def approval_card(review: Json, *, inline: bool) -> None:
    """A review as a message with approve and reject buttons."""
    client = _session_client()
    full = await client.review(str(review["review_id"]))
    content = _describe(full)
    if not inline:
        excerpt = (full.get("context") or {}).get("messages") or []
        quoted = [f"> **{m.get('role')}**: {str(m.get('content'))[:200]}" for m in excerpt[-4:]]
        audit = await client.review_audit(str(review["review_id"]))
        trail = [f"- {a.get('at')}: {a.get('action')} by {a.get('actor') or '-'}" for a in audit]
        content += "\n\n**Thread excerpt**\n" + ("\n".join(quoted) or "> (empty)")
        content += "\n\n**Audit trail**\n" + "\n".join(trail)
    await cl.Message(content=content, actions=_decision_actions(str(full["review_id"]))).send()


@cl.action_callback("decide")
async def decide(action: cl.Action) -> None:
    """Send the decision to the reviews API; the chat that waits on the run continues it."""
    client = _session_client()
    user: cl.User | None = cl.user_session.get("user")
    decision = action.payload["decision"]
    try:
        await client.decide(
            action.payload["review_id"],
            decision,
            reviewer=user.identifier if user else None,
        )
    except ApiError as exc:
        await _show_error(exc)
        return
    for button in _decision_actions(str(action.payload["review_id"])):
        button.forId = action.forId
        await button.remove()
    rid = str(action.payload["review_id"])[:8]
    verb = "Approved" if decision == "approve" else "Rejected"
    await cl.Message(content=f"{verb} review `{rid}`.").send()


# --- inbox, usage, conversations -----------------------------------------------------------------


@cl.action_callback("inbox")
async def inbox_action(_action: cl.Action) -> None:
    """Open the reviewer's inbox."""
    try:
        await show_inbox(None)
    except ApiError as exc:
        await _show_error(exc)


async def show_inbox(agent: str | None) -> None:
    """Pending reviews of the tenant (optionally one agent's), each with context and audit."""
    pending = await _session_client().reviews(agent=agent)
    title = f"**Reviewer inbox**: {len(pending)} pending" + (f" for `{agent}`" if agent else "")
    await cl.Message(content=title).send()
    for review in pending:
        await approval_card(review, inline=False)


@cl.action_callback("usage")
async def usage_action(_action: cl.Action) -> None:
    """Open the usage view."""
    try:
        await show_usage()
    except ApiError as exc:
        await _show_error(exc)


async def show_usage() -> None:
    """Tokens per day by agent (plot) and cost per agent, for the last 30 days."""
    try:
        usage = await _session_client().usage()
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(404, "This API has no usage endpoint (GET /api/usage).") from None
        raise
    image = cl.Image(
        name="usage.svg",
        content=svg(usage.get("rows", [])).encode(),
        mime="image/svg+xml",
        display="inline",
    )
    await cl.Message(content=cost_table(usage), elements=[image]).send()


@cl.action_callback("conversations")
async def conversations_action(_action: cl.Action) -> None:
    """List earlier conversations."""
    try:
        await show_conversations()
    except ApiError as exc:
        await _show_error(exc)


async def show_conversations() -> None:
    """The caller's recent threads, each with a button that resumes it here."""
    threads = await _session_client().threads()
    actions = [
        cl.Action(
            name="resume",
            payload={"thread_id": t["thread_id"]},
            label=f"{(t.get('metadata') or {}).get('title') or t['thread_id'][:8]} · {t['status']}",
        )
        for t in threads
    ]
    await cl.Message(content=f"**Conversations** ({len(threads)})", actions=actions).send()


@cl.action_callback("resume")
async def resume(action: cl.Action) -> None:
    """Replay a thread's conversation here and continue it; show approvals it still waits on."""
    thread_id = str(action.payload["thread_id"])
    client = _session_client()
    try:
        items = await client.messages(thread_id)
        thread = await client.thread(thread_id)
    except ApiError as exc:
        await _show_error(exc)
        return
    cl.user_session.set("thread_id", thread_id)
    await cl.Message(content=f"Resumed conversation `{thread_id[:8]}`.").send()
    for entry in history(items):
        if entry.role == "tool":
            step = cl.Step(name=entry.tool or "tool", type="tool", show_input="json")
            step.input = entry.arguments or {}
            step.output = entry.output or "(no output yet)"
            await step.send()
        elif entry.role == "handoff":
            await cl.Message(content=f"_handoff to {entry.text}_", author="handoff").send()
        else:
            author = "You" if entry.role == "user" else "Assistant"
            await cl.Message(
                content=entry.text,
                author=author,
                type=("user_message" if entry.role == "user" else "assistant_message"),
            ).send()
    for run_id, interrupts in (thread.get("interrupts") or {}).items():
        for interrupt in interrupts:
            await approval_card(interrupt["value"], inline=True)
        watcher = asyncio.create_task(watch(thread_id, run_id, StreamCursor()))
        cl.user_session.set("watcher", watcher)
