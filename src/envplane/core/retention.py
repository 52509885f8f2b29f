"""Retention of the audit log and the event stream: both are kept by age and by count (settings
``ENVPLANE_{OPERATIONS,EVENTS}_KEEP_{DAYS,COUNT}``, 0 = no limit of that kind), pruned by a
task the daemon owns, every ``ENVPLANE_RETENTION_INTERVAL_SECONDS``.

Three rules keep pruning safe:

- records of running operations are never pruned (their operation still has to finish them);
- the newest row of each table is never pruned, so ids keep growing (SQLite would otherwise
  hand out the ids of deleted rows again, and a cursor would point at another event);
- events are pruned as one range (``id <= N``) and N is recorded (``marks.py``), so a watcher
  resuming from before N gets :class:`~envplane.errors.EventsPruned` rather than a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from envplane.config import Settings
from envplane.core import marks
from envplane.core.audit import OperationRow, OpStatus
from envplane.core.events import EventRow
from envplane.core.metrics import Metrics
from envplane.store import Store

logger = logging.getLogger("envplane.retention")
DAY = 86_400.0


@dataclass(frozen=True)
class Keep:
    days: float  # 0 = no age limit
    count: int  # 0 = no count limit


@dataclass(frozen=True)
class Pruned:
    operations: int = 0
    events: int = 0
    events_through: int = 0  # the highest event cursor now gone (0: none pruned this time)


def _count_cutoff(db: Connection, id_column: InstrumentedAttribute[int], keep: Keep) -> int:
    """The id of the newest row beyond the ``keep.count`` newest (0: nothing beyond)."""
    if not keep.count:
        return 0
    query = select(id_column).order_by(id_column.desc()).offset(keep.count).limit(1)
    return int(db.scalar(query) or 0)


def prune_events(db: Connection, keep: Keep, now: float) -> tuple[int, int]:
    """Remove old events as one range; (how many, the highest cursor removed)."""
    newest = int(db.scalar(select(func.max(EventRow.id))) or 0)
    cutoff = _count_cutoff(db, EventRow.id, keep)
    if keep.days:
        aged = db.scalar(select(func.max(EventRow.id)).where(EventRow.occurred_at < now - keep.days * DAY))
        cutoff = max(cutoff, int(aged or 0))
    cutoff = min(cutoff, newest - 1)
    if cutoff <= 0:
        return 0, 0
    result = db.execute(delete(EventRow).where(EventRow.id <= cutoff))
    marks.advance(db, EventRow.__tablename__, cutoff)
    return int(result.rowcount or 0), cutoff


def prune_operations(db: Connection, keep: Keep, now: float) -> int:
    """Remove finished audit records beyond the count or older than the age limit."""
    newest = int(db.scalar(select(func.max(OperationRow.id))) or 0)
    conditions = []
    if cutoff := _count_cutoff(db, OperationRow.id, keep):
        conditions.append(OperationRow.id <= cutoff)
    if keep.days:
        conditions.append(OperationRow.started_at < now - keep.days * DAY)
    if not conditions:
        return 0
    where = (or_(*conditions), OperationRow.status != OpStatus.RUNNING, OperationRow.id < newest)
    through = db.scalar(select(func.max(OperationRow.id)).where(*where))
    if not through:
        return 0
    result = db.execute(delete(OperationRow).where(*where))
    marks.advance(db, OperationRow.__tablename__, int(through))
    return int(result.rowcount or 0)


class Retention:
    """The pruning task. ``prune()`` runs one pass; ``start()``/``stop()`` own the loop."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics | None = None) -> None:
        self.operations = Keep(settings.operations_keep_days, settings.operations_keep_count)
        self.events = Keep(settings.events_keep_days, settings.events_keep_count)
        self.interval = settings.retention_interval_seconds
        self._store = store
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    async def prune(self) -> Pruned:
        def run(db: Connection) -> Pruned:
            now = time.time()
            operations = prune_operations(db, self.operations, now)
            events, through = prune_events(db, self.events, now)
            return Pruned(operations, events, through)

        pruned = await self._store.run(run)
        if self._metrics is not None:
            self._metrics.pruned.labels("operations").inc(pruned.operations)
            self._metrics.pruned.labels("events").inc(pruned.events)
        if pruned.operations or pruned.events:
            logger.info("retention pruned %d operation record(s), %d event(s)", pruned.operations, pruned.events)
        return pruned

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # a failed pass is retried next interval; the daemon keeps serving
                logger.exception("retention pass failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop the loop (safe twice, and before start)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
