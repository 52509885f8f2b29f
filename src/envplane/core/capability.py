"""What a capability is given (:class:`Core`) and what it gives the daemon (:class:`Capability`).

The daemon (``server.py``) builds one :class:`Core`, then an explicit, ordered list of
capabilities over it, and drives them: ``start()`` in order (each runs its own recovery there),
their gRPC services and REST routers behind the listeners, ``stop()`` in reverse order.
A capability that needs another is handed that one's *service* when it is built (workers get
the environments service), never its internals.

:meth:`Core.commit` is how every capability changes state: one transaction holds the change,
its audit records and its events (:class:`Tx`), and the events reach watchers after the commit,
in cursor order. Concurrent commits are grouped into one transaction (``commits.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from envplane.config import Settings
from envplane.core import audit
from envplane.core.activity import Activity
from envplane.core.audit import OperationRecord
from envplane.core.commits import Committer
from envplane.core.commits import Tx as Tx
from envplane.core.datadir import DataDir
from envplane.core.events import EventBus
from envplane.core.metrics import Metrics
from envplane.core.retention import Retention
from envplane.store import Store

if TYPE_CHECKING:
    from fastapi import APIRouter

T = TypeVar("T")
logger = logging.getLogger("envplane.core")

INTERRUPTED = "interrupted: the daemon stopped before the operation finished"


@dataclass(frozen=True)
class CoreRecovery:
    """What ``Core.recover`` found a dead daemon had left."""

    processes_killed: list[int]
    operations_failed: int


class Core:
    """The plumbing every capability shares: settings, store, events, audit, metrics, data dir."""

    def __init__(self, settings: Settings, store: Store, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.bus = EventBus(store)
        self.metrics = metrics or Metrics()
        self.data_dir = DataDir(settings.data_dir)
        self.retention = Retention(settings, store, self.metrics)
        # Every capability registers the subject kinds and event types it writes (for checks).
        self.subject_kinds: set[str] = set()
        self.event_types: set[str] = set()
        self.activity = Activity(self)
        self._committer = Committer(store, self.bus)
        self.metrics.event_watchers.set_function(lambda: self.bus.watchers)

    async def commit(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in a transaction (grouped with concurrent commits: ``commits.py``);
        publish the events it added once it has committed, in cursor order."""
        return await self._committer.commit(fn)

    async def commit_shielded(self, fn: Callable[[Tx], T]) -> T:
        """A commit that a cancelled request cannot interrupt (failure bookkeeping)."""
        return await asyncio.shield(self.commit(fn))

    def observe(self, op: OperationRecord) -> None:
        """Count a finished operation in the metrics."""
        self.metrics.operations.labels(op.operation, op.status).inc()
        if op.duration_ms is not None:
            self.metrics.operation_seconds.labels(op.operation).observe(op.duration_ms / 1000)

    async def recover(self) -> CoreRecovery:
        """At start-up, before any capability: kill the process groups a dead daemon left
        running (they could still write), wipe ``tmp/``, and record the operations it left
        RUNNING as FAILED (every capability's). Cheap when the last stop was clean."""
        killed = await asyncio.to_thread(self.data_dir.reclaim)
        failed = await self.commit(lambda tx: audit.fail_running(tx.db, INTERRUPTED))
        recovery = CoreRecovery(killed, len(failed))
        if killed or failed:
            logger.warning(
                "the last daemon stopped uncleanly: killed %d process group(s) it left, %d operation(s) failed",
                len(killed),
                len(failed),
            )
        return recovery

    async def stop(self) -> None:
        """Stop what the core owns: the retention task, the queued commits, then the event bus
        (wakes watchers). Safe twice."""
        await self.retention.stop()
        await self._committer.close()
        self.bus.close()


@dataclass(frozen=True)
class GrpcService:
    """One gRPC service a capability serves: its full name (for health and reflection) and how
    to add its servicer to a ``grpc.aio.Server``."""

    name: str
    register: Callable[[Any], None]


class Capability(Protocol):
    """One vertical slice of the daemon (environments, activity; workers, services, observations)."""

    name: str

    async def start(self) -> None:
        """Recover what a previous daemon left (after a crash), then start background tasks."""
        ...

    def grpc_services(self) -> Sequence[GrpcService]: ...

    def rest_router(self) -> APIRouter | None: ...

    def health(self) -> Mapping[str, Any]:
        """Figures for ``GET /health`` (``{"uv_running": 0}``); cheap, no I/O."""
        ...

    async def stop(self) -> None:
        """Stop every task the capability owns. Safe twice, and safe after a failed start."""
        ...
