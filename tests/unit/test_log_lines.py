"""hero.platform.logs.WebSocketAccessLines: uvicorn's WebSocket handshake lines leave
`uvicorn.error` for `uvicorn.access`; every other record stays where it was logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hero.platform.logs import WebSocketAccessLines


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def loggers() -> Iterator[tuple[logging.Logger, logging.Logger, _Collect, _Collect]]:
    error, access = logging.getLogger("uvicorn.error"), logging.getLogger("uvicorn.access")
    saved = [(lg, lg.level, lg.propagate, list(lg.filters)) for lg in (error, access)]
    on_error, on_access = _Collect(), _Collect()
    moving = WebSocketAccessLines()
    error.addHandler(on_error)
    access.addHandler(on_access)
    error.addFilter(moving)
    for logger in (error, access):
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield error, access, on_error, on_access
    finally:
        error.removeHandler(on_error)
        access.removeHandler(on_access)
        error.removeFilter(moving)
        for logger, level, propagate, _ in saved:
            logger.setLevel(level)
            logger.propagate = propagate


def test_websocket_lines_move_to_the_access_logger(
    loggers: tuple[logging.Logger, logging.Logger, _Collect, _Collect],
) -> None:
    error, _, on_error, on_access = loggers
    error.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/realtime/hub?id=1")
    error.info('%s - "WebSocket %s" %d', "127.0.0.1:6", "/realtime/hub", 401)
    error.info("Application startup complete.")
    error.info("%s - WebSocket-ish, not the handshake line", "x")
    assert [r.getMessage() for r in on_access.records] == [
        '127.0.0.1:5 - "WebSocket /realtime/hub?id=1" [accepted]',
        '127.0.0.1:6 - "WebSocket /realtime/hub" 401',
    ]
    assert {r.name for r in on_access.records} == {"uvicorn.access"}
    assert [r.getMessage() for r in on_error.records] == [
        "Application startup complete.",
        "x - WebSocket-ish, not the handshake line",
    ]


def test_a_quiet_access_logger_drops_them(
    loggers: tuple[logging.Logger, logging.Logger, _Collect, _Collect],
) -> None:
    error, access, on_error, on_access = loggers
    access.setLevel(logging.WARNING)
    error.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/realtime/hub")
    error.warning("still here")
    assert on_access.records == []
    assert [r.getMessage() for r in on_error.records] == ["still here"]
