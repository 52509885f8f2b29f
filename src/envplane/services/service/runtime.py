"""What the manager asks of a runtime (local processes or Docker), and what it gets back.

The manager (``manager.py``) knows nothing of pids or containers: it starts an
:class:`Instance`, waits for it to end, stops it, asks what it uses, and reads its logs, through
:class:`Runtime`. An instance is plain data so it can be stored and handed to the next daemon,
which asks the runtime to :meth:`~Runtime.adopt` it: still the same process (pid + start time)
or container (its labels and spec hash), and still running.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from envplane.services.service.definitions import ServiceDef


@dataclass(frozen=True)
class Instance:
    """One running copy of a service, as its runtime identifies it."""

    service: str
    runtime: str
    spec_hash: str
    started_at: float  # epoch seconds
    pid: int = 0  # process: the service's own pid; docker: the container's main pid
    pid_started: str = ""  # process: the pid's start time (clock ticks since boot)
    group: int = 0  # process: the process group (the shim's pid)
    group_started: str = ""
    container_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Instance:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Exit:
    """How an instance ended: its exit code (``None`` when unknown: adopted and gone without
    a trace), and why in words."""

    code: int | None
    reason: str

    @property
    def success(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class Usage:
    cpu_percent: float = 0.0
    memory_bytes: int = 0
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0


@dataclass(frozen=True)
class LogLine:
    timestamp: float  # epoch seconds: when the line was written, not when it was read
    stream: str  # "stdout" | "stderr"
    text: str


Say = Callable[[str, int], Awaitable[None]]  # progress: a message and a percentage (-1: none)


class Runtime(Protocol):
    name: str

    async def start(self, service: ServiceDef, spec_hash: str, say: Say) -> Instance:
        """Start the service; returns once it runs (raises ``ServiceStartFailed`` if it cannot)."""
        ...

    async def prepare(self, service: ServiceDef) -> None:
        """Get ready to start ``service`` soon (its dependencies are starting): optional work
        that takes time off the critical path; ``unprepare`` if the start is called off."""
        ...

    async def unprepare(self, name: str) -> None: ...

    async def wait(self, instance: Instance) -> Exit:
        """Until the instance ends (cancellable)."""
        ...

    async def stop(self, instance: Instance, signal_name: str, grace: float) -> Exit:
        """The stop signal, then SIGKILL after ``grace``; returns once nothing of it is left."""
        ...

    async def recorded(self) -> list[Instance]:
        """The instances a previous daemon left (running or not)."""
        ...

    async def adopt(self, instance: Instance, service: ServiceDef, spec_hash: str) -> bool:
        """Whether ``instance`` (from a previous daemon) still runs as ``service`` at ``spec_hash``."""
        ...

    async def discard(self, instance: Instance) -> None:
        """Remove what is left of an instance that is not adopted (kill it if it runs)."""
        ...

    async def usage(self, instance: Instance) -> Usage: ...

    def logs(
        self, service: str, instance: Instance | None, *, tail: int, since: float, follow: bool
    ) -> AsyncIterator[LogLine]: ...

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether the runtime's engine can be reached."""
        ...

    async def close(self) -> None: ...


def spec_hash(service: ServiceDef) -> str:
    """What makes a running instance current: a digest of every field that changes what runs.
    A different hash means the instance must be re-created (the original silently reused a
    stale container)."""
    fields = asdict(service)
    for cosmetic in ("description", "embedded", "depends_on", "required", "probe", "restart"):
        fields.pop(cosmetic, None)
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
