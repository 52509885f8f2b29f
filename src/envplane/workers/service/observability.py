"""What the daemon learns from its pools: Prometheus figures, and events for worker exits.

Metrics (labels kept bounded: commands are the handler's own names, exit causes are
classified into a few kinds):

* ``envplane_worker_calls_total{pool,command,outcome}`` and
  ``envplane_worker_call_duration_seconds{pool,command}`` (queue wait included);
* ``envplane_worker_queue_depth{pool}``, ``envplane_workers{pool,state}``,
  ``envplane_worker_sessions{pool}`` (refreshed at each scrape);
* ``envplane_worker_restarts_total{pool,cause}``: crash | out_of_memory | heartbeat |
  recycled | cancel_timeout | scaled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from envplane.workers.service.events import EventType
from envplane.workers.service.queries import subject_of

if TYPE_CHECKING:
    from envplane.workers.service.pool import Pool
    from envplane.workers.service.worker_service import WorkerService

BUCKETS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100)


def cause_kind(cause: str) -> str:
    if cause.startswith("out of memory"):
        return "out_of_memory"
    if "heartbeat" in cause:
        return "heartbeat"
    if "cancelled call did not stop" in cause:
        return "cancel_timeout"
    if cause.startswith("recycled"):
        return "recycled"
    if cause.startswith(("scaled", "idle")):
        return "scaled"
    return "crash"


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, pools: Callable[[], Mapping[str, Pool]]) -> None:
        self._pools = pools
        self.calls = Counter(
            "envplane_worker_calls",
            "Calls to pool commands, by outcome.",
            ["pool", "command", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "envplane_worker_call_duration_seconds",
            "Time of pool calls in the daemon, queue included.",
            ["pool", "command"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.queue = Gauge("envplane_worker_queue_depth", "Calls waiting for a worker.", ["pool"], registry=registry)
        self.workers = Gauge("envplane_workers", "Worker processes, by state.", ["pool", "state"], registry=registry)
        self.sessions = Gauge("envplane_worker_sessions", "Live sessions.", ["pool"], registry=registry)
        self.restarts = Counter(
            "envplane_worker_restarts",
            "Worker exits the pool replaced, by cause.",
            ["pool", "cause"],
            registry=registry,
        )

    async def refresh(self) -> None:
        """Before a scrape: the gauges from each pool's live state."""
        self.queue.clear()
        self.workers.clear()
        self.sessions.clear()
        for name, pool in self._pools().items():  # counts only: no per-worker /proc reads of info()
            self.queue.labels(name).set(pool.queued)
            self.sessions.labels(name).set(len(pool.sessions))
            for state, count in pool.worker_states().items():
                self.workers.labels(name, state).set(count)


class DaemonObserver:
    """The pools' reports → metrics, and events (committed in the background: a pool's
    callbacks must not wait for the database)."""

    def __init__(self, service: WorkerService, metrics: WorkerMetrics) -> None:
        self.service = service
        self.metrics = metrics

    def call_finished(self, pool: Pool, command: str, outcome: str, seconds: float) -> None:
        self.metrics.calls.labels(pool.name, command, outcome).inc()
        self.metrics.seconds.labels(pool.name, command).observe(seconds)

    def call_rejected(self, pool: Pool, reason: str) -> None:
        self.metrics.calls.labels(pool.name, "", reason).inc()

    def worker_ready(self, pool: Pool, slot: int, pid: int, seconds: float) -> None:
        pass

    def worker_exited(self, pool: Pool, slot: int, pid: int, cause: str, sessions_lost: int) -> None:
        kind = cause_kind(cause)
        self.metrics.restarts.labels(pool.name, kind).inc()
        self._event(
            pool,
            EventType.WORKER_EXITED,
            {"slot": slot, "pid": pid, "cause": cause, "kind": kind, "sessions_lost": sessions_lost},
        )

    def pool_failed(self, pool: Pool, message: str) -> None:
        self._event(pool, EventType.POOL_FAILED, {"error": message})

    def _event(self, pool: Pool, type_: EventType, payload: dict[str, object]) -> None:
        stored = self.service.stored(pool.name)
        if stored is None:  # a pool being created with wait_ready: not declared yet
            return
        subject = subject_of(stored)
        self.service.background(self.service.core.commit(lambda tx: tx.event(type_, subject, dict(payload))))
