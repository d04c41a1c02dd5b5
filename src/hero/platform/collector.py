"""The garbage collector's settings for a process that serves.

With CPython's defaults a busy hub spends a fifth of its CPU in the cyclic collector: an
invocation allocates tasks, futures and messages, so the young generation (700 objects)
fills hundreds of times a second, and every few seconds a full collection walks every
object of the process, the imported modules and the app included. `settle()` runs once the
app is loaded: it collects, moves what survives into the permanent generation
(`gc.freeze()`, never walked again), and lets the young generation grow to 10,000 objects
before a collection. Reference counting still frees everything acyclic at once; only
garbage cycles wait a little longer. `bench/fanout_more.py --part inbound` measured the
effect (docs/benchmarks.md, "2026-12-04: a quiet machine and four changes").
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) of tracked objects before a young-generation collection."""


def settle() -> None:
    """Freeze what the process holds now and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
