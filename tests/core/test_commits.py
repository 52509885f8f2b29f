"""The committer: concurrent commits share one transaction, a failing one fails alone, and
events reach watchers in cursor order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from envplane.core import audit
from envplane.core.audit import OperationFilter
from envplane.core.capability import Core, Tx
from envplane.core.subject import Subject
from envplane.errors import AlreadyExists

SUBJECT = Subject("environment", "wf/n", "wf", "n")


async def test_concurrent_commits_are_grouped_and_keep_their_order(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()
    transactions: list[int] = []

    def write(tx: Tx, i: int) -> int:
        transactions.append(id(tx.db))
        return tx.event("EnvironmentCreated", SUBJECT, {"i": i}).cursor

    received: list[int] = []

    async def follow() -> None:
        async for event in core.bus.watch(0):
            received.append(event.payload["i"])
            if len(received) == 20:
                return

    watcher = asyncio.ensure_future(follow())
    await asyncio.sleep(0.05)
    cursors = await asyncio.gather(*(core.commit(lambda tx, i=i: write(tx, i)) for i in range(20)))
    await asyncio.wait_for(watcher, 10)
    assert cursors == sorted(cursors), "cursors in the order the commits were asked for"
    assert received == list(range(20)), "and published in that order"
    assert len(set(transactions)) < 20, "some commits shared a transaction"


async def test_a_failing_commit_fails_alone(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()

    def good(tx: Tx, i: int) -> int:
        return tx.start(SUBJECT, f"op{i}")

    def bad(tx: Tx) -> None:
        tx.start(SUBJECT, "doomed")
        raise AlreadyExists("environment wf/n already exists")

    results = await asyncio.gather(
        core.commit(lambda tx: good(tx, 1)),
        core.commit(bad),
        core.commit(lambda tx: good(tx, 2)),
        return_exceptions=True,
    )
    assert isinstance(results[1], AlreadyExists)
    records, _ = await core.store.run(lambda db: audit.list_operations(db, OperationFilter()))
    assert sorted(r.operation for r in records) == ["op1", "op2"], "the failed one left nothing, the others stayed"
    assert sorted(r.id for r in records) == sorted(results[0::2])  # type: ignore[type-var]


async def test_a_caller_cancelled_before_its_turn_commits_nothing(make_core: Callable[..., Any]) -> None:
    core: Core = await make_core()
    running, release = threading.Event(), threading.Event()

    def slow(tx: Tx) -> int:
        running.set()
        release.wait(10)
        return tx.start(SUBJECT, "first")

    first = asyncio.ensure_future(core.commit(slow))
    await asyncio.to_thread(running.wait, 10)  # the first turn is in its transaction
    second = asyncio.ensure_future(core.commit(lambda tx: tx.start(SUBJECT, "second")))
    await asyncio.sleep(0)
    second.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await core.commit(lambda tx: None)  # a turn after it
    records, _ = await core.store.run(lambda db: audit.list_operations(db, OperationFilter()))
    assert [r.operation for r in records] == ["first"]
