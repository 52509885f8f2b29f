"""Commits, grouped: how every capability changes state.

A commit function gets a :class:`Tx`: the change goes to ``tx.db``, audit records and events
through it, and all of it commits together. The :class:`Committer` is the daemon's one writer:
commit functions queue up, and each turn runs every queued one in ONE transaction on a worker
thread, then publishes their events in order and wakes their callers. Under load that is one
thread hand-off and one database commit for many operations (eight concurrent creates: about
one each instead of eight); alone, a commit runs at once, as before. Events get their cursors in
queue order and are published in that order, so a live watcher never sees a later cursor
before an earlier one.

A commit function that raises fails alone: the turn's transaction is rolled back and each of
its functions runs again in a transaction of its own (they are functions of the database
state, so running one again is safe), so one caller's error never undoes another's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

from envplane.core import audit, events
from envplane.core.audit import OperationRecord
from envplane.core.events import EventBus, EventRecord
from envplane.core.subject import Subject
from envplane.store import Store

T = TypeVar("T")
MAX_BATCH = 64


class Tx:
    """One operation's part of a transaction: the change (on ``db``), its audit records, its events."""

    def __init__(self, db: Connection) -> None:
        self.db = db
        self.events: list[EventRecord] = []

    def event(self, type_: str, subject: Subject, payload: dict[str, Any]) -> EventRecord:
        record = events.add(self.db, type_, subject, payload)
        self.events.append(record)
        return record

    def start(self, subject: Subject, operation: str, details: dict[str, Any] | None = None) -> int:
        """Record an operation RUNNING; returns its id."""
        return audit.start(self.db, subject, operation, details or {})

    def record(self, subject: Subject, operation: str, details: dict[str, Any], **outcome: Any) -> OperationRecord:
        """Record an operation that is over already (``started_at=``, ``status=``, ...)."""
        return audit.record(self.db, subject, operation, details, **outcome)

    def finish(self, op_id: int, **outcome: Any) -> OperationRecord:
        """Finish the record (``status=``, ``stdout=``, ``stderr=``, ``exit_code=``, ``error=``…)."""
        return audit.finish(self.db, op_id, **outcome)


@dataclass
class _Request(Generic[T]):
    fn: Callable[[Tx], T]
    future: asyncio.Future[T]
    result: Any = None
    error: BaseException | None = None
    events: list[EventRecord] = field(default_factory=list)

    def run(self, db: Connection) -> None:
        tx = Tx(db)
        self.result, self.events = self.fn(tx), tx.events


class Committer:
    """The daemon's one writer (see the module docstring)."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._queue: list[_Request[Any]] = []
        self._turn: asyncio.Task[None] | None = None

    async def commit(self, fn: Callable[[Tx], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(fn, future))
        if self._turn is None or self._turn.done():
            self._turn = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = [r for r in self._queue[:MAX_BATCH] if not r.future.cancelled()]
            del self._queue[:MAX_BATCH]
            if not batch:
                continue
            try:
                await asyncio.shield(asyncio.to_thread(_run_batch, self._store, batch))
            except asyncio.CancelledError:  # the loop is going away: so are the callers
                for request in [*batch, *self._queue]:
                    request.future.cancel()
                raise
            except Exception as exc:  # the database itself failed: every caller hears it
                for request in batch:
                    request.error = request.error or exc
            for request in batch:  # in cursor order
                if request.error is None:
                    self._bus.publish(request.events)
                if request.future.cancelled():
                    continue
                if request.error is not None:
                    request.future.set_exception(request.error)
                else:
                    request.future.set_result(request.result)

    async def close(self) -> None:
        """Let the queued commits finish (shutdown): they are bookkeeping that must not be lost."""
        if self._turn is not None:
            with contextlib.suppress(BaseException):
                await self._turn


def _run_batch(store: Store, batch: list[_Request[Any]]) -> None:
    """Every request in one transaction; if one raises, each in a transaction of its own."""

    def run_all(db: Connection) -> None:
        for request in batch:
            request.run(db)

    try:
        store.run_sync(run_all)
        return
    except Exception as exc:
        if len(batch) == 1:
            batch[0].error, batch[0].events = exc, []
            return
    for request in batch:
        request.result, request.events = None, []
        try:
            store.run_sync(request.run)
        except Exception as exc:
            request.error, request.events = exc, []
