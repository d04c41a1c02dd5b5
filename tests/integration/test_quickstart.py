"""docs/quickstart.md, executed: every code block, in order, in an empty directory.

Blocks with a `title="path"` are files, written where they say. `sh` blocks are run with bash;
a block whose command ends with `# keeps running` starts a server, which runs in the
background until the test ends (the test waits for it to say where it listens). Consecutive
other `sh` blocks run in one bash process, so their variables carry over.

The only changes made to the text: the documented ports 8000 and 8001 become free ports, and
`scripts/` and `.venv/` are the checkout's (the page is read from inside it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_tool
from tests.integration.platform_app import clean_environ
from tests.support.servers import REPO, UNIT, launch
from tests.support.valkey import free_port

PAGE = REPO / "docs" / "quickstart.md"
_BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```', re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    language: str
    title: str | None
    text: str


def blocks() -> list[Block]:
    return [Block(m[1], m[2], m[3]) for m in _BLOCK.finditer(PAGE.read_text())]


def localise(text: str, ports: dict[int, int]) -> str:
    for documented, real in ports.items():
        text = text.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{real}")
        text = text.replace(f"--port {documented}", f"--port {real}")
    text = re.sub(r"(?<![\w/])scripts/serve", f"{REPO}/scripts/serve --port {ports[8000]}", text)
    return re.sub(r"(?<![\w/])\.venv/", f"{REPO}/.venv/", text)


def server(command: str, cwd: Path, env: dict[str, str]) -> Any:
    """A documented server command, run by bash until the test ends (the first
    `scripts/serve` may install the venv: its start is given time for that)."""
    return launch(
        ["-c", f"exec {command}"],
        env,
        cwd=cwd,
        startup_timeout=180 * UNIT,
        executable="bash",
        repo_on_path=False,
    )


def run_script(script: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240 * UNIT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


def test_every_block_of_the_quick_start_runs(tmp_path: Path) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        missing_tool("node and npm are needed by the quick start")
    env = clean_environ()
    ports = {8000: free_port(), 8001: free_port()}
    outputs: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            outputs.append(run_script("\n".join(pending), tmp_path, env))
            pending.clear()

    with ExitStack() as servers:
        for block in blocks():
            text = localise(block.text, ports)
            if block.title is not None:
                target = tmp_path / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            elif block.language == "sh" and "# keeps running" in text:
                flush()
                command = text.split("#", 1)[0].strip()
                servers.enter_context(server(command, tmp_path, env))
            elif block.language == "sh":
                pending.append(text)
            else:
                pytest.fail(f"a {block.language} block without a title cannot be run: {block}")
        flush()

    printed = "\n".join(outputs)
    # what the page says each part prints
    assert '"status":"ready"' in printed.replace(" ", "")
    assert "received: hello from curl" in printed
    assert "2 + 3 = 5" in printed
    assert "alice: hello, hub" in printed
    assert (tmp_path / "hero.db").is_file()  # the embedded database, in the working directory
