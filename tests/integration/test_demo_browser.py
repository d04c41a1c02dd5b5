"""The demo chat at `/` in a real browser: Debian's chromium driven by playwright-core, against
`hero serve` started with no configuration at all in an empty working directory.

Two pages sign in as two demo users; what one does appears in the other: messages, the
typing indicator, presence, reactions. The server is killed and started again on the same port
(and the same database): the pages show the reconnecting state and then recover. Every
transport / protocol pair of the switcher carries a message. One screenshot of two users
chatting is taken; with HERO_UPDATE_SCREENSHOTS=1 it replaces docs/img/demo-two-users.png.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_tool
from tests.integration.js.agent import interop_installed
from tests.integration.js.browser import BROWSER, BrowserAgent, chromium_path, playwright_installed
from tests.integration.platform_app import clean_environ, hero_serve
from tests.support.servers import REPO, RunningServer

SCREENSHOT = REPO / "docs" / "img" / "demo-two-users.png"
UPDATE_SCREENSHOTS = os.environ.get("HERO_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture
async def browser(node: str, unit: float) -> AsyncIterator[BrowserAgent]:
    executable = chromium_path()
    if executable is None:
        missing_tool("chromium is not installed (apt-get install chromium)")
    if not (interop_installed() and playwright_installed()):
        missing_tool("tests/interop/node_modules is not installed (npm ci in tests/interop)")
    os.environ.setdefault("HERO_CHROMIUM", executable)
    async with BrowserAgent.start(node, unit, script=BROWSER) as agent:
        yield agent


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def bare(workdir: Path) -> Iterator[RunningServer]:
    """`hero serve`, no configuration, in an empty directory (a pinned key survives restarts
    only if configured, so none is: the pages must cope with a new development key)."""
    with hero_serve(clean_environ(), cwd=workdir) as server:
        yield server


async def sign_in(browser: BrowserAgent, name: str, base_url: str, query: str = "") -> None:
    await browser.open(name, f"{base_url}/?user={name}{query}")
    await browser.wait_for(name, "#status[data-state='connected']")


async def create_channel(browser: BrowserAgent, name: str, channel: str) -> None:
    await browser.click(name, "summary", text="New channel")
    await browser.fill(name, "#new-channel-name", channel)
    await browser.click(name, "#new-channel button[type='submit']")
    await browser.wait_for(name, "#channel-title", text=channel)


async def send(browser: BrowserAgent, name: str, text: str) -> None:
    await browser.fill(name, "#composer-input", text)
    await browser.press(name, "#composer-input", "Enter")


async def two_users_in_a_channel(browser: BrowserAgent, base_url: str, channel: str) -> None:
    await sign_in(browser, "alice", base_url)
    await sign_in(browser, "bob", base_url)
    await create_channel(browser, "alice", channel)
    await browser.select("alice", "#add-member-select", "Bob")
    await browser.click("alice", "#add-member button[type='submit']")
    await browser.wait_for("alice", "#member-list li", text="Bob")
    await browser.click("bob", "#channel-list button", text=channel)
    await browser.wait_for("bob", "#channel-title", text=channel)


async def test_two_users_chat_live(
    bare: RunningServer, workdir: Path, browser: BrowserAgent
) -> None:
    assert (workdir / "hero.db").is_file()  # the embedded database, in the working directory
    await two_users_in_a_channel(browser, bare.base_url, "general")

    await send(browser, "alice", "Hi Bob, this is live.")
    await browser.wait_for("bob", ".message .body", text="Hi Bob, this is live.")

    # typing: Bob types, Alice sees the indicator
    await browser.type("bob", "#composer-input", "Hel")
    await browser.wait_for("alice", "#typing", text="Bob is typing")
    await browser.fill("bob", "#composer-input", "Hello Alice!")
    await browser.press("bob", "#composer-input", "Enter")
    await browser.wait_for("alice", ".message .body", text="Hello Alice!")

    # presence: both are online in each other's member list
    await browser.wait_for("alice", "#member-list li[data-user] .dot[data-online='true']")
    bob_dot = "#member-list li:has-text('Bob') .dot"
    assert await browser.attribute("alice", bob_dot, "data-online") == "true"

    # a reaction appears live on the other page
    message = ".message:has-text('Hello Alice!')"
    await browser.click("alice", f"{message} .reaction", text="👍")
    await browser.wait_for("bob", f"{message} .reaction[aria-label='👍 reaction, 1']")

    # a thread reply: Alice's page counts it on the parent, live
    first = ".message:has-text('Hi Bob, this is live.')"
    await browser.click("bob", f"{first} button", text="Reply")
    await browser.fill("bob", "#reply-input", "a reply in the thread")
    await browser.click("bob", "#reply-form button[type='submit']")
    await browser.wait_for("bob", "#thread .message .body", text="a reply in the thread")
    await browser.wait_for("alice", f"{first} button", text="Replies (1)")

    # a mention rings Bob's bell (NotificationCreated over the SSE stream)
    await send(browser, "alice", "@Bob see the screenshot")
    await browser.wait_for("bob", "#bell-count", text="1")

    shot = SCREENSHOT if UPDATE_SCREENSHOTS else workdir / SCREENSHOT.name
    await browser.screenshot("bob", shot)
    assert shot.stat().st_size > 10_000

    # Bob closes his page: Alice sees him go offline
    await browser.run("close", name="bob")
    await browser.wait_for("alice", f"{bob_dot}[data-online='false']")


async def test_pages_show_reconnecting_and_recover_after_a_server_restart(
    workdir: Path, browser: BrowserAgent
) -> None:
    with hero_serve(clean_environ(), cwd=workdir) as first:
        port = first.port
        await two_users_in_a_channel(browser, first.base_url, "restarts")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        await browser.wait_for("alice", "#status[data-state='reconnecting']")
        await browser.wait_for("bob", "#status[data-state='reconnecting']")
    with hero_serve(clean_environ(), cwd=workdir, port=port):
        await browser.wait_for("alice", "#status[data-state='connected']", timeout=60)
        await browser.wait_for("bob", "#status[data-state='connected']", timeout=60)
        await send(browser, "alice", "back after the restart")
        await browser.wait_for("bob", ".message .body", text="back after the restart")


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [
        (transport, protocol)
        for transport in ("WebSockets", "ServerSentEvents", "LongPolling")
        for protocol in ("json", "messagepack")
        if (transport, protocol) != ("ServerSentEvents", "messagepack")  # text-only transport
    ],
)
async def test_every_transport_and_protocol_of_the_switcher_carries_messages(
    bare: RunningServer, browser: BrowserAgent, transport: str, protocol: str
) -> None:
    await two_users_in_a_channel(browser, bare.base_url, f"{transport}-{protocol}")
    for name in ("alice", "bob"):
        await browser.select(name, "#transport", transport)
        await browser.select(name, "#protocol", protocol)
        chosen = f"body[data-transport='{transport}'][data-protocol='{protocol}']"
        await browser.wait_for(name, chosen)
        await browser.wait_for(name, "#status[data-state='connected']")
    await send(browser, "bob", f"over {transport} with {protocol}")
    await browser.wait_for("alice", ".message .body", text=f"over {transport} with {protocol}")


async def test_the_switcher_offers_no_messagepack_over_server_sent_events(
    bare: RunningServer, browser: BrowserAgent
) -> None:
    await sign_in(browser, "alice", bare.base_url, "&protocol=messagepack")
    await browser.wait_for("alice", "body[data-protocol='messagepack']")
    await browser.select("alice", "#transport", "ServerSentEvents")
    await browser.wait_for("alice", "body[data-transport='ServerSentEvents'][data-protocol='json']")
    binary = "#protocol option[value='messagepack']"
    assert await browser.attribute("alice", binary, "disabled") is not None
