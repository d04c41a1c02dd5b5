"""`hero.platform.collector.settle`: what a serving process does to the cyclic collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hero.platform import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settle_freezes_what_exists_and_raises_only_the_young_threshold() -> None:
    held = [[n] for n in range(1000)]  # tracked objects alive at settle time
    _, middle, old = gc.get_threshold()
    collector.settle()
    assert gc.get_freeze_count() >= len(held)
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, middle, old)
