"""Coverage-guided fuzzing of hero's parsers with atheris (libFuzzer), bounded.

    .venv/bin/python bench/fuzz.py --runs 100000            # every target, 100k runs each
    .venv/bin/python bench/fuzz.py --runs 5000 --target json --target jwt

Each target runs in its own process (atheris.Fuzz never returns) for exactly --runs
executions, then the table of executions, crashes and seconds per target is printed. A
crash is any exception other than the target's documented error type, or an input taking
longer than --timeout seconds; libFuzzer stops that target and writes the input to
--artifacts. Needs atheris (`pip install atheris`); the short in-suite versions of these
properties are tests/unit/test_fuzz_*.py. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = (
    "json",
    "messagepack",
    "text_framer",
    "binary_framer",
    "handshake",
    "handshake_response",
    "negotiate_version",
    "connection_token",
    "extract_token",
    "jwt",
    "settings_environ",
    "settings_file",
)


def _targets() -> dict[str, Callable[[bytes], None]]:
    """Import hero under atheris' coverage instrumentation and build every target."""
    import atheris

    with atheris.instrument_imports(include=["hero"]):
        from hero.auth import AuthenticationError, JwtValidator, mint_token
        from hero.auth.extraction import extract_token
        from hero.platform.settings import SettingsError, load_settings
        from hero.realtime.connections.registry import ConnectionManager
        from hero.realtime.protocol import JsonHubProtocol, MessagePackHubProtocol, ProtocolError
        from hero.realtime.protocol.framing import BinaryFramer, TextFramer
        from hero.realtime.protocol.handshake import parse_handshake, parse_handshake_response
        from hero.realtime.protocol.negotiate import NegotiateVersionError, select_version
        from hero.realtime.transports import Identity

    json_protocol = JsonHubProtocol()
    msgpack_protocol = MessagePackHubProtocol()
    key = "k" * 40
    validator = JwtValidator("hero.local", "hero.clients", key)
    valid = mint_token(key, "hero.local", "hero.clients", "2b1f8e3c-7d64-4f0a-9a51-0c6f1d2e3b4a")

    async def application(connection: Any) -> None:  # never started: no token is adopted
        return None

    manager = ConnectionManager(
        application,
        disconnect_timeout=15,
        inbound_limit=65536,
        outbound_limit=65536,
        token_key=b"t" * 32,
        instance="a",
    )
    identity = Identity(user_id="u")
    config = Path(tempfile.mkdtemp(prefix="hero-fuzz-")) / "appsettings.json"

    def parser(protocol: Any) -> Callable[[bytes], None]:
        def target(data: bytes) -> None:
            with contextlib.suppress(ProtocolError):
                protocol.parse(data)

        return target

    def framer(kind: type[Any]) -> Callable[[bytes], None]:
        def target(data: bytes) -> None:
            fdp = atheris.FuzzedDataProvider(data)
            limit = fdp.ConsumeIntInRange(0, 300) or None
            instance = kind(limit)
            try:
                while fdp.remaining_bytes():
                    instance.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)))
                    # an unfinished length prefix (up to 4 bytes) may exceed a tiny limit
                    assert limit is None or instance.buffered <= max(limit, 4)
            except ProtocolError:
                pass

        return target

    def handshake(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        limit = fdp.ConsumeIntInRange(0, 200) or None
        buffer = fdp.ConsumeBytes(fdp.remaining_bytes())
        try:
            parsed = parse_handshake(buffer, limit)
        except ProtocolError:
            return
        assert parsed is None or buffer.endswith(parsed[1])

    def handshake_response(data: bytes) -> None:
        with contextlib.suppress(ProtocolError):
            parse_handshake_response(data)

    def negotiate_version(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        minimum = fdp.ConsumeIntInRange(0, 2)
        query = {
            fdp.ConsumeUnicodeNoSurrogates(16): fdp.ConsumeUnicodeNoSurrogates(16)
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        }
        if fdp.ConsumeBool():
            query["negotiateVersion"] = fdp.ConsumeUnicodeNoSurrogates(24)
        try:
            version = select_version(query, minimum)
        except NegotiateVersionError:
            return
        assert 0 <= version <= 1

    def connection_token(data: bytes) -> None:
        token = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
        assert manager.adopt(token, identity) is None
        ConnectionManager.owner_of(token)

    def token_scope(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        headers = [
            (fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)), fdp.ConsumeBytes(40))
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        ]
        if fdp.ConsumeBool():
            headers.insert(0, (b"authorization", b"Bearer " + fdp.ConsumeBytes(30)))
        scope = {
            "headers": headers,
            "path": fdp.ConsumeUnicodeNoSurrogates(24),
            "root_path": fdp.ConsumeUnicodeNoSurrogates(8),
            "query_string": fdp.ConsumeBytes(fdp.remaining_bytes()),
        }
        token = extract_token(scope)
        assert token is None or (token and token == token.strip())

    def jwt_target(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        if fdp.ConsumeBool():  # a valid token with a few characters replaced
            chars = list(valid)
            for _ in range(fdp.ConsumeIntInRange(1, 4)):
                chars[fdp.ConsumeIntInRange(0, len(chars) - 1)] = fdp.ConsumeUnicode(1) or "A"
            token = "".join(chars)
        else:
            token = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
        with contextlib.suppress(AuthenticationError):
            validator.validate(token)

    def settings_environ(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        sections = ["Cors", "Realtime", "JwtOptions", "CachingOptions", "Http", "Environment"]
        environ = {}
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            name = fdp.PickValueInList(sections)
            rest = fdp.ConsumeUnicodeNoSurrogates(20)
            environ[f"{name}__{rest}" if rest else name] = fdp.ConsumeUnicodeNoSurrogates(20)
        with contextlib.suppress(SettingsError):
            load_settings(None, environ)

    def settings_file(data: bytes) -> None:
        config.write_bytes(data)
        with contextlib.suppress(SettingsError):
            load_settings(config, {})

    return {
        "json": parser(json_protocol),
        "messagepack": parser(msgpack_protocol),
        "text_framer": framer(TextFramer),
        "binary_framer": framer(BinaryFramer),
        "handshake": handshake,
        "handshake_response": handshake_response,
        "negotiate_version": negotiate_version,
        "connection_token": connection_token,
        "extract_token": token_scope,
        "jwt": jwt_target,
        "settings_environ": settings_environ,
        "settings_file": settings_file,
    }


def _child(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    target = _targets()[name]
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECS = re.compile(r"^#(\d+)\s", re.MULTILINE)


def _run(name: str, runs: int, timeout: int, artifacts: Path) -> tuple[int, int, float, str]:
    """(executions, crashes, seconds, note) of one target."""
    prefix = artifacts / f"{name}-"
    argv = [sys.executable, __file__, "--child", name, f"-runs={runs}", f"-timeout={timeout}"]
    argv += [f"-artifact_prefix={prefix}", "-rss_limit_mb=2048", "-print_final_stats=1"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    log = done.stderr
    finished = _DONE.search(log)
    if done.returncode == 0 and finished:
        return int(finished.group(1)), 0, seconds, ""
    counts = [int(n) for n in _EXECS.findall(log)]
    crash = next((line for line in log.splitlines() if "artifact" in line), log[-400:])
    return max(counts, default=0), 1, seconds, crash.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="executions per target")
    parser.add_argument("--target", action="append", choices=TARGETS, help="repeatable")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--artifacts", default=None, help="where crashing inputs are written")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        _child(args.child, rest)
        return 0
    import atheris  # noqa: F401  (fail here, not in each child, when it is missing)

    artifacts = Path(args.artifacts or tempfile.mkdtemp(prefix="hero-fuzz-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    print("| target | executions | crashes | seconds |\n|---|---:|---:|---:|", flush=True)
    total_runs = total_crashes = 0
    total_seconds = 0.0
    notes: list[str] = []
    for name in args.target or TARGETS:
        runs, crashes, seconds, note = _run(name, args.runs, args.timeout, artifacts)
        print(f"| {name} | {runs:,} | {crashes} | {seconds:.0f} |", flush=True)
        total_runs += runs
        total_crashes += crashes
        total_seconds += seconds
        if note:
            notes.append(f"{name}: {note}")
    print(f"| **total** | **{total_runs:,}** | **{total_crashes}** | **{total_seconds:.0f}** |")
    for note in notes:
        print(note)
    print(f"artifacts: {artifacts}", file=sys.stderr)
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
