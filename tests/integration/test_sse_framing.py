"""Server-Sent Events framing on the wire (checklist 18) and no Ack/Sequence (checklist 40)."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.support.servers import RunningServer

HUB = "/conformance"


async def test_checklist_18_40_sse_stream_framing_and_no_ack_or_sequence(
    conformance_server: RunningServer, unit: float
) -> None:
    base = conformance_server.base_url
    async with httpx.AsyncClient(base_url=base, timeout=10 * unit) as http:
        negotiated = (await http.post(f"{HUB}/negotiate?negotiateVersion=1")).json()
        token = negotiated["connectionToken"]
        async with http.stream(
            "GET", HUB, params={"id": token}, headers={"Accept": "text/event-stream"}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in stream.headers["cache-control"]
            raw = stream.aiter_raw()
            async with asyncio.timeout(10 * unit):
                first = await anext(raw)
            # The comment line is written at once, so EventSource fires `open` (18).
            assert first.startswith(b":\r\n")
            await http.post(
                HUB, params={"id": token}, content=b'{"protocol":"json","version":1}\x1e'
            )
            for index in range(3):
                body = {
                    "type": 1,
                    "target": "Echo",
                    "arguments": [f"item {index}"],
                    "invocationId": str(index),
                }
                await http.post(HUB, params={"id": token}, content=json.dumps(body) + "\x1e")

            pending = first[3:].decode()
            records: list[str] = []
            async with asyncio.timeout(10 * unit):
                while len([r for r in records if '"type":3' in r]) < 3:
                    pending += (await anext(raw)).decode()
                    *complete, pending = pending.split("\r\n\r\n")
                    for event in complete:
                        lines = event.split("\r\n")
                        # Unnamed events: only `data:` lines, no event:, id: or retry: (18).
                        assert lines and all(line.startswith("data: ") for line in lines)
                        payload = "\n".join(line[len("data: ") :] for line in lines)
                        # Each event holds complete records only (16).
                        assert payload.endswith("\x1e")
                        records += payload.split("\x1e")[:-1]
            assert records[0] == "{}"
            messages = [json.loads(r) for r in records[1:]]
            assert all(m["type"] not in (8, 9) for m in messages)  # 40
            results = {m["invocationId"]: m["result"] for m in messages if m["type"] == 3}
            assert results == {"0": "item 0", "1": "item 1", "2": "item 2"}
