"""One envplane process per data dir.

Two processes serving one data dir would each believe they own it: the second one's start-up
recovery would kill the first one's uv processes and rewrite its env folders. The daemon and
``LocalEnvironmentProvider`` therefore hold an exclusive ``flock`` on ``<data_dir>/envplane.lock``
while they run; the kernel drops it when the process dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from envplane.errors import FailedPrecondition

LOCK_FILE = "envplane.lock"


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
