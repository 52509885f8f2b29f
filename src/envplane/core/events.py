"""Domain events: committed in the same transaction as the change they describe, then fanned out
to live watchers by :class:`EventBus`.

A watcher resumes from a cursor (the last event id it saw). :meth:`EventBus.watch` first
subscribes, then replays what the database holds after the cursor, then follows the live
queue, skipping anything already replayed, so no event is lost or repeated at the seam.
A watcher that falls too far behind is dropped with :class:`WatcherOverflow` rather than
growing memory without bound; it can resume from its last cursor. A cursor whose followers
retention has pruned is :class:`EventsPruned` (naming the oldest cursor kept), never a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import JSON, Connection, Float, Integer, String, Table, bindparam, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from envplane.core import marks
from envplane.core.subject import SUBJECT_COLUMNS, Subject, SubjectColumns
from envplane.errors import EventsPruned, WatcherOverflow
from envplane.store import Base, Store

MAX_CURSOR = 2**63 - 1
PAGE = 500


class EventRow(SubjectColumns, Base):
    """``id`` is the cursor WatchEvents resumes from."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True)
class EventRecord:
    cursor: int
    type: str
    subject: Subject
    occurred_at: float
    payload: dict[str, Any] = field(default_factory=dict)


EVENTS = cast(Table, EventRow.__table__)  # the declarative model's table
_COLUMNS = [
    EVENTS.c[name]
    for name in (
        "id",
        "type",
        *SUBJECT_COLUMNS,
        "occurred_at",
        "payload",
    )
]
_ADD = insert(EVENTS).returning(EVENTS.c.id)
_AFTER = select(*_COLUMNS).where(EVENTS.c.id > bindparam("cursor")).order_by(EVENTS.c.id).limit(bindparam("limit"))


def record_of(row: Any) -> EventRecord:
    return EventRecord(
        cursor=row.id,
        type=row.type,
        subject=Subject.of_row(row),
        occurred_at=row.occurred_at,
        payload=dict(row.payload or {}),
    )


def add(db: Connection, type_: str, subject: Subject, payload: dict[str, Any]) -> EventRecord:
    occurred_at = time.time()
    values = {
        "type": type_,
        **subject.columns(),
        "occurred_at": occurred_at,
        "payload": payload,
    }
    cursor = int(db.execute(_ADD, values).scalar_one())
    return EventRecord(cursor, type_, subject, occurred_at, dict(payload))


def events_after(
    db: Connection, *, cursor: int, limit: int = PAGE, types: Sequence[str] = (), kinds: Sequence[str] = ()
) -> list[EventRecord]:
    query = _AFTER
    if types:
        query = query.where(EVENTS.c.type.in_(list(types)))
    if kinds:
        query = query.where(EVENTS.c.subject_kind.in_(list(kinds)))
    return [record_of(r) for r in db.execute(query, {"cursor": cursor, "limit": limit})]


def check_resumable(db: Connection, after: int) -> None:
    """Raise :class:`EventsPruned` if retention removed events that came after ``after``
    (0 means "from the oldest kept": nothing the caller saw can be missing)."""
    through = marks.pruned_through(db, EventRow.__tablename__)
    if 0 < after < through:
        oldest = db.scalar(select(func.min(EVENTS.c.id)))
        kept = f"the oldest event still kept is cursor {oldest}" if oldest else "no events are kept"
        raise EventsPruned(
            f"events after cursor {after} were pruned by retention (up to cursor {through}; settings "
            f"ENVPLANE_EVENTS_KEEP_DAYS / ENVPLANE_EVENTS_KEEP_COUNT): {kept}. Resume from cursor 0 to "
            "replay everything kept, knowing that events in between are gone"
        )


class EventBus:
    """Fan-out of committed events to in-process subscribers."""

    def __init__(self, store: Store, *, queue_size: int = 10_000) -> None:
        self._store = store
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[EventRecord | None]] = set()
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    # Overflowed: drop everything it has not read, so the cursor it is told to
                    # resume from is the last event it really got (no event is skipped), then
                    # mark it; its iterator raises on the next read.
                    self._subscribers.discard(queue)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)

    def close(self) -> None:
        """Wake every watcher so it ends cleanly (daemon shutdown). Safe twice."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()
        self._closed = True

    @contextlib.contextmanager
    def _subscription(self) -> Iterator[asyncio.Queue[EventRecord | None]]:
        queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def live(self, *, types: Sequence[str] = (), kinds: Sequence[str] = ()) -> AsyncIterator[EventRecord]:
        """Events published from now on, no replay: how one capability reacts in-process to
        another's changes (workers recycle a pool whose environment changed). Ends when the
        bus closes; a subscriber that fell behind is resubscribed (it lost what overflowed)."""
        wanted, wanted_kinds = set(types), set(kinds)
        with self._subscription() as queue:
            while True:
                item = await queue.get()
                if item is None:
                    if self._closed:
                        return
                    self._subscribers.add(queue)
                    continue
                if (not wanted or item.type in wanted) and (not wanted_kinds or item.subject.kind in wanted_kinds):
                    yield item

    async def check_resumable(self, after: int) -> None:
        await self._store.run(lambda s: check_resumable(s, after))

    async def watch(
        self, after: int = 0, *, types: Sequence[str] = (), kinds: Sequence[str] = (), follow: bool = True
    ) -> AsyncIterator[EventRecord]:
        """Yield events with cursor > ``after``; with ``follow`` keep going with live ones."""
        wanted, wanted_kinds = set(types), set(kinds)
        with self._subscription() as queue:
            cursor = after
            first = True
            while True:  # replay in pages until the database has nothing newer

                def page_after(db: Connection, cursor: int = cursor, first: bool = first) -> list[EventRecord]:
                    if first:  # in the replay's own transaction: pruning cannot slip in between
                        check_resumable(db, after)
                    return events_after(db, cursor=cursor, types=types, kinds=kinds)

                page = await self._store.run(page_after)
                first = False
                for event in page:
                    cursor = event.cursor
                    yield event
                if len(page) < PAGE:
                    break
            if not follow:
                return
            while True:
                item = await queue.get()
                if item is None:
                    if self._closed:
                        return
                    raise WatcherOverflow(
                        f"watcher fell behind by more than {self._queue_size} events; resume from cursor {cursor}"
                    )
                if item.cursor <= cursor or (wanted and item.type not in wanted):
                    continue
                if wanted_kinds and item.subject.kind not in wanted_kinds:
                    continue
                cursor = item.cursor
                yield item
