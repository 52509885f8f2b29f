"""Per-key asyncio locks that disappear when nobody holds or waits for them.

Operations on one environment are serialized by its key; builds are serialized by build id.
A waiter honours its deadline; ``fail_if_busy`` turns "would wait" into the ``busy_error`` the
owner chose (``EnvBusy`` for environments).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field

from envplane.errors import DeadlineExceeded, FailedPrecondition


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    holder: str = ""


class KeyedLocks:
    def __init__(self, what: str, *, busy_error: type[FailedPrecondition] = FailedPrecondition) -> None:
        self._what = what
        self._busy_error = busy_error
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def busy(self, key: Hashable) -> str:
        """The name of the operation holding ``key``, or ``""``."""
        entry = self._entries.get(key)
        return entry.holder if entry and entry.lock.locked() else ""

    @contextlib.asynccontextmanager
    async def hold(
        self,
        key: Hashable,
        *,
        holder: str = "operation",
        deadline: float | None = None,
        fail_if_busy: bool = False,
    ) -> AsyncIterator[None]:
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            if entry.lock.locked() and fail_if_busy:
                raise self._busy_error(
                    f"{self._what} {key} is busy with {entry.holder or 'another operation'} (fail_if_busy is set)"
                )
            timeout = None if deadline is None else deadline - time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    await entry.lock.acquire()
            except TimeoutError as exc:
                raise DeadlineExceeded(
                    f"deadline passed while waiting for {self._what} {key}, which is "
                    f"busy with {entry.holder or 'another operation'}"
                ) from exc
            entry.holder = holder
            try:
                yield
            finally:
                entry.holder = ""
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._entries.pop(key, None)
