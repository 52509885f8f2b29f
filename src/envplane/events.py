"""Domain events: persisted by the service in the same transaction as the change they describe,
then fanned out here to live watchers.

A watcher resumes from a cursor (the last event id it saw). :meth:`EventBus.watch` first
subscribes, then replays what the database holds after the cursor, then follows the live
queue, skipping anything already replayed, so no event is lost or repeated at the seam.
A watcher that falls too far behind is dropped with :class:`WatcherOverflow` rather than
growing memory without bound; it can resume from its last cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from enum import StrEnum

from envplane.store import EventRecord, Store
from envplane.store import repository as repo


class EventType(StrEnum):
    ENVIRONMENT_CREATION_STARTED = "EnvironmentCreationStarted"
    ENVIRONMENT_CREATED = "EnvironmentCreated"
    ENVIRONMENT_CREATION_FAILED = "EnvironmentCreationFailed"
    ENVIRONMENT_DELETED = "EnvironmentDeleted"
    DEPENDENCIES_ADDED = "DependenciesAdded"
    DEPENDENCIES_UPDATED = "DependenciesUpdated"
    DEPENDENCIES_REMOVED = "DependenciesRemoved"
    ENVIRONMENT_SYNCED = "EnvironmentSynced"
    ENVIRONMENT_CLEANUP_COMPLETED = "EnvironmentCleanupCompleted"


class WatcherOverflow(Exception):
    """The watcher did not keep up; resume from the last cursor it received."""


class EventBus:
    """Fan-out of committed events to in-process subscribers."""

    def __init__(self, store: Store, *, queue_size: int = 10_000) -> None:
        self._store = store
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[EventRecord | None]] = set()
        self._closed = False
        self.published_total = 0

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            self.published_total += 1
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    # Mark the subscriber as overflowed; its iterator raises on next read.
                    self._subscribers.discard(queue)
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(None)

    def close(self) -> None:
        """Wake every watcher so it ends cleanly (daemon shutdown)."""
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

    async def watch(
        self, after: int = 0, *, types: Sequence[str] = (), follow: bool = True
    ) -> AsyncIterator[EventRecord]:
        """Yield events with cursor > ``after``; with ``follow`` keep going with live ones."""
        wanted = set(types)
        with self._subscription() as queue:
            cursor = after
            while True:  # replay in pages until the database has nothing newer
                page = await self._store.run(functools.partial(repo.events_after, cursor=cursor, types=types))
                for event in page:
                    cursor = event.cursor
                    yield event
                if len(page) < 500:
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
                cursor = item.cursor
                yield item
