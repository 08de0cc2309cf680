"""The UI in a real browser: Playwright drives Debian's Chromium against the real UI process and
a real dev host (one of each for the module, one browser, one signed-in session reused).

Each test saves a screenshot of its final state under test-artifacts/ui/ (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.ui.ui_support import (
    CHROMIUM,
    Stack,
    rate_limited_key,
    require_ui_tools,
    screenshot_path,
    start_stack,
)

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 20_000  # the longest any one step may take on a loaded 2-core CI box
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(autouse=True)
def settle_background_tasks() -> None:
    """Replaces the suite's async settling fixture: sync Playwright runs its own event loop,
    and these tests start no task or engine in this process."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API dev host and the UI process, shared by the module."""
    require_ui_tools(browser=True)
    started = start_stack(tmp_path_factory.mktemp("ui-browser"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched by path (no browser download)."""
    require_ui_tools(browser=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def sign_in(browser: Browser, stack: Stack, key: str, name: str = "ada") -> Page:
    """A new browser context signed in through the UI's login form."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(stack.ui.url)
    page.locator("#email").fill(name)
    page.locator("#password").fill(key)
    page.locator("button[type=submit]").click()
    return page


@pytest.fixture(scope="module")
def session_state(browser: Browser, stack: Stack) -> dict[str, Any]:
    """The cookies of one signed-in session, reused by the tests that chat."""
    page = sign_in(browser, stack, stack.host.api_key)
    expect(page.locator("#chat-input")).to_be_visible()
    # Only the session cookie: Chainlit keeps its chat session id in the page's storage, and a
    # test that inherited it would continue the previous test's chat (and its thread).
    state: dict[str, Any] = {"cookies": page.context.storage_state()["cookies"], "origins": []}
    page.context.close()
    return state


@pytest.fixture
def chat(
    browser: Browser, stack: Stack, session_state: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh chat page of the signed-in user (default agent: triage)."""
    context = browser.new_context(storage_state=session_state)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(stack.ui.url)
    expect(page.get_by_text("Reviewer inbox")).to_be_visible()
    yield page
    page.screenshot(path=screenshot_path(request.node.name + "_last"))
    context.close()


def send(page: Page, text: str) -> None:
    """Type a message and send it once the chat is connected; wait until it is in the chat."""
    page.locator("#chat-input").fill(text)
    submit = page.locator("#chat-submit")
    expect(submit).to_be_enabled()
    submit.click()
    sent = page.locator('[data-step-type="user_message"]').filter(has_text=text[:40])
    expect(sent.last).to_be_visible()


def answers(page: Page) -> Any:
    """The assistant messages of the page."""
    return page.locator('[data-step-type="assistant_message"]')


def test_sign_in_with_the_development_key(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> None:
    """A wrong key is refused on the login form; the development key opens the chat."""
    page = sign_in(browser, stack, "asc_000000000000_wrong")
    expect(page.get_by_text("Reviewer inbox")).not_to_be_visible()
    expect(page.locator("#password")).to_be_visible()
    page.context.close()
    page = sign_in(browser, stack, stack.host.api_key)
    expect(page.get_by_text("Reviewer inbox")).to_be_visible()
    expect(page.locator("#chat-input")).to_be_visible()
    page.screenshot(path=screenshot_path(request.node.name))
    page.context.close()


def test_two_turns_where_the_second_remembers_the_first(
    chat: Page, request: pytest.FixtureRequest
) -> None:
    """The second turn runs on the same thread, so the agent recalls the first turn's fact."""
    send(chat, "Hi, my name is Ada")
    expect(answers(chat).filter(has_text="Noted: your name is Ada.")).to_be_visible()
    send(chat, "What is my name?")
    expect(answers(chat).filter(has_text="Your name is Ada.")).to_be_visible()
    chat.screenshot(path=screenshot_path(request.node.name))


def test_streamed_text_grows_token_by_token(chat: Page, request: pytest.FixtureRequest) -> None:
    """The answer's text grows on screen in many steps (tokens as they arrive), not at once.

    Limit: the offline model finishes a run in milliseconds, so the browser cannot observe a
    token before the API records the end; tests/ui/test_client.py shows the stream's tokens
    arriving before its `end` event, and this test that the page renders them one by one.
    """
    chat.evaluate(
        """() => {
          window.__seen = [];
          new MutationObserver(() => {
            const all = document.querySelectorAll('[data-step-type="assistant_message"]');
            const last = all[all.length - 1];
            if (last) window.__seen.push(last.innerText.trim());
          }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    words = " ".join(f"word{i}" for i in range(300))
    send(chat, f"Please repeat: {words}")
    expect(answers(chat).filter(has_text="word299")).to_be_visible()
    seen: list[str] = chat.evaluate("window.__seen")
    partial = {t for t in seen if "word0" in t and "word299" not in t}
    assert len(partial) > 10, "the answer did not grow in steps"
    chat.screenshot(path=screenshot_path(request.node.name))


def test_a_tool_step_and_a_handoff_are_visible(chat: Page, request: pytest.FixtureRequest) -> None:
    """Triage hands off to billing, whose refund_quote tool call shows with its result."""
    send(chat, "I want a refund for 40 dollars bought 45 days ago")
    expect(chat.get_by_text("handoff: triage → billing")).to_be_visible()
    step = chat.locator('[data-step-type="tool"]').filter(has_text="refund_quote")
    expect(step).to_be_visible()
    step.get_by_text("refund_quote").click()  # open the step: its arguments and output
    expect(step.get_by_text("days_since_purchase")).to_be_visible()
    expect(step.get_by_text("refundable for 20.00").first).to_be_visible()
    chat.screenshot(path=screenshot_path(request.node.name))


def _paused_review(page: Page, stack: Stack) -> str:
    """Ask for a refund in the chat; return the review the approval card shows."""
    send(page, "please issue a refund of 40")
    card = page.get_by_text("Approval needed")
    expect(card).to_be_visible()
    expect(page.get_by_text("risk class: spend")).to_be_visible()
    buttons = page.locator('button[id^="approve-"]')
    expect(buttons).to_have_count(1)
    return str(buttons.get_attribute("id")).removeprefix("approve-")


def test_a_refund_approved_in_the_inbox_finishes_in_the_chat(
    chat: Page, browser: Browser, stack: Stack, session_state: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """The requester's chat pauses; a reviewer approves it in the inbox (another page); the
    requester's chat shows the refund issued."""
    review_id = _paused_review(chat, stack)
    reviewer = browser.new_context(storage_state=session_state)  # type: ignore[arg-type]
    reviewer.set_default_timeout(TIMEOUT_MS)
    inbox = reviewer.new_page()
    inbox.goto(stack.ui.url)
    inbox.get_by_text("Reviewer inbox").click()
    expect(inbox.get_by_text("Audit trail").first).to_be_visible()
    expect(inbox.get_by_text("please issue a refund of 40").first).to_be_visible()
    inbox.locator(f'[id="approve-{review_id}"]').click()
    expect(inbox.get_by_text(f"Approved review {review_id[:8]}")).to_be_visible()
    inbox.screenshot(path=screenshot_path(request.node.name + "_inbox"))
    reviewer.close()
    expect(answers(chat).filter(has_text="Refund of 40.00 issued")).to_be_visible()
    chat.screenshot(path=screenshot_path(request.node.name))


def test_a_rejected_refund_is_not_issued(
    chat: Page, stack: Stack, request: pytest.FixtureRequest
) -> None:
    """Rejecting inline records the decision; the run goes on and says it was not approved."""
    review_id = _paused_review(chat, stack)
    chat.locator(f'[id="reject-{review_id}"]').click()
    expect(chat.get_by_text(f"Rejected review {review_id[:8]}")).to_be_visible()
    expect(chat.locator(f'[id="approve-{review_id}"]')).to_have_count(0)
    expect(answers(chat).filter(has_text="not approved").last).to_be_visible()
    with httpx.Client(base_url=stack.host.base_url, headers=stack.host.headers) as api:
        review = api.get(f"/reviews/{review_id}").json()
    assert review["status"] == "rejected" and review["decided_by"] == "ada"
    chat.screenshot(path=screenshot_path(request.node.name))


def test_a_429_is_shown_as_a_message(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> None:
    """A tenant over its rate limit sees the limit and its Retry-After, not a stack trace."""
    key = rate_limited_key(stack.host.base_url, per_minute=1)
    # Signing in spends the minute's one request; opening the chat needs more (its agents).
    page = sign_in(browser, stack, key, name="busy")
    expect(page.get_by_text("Too many requests: the rate limit was reached.").first).to_be_visible()
    expect(page.get_by_text("Try again in").first).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)
    page.screenshot(path=screenshot_path(request.node.name))
    page.context.close()
