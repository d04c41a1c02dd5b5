"""Fuzz the negotiate HTTP path and connection-token handling of a real hub endpoint.

In process, raw ASGI (no socket), one event loop for every example. The endpoint signs its
tokens (`connection_token_key`, as `hero serve` does with a Valkey backplane), so unknown
ids go through `ConnectionManager.adopt` too. Property: every request is answered with a
status below 500, nothing raises, nothing is logged at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from hero.realtime import EndpointOptions, HubRoute, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub, lifespan

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Endpoint:
    def __init__(self, runner: asyncio.Runner, app: Starlette, errors: _Errors) -> None:
        self.runner = runner
        self.app = app
        self.errors = errors

    async def _call(self, scope: dict[str, Any], inbound: list[dict[str, Any]]) -> list[Any]:
        sent: list[dict[str, Any]] = []
        pending = list(inbound)
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            await done.wait()  # never more input: the app answers or the test times out
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(self.app(scope, receive, send), timeout=10)
        done.set()
        return sent

    def http(self, method: str, path: str, query: bytes, body: bytes = b"") -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": [(b"host", b"test"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }
        sent = self.runner.run(
            self._call(scope, [{"type": "http.request", "body": body, "more_body": False}])
        )
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, sent
        return int(starts[0]["status"])

    def websocket(self, query: bytes) -> int | str:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": "/hub",
            "raw_path": b"/hub",
            "root_path": "",
            "query_string": query,
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        sent = self.runner.run(self._call(scope, [{"type": "websocket.connect"}]))
        first = sent[0]
        if first["type"] == "websocket.http.response.start":
            return int(first["status"])
        return str(first["type"])


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    options = HubServerOptions(endpoint=EndpointOptions(connection_token_key=b"t" * 32))
    hub = HubServer(ConformanceHub, options=options)
    app = Starlette(routes=[HubRoute("/hub", hub)])
    errors = _Errors()
    root = logging.getLogger()
    root.addHandler(errors)
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        runner.run(stack.enter_async_context(lifespan(app)))
        try:
            yield Endpoint(runner, app, errors)
        finally:
            runner.run(stack.aclose())
            root.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


query_bytes = (
    st.binary(max_size=60)
    | st.builds(lambda v: b"negotiateVersion=" + v, st.binary(max_size=12))
    | st.builds(lambda v: b"id=" + v, st.binary(max_size=40))
)
tokens = st.text(min_size=1, max_size=30) | st.builds(
    lambda a, b, c: f"{a}.{b}.{c}",
    st.text(max_size=8),
    st.sampled_from(["1", "²", "١٢", "9" * 30, ""]) | st.text(max_size=6),
    st.text(max_size=8),
)


@given(query=query_bytes, body=st.binary(max_size=30))
@FUZZ
def test_negotiate_with_any_query_and_body_is_answered_below_500(
    endpoint: Endpoint, query: bytes, body: bytes
) -> None:
    assert endpoint.http("POST", "/hub/negotiate", query, body) < 500


@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]), query=query_bytes)
@FUZZ
def test_transport_requests_with_any_id_are_answered_below_500(
    endpoint: Endpoint, method: str, query: bytes
) -> None:
    assert endpoint.http(method, "/hub", query, b"{}\x1e") < 500


@given(token=tokens)
@FUZZ
def test_websocket_with_an_unknown_or_forged_token_is_refused(
    endpoint: Endpoint, token: str
) -> None:
    assert endpoint.websocket(b"id=" + quote(token).encode()) in (400, 404)


def test_websocket_token_with_a_superscript_digit_is_404(endpoint: Endpoint) -> None:
    """Regression, found while writing these targets: '²'.isdigit() is true but int('²')
    raises ValueError, so `adopt` crashed on `?id=a.%C2%B2.b`."""
    assert endpoint.websocket(b"id=a.%C2%B2.b") == 404
    assert endpoint.websocket(b"id=a." + b"9" * 5000 + b".b") == 404


def test_websocket_token_with_a_non_ascii_mac_is_404(endpoint: Endpoint) -> None:
    """Regression, found by the test above: hmac.compare_digest raised TypeError."""
    assert endpoint.websocket(b"id=a.1.%C3%A9") == 404
