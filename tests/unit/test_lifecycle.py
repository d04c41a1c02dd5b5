"""The connection state machine (transports/lifecycle.py): its table, its refusals, and that
its awaitables wake when, and only when, what they wait for happens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from hero.realtime.transports import TRANSITIONS, ConnectionState, Lifecycle, LifecycleError
from hero.realtime.transports.lifecycle import AWAITING_CLIENT

S = ConnectionState

PATHS: dict[ConnectionState, tuple[ConnectionState, ...]] = {
    S.NEGOTIATED: (),
    S.ACTIVE: (S.ACTIVE,),
    S.WAITING_FOR_POLL: (S.WAITING_FOR_POLL,),
    S.SUSPENDED: (S.ACTIVE, S.SUSPENDED),
    S.RESUMING: (S.ACTIVE, S.RESUMING),
    S.DISPOSED: (S.DISPOSED,),
}
"""A legal way from NEGOTIATED to each state."""

LEGAL = [(source, target) for source, targets in TRANSITIONS.items() for target in targets]
ILLEGAL = [
    (source, target)
    for source in ConnectionState
    for target in ConnectionState
    if target not in TRANSITIONS[source]
]


def in_state(state: ConnectionState) -> Lifecycle:
    lifecycle = Lifecycle()
    for step in PATHS[state]:
        lifecycle.transition(step)
    assert lifecycle.state is state
    return lifecycle


async def pending(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """Start waiting on `awaitable`, let it reach its wait, and check it is still waiting."""
    future = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0)
    assert not future.done()
    return future


async def finished(future: asyncio.Future[Any]) -> Any:
    return await asyncio.wait_for(future, 1.0)


def test_the_table_names_every_state_and_disposed_is_final() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert TRANSITIONS[S.DISPOSED] == frozenset()
    assert all(S.DISPOSED in TRANSITIONS[s] for s in ConnectionState if s is not S.DISPOSED)


def test_a_new_connection_is_negotiated_with_nothing_in_flight() -> None:
    lifecycle = Lifecycle()
    assert lifecycle.state is S.NEGOTIATED
    assert lifecycle.requests == 0
    assert not lifecycle.disposed
    assert not lifecycle.suspended
    assert not lifecycle.resumable


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=str)
def test_every_legal_transition_is_taken(source: ConnectionState, target: ConnectionState) -> None:
    lifecycle = in_state(source)
    lifecycle.transition(target)
    assert lifecycle.state is target


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=str)
def test_every_illegal_transition_is_refused(
    source: ConnectionState, target: ConnectionState
) -> None:
    lifecycle = in_state(source)
    with pytest.raises(LifecycleError):
        lifecycle.transition(target)
    assert lifecycle.state is source


@pytest.mark.parametrize("target", sorted(AWAITING_CLIENT - {S.NEGOTIATED}), ids=str)
def test_entering_a_state_that_waits_for_the_client_stamps_last_seen(
    target: ConnectionState,
) -> None:
    """(NEGOTIATED is only ever the initial state: its stamp is the creation time.)"""
    lifecycle = in_state(S.ACTIVE if target is S.SUSPENDED else S.NEGOTIATED)
    lifecycle.last_seen = 0.0
    lifecycle.transition(target)
    assert lifecycle.last_seen > 0.0


def test_entering_active_leaves_last_seen_alone() -> None:
    lifecycle = Lifecycle()
    lifecycle.last_seen = 0.0
    lifecycle.transition(S.ACTIVE)
    assert lifecycle.last_seen == 0.0


def test_a_request_cannot_end_twice() -> None:
    lifecycle = Lifecycle()
    lifecycle.request_started()
    lifecycle.request_ended()
    with pytest.raises(LifecycleError):
        lifecycle.request_ended()


async def test_until_idle_returns_at_once_with_nothing_in_flight() -> None:
    await finished(asyncio.ensure_future(Lifecycle().until_idle()))


async def test_until_idle_wakes_when_the_last_request_ends_not_before() -> None:
    lifecycle = Lifecycle()
    lifecycle.request_started()
    lifecycle.request_started()
    idle = await pending(lifecycle.until_idle())
    lifecycle.request_ended()
    lifecycle.transition(S.ACTIVE)  # a change that wakes waiters, but not an idle one
    await asyncio.sleep(0)
    assert not idle.done()
    lifecycle.request_ended()
    await finished(idle)
    assert lifecycle.requests == 0


async def test_until_wakes_on_the_state_it_waits_for_only() -> None:
    lifecycle = Lifecycle()
    suspended = await pending(lifecycle.until(S.SUSPENDED, S.DISPOSED))
    lifecycle.transition(S.ACTIVE)
    await asyncio.sleep(0)
    assert not suspended.done()
    lifecycle.transition(S.SUSPENDED)
    assert await finished(suspended) is S.SUSPENDED


async def test_until_returns_at_once_when_already_there() -> None:
    lifecycle = in_state(S.WAITING_FOR_POLL)
    assert await finished(asyncio.ensure_future(lifecycle.until(S.WAITING_FOR_POLL))) is (
        S.WAITING_FOR_POLL
    )


async def test_until_disposed_wakes_on_dispose_and_dispose_happens_once() -> None:
    lifecycle = in_state(S.ACTIVE)
    gone = await pending(lifecycle.until_disposed())
    assert lifecycle.dispose()
    await finished(gone)
    assert lifecycle.disposed
    assert not lifecycle.dispose()


async def test_a_waiter_that_is_cancelled_leaves_nothing_behind() -> None:
    lifecycle = Lifecycle()
    waiter = await pending(lifecycle.until_disposed())
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    lifecycle.dispose()  # wakes nobody, raises nothing
    assert lifecycle.disposed


async def test_a_newer_takeover_supersedes_the_holder() -> None:
    lifecycle = Lifecycle()
    first = lifecycle.take_over()
    replaced = await pending(first.wait())
    second = lifecycle.take_over()
    await finished(replaced)
    assert first.superseded
    assert not second.superseded
    assert not lifecycle.release(first)
    assert lifecycle.release(second)
    assert not lifecycle.release(second)


async def test_polls_alternate_between_active_and_waiting() -> None:
    lifecycle = in_state(S.WAITING_FOR_POLL)
    first = lifecycle.begin_poll()
    assert (lifecycle.state, lifecycle.requests) == (S.ACTIVE, 1)
    replaced = await pending(first.wait())
    second = lifecycle.begin_poll()  # the client polled again: the first one answers 204
    await finished(replaced)
    lifecycle.end_poll(first)
    assert (lifecycle.state, lifecycle.requests) == (S.ACTIVE, 1)  # the newer poll runs
    waiting = await pending(lifecycle.until(S.WAITING_FOR_POLL))
    lifecycle.end_poll(second)
    await finished(waiting)
    assert lifecycle.requests == 0


def test_a_poll_that_ends_after_dispose_leaves_the_connection_disposed() -> None:
    lifecycle = in_state(S.WAITING_FOR_POLL)
    holder = lifecycle.begin_poll()
    lifecycle.dispose()  # DELETE while the poll is pending
    lifecycle.end_poll(holder)
    assert (lifecycle.state, lifecycle.requests) == (S.DISPOSED, 0)


def test_a_lost_socket_suspends_an_active_connection_only() -> None:
    lifecycle = in_state(S.ACTIVE)
    lifecycle.socket_lost()
    assert lifecycle.state is S.SUSPENDED
    assert lifecycle.suspended
    lifecycle.socket_lost()  # already suspended: nothing changes
    assert lifecycle.state is S.SUSPENDED
    disposed = in_state(S.DISPOSED)
    disposed.socket_lost()
    assert disposed.state is S.DISPOSED


async def test_a_resume_supersedes_the_old_socket_and_replays_once_accepted() -> None:
    resumed: list[None] = []
    lifecycle = in_state(S.ACTIVE)
    lifecycle.allow_resume(lambda: resumed.append(None))
    assert lifecycle.resumable
    old_socket = lifecycle.take_over()
    replaced = await pending(old_socket.wait())
    assert lifecycle.begin_resume()
    await finished(replaced)
    assert lifecycle.state is S.RESUMING
    assert lifecycle.suspended  # nothing is sent until the new socket takes over
    assert not lifecycle.begin_resume()  # a second resume meanwhile is refused
    lifecycle.socket_lost()  # the old socket ends: the resume keeps the connection
    assert lifecycle.state is S.RESUMING
    lifecycle.resumed()
    assert (lifecycle.state, resumed) == (S.ACTIVE, [None])
    lifecycle.resume_failed()  # the new socket did take over: nothing to undo
    assert lifecycle.state is S.ACTIVE


def test_a_failed_resume_leaves_the_connection_suspended() -> None:
    lifecycle = in_state(S.SUSPENDED)
    lifecycle.last_seen = 0.0
    assert lifecycle.begin_resume()
    lifecycle.resume_failed()
    assert lifecycle.state is S.SUSPENDED
    assert lifecycle.last_seen > 0.0  # the disconnect timeout starts again


def test_a_resume_of_a_connection_that_ended_meanwhile_replays_nothing() -> None:
    resumed: list[None] = []
    lifecycle = in_state(S.SUSPENDED)
    lifecycle.allow_resume(lambda: resumed.append(None))
    assert lifecycle.begin_resume()
    lifecycle.dispose()
    lifecycle.resumed()
    lifecycle.resume_failed()
    assert (lifecycle.state, resumed) == (S.DISPOSED, [])


@pytest.mark.parametrize("state", [S.NEGOTIATED, S.WAITING_FOR_POLL, S.DISPOSED], ids=str)
def test_a_resume_from_a_state_without_a_socket_is_a_bug(state: ConnectionState) -> None:
    lifecycle = in_state(state)
    with pytest.raises(LifecycleError):
        lifecycle.begin_resume()
