"""Per-worker memory cgroups, where the host lets the daemon make them.

The RSS watchdog (``memory.py``, every 100 ms) sees a limit passed only at its next tick, and
only for the worker process. A memory cgroup is the kernel's own limit: the allocation that
crosses it triggers the OOM killer inside the group at once, and it counts the handler's
children too. So when a pool has a ``memory_limit``, each worker gets a group of its own:

* **cgroup v2** (a ``memory`` controller in ``cgroup.controllers`` where the daemon's own group
  can have children): ``memory.max``; the kill is read from ``memory.events`` (``oom_kill``),
  the peak from ``memory.peak``.
* **cgroup v1** (a mounted ``memory`` hierarchy): ``memory.limit_in_bytes`` (and the swap
  limit, when the kernel accounts it, so the worker cannot swap its way past the limit); the
  kill from ``memory.oom_control``, the peak from ``memory.max_usage_in_bytes``.

Groups live under ``envplane-<tag>/`` (the tag names the data dir), so a daemon only ever
removes its own, and empty leftovers of a dead daemon are removed by the next. Where neither
works (no permission, no controller) the pool says so in its info and the watchdog alone
enforces the limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("envplane.workers")
ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count(1)


@dataclass(frozen=True)
class _Files:
    version: str
    limit: str
    swap_limit: str
    events: str
    peak: str


V2 = _Files("cgroup v2", "memory.max", "memory.swap.max", "memory.events", "memory.peak")
V1 = _Files("cgroup v1", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control",
            "memory.max_usage_in_bytes")  # fmt: skip


def tag_for(owner: str) -> str:
    """A short name for whoever owns the groups (the data dir, or this process)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:10]


def _own_group(controller: str) -> str:
    """This process's group path for ``controller`` ("" = the v2 unified one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers.split(",") == [controller] or (not controller and not controllers):
                return path
    return ""


def _writable_base(mount: Path, own: str) -> Path | None:
    """Where this process may make groups: under its own group when the mount shows it (no
    cgroup namespace), else the mount's root (a namespace makes that its own group)."""
    for base in (mount / own.lstrip("/"), mount):
        if base.is_dir() and os.access(base, os.W_OK):
            return base
    return None


class MemoryCgroups:
    """Makes, reads and removes the workers' groups for one owner."""

    def __init__(self, base: Path, files: _Files) -> None:
        self.base = base
        self.files = files

    @property
    def version(self) -> str:
        return self.files.version

    @classmethod
    def detect(cls, owner: str) -> MemoryCgroups | None:
        tag = f"envplane-{tag_for(owner)}"
        candidates: list[tuple[Path, _Files]] = []
        controllers = ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            base = _writable_base(ROOT, _own_group(""))
            if base is not None:
                candidates.append((base, V2))
        v1 = ROOT / "memory"
        if (v1 / "memory.limit_in_bytes").exists():
            base = _writable_base(v1, _own_group("memory"))
            if base is not None:
                candidates.append((base, V1))
        for base, files in candidates:
            group = base / tag
            try:
                group.mkdir(exist_ok=True)
                if files is V2:  # children of this group need the memory controller
                    (group / "cgroup.subtree_control").write_text("+memory")
                made = cls(group, files)
                made.remove_leftovers()
                probe = made.create("probe", 64 * 2**20)
                made.remove(probe)
                return made
            except OSError as exc:
                logger.debug("no %s memory cgroups under %s: %s", files.version, base, exc)
        return None

    def create(self, name: str, limit: int) -> Path:
        group = self.base / f"{name}-{os.getpid()}-{next(_counter)}"
        group.mkdir()
        try:
            (group / self.files.limit).write_text(str(limit))
            swap = group / self.files.swap_limit
            if swap.exists():  # no swapping past the limit (v1: memory+swap; v2: swap alone)
                with contextlib.suppress(OSError):
                    swap.write_text(str(limit) if self.files is V1 else "0")
        except OSError:
            self.remove(group)
            raise
        return group

    def attach(self, group: Path, pid: int) -> None:
        (group / "cgroup.procs").write_text(str(pid))

    def kill_all(self, group: Path) -> None:
        """SIGKILL every process in the group: no child escapes it, whatever its session."""
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)

    def oom_killed(self, group: Path) -> bool:
        with contextlib.suppress(OSError, ValueError):
            for line in (group / self.files.events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        return False

    def peak(self, group: Path) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int((group / self.files.peak).read_text().split()[0])
        return 0

    def remove(self, group: Path) -> None:
        with contextlib.suppress(OSError):
            group.rmdir()

    def close(self) -> None:
        """Remove the owner's group if no worker is left in it (another pool may share it)."""
        self.remove(self.base)

    def remove_leftovers(self) -> None:
        """Empty groups of a dead owner (its processes were killed by their run/ markers)."""
        for child in self.base.iterdir():
            owner = child.name.rsplit("-", 2)[-2] if child.name.count("-") >= 2 else ""
            if child.is_dir() and owner.isdigit() and not _alive(int(owner)):
                self.remove(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
