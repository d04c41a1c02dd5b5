"""Helpers that start real hero servers as subprocesses on a free loopback port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

UNIT = float(os.environ.get("HERO_TEST_TIMEOUT_UNIT", "1.0"))
"""Every timeout in the suite is a multiple of this (raise it on a slow machine)."""

_URL = re.compile(r"(?:listening|serving|running) on (http://\S+)")


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log(self) -> str:
        return "".join(self.output)


REPO = Path(__file__).resolve().parents[2]


@contextmanager
def launch(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | str = REPO,
    startup_timeout: float = 20 * UNIT,
    executable: str = sys.executable,
    repo_on_path: bool = True,
) -> Iterator[RunningServer]:
    """Run `<executable> <argv>` (default: this Python) and yield once it prints
    `... listening|serving|running on http://HOST:PORT`.

    `env` is the whole environment (default: this process's); with `repo_on_path` the
    repository is put on PYTHONPATH so test modules can be run with `-m`. stdout and stderr
    are captured together (`server.log()`); the process is terminated on exit.
    """
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if repo_on_path:
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), full_env.get("PYTHONPATH", "")) if p
        )
    process = subprocess.Popen(
        [executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=str(cwd),
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = _URL.search(line)
            if match and not found.is_set():
                url.append(match.group(1))
                found.set()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not found.wait(startup_timeout) or not url:
            raise RuntimeError(f"{list(argv)} did not start:\n" + "".join(output))
        yield RunningServer(url[0], process, output)
    finally:
        process.terminate()
        try:
            process.wait(10 * UNIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5 * UNIT)


def run_hero(
    args: Sequence[str], env: Mapping[str, str] | None = None, startup_timeout: float = 20 * UNIT
) -> AbstractContextManager[RunningServer]:
    """`python -m hero <args> --host 127.0.0.1 --port 0`; `env` is added to os.environ."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return launch(
        ["-m", "hero", *args, "--host", "127.0.0.1", "--port", "0"],
        full_env,
        startup_timeout=startup_timeout,
    )
