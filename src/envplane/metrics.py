"""Prometheus metrics, on a registry of the daemon's own (tests run several daemons at once)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "envplane_operations",
            "Environment operations finished, by operation and outcome.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "envplane_operation_duration_seconds",
            "Wall time of environment operations.",
            ["operation"],
            buckets=(0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300),
            registry=self.registry,
        )
        self.uv_running = Gauge("envplane_uv_processes_running", "uv processes running now.", registry=self.registry)
        self.event_watchers = Gauge("envplane_event_watchers", "Open WatchEvents streams.", registry=self.registry)
        self.environments = Gauge(
            "envplane_environments", "Environments by status.", ["status"], registry=self.registry
        )

    def bind(
        self,
        *,
        uv_running: Callable[[], float],
        watchers: Callable[[], float],
    ) -> None:
        self.uv_running.set_function(uv_running)
        self.event_watchers.set_function(watchers)

    def render(self) -> bytes:
        return generate_latest(self.registry)
