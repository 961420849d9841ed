"""The chat page in a real browser: Debian's headless Chromium, driven by Playwright.

Every wait is on something the page shows (``expect``), never on a clock.  Each test
leaves a screenshot in ``test-artifacts/<test name>/`` and names it in the report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from support.processes import ROOT, free_port
from support.tokens import token

CHROMIUM = Path(os.environ.get("PAM_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's, never a downloaded build
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RECONNECT_TIMEOUT_MS = 15_000  # three attempts back off 1 s + 2 s + 4 s
expect.set_options(timeout=10_000)  # a busy 2-core machine starts services slowly

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """One browser per test: Playwright's loop must be gone before the stack fixture's teardown runs its own."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    context.add_init_script("localStorage.setItem('pam-debug', 'true')")
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest, record_property) -> Callable[[str], Path]:
    """Save what the page shows now under test-artifacts/, and attach the path to the report."""
    folder = ROOT / "test-artifacts" / re.sub(r"[^\w.-]", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path)
        record_property(f"screenshot_{name}", str(path))
        request.node.add_report_section("call", f"screenshot {name}", str(path))
        return path

    return take


def send(page: Page, text: str):
    """Type and send a message; the locator of the answer it gets."""
    page.fill("#input", text)
    page.press("#input", "Enter")
    return page.locator(".message.assistant").last


def test_a_message_gets_a_streamed_answer_with_the_seeds_context(stack, page, screenshot):
    stack.orchestrator(PAM_CHUNK_WINDOW_MS="0")  # a chunk per word, so the page must assemble them
    gateway = stack.gateway()
    sent: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))))
    page.goto(gateway.http_url("/#/expenses"))
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#status-text")).to_have_text("Connected · demo session")

    answer = send(page, "I spent $45 on diesel")
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".bubble")).to_contain_text("expense of 45")
    expect(answer.locator(".card[data-action=create]")).to_contain_text("$45.00")
    assert int(answer.get_attribute("data-chunks") or 0) > 3, "the answer should arrive in pieces"
    screenshot("answered")

    chat = next(frame for frame in sent if frame["type"] == "chat")
    assert set(chat) == {"type", "message", "user_id", "context", "message_id"}
    assert chat["message"] == "I spent $45 on diesel" and chat["user_id"].startswith("guest-")
    assert chat["context"]["region"] == "Queensland" and chat["context"]["current_page"] == "/expenses"
    session = chat["context"]["session_data"]
    assert set(session) == {"recent_intents", "intent_counts", "last_activity", "session_start"}

    expect(send(page, "and $20 on lunch")).to_have_attribute("data-state", "done")
    later = [frame for frame in sent if frame["type"] == "chat"][-1]["context"]["session_data"]
    assert later["recent_intents"] == ["expense"] and later["intent_counts"] == {"expense": 1}


def test_a_navigate_action_changes_the_page_for_a_signed_in_user(stack, llm_env, page, screenshot):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    page.goto(gateway.http_url(f"/?token={token('traveller-7')}"))
    expect(page.locator("#status-text")).to_have_text("Connected")
    assert "token=" not in page.url, "the token should leave the address bar"

    answer = send(page, 'Show me my trips [tool:navigate:{"page":"/trips"}]')
    expect(answer).to_have_attribute("data-state", "done")
    expect(page.locator("#route")).to_have_text("/trips")
    expect(page.locator('a[aria-current="page"]')).to_have_text("Trips")
    screenshot("navigated")


def test_status_follows_the_gateway_going_away_and_coming_back(stack, page, screenshot):
    stack.orchestrator()
    port = str(free_port())
    gateway = stack.gateway(PAM_GATEWAY_PORT=port)
    page.goto(gateway.http_url("/"))
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

    gateway.kill()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    screenshot("reconnecting")
    stack.gateway(PAM_GATEWAY_PORT=port)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT_TIMEOUT_MS)

    expect(send(page, "what's the weather in Cairns?")).to_have_attribute("data-state", "done")
    screenshot("reconnected")


def test_an_answer_cut_by_a_gateway_restart_arrives_whole_after_the_reconnect(stack, llm_env, page, screenshot):
    stack.orchestrator(**llm_env)
    port = str(free_port())
    gateway = stack.gateway(PAM_GATEWAY_PORT=port)
    page.goto(gateway.http_url(f"/?token={token('traveller-8')}"))
    expect(send(page, "[say:Hello again.]")).to_have_attribute("data-state", "done")

    words = "one two three four five six seven eight nine ten"
    answer = send(page, f"[say:{words}] [gap:0.4]")
    expect(answer).to_have_attribute("data-chunks", re.compile(r"[1-9]"))
    gateway.kill()
    stack.gateway(PAM_GATEWAY_PORT=port)
    expect(answer).to_have_attribute("data-state", "done", timeout=RECONNECT_TIMEOUT_MS)
    expect(answer.locator(".bubble")).to_have_text(words)
    screenshot("resumed")


def test_demo_mode_answers_when_the_backend_stays_away(stack, page, screenshot):
    gateway = stack.gateway()
    page.goto(gateway.http_url("/"))
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

    gateway.kill()
    expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=RECONNECT_TIMEOUT_MS)
    expect(page.locator("#notice")).to_contain_text("demo mode")
    answer = send(page, "I need to log an expense")
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".bubble")).to_contain_text("I'm in demo mode")
    screenshot("demo-mode")


def test_errors_are_shown_in_plain_words(stack, page, screenshot):
    gateway = stack.gateway()  # no orchestrator is running
    page.goto(gateway.http_url("/"))
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")

    answer = send(page, "hello")
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer.locator(".bubble")).to_have_text(re.compile(r"isn't available right now"))
    screenshot("error")
