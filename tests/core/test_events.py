"""The event bus on its own: replay then live with no gap, a watcher that falls behind, and a
resumed watch after retention pruned what it would have replayed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from envplane.core.capability import Core
from envplane.core.events import EventBus
from envplane.core.subject import Subject
from envplane.errors import EventsPruned, WatcherOverflow

SUBJECT = Subject("environment", "wf/n", "wf", "n")


async def _emit(core: Core, count: int, type_: str = "EnvironmentCreated") -> list[int]:
    def add(tx: Any) -> list[int]:
        return [tx.event(type_, SUBJECT, {"n": i}).cursor for i in range(count)]

    return await core.commit(add)


async def test_replay_then_live_without_gap_or_repeat(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()
    first = await _emit(core, 3)
    seen: list[int] = []

    async def follow() -> None:
        async for event in core.bus.watch(first[0]):
            seen.append(event.cursor)
            if len(seen) == 4:
                return

    watcher = asyncio.ensure_future(follow())
    await asyncio.sleep(0.05)  # subscribed and replayed
    later = await _emit(core, 2)
    await asyncio.wait_for(watcher, 10)
    assert seen == [*first[1:], *later]


async def test_a_watcher_that_falls_behind_is_dropped_with_its_cursor(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()
    bus = EventBus(core.store, queue_size=3)
    stream = bus.watch(0)
    bus_events = await _emit(core, 1)
    first = await anext(stream)  # replayed from the database
    assert first.cursor == bus_events[0]
    records = [
        await core.commit(lambda tx, i=i: tx.event("EnvironmentCreated", SUBJECT, {"live": i})) for i in range(5)
    ]
    bus.publish(records)  # five live events into a queue of three: the watcher overflowed
    with pytest.raises(WatcherOverflow, match=rf"resume from cursor {first.cursor}") as info:
        async for _ in stream:
            pass
    assert bus.watchers == 0, "the overflowed watcher was unsubscribed"
    assert info.value.__class__.__mro__[1].__name__ == "Aborted"


async def test_close_ends_every_watcher_cleanly(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()

    async def follow() -> list[int]:
        return [e.cursor async for e in core.bus.watch(0)]

    watcher = asyncio.ensure_future(follow())
    await asyncio.sleep(0.05)
    assert core.bus.watchers == 1
    core.bus.close()
    assert await asyncio.wait_for(watcher, 5) == []


async def test_resuming_from_a_pruned_cursor_names_the_oldest_kept(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core(events_keep_count=3, events_keep_days=0)
    cursors = await _emit(core, 10)
    pruned = await core.retention.prune()
    assert (pruned.events, pruned.events_through) == (7, cursors[6])
    kept = [e.cursor async for e in core.bus.watch(0, follow=False)]
    assert kept == cursors[7:], "after_cursor 0 replays what is kept"
    with pytest.raises(
        EventsPruned, match=rf"after cursor {cursors[2]} were pruned.*oldest event still kept is cursor {cursors[7]}"
    ):
        await core.activity.watch(cursors[2])
    resumed = [e.cursor async for e in await core.activity.watch(cursors[6], follow=False)]
    assert resumed == cursors[7:], "a cursor at the edge of what was pruned misses nothing"
