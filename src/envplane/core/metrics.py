"""Prometheus metrics, on a registry of the daemon's own (tests run several daemons at once).

The core counts operations (every capability's, by the audit record), event watchers and what
retention pruned. A capability adds its own gauges to ``registry`` and may register a refresher:
an async function run before each scrape, for figures that need the database (environments by
status). ``GET /metrics`` is then one call: ``await metrics.render()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

Refresher = Callable[[], Awaitable[None]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._refreshers: list[Refresher] = []
        self.operations = Counter(
            "envplane_operations",
            "Operations finished, by operation and outcome.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "envplane_operation_duration_seconds",
            "Wall time of operations.",
            ["operation"],
            buckets=(0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300),
            registry=self.registry,
        )
        self.event_watchers = Gauge("envplane_event_watchers", "Open WatchEvents streams.", registry=self.registry)
        self.pruned = Counter(
            "envplane_retention_pruned",
            "Rows removed by retention, by table.",
            ["table"],
            registry=self.registry,
        )

    def add_refresher(self, refresher: Refresher) -> None:
        self._refreshers.append(refresher)

    async def render(self) -> bytes:
        """The text exposition format, after every refresher has updated its figures."""
        for refresh in self._refreshers:
            await refresh()
        return generate_latest(self.registry)
