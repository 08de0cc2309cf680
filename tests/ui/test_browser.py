"""The UI in a real browser: Playwright drives Debian's Chromium against the real UI process and
the real dev host (both shared with the client tests: tests/ui/conftest.py).

One browser, one signed-in and one signed-out browser context for the module: each test opens
its own page (a page is a new Chainlit chat session), so only a context's first page loads the
app cold.
Each test saves a screenshot of its final state under test-artifacts/ui/ (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from local.uihost import UiProcess, wait_ready
from tests.conftest import DevHost
from tests.ui.ui_support import CHROMIUM, rate_limited_key, require_ui_tools, screenshot_path

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 20_000  # the longest any one step may take on a loaded 2-core CI box
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(autouse=True)
def settle_background_tasks() -> None:
    """Replaces the suite's async settling fixture: sync Playwright runs its own event loop,
    and these tests start no task or engine in this process."""


@pytest.fixture(scope="module")
def browser(ui_process: UiProcess) -> Iterator[Browser]:
    """Debian's Chromium, headless, launched by path (no browser download) while the UI starts."""
    require_ui_tools(browser=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        wait_ready(ui_process)
        yield launched
        launched.close()


def sign_in(context: BrowserContext, ui: UiProcess, key: str, name: str = "ada") -> Page:
    """Open the UI in `context` and submit its login form."""
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(ui.url)
    page.locator("#email").fill(name)
    page.locator("#password").fill(key)
    page.locator("button[type=submit]").click()
    return page


@pytest.fixture(scope="module")
def signed_in(browser: Browser, ui_process: UiProcess, host: DevHost) -> Iterator[BrowserContext]:
    """One browser context signed in with the development key through the login form."""
    context = browser.new_context()
    page = sign_in(context, ui_process, host.api_key)
    expect(page.locator("#chat-input")).to_be_visible()
    page.close()
    yield context
    context.close()


@pytest.fixture(scope="module")
def _signed_out_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    yield context
    context.close()


@pytest.fixture
def signed_out(_signed_out_context: BrowserContext) -> BrowserContext:
    """A context with no session (its cookies cleared), kept for the module so that only its
    first page loads the app cold."""
    _signed_out_context.clear_cookies()
    for page in _signed_out_context.pages:
        page.close()
    return _signed_out_context


@pytest.fixture
def chat(
    signed_in: BrowserContext, ui_process: UiProcess, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A new chat (a new page: a new Chainlit session) of the signed-in user; agent: triage."""
    page = signed_in.new_page()
    page.goto(ui_process.url)
    expect(page.locator("#chat-submit")).to_be_attached()
    yield page
    page.screenshot(path=screenshot_path(request.node.name + "_last"))
    page.close()


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
    signed_out: BrowserContext, signed_in: BrowserContext, ui_process: UiProcess,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """A wrong key is refused on the login form; the development key (the module's signed-in
    context, signed in through the same form) opens the chat."""
    page = sign_in(signed_out, ui_process, "asc_000000000000_wrong")
    expect(page.get_by_text("Reviewer inbox")).not_to_be_visible()
    expect(page.locator("#password")).to_be_visible()
    page.close()
    page = signed_in.new_page()
    page.goto(ui_process.url)
    expect(page.get_by_text("Reviewer inbox")).to_be_visible()
    expect(page.locator("#chat-input")).to_be_visible()
    page.screenshot(path=screenshot_path(request.node.name))
    page.close()


def test_two_turns_where_the_second_remembers_the_first(
    chat: Page, request: pytest.FixtureRequest
) -> None:
    """The second turn runs on the same thread, so the agent recalls the first turn's fact."""
    send(chat, "Hi, my name is Ada")
    expect(answers(chat).filter(has_text="Noted: your name is Ada.")).to_be_visible()
    send(chat, "What is my name?")
    # Case-sensitive, on the newest answer: has_text ignores case, and the first answer
    # ("Noted: your name is Ada.") would match it too.
    expect(answers(chat).last).to_contain_text("Your name is Ada.")
    chat.screenshot(path=screenshot_path(request.node.name))


def test_streamed_text_appears_before_the_run_ends(
    chat: Page, host: DevHost, request: pytest.FixtureRequest
) -> None:
    """Part of the answer is on screen before the API records the run's end: the page's first
    partial answer is older than the run's `updated_at` (same clock: one machine)."""
    chat.evaluate(
        """() => {
          window.__partial = null;
          new MutationObserver(() => {
            const all = document.querySelectorAll('[data-step-type="assistant_message"]');
            const text = all.length ? all[all.length - 1].innerText : '';
            if (window.__partial === null && text.includes('word0') && !text.includes('word59'))
              window.__partial = Date.now();
          }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    words = " ".join(f"word{i}" for i in range(60))
    send(chat, f"Please repeat: {words}")
    expect(answers(chat).filter(has_text="word59")).to_be_visible()
    partial_ms: int | None = chat.evaluate("window.__partial")
    assert partial_ms is not None, "the answer never showed partly"
    with httpx.Client(base_url=host.base_url, headers=host.headers) as api:
        thread = api.post("/threads/search", json={"limit": 1}).json()[0]
        run = api.get(f"/threads/{thread['thread_id']}/runs").json()[0]
    assert words in run["output"]
    assert partial_ms < datetime.fromisoformat(run["updated_at"]).timestamp() * 1000
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


def _paused_review(page: Page) -> str:
    """Ask for a refund in the chat; return the review the approval card shows."""
    send(page, "please issue a refund of 40")
    expect(page.get_by_text("Approval needed")).to_be_visible()
    expect(page.get_by_text("risk class: spend")).to_be_visible()
    buttons = page.locator('button[id^="approve-"]')
    expect(buttons).to_have_count(1)
    return str(buttons.get_attribute("id")).removeprefix("approve-")


def test_a_refund_approved_in_the_inbox_finishes_in_the_chat(
    chat: Page, signed_in: BrowserContext, ui_process: UiProcess,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """The requester's chat pauses; a reviewer approves it in the inbox (another chat session);
    the requester's chat shows the refund issued."""
    review_id = _paused_review(chat)
    inbox = signed_in.new_page()
    inbox.goto(ui_process.url)
    inbox.get_by_text("Reviewer inbox").click()
    expect(inbox.get_by_text("Audit trail").first).to_be_visible()
    expect(inbox.get_by_text("please issue a refund of 40").first).to_be_visible()
    inbox.locator(f'[id="approve-{review_id}"]').click()
    expect(inbox.get_by_text(f"Approved review {review_id[:8]}")).to_be_visible()
    inbox.screenshot(path=screenshot_path(request.node.name + "_inbox"))
    inbox.close()
    expect(answers(chat).filter(has_text="Refund of 40.00 issued")).to_be_visible()
    chat.screenshot(path=screenshot_path(request.node.name))


def test_a_rejected_refund_is_not_issued(
    chat: Page, host: DevHost, request: pytest.FixtureRequest
) -> None:
    """Rejecting inline records the decision; the run goes on and says it was not approved."""
    review_id = _paused_review(chat)
    chat.locator(f'[id="reject-{review_id}"]').click()
    expect(chat.get_by_text(f"Rejected review {review_id[:8]}")).to_be_visible()
    expect(chat.locator(f'[id="approve-{review_id}"]')).to_have_count(0)
    expect(answers(chat).filter(has_text="not approved").last).to_be_visible()
    with httpx.Client(base_url=host.base_url, headers=host.headers) as api:
        review = api.get(f"/reviews/{review_id}").json()
    assert review["status"] == "rejected" and review["decided_by"] == "ada"
    chat.screenshot(path=screenshot_path(request.node.name))


def test_usage_shows_the_tenants_tokens_per_agent(
    chat: Page, host: DevHost, request: pytest.FixtureRequest
) -> None:
    """After a turn, the usage view's row for the agent holds the API's runs and tokens for it
    (today is counted live), with the plot."""
    send(chat, "Hello from the usage test")
    expect(answers(chat).filter(has_text="Hello from the usage test")).to_be_visible()
    with httpx.Client(base_url=host.base_url, headers=host.headers) as api:
        rows = [r for r in api.get("/usage").json()["rows"] if r["agent"] == "triage"]
    runs, tokens = sum(r["runs"] for r in rows), sum(r["total_tokens"] for r in rows)
    assert runs >= 1 and tokens > 0
    send(chat, "/usage")
    row = answers(chat).locator("tr").filter(has_text="triage")
    expect(row.locator("td")).to_have_text(["triage", str(runs), str(tokens), "0.0000"])
    expect(answers(chat).locator('img[alt="usage.svg"]')).to_be_visible()
    chat.screenshot(path=screenshot_path(request.node.name))


def test_a_429_is_shown_as_a_message(
    signed_out: BrowserContext, host: DevHost, ui_process: UiProcess,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """A tenant over its rate limit sees the limit and its Retry-After, not a stack trace."""
    key = rate_limited_key(host.base_url, per_minute=1)
    # Signing in spends the minute's one request; opening the chat needs more (its agents).
    page = sign_in(signed_out, ui_process, key, name="busy")
    expect(page.get_by_text("Too many requests: the rate limit was reached.").first).to_be_visible()
    expect(page.get_by_text("Try again in").first).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)
    page.screenshot(path=screenshot_path(request.node.name))
    page.close()
