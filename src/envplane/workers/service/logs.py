"""Each worker's stdout and stderr, kept as the pool's log: bounded, tailable, followable.

Handlers print and log freely; the channel has descriptors of its own, so their output never
corrupts it. Lines are cut at ``MAX_LINE`` bytes and the log keeps the last ``capacity``
lines of the pool (dead workers' included: a crash's last words are what an error needs).
Followers get every new line through a bounded queue; one that falls behind loses lines and
is told how many, instead of growing the daemon's memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_LINE = 8192
FOLLOWER_QUEUE = 10_000


@dataclass(frozen=True)
class LogLine:
    worker: int  # the worker's slot in the pool
    pid: int
    stream: str  # stdout | stderr | envplane (the pool's own notes: starts, exits)
    text: str
    time: float


class PoolLog:
    def __init__(self, capacity: int = 5000) -> None:
        self.lines: deque[LogLine] = deque(maxlen=capacity)
        self._followers: set[asyncio.Queue[LogLine | None]] = set()
        self.dropped = 0

    def add(self, worker: int, pid: int, stream: str, raw: bytes | str) -> None:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        text = text.rstrip("\n")
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + f"… ({len(text) - MAX_LINE} more characters)"
        line = LogLine(worker, pid, stream, text, time.time())
        self.lines.append(line)
        for queue in self._followers:
            if queue.qsize() < FOLLOWER_QUEUE:
                queue.put_nowait(line)
            else:
                self.dropped += 1

    def tail(self, worker: int | None = None, pid: int | None = None, count: int = 100) -> list[LogLine]:
        lines = [
            line
            for line in self.lines
            if (worker is None or line.worker == worker) and (pid is None or line.pid == pid)
        ]
        return lines[-count:] if count else lines

    def tail_text(self, worker: int, pid: int, count: int = 40) -> str:
        """A dead or failing worker's last output, for an error's detail."""
        return "\n".join(line.text for line in self.tail(worker, pid, count) if line.stream != "envplane")

    async def follow(self, worker: int | None = None, tail: int = 100, follow: bool = True) -> AsyncIterator[LogLine]:
        """The last ``tail`` lines, then (with ``follow``) new ones as they come, until closed."""
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        if follow:
            self._followers.add(queue)
        try:
            for line in self.tail(worker, None, tail):
                yield line
            while follow:
                item = await queue.get()
                if item is None:
                    return
                if worker is None or item.worker == worker:
                    yield item
        finally:
            self._followers.discard(queue)

    def close(self) -> None:
        """End every follower's stream (the pool is gone)."""
        for queue in self._followers:
            queue.put_nowait(None)
