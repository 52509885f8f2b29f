"""What one worker process is started with, and the environment variables it gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane.core.processes import venv_environment
from envplane.workers.service.config import THREAD_VARIABLES

if TYPE_CHECKING:
    from envplane.workers.service.cgroups import MemoryCgroups


@dataclass
class WorkerLaunch:
    """Everything one worker process is started with."""

    python: str
    handler: str
    init: str
    init_args: Any
    concurrency: int
    env: Mapping[str, str]
    cwd: str | None
    run_dir: Path | None
    memory_limit: int
    label: str
    transport: str = "pipe"
    cgroups: MemoryCgroups | None = None  # where the memory limit is the kernel's


def worker_environment(base: Mapping[str, str], python: str, extra: Mapping[str, str], threads: int) -> dict[str, str]:
    """The worker's variables: the daemon's minus its own Python and uv settings, the env's
    ``bin`` first on PATH, unbuffered output (logs arrive as printed), thread counts for the
    numeric libraries (one each by default: N workers × all cores of threads is how pools
    drown a machine), then the pool's own variables over all of it."""
    bin_dir = Path(python).parent
    venv = bin_dir.parent if (bin_dir.parent / "pyvenv.cfg").exists() else None
    env = venv_environment(base, venv, bin_dir, drop=("ENVPLANE_",))
    env["PYTHONUNBUFFERED"] = "1"
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    env.update(extra)
    return env
