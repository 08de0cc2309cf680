"""`memory_consolidator`: turns a finished conversation into lasting facts about its user.

Used by the `consolidate_memory` job (not served by the API, so it is not in the catalog). It
has one tool, `summarize_facts`, a deterministic extractor of the facts a user stated ("my
name is Ada" -> "The user's name is Ada."). A real model calls it and then writes a short
summary; the offline model calls it (the request shares its words) and answers with its
output, so the embedded stage produces a deterministic summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Any

from agents import Agent, Runner, function_tool
from pydantic import Field

from shared.platform.llm import run_config

NAME = "memory_consolidator"
DESCRIPTION = "Summarizes a finished conversation into lasting facts about the user."
PROMPT = (
    "You maintain a user's long-term memory. Call summarize_facts with the whole transcript, "
    "then reply with a short summary (at most five sentences) of the lasting facts about the "
    "user, based on the tool's result and the transcript. Never include secrets, card numbers "
    "or one-off requests. Reply with the summary only."
)
REQUEST = "Summarize this conversation transcript into lasting facts about the user:\n"
MAX_TRANSCRIPT_CHARS = 16_000
MAX_SUMMARY_CHARS = 2_000
_FACT = re.compile(r"\bmy ([a-z][a-z ]{0,30}?) is ([^.,!?\n]+)", re.IGNORECASE)
_USER_LINE = re.compile(r"^user: (.*)$", re.MULTILINE)


def extract_summary(transcript: str) -> str:
    """The deterministic summary: every fact the user stated, else what the user talked about."""
    user_lines = _USER_LINE.findall(transcript)
    facts: dict[str, str] = {}
    for line in user_lines:
        for key, value in _FACT.findall(line):
            facts[key.strip().lower()] = value.strip()
    if facts:
        summary = " ".join(f"The user's {key} is {value}." for key, value in facts.items())
    elif user_lines:
        summary = f"The user talked about: {user_lines[0].strip()[:300]}"
    else:
        summary = "The conversation held no user messages."
    return summary[:MAX_SUMMARY_CHARS]


@function_tool
def summarize_facts(
    transcript: Annotated[str, Field(min_length=1, max_length=MAX_TRANSCRIPT_CHARS + 500)],
) -> str:
    """Summarize a conversation transcript into lasting facts about the user.

    Args:
        transcript: The conversation, one `role: text` line per message.
    """
    return extract_summary(transcript)


def build() -> Agent[Any]:
    """A new memory consolidator agent."""
    return Agent(name=NAME, instructions=PROMPT, tools=[summarize_facts])


@cache
def get_consolidator() -> Agent[Any]:
    """The process's consolidator agent (built once)."""
    return build()


def transcript_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """Protocol messages as `role: text` lines, newest kept when the transcript is too long."""
    lines = [
        f"{m.get('role', 'user')}: {' '.join(str(m.get('content') or '').split())}"
        for m in messages
        if m.get("role") in ("user", "assistant") and m.get("content")
    ]
    text = "\n".join(lines)
    return text[-MAX_TRANSCRIPT_CHARS:]


async def summarize(messages: Sequence[Mapping[str, Any]]) -> str:
    """Run the consolidator on a conversation and return its summary."""
    result = await Runner.run(
        get_consolidator(), REQUEST + transcript_of(messages), run_config=run_config(), max_turns=4
    )
    return str(result.final_output).strip()[:MAX_SUMMARY_CHARS]
