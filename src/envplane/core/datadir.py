"""The data dir every capability shares: who owns it, and its scratch space.

::

    <data_dir>/
      envplane.db      the database (default SQLite; any SQLAlchemy URL instead)
      envplane.lock    flock held by the one process serving this data dir (names the holder)
      daemon.json      pid and real ports of the running daemon
      tmp/             staging for in-flight operations and each child process's private TMPDIR;
                       wiped at start-up
      run/<label>-<pgid>   process groups in flight (uv, users' code); killed at start-up if a
                       dead daemon left them running (``processes.kill_orphans``)

Each capability keeps its own folders beside these (environments: ``projects/``, ``builds/``).

One envplane process per data dir: two processes would each believe they own it, and the
second one's start-up recovery would kill the first one's processes and rewrite its folders.
The daemon and ``LocalEnvironmentProvider`` therefore hold an exclusive ``flock`` on
``envplane.lock`` while they run; the kernel drops it when the process dies, so a crash never
leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from pathlib import Path

from envplane.core.processes import kill_orphans
from envplane.errors import FailedPrecondition

LOCK_FILE = "envplane.lock"


class DataDir:
    """The shared paths of one data dir."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.tmp = self.root / "tmp"
        self.run = self.root / "run"

    def create(self) -> None:
        for path in (self.root, self.tmp, self.run):
            path.mkdir(parents=True, exist_ok=True)

    def staging_dir(self, purpose: str) -> Path:
        """A new private folder under ``tmp/`` (the caller removes it)."""
        path = self.tmp / f"{purpose}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def reclaim(self) -> list[int]:
        """After an unclean stop: kill the process groups a dead daemon left running (they could
        still write), then wipe ``tmp/``. Returns the process groups killed."""
        killed = kill_orphans(self.run)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.create()
        return killed


class DataDirLock:
    def __init__(self, data_dir: Path, owner: str) -> None:
        self.path = data_dir / LOCK_FILE
        self.owner = owner
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FailedPrecondition(
                f"data dir {self.path.parent} is in use by {holder}; talk to that daemon with "
                "GrpcEnvironmentProvider/EnvplaneClient, or use another ENVPLANE_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.owner} (pid {os.getpid()})\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the lock
