"""What the pool shows of itself: plain frozen values, the same for every face."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from envplane.workers.service.config import PoolConfig

if TYPE_CHECKING:
    from envplane.workers.service.pool import Pool, Slot


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


def pool_info(pool: Pool, slots: Sequence[Slot]) -> PoolInfo:
    """What the pool shows now: one WorkerInfo per slot (a restarting slot has no process)."""
    now = time.time()
    workers = []
    for slot in sorted(slots, key=lambda s: s.index):
        worker = slot.worker
        current = worker.current_call() if worker is not None else None
        workers.append(
            WorkerInfo(
                slot=slot.index,
                pid=worker.pid if worker is not None else 0,
                state=worker.state.value if worker is not None else "restarting",
                calls_served=worker.calls_served if worker is not None else 0,
                current_command=current.command if current is not None else "",
                current_seconds=time.monotonic() - current.started if current is not None else 0.0,
                rss=worker.sample_memory() if worker is not None else 0,
                peak_rss=worker.peak_rss if worker is not None else 0,
                uptime=now - worker.started_at if worker is not None else 0.0,
                restarts=slot.restarts,
                last_exit=slot.last_exit,
                memory_limit=slot.memory_limit,
            )
        )
    return PoolInfo(
        name=pool.name,
        state=pool.state,
        config=pool.config,
        python=pool.python,
        workers=workers,
        queued=pool.queued,
        sessions=len(pool.sessions),
        commands=dict(pool.commands),
        memory_enforcement=pool.memory_enforcement,
        error=pool.failure.message if pool.failure else "",
        error_detail=pool.failure.detail if pool.failure else "",
    )
