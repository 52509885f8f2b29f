"""What the pool shows of itself: plain frozen values, the same for every face."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from envplane.workers.service.config import PoolConfig


class PoolState(StrEnum):
    STARTING = "starting"  # no worker ready yet
    READY = "ready"  # serving (some workers may be restarting: see the workers)
    FAILED = "failed"  # no worker could start; ``error`` says why
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class WorkerInfo:
    slot: int
    pid: int
    state: str  # starting | idle | busy | draining | exited | restarting
    calls_served: int
    current_command: str
    current_seconds: float
    rss: int
    peak_rss: int
    uptime: float
    restarts: int
    last_exit: str
    memory_limit: int


@dataclass(frozen=True)
class PoolInfo:
    name: str
    state: PoolState
    config: PoolConfig
    python: str
    workers: list[WorkerInfo] = field(default_factory=list)
    queued: int = 0
    sessions: int = 0
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_enforcement: str = ""  # "cgroup v2 + rss watchdog", "rss watchdog", "" (no limit)
    error: str = ""
    error_detail: str = ""

    @property
    def ready_workers(self) -> int:
        return sum(1 for w in self.workers if w.state in ("idle", "busy"))
