"""What the services capability needs of the worker pools (the original protocol's
``GetResourceAvailability`` and ``ExecuteTask`` name a pool by ``workload_class``), and the
machine itself: cores, memory, and GPUs when ``nvidia-smi`` is there.

The capability declares :class:`Workloads`; the daemon hands it an adapter over the workers'
service at composition (``server.py``), so neither capability imports the other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil


class Workloads(Protocol):
    def capacity(self, workload_class: str) -> tuple[int, int] | None:
        """(workers the pool may run, workers busy now), or None: no pool of that name."""
        ...

    def commands(self, workload_class: str) -> Sequence[str]:
        """The pool's commands (NotFound: no pool of that name)."""
        ...

    async def execute(self, workload_class: str, command: str, args: Any, *, timeout: float | None) -> Any:
        """Run ``command`` on the pool (the workers' errors as they are)."""
        ...


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_bytes: int
    utilization_percent: float


@dataclass(frozen=True)
class Hardware:
    cpu_cores: int
    memory_bytes: int
    gpus: list[Gpu] = field(default_factory=list)


async def hardware() -> Hardware:
    """The real machine: the cores this process may use, total memory, NVIDIA GPUs if any."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Hardware(cores, psutil.virtual_memory().total, await _gpus())


async def _gpus() -> list[Gpu]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        proc = await asyncio.create_subprocess_exec(
            smi,
            "--query-gpu=index,name,memory.total,utilization.gpu",
            "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(5):
            out, _ = await proc.communicate()
    except (OSError, TimeoutError):
        return []
    gpus = []
    for line in out.decode(errors="replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            memory = int(float(parts[2]) * 1024 * 1024) if parts[2].replace(".", "").isdigit() else 0
            usage = float(parts[3]) if parts[3].replace(".", "").isdigit() else 0.0
            gpus.append(Gpu(int(parts[0]), parts[1], memory, usage))
    return gpus
