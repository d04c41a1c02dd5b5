"""Python side of `browser.mjs`: Debian's chromium driven by playwright-core from a test.

    async with BrowserAgent.start(node, unit, script=BROWSER) as browser:
        await browser.open("alice", f"{base_url}/?user=alice")
        await browser.fill("alice", "#composer-input", "hello")
        await browser.wait_for("bob", ".message .body", text="hello")

Pages are named; every wait is bounded by a multiple of `unit`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.integration.js.agent import INTEROP, NodeAgent

BROWSER = Path(__file__).with_name("browser.mjs")


def chromium_path() -> str | None:
    """Debian's chromium (or HERO_CHROMIUM), when installed."""
    configured = os.environ.get("HERO_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium")


def playwright_installed() -> bool:
    return (INTEROP / "node_modules" / "playwright-core").is_dir()


class BrowserAgent(NodeAgent):
    async def run(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        limit = 15 * self.unit if timeout is None else timeout
        reply = await self._call(op, limit + 5 * self.unit, ms=limit * 1000, **params)
        if not reply["ok"]:
            log = await self._call("log", 5 * self.unit, name=params.get("name"))
            raise AssertionError(f"{op} {params}: {reply['error']}\npage log: {log.get('value')}")
        return reply["value"]

    async def open(self, name: str, url: str) -> None:
        await self.run("open", name=name, url=url)

    async def click(self, name: str, selector: str, text: str | None = None) -> None:
        await self.run("click", name=name, selector=selector, text=text)

    async def fill(self, name: str, selector: str, value: str) -> None:
        await self.run("fill", name=name, selector=selector, value=value)

    async def type(self, name: str, selector: str, value: str) -> None:
        await self.run("type", name=name, selector=selector, value=value)

    async def press(self, name: str, selector: str, key: str) -> None:
        await self.run("press", name=name, selector=selector, key=key)

    async def select(self, name: str, selector: str, value: str) -> None:
        await self.run("select", name=name, selector=selector, value=value)

    async def check(self, name: str, selector: str) -> None:
        await self.run("check", name=name, selector=selector)

    async def wait_for(
        self,
        name: str,
        selector: str,
        text: str | None = None,
        *,
        state: str = "visible",
        timeout: float | None = None,
    ) -> None:
        await self.run("waitFor", timeout, name=name, selector=selector, text=text, state=state)

    async def attribute(self, name: str, selector: str, attribute: str) -> str | None:
        value = await self.run("attribute", name=name, selector=selector, attribute=attribute)
        return None if value is None else str(value)

    async def text(self, name: str, selector: str) -> str:
        return str(await self.run("text", name=name, selector=selector))

    async def count(self, name: str, selector: str) -> int:
        return int(await self.run("count", name=name, selector=selector))

    async def screenshot(self, name: str, path: Path) -> None:
        await self.run("screenshot", name=name, path=str(path))
