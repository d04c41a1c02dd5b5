"""Helpers that start real hero servers as subprocesses on a free loopback port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

UNIT = float(os.environ.get("HERO_TEST_TIMEOUT_UNIT", "1.0"))
"""Every timeout in the suite is a multiple of this (raise it on a slow machine)."""

_URL = re.compile(r"listening on (http://\S+)")


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


@contextmanager
def run_hero(
    args: Sequence[str], env: Mapping[str, str] | None = None, startup_timeout: float = 20 * UNIT
) -> Iterator[RunningServer]:
    """Run `python -m hero <args> --port 0` and yield once it prints where it listens."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "hero", *args, "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
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
            raise RuntimeError("hero did not start:\n" + "".join(output))
        yield RunningServer(url[0], process, output)
    finally:
        process.terminate()
        try:
            process.wait(10 * UNIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5 * UNIT)
