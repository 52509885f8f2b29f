"""One service as the manager drives it: a :class:`Unit` holds its state, its instance, its
health, and the one task that runs its life (``lifecycle.py``).

States (the original protocol's words where it had one: starting, running, healthy, unhealthy,
stopped, failed)::

    stopped ─► waiting ─► starting ─► running ─► healthy ◄─► unhealthy
                 │            │          │  (probe)
                 ▼            ▼          ▼ (ends)
              skipped      failed     restarting ─► starting …   |  exited (ended with 0, not restarted)
                                                                 |  failed (ended otherwise, not restarted)

``waiting`` is for its dependencies' conditions; ``skipped`` when a required dependency failed;
``restarting`` is the backoff before the next start.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum

from envplane.services.service.definitions import ServiceDef
from envplane.services.service.probes import ProbeResult
from envplane.services.service.runtime import Exit, Instance, Runtime


class State(StrEnum):
    STOPPED = "stopped"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"
    SKIPPED = "skipped"


UP = {State.RUNNING, State.HEALTHY, State.UNHEALTHY}  # an instance runs
ACTIVE = UP | {State.WAITING, State.STARTING, State.RESTARTING, State.STOPPING}  # the life task runs
ENDED = {State.FAILED, State.SKIPPED}  # gave up: an `up` waiting on it fails


def healthy_in(state: State, *, has_probe: bool) -> bool:
    """Healthy by its probe; a service without one is healthy while it runs."""
    return state == State.HEALTHY or (not has_probe and state in UP)


@dataclass(frozen=True)
class Change:
    """A state or health change, as progress streams and health watchers see it."""

    service: str
    state: State
    message: str
    healthy: bool | None
    output: str  # the probe's last output, or the end of the log for a failure
    timestamp: float = field(default_factory=time.time)

    @property
    def progress(self) -> int:
        """A rough percentage for progress bars (the original protocol has one)."""
        return {
            State.WAITING: 5,
            State.STARTING: 25,
            State.RUNNING: 60,
            State.RESTARTING: 25,
            State.UNHEALTHY: 60,
        }.get(self.state, 100)


@dataclass
class Unit:
    definition: ServiceDef
    runtime: Runtime
    spec_hash: str
    state: State = State.STOPPED
    message: str = ""
    instance: Instance | None = None
    last_exit: Exit | None = None
    healthy: bool | None = None  # None: no probe has answered yet (or there is no probe)
    last_probe: ProbeResult | None = None
    restarts: int = 0  # over the unit's life in this daemon
    streak: int = 0  # restarts in a row, for the backoff (reset after a good run)
    task: asyncio.Task[None] | None = None
    probe_task: asyncio.Task[None] | None = None
    stopping: bool = False
    adopted: bool = False

    @property
    def name(self) -> str:
        return self.definition.name

    def satisfies(self, condition: str) -> bool:
        if condition == "completed_successfully":
            return self.state == State.EXITED and self.last_exit is not None and self.last_exit.success
        if condition == "healthy" and self.definition.probe is not None:
            return self.state == State.HEALTHY
        return self.state in UP or self.state == State.EXITED

    @property
    def is_healthy(self) -> bool:
        return healthy_in(self.state, has_probe=self.definition.probe is not None)

    def cannot_satisfy(self) -> str | None:
        """Why this run will not meet any condition any more (None: it still may)."""
        if self.state in ENDED:
            return f"{self.name} {self.state.value}: {self.message}"
        return None

    def failure_output(self) -> str:
        if self.last_probe is not None and not self.last_probe.healthy:
            return self.last_probe.output
        return ""
