"""What a pool reports as it runs, for whoever hosts it: the daemon turns these into metrics,
audit records and events; the in-process API ignores them (:data:`NO_OBSERVER`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from envplane.workers.service.pool import Pool


class PoolObserver(Protocol):
    def call_finished(self, pool: Pool, command: str, outcome: str, seconds: float) -> None:
        """``outcome``: ok | error | crashed | oom | timeout | cancelled."""

    def call_rejected(self, pool: Pool, reason: str) -> None:
        """``reason``: queue_full | queue_timeout."""

    def worker_ready(self, pool: Pool, slot: int, pid: int, seconds: float) -> None: ...

    def worker_exited(self, pool: Pool, slot: int, pid: int, cause: str, sessions_lost: int) -> None: ...

    def pool_failed(self, pool: Pool, message: str) -> None: ...


class _Silent:
    def call_finished(self, pool: Pool, command: str, outcome: str, seconds: float) -> None:
        pass

    def call_rejected(self, pool: Pool, reason: str) -> None:
        pass

    def worker_ready(self, pool: Pool, slot: int, pid: int, seconds: float) -> None:
        pass

    def worker_exited(self, pool: Pool, slot: int, pid: int, cause: str, sessions_lost: int) -> None:
        pass

    def pool_failed(self, pool: Pool, message: str) -> None:
        pass


NO_OBSERVER: PoolObserver = _Silent()
