"""What the daemon learns from its services: audit records, events and Prometheus figures.

Metrics (labels bounded: service names come from the configuration, causes from a fixed set):

* ``envplane_service_start_total{service,runtime}``: instances started (restarts included);
* ``envplane_active_services{runtime,state}``: services by state, refreshed at each scrape;
* ``envplane_health_check_duration_seconds{service,kind,outcome}``: each probe;
* ``envplane_runtime_api_duration_seconds{runtime,call}``: each call into a runtime (start,
  stop, wait excluded: it lasts as long as the service);
* ``envplane_service_restarts_total{service,cause}``: crashed | exited | requested.

Audit: one record per start (``service.start``), stop (``service.stop``), restart
(``service.restart``) and change of health (``service.health``), with the service as subject;
events as ``events.py`` lists. Both are written in the background, in the order they happened:
a probe answer must not wait on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from envplane.core.audit import OpStatus
from envplane.core.capability import Core, Tx
from envplane.services.service.definitions import ServiceDef
from envplane.services.service.events import EventType, subject
from envplane.services.service.probes import ProbeResult
from envplane.services.service.runtime import Exit, Instance, LogLine, Runtime, Say, Usage
from envplane.services.service.units import Change, State, Unit

logger = logging.getLogger("envplane.services")
BUCKETS = (0.0005, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100)

_EVENTS = {
    State.RUNNING: EventType.SERVICE_STARTED,
    State.HEALTHY: EventType.SERVICE_HEALTH_CHANGED,
    State.UNHEALTHY: EventType.SERVICE_HEALTH_CHANGED,
    State.EXITED: EventType.SERVICE_EXITED,
    State.FAILED: EventType.SERVICE_FAILED,
    State.SKIPPED: EventType.SERVICE_SKIPPED,
    State.STOPPED: EventType.SERVICE_STOPPED,
}


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry, units: Callable[[], Mapping[str, Unit]]) -> None:
        self._units = units
        self.starts = Counter(
            "envplane_service_start", "Service instances started.", ["service", "runtime"], registry=registry
        )
        self.active = Gauge("envplane_active_services", "Services by state.", ["runtime", "state"], registry=registry)
        self.probe_seconds = Histogram(
            "envplane_health_check_duration_seconds",
            "Health probes, by outcome.",
            ["service", "kind", "outcome"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.runtime_seconds = Histogram(
            "envplane_runtime_api_duration_seconds",
            "Calls into a service runtime (the process shim, the Docker engine).",
            ["runtime", "call"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.restarts = Counter(
            "envplane_service_restarts", "Service restarts, by cause.", ["service", "cause"], registry=registry
        )

    def refresh(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for unit in self._units().values():
            key = (unit.definition.runtime, unit.state.value)
            counts[key] = counts.get(key, 0) + 1
        self.active.clear()
        for (runtime, state), count in counts.items():
            self.active.labels(runtime, state).set(count)


class ServiceObserver:
    """The manager's observer in the daemon (``manager.Observer``)."""

    def __init__(self, core: Core, metrics: ServiceMetrics) -> None:
        self.core = core
        self.metrics = metrics
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _background(self, fn: Callable[[Tx], Any]) -> None:
        if self._closed:
            return

        async def commit() -> None:
            try:
                op = await self.core.commit(fn)
                if op is not None and hasattr(op, "operation"):
                    self.core.observe(op)
            except Exception:  # bookkeeping must never take a service down
                logger.exception("could not record a service change")

        task = asyncio.ensure_future(commit())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def changed(self, unit: Unit, change: Change) -> None:
        event = _EVENTS.get(change.state)
        if event is None:
            return
        if change.state == State.RUNNING and unit.adopted and unit.instance is not None:
            event = EventType.SERVICE_ADOPTED
        payload: dict[str, Any] = {"state": change.state.value, "message": change.message}
        if change.output:
            payload["output"] = change.output[-2000:]
        health = change.state in (State.HEALTHY, State.UNHEALTHY)
        if health:
            payload["healthy"] = change.state == State.HEALTHY

        def commit(tx: Tx) -> Any:
            tx.event(event, subject(unit.name), payload)
            if health:
                outcome = OpStatus.SUCCEEDED if payload["healthy"] else OpStatus.FAILED
                return tx.record(
                    subject(unit.name),
                    "service.health",
                    {"healthy": payload["healthy"]},
                    started_at=change.timestamp,
                    status=outcome,
                    error="" if payload["healthy"] else change.message,
                    stderr=change.output[-4000:],
                )
            return None

        self._background(commit)

    def started(self, unit: Unit) -> None:
        self.metrics.starts.labels(unit.name, unit.definition.runtime).inc()
        self._record(unit, "service.start", {"runtime": unit.definition.runtime})

    def restarting(self, unit: Unit, cause: str) -> None:
        self.metrics.restarts.labels(unit.name, cause).inc()
        payload = {"cause": cause, "restarts": unit.restarts}
        self._background(lambda tx: tx.event(EventType.SERVICE_RESTARTED, subject(unit.name), payload))
        self._record(unit, "service.restart", payload)

    def stopped(self, unit: Unit, exit_: Exit | None) -> None:
        self._record(unit, "service.stop", {"exit_code": exit_.code if exit_ else None})

    def probed(self, unit: Unit, result: ProbeResult) -> None:
        kind = unit.definition.probe.kind if unit.definition.probe else "none"
        outcome = "healthy" if result.healthy else "unhealthy"
        self.metrics.probe_seconds.labels(unit.name, kind, outcome).observe(result.seconds)

    def _record(self, unit: Unit, operation: str, details: dict[str, Any]) -> None:
        now = time.time()
        self._background(
            lambda tx: tx.record(subject(unit.name), operation, details, started_at=now, status=OpStatus.SUCCEEDED)
        )

    async def close(self) -> None:
        """Let the records already made reach the database."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)


class TimedRuntime:
    """A runtime whose calls are timed into ``envplane_runtime_api_duration_seconds``."""

    def __init__(self, inner: Runtime, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._seconds = metrics.runtime_seconds

    @contextlib.contextmanager
    def _timed(self, call: str) -> Any:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._seconds.labels(self.name, call).observe(time.perf_counter() - started)

    async def start(self, service: ServiceDef, spec_hash: str, say: Say) -> Instance:
        with self._timed("start"):
            return await self.inner.start(service, spec_hash, say)

    async def prepare(self, service: ServiceDef) -> None:
        with self._timed("prepare"):
            await self.inner.prepare(service)

    async def unprepare(self, name: str) -> None:
        await self.inner.unprepare(name)

    async def wait(self, instance: Instance) -> Exit:
        return await self.inner.wait(instance)

    async def stop(self, instance: Instance, signal_name: str, grace: float) -> Exit:
        with self._timed("stop"):
            return await self.inner.stop(instance, signal_name, grace)

    async def recorded(self) -> list[Instance]:
        with self._timed("recorded"):
            return await self.inner.recorded()

    async def adopt(self, instance: Instance, service: ServiceDef, spec_hash: str) -> bool:
        with self._timed("adopt"):
            return await self.inner.adopt(instance, service, spec_hash)

    async def discard(self, instance: Instance) -> None:
        with self._timed("discard"):
            await self.inner.discard(instance)

    async def usage(self, instance: Instance) -> Usage:
        with self._timed("usage"):
            return await self.inner.usage(instance)

    def logs(
        self, service: str, instance: Instance | None, *, tail: int, since: float, follow: bool
    ) -> AsyncIterator[LogLine]:
        return self.inner.logs(service, instance, tail=tail, since=since, follow=follow)

    def health(self) -> dict[str, Any]:
        return self.inner.health()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # runtime-specific calls (docker's pull)
        return getattr(self.inner, name)
