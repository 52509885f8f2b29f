"""Retention of the audit log and the events: by count, by age, never a running record, never
the newest row (ids keep growing), and the pruning task the daemon owns."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from envplane.core import audit, events
from envplane.core.audit import OperationFilter, OperationRow, OpStatus
from envplane.core.capability import Core, Tx
from envplane.core.events import EventRow
from envplane.core.subject import Subject
from tests.support.waiting import eventually_async

SUBJECT = Subject("environment", "wf/n", "wf", "n")


async def _finished_operations(core: Core, count: int) -> list[int]:
    def add(tx: Tx) -> list[int]:
        ids = [tx.start(SUBJECT, "create") for _ in range(count)]
        for op_id in ids:
            tx.finish(op_id, status=OpStatus.SUCCEEDED, exit_code=0)
        return ids

    return await core.commit(add)


async def test_operations_are_kept_by_count_but_never_a_running_one(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core(operations_keep_count=2, operations_keep_days=0)
    running = await core.commit(lambda tx: tx.start(SUBJECT, "create"))
    finished = await _finished_operations(core, 5)
    pruned = await core.retention.prune()
    assert pruned.operations == 3
    left, total = await core.store.run(lambda s: audit.list_operations(s, OperationFilter()))
    assert sorted(o.id for o in left) == sorted([running, *finished[-2:]])
    assert total == 3


async def test_operations_and_events_are_kept_by_age(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core(operations_keep_days=1, events_keep_days=1, events_keep_count=0)
    old = await _finished_operations(core, 3)
    old_events = await core.commit(lambda tx: [tx.event("EnvironmentCreated", SUBJECT, {}).cursor for _ in range(3)])
    long_ago = time.time() - 3 * 86_400

    def age(session: Any) -> None:
        session.execute(update(OperationRow).values(started_at=long_ago))
        session.execute(update(EventRow).values(occurred_at=long_ago))

    await core.store.run(age)
    new = await _finished_operations(core, 1)
    new_event = await core.commit(lambda tx: tx.event("EnvironmentCreated", SUBJECT, {}).cursor)
    pruned = await core.retention.prune()
    assert (pruned.operations, pruned.events, pruned.events_through) == (3, 3, old_events[-1])
    left, _ = await core.store.run(lambda s: audit.list_operations(s, OperationFilter()))
    assert [o.id for o in left] == new and old[0] not in [o.id for o in left]
    assert [e.cursor for e in await core.store.run(lambda s: events.events_after(s, cursor=0))] == [new_event]


async def test_the_newest_row_stays_so_ids_keep_growing(make_core: Callable[..., Any]) -> None:
    """SQLite hands out max(id) + 1: with every row gone, a new event would reuse a cursor."""
    core: Core = await make_core(events_keep_count=0, events_keep_days=1, operations_keep_days=1)
    cursors = await core.commit(lambda tx: [tx.event("EnvironmentCreated", SUBJECT, {}).cursor for _ in range(3)])
    ops = await _finished_operations(core, 2)
    await core.store.run(lambda s: s.execute(update(EventRow).values(occurred_at=0.0)))
    await core.store.run(lambda s: s.execute(update(OperationRow).values(started_at=0.0)))
    await core.retention.prune()
    assert [e.cursor for e in await core.store.run(lambda s: events.events_after(s, cursor=0))] == [cursors[-1]]
    left, _ = await core.store.run(lambda s: audit.list_operations(s, OperationFilter()))
    assert [o.id for o in left] == [ops[-1]]
    after = await core.commit(lambda tx: tx.event("EnvironmentCreated", SUBJECT, {}).cursor)
    assert after > cursors[-1]


async def test_nothing_to_prune_is_cheap_and_harmless(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()
    assert (await core.retention.prune()).operations == 0


async def test_the_pruning_task_runs_every_interval_and_stops(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core(events_keep_count=1, events_keep_days=0, retention_interval_seconds=0.05)
    cursors = await core.commit(lambda tx: [tx.event("EnvironmentCreated", SUBJECT, {}).cursor for _ in range(4)])
    core.retention.start()
    core.retention.start()  # idempotent

    async def pruned() -> bool:
        left = await core.store.run(lambda s: events.events_after(s, cursor=0))
        return [e.cursor for e in left] == [cursors[-1]]

    await eventually_async(pruned, timeout=10, what="the task to prune")
    await core.retention.stop()
    await core.retention.stop()  # safe twice
    assert core.metrics.pruned.labels("events")._value.get() == 3  # type: ignore[attr-defined]
