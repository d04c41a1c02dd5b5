"""The whole Autobahn TestSuite (via kosoku) against the WebSocket stack of `hero serve`.

    .venv/bin/python bench/autobahn.py [--ws hero] [--exclude '12.*' ...] [--parallelism 2]

Starts `tests/support/ws_echo.py` (an echo server under `hero serve`'s uvicorn settings),
runs every case, and prints per section how many cases were OK, NON-STRICT, INFORMATIONAL,
UNIMPLEMENTED or FAILED (a case counts by the worse of its two verdicts), then each failed
case, then whether the server logged anything. The core sections run in the test command
(tests/integration/test_autobahn.py). Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import kosoku

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.servers import launch

COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def _verdict(result: kosoku.CaseResult) -> str:
    if not result.passed:
        return "FAILED"
    behavior = result.behavior.value
    return behavior if behavior in COLUMNS else "FAILED"


async def _run(url: str, exclude: list[str], parallelism: int) -> list[kosoku.CaseResult]:
    try:
        return await kosoku.run_fuzzingclient(url, None, exclude, concurrency=parallelism)
    except kosoku.FailureError as failure:
        return list(failure.results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ws",
        default="hero",
        help="hero (as hero serve), hero-direct (the hub's extensions), or uvicorn's auto, ...",
    )
    parser.add_argument("--exclude", action="append", default=[], help="case glob (repeatable)")
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()
    started = time.monotonic()
    with launch(["-m", "tests.support.ws_echo", "--port", "0", "--ws", args.ws]) as server:
        results = asyncio.run(
            _run(server.base_url.replace("http://", "ws://"), args.exclude, args.parallelism)
        )
        log = server.log()
    seconds = time.monotonic() - started
    sections: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        sections[result.case_id.split(".")[0]][_verdict(result)] += 1
    print("| section | cases | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    total: Counter[str] = Counter()
    for section in sorted(sections, key=int):
        counts = sections[section]
        total.update(counts)
        cells = " | ".join(str(counts[c]) for c in COLUMNS)
        print(f"| {section} | {sum(counts.values())} | {cells} |")
    cells = " | ".join(f"**{total[c]}**" for c in COLUMNS)
    print(f"| **all** | **{sum(total.values())}** | {cells} |")
    print(f"\n{len(results)} cases in {seconds:.0f} s, ws={args.ws}")
    for result in results:
        if not result.passed:
            print(
                f"FAILED {result.case_id}: {result.behavior.value}/{result.behavior_close.value}"
                f" {result.result_close}; expected {result.expected_close}, got close"
                f" {result.remote_close_code} {result.remote_close_reason!r}"
            )
    lines = [line for line in log.splitlines() if "listening on" not in line]
    errors = sum(1 for line in lines if line.startswith("Traceback"))
    print(f"server log: {len(lines)} lines, {errors} tracebacks")
    return 1 if total["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
