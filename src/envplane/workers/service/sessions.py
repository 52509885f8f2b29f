"""Sessions: which worker holds a session's state, for how long, and when that state is gone.

A command that declares a ``session`` parameter gets a dict kept *in the worker* for that
session id. The pool only remembers which worker it is. When that worker dies (or is recycled)
the state dies with it: the session is marked lost and every later call with its id fails with
``SessionLost`` naming why, never silently running on another worker with an empty dict. A
lost session is forgotten (and its id reusable) once it has been idle for the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envplane.errors import InvalidArgument, ResourceExhausted, SessionLost, echo

if TYPE_CHECKING:
    from envplane.workers.service.worker import WorkerProcess

MAX_SESSION_ID = 256


@dataclass
class Session:
    id: str
    worker: WorkerProcess
    created: float
    last_used: float
    calls: int = 0
    lost: str = ""  # why the state is gone


def check_session_id(session: str) -> str:
    if not session or len(session) > MAX_SESSION_ID or not session.isprintable():
        raise InvalidArgument(f"session id {echo(session)} must be 1-{MAX_SESSION_ID} printable characters")
    return session


class Sessions:
    def __init__(self, ttl: float, limit: int) -> None:
        self.ttl = ttl
        self.limit = limit
        self._by_id: dict[str, Session] = {}

    def __len__(self) -> int:
        return sum(1 for s in self._by_id.values() if not s.lost)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def find(self, session_id: str) -> Session | None:
        """The live session, None for a new one; SessionLost for one whose worker died."""
        session = self._by_id.get(session_id)
        if session is not None and session.lost:
            raise SessionLost(
                f"session {session_id!r} lost its state: {session.lost}; start a new session "
                f"(or reuse this id after {self.ttl:g} s idle)"
            )
        return session

    def check_room(self) -> None:
        if len(self) >= self.limit:
            raise ResourceExhausted(
                f"the pool holds its maximum of {self.limit} sessions; end some (they expire after "
                f"{self.ttl:g} s idle) or raise max_sessions"
            )

    def bind(self, session_id: str, worker: WorkerProcess) -> Session:
        now = time.monotonic()
        session = self._by_id.get(session_id)
        if session is None:
            session = self._by_id[session_id] = Session(session_id, worker, now, now)
        session.last_used = now
        session.calls += 1
        return session

    def lose(self, worker: WorkerProcess, reason: str) -> int:
        """Mark every session held by ``worker`` lost; returns how many."""
        count = 0
        for session in self._by_id.values():
            if session.worker is worker and not session.lost:
                session.lost = reason
                session.last_used = time.monotonic()
                count += 1
        return count

    def expire(self) -> list[Session]:
        """Forget sessions idle past the TTL; returns the live ones expired (their workers drop
        the state)."""
        if not self.ttl:
            return []
        cutoff = time.monotonic() - self.ttl
        gone = [s for s in self._by_id.values() if s.last_used < cutoff]
        for session in gone:
            del self._by_id[session.id]
        return [s for s in gone if not s.lost]

    def drop(self, session_id: str) -> Session | None:
        return self._by_id.pop(session_id, None)

    def clear(self) -> None:
        self._by_id.clear()
