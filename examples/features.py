"""The Agents SDK's features, each as a served agent (serve them: ASCENT_AGENTS=examples.features).

| agent | feature | try |
|---|---|---|
| `ticket_triage` | structured output (`output_type`): JSON, described in `/agents/{id}/schemas` | `"urgent billing problem with order ORD-1234"` |
| `concierge` | dynamic instructions from the run context; a tool reading the run context | `"what are your instructions?"`, `"who am I?"` |
| `word_counter` | an agent as a tool (`Agent.as_tool`) | `"count the words in: the quick brown fox"` |
| `front_desk` | a handoff with an input filter (the specialist sees only the latest request) | `"I have a warranty claim"` |
| `terse` | per-agent `ModelSettings` (`max_tokens=4`), a turn limit and a model name | `"tell me everything about the weather today"` |
| `stock` | `tool_use_behavior` (a function): the tool's record, as JSON, is the answer | `"stock of SKU-1234"` |
| `audited` | run hooks: each agent and tool start is a progress event of the run | `"what time is it in UTC"` |

They use only the public API (`ascent`) and the Agents SDK, as an agent module of your own would.
"""  # noqa: E501

from __future__ import annotations

from typing import Annotated, Any, Literal

from agents import (
    Agent,
    FunctionToolResult,
    HandoffInputData,
    ModelSettings,
    RunContextWrapper,
    RunHooks,
    Tool,
    ToolsToFinalOutputResult,
    handoff,
)
from pydantic import BaseModel, Field

from ascent import RunContext, emit_progress, serve_agent, tool

# --- structured output -------------------------------------------------------------------------


class Ticket(BaseModel):
    """A support ticket as the triage agent files it."""

    category: Literal["billing", "technical", "other"]
    urgent: bool
    order: str = Field(pattern=r"ORD-\d{4}", description="The order number, ORD-nnnn.")
    summary: str


ticket_triage = serve_agent(
    Agent(
        name="ticket_triage",
        handoff_description="Files a support request as a structured ticket.",
        instructions="File the user's request as a ticket: category, urgency, order, summary.",
        output_type=Ticket,
    )
)

# --- dynamic instructions, and a tool reading the run context ----------------------------------


def concierge_instructions(ctx: RunContextWrapper[RunContext], agent: Agent[RunContext]) -> str:
    """Instructions written for this run: whose it is and where."""
    run = ctx.context
    return (
        f"You are the concierge of tenant {run.tenant_id}, serving user {run.user_id} "
        f"in thread {run.thread_id}."
    )


@tool(risk="read")
def who_am_i(ctx: RunContextWrapper[RunContext]) -> str:
    """Tell who am I: the tenant, user, thread and run of this conversation."""
    run = ctx.context
    return f"tenant={run.tenant_id} user={run.user_id} thread={run.thread_id} run={run.run_id}"


concierge = serve_agent(
    Agent[RunContext](
        name="concierge",
        handoff_description="Knows whose conversation this is.",
        instructions=concierge_instructions,
        tools=[who_am_i],
    )
)

# --- an agent as a tool ------------------------------------------------------------------------


@tool(risk="read")
def count_words(text: str) -> str:
    """Count the words of a text.

    Args:
        text: The text whose words to count.
    """
    body = text.split(":", 1)[-1]
    return f"The text has {len(body.split())} words."


_counter = Agent(
    name="counter",
    instructions="Count the words of the text you are given with count_words.",
    tools=[count_words],
)

word_counter = serve_agent(
    Agent(
        name="word_counter",
        handoff_description="Counts words by asking its counting agent.",
        instructions="Ask the counting agent to count words.",
        tools=[
            tool(
                _counter.as_tool(
                    tool_name="counting_agent",
                    tool_description="Ask the counting agent to count the words of a text.",
                ),
                risk="read",
            )
        ],
    )
)

# --- a handoff with an input filter ------------------------------------------------------------


def latest_request_only(data: HandoffInputData) -> HandoffInputData:
    """Hand the specialist only the user's latest message, none of the earlier conversation."""
    history = data.input_history
    if isinstance(history, tuple):
        users = [i for i in history if isinstance(i, dict) and i.get("role") == "user"]
        history = tuple(users[-1:])
    return data.clone(input_history=history, pre_handoff_items=(), new_items=())


_warranty = Agent(
    name="warranty",
    handoff_description="Warranty specialist for warranty claims and repairs.",
    instructions="Handle warranty claims.",
)

front_desk = serve_agent(
    Agent(
        name="front_desk",
        handoff_description="Hands warranty claims to the warranty specialist.",
        instructions="Hand warranty matters to the warranty specialist.",
        handoffs=[handoff(_warranty, input_filter=latest_request_only)],
    )
)

# --- per-agent ModelSettings, turn limit and model ---------------------------------------------

terse = serve_agent(
    Agent(
        name="terse",
        handoff_description="Answers in at most four words.",
        instructions="Answer in at most four words.",
        model_settings=ModelSettings(max_tokens=4),
    ),
    max_turns=3,
    model="terse-model",
)

# --- tool_use_behavior -------------------------------------------------------------------------


class StockRecord(BaseModel):
    """What the stock tool knows of a product."""

    sku: str
    in_stock: int
    warehouse: str


@tool(risk="read")
def stock_level(sku: Annotated[str, Field(pattern=r"SKU-\d{4}")]) -> str:
    """Look up the stock of a product by its SKU.

    Args:
        sku: The product's SKU, such as SKU-1234.
    """
    return StockRecord(sku=sku, in_stock=int(sku[-2:]), warehouse="north").model_dump_json()


def the_record_is_the_answer(
    ctx: RunContextWrapper[Any], results: list[FunctionToolResult]
) -> ToolsToFinalOutputResult:
    """Stop at the stock tool: its record, as a JSON object, is the run's answer (no second
    model call to paraphrase it)."""
    for result in results:
        if result.tool.name == "stock_level":
            return ToolsToFinalOutputResult(
                is_final_output=True,
                final_output=StockRecord.model_validate_json(str(result.output)),
            )
    return ToolsToFinalOutputResult(is_final_output=False)


stock = serve_agent(
    Agent(
        name="stock",
        handoff_description="Answers stock questions with the stock tool's record itself.",
        instructions="Look the SKU up.",
        tools=[stock_level],
        tool_use_behavior=the_record_is_the_answer,
        output_type=StockRecord,
    )
)

# --- run hooks ---------------------------------------------------------------------------------


class ProgressHooks(RunHooks[RunContext]):
    """Report each agent and tool start of a run as a progress (`custom`) event."""

    async def on_agent_start(
        self, context: RunContextWrapper[RunContext], agent: Agent[RunContext]
    ) -> None:
        """An agent takes its turn."""
        emit_progress(context, {"hook": "agent_start", "agent": agent.name})

    async def on_tool_start(
        self, context: RunContextWrapper[RunContext], agent: Agent[RunContext], tool: Tool
    ) -> None:
        """A tool is about to run."""
        emit_progress(context, {"hook": "tool_start", "agent": agent.name, "tool": tool.name})


@tool(risk="read")
def utc_clock() -> str:
    """Tell the time in UTC."""
    return "It is noon in UTC."


audited = serve_agent(
    Agent(
        name="audited",
        handoff_description="Tells the time in UTC; its runs are audited by run hooks.",
        instructions="Tell the time with utc_clock.",
        tools=[utc_clock],
    ),
    hooks=ProgressHooks(),
)
