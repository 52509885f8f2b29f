"""The pool's FIFO of calls waiting for a worker: bounded, timed, and safe to give up on.

A waiter is a future the pool resolves with a *reserved* worker. Giving up (the queue wait ran
out, the caller was cancelled) races with being handed a worker: :meth:`CallQueue.forget`
gives back a slot handed over just as its caller left, so a slot is never lost. The timer is a
plain ``call_at`` (not ``asyncio.timeout``): under load every call passes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envplane.errors import DeadlineExceeded, ResourceExhausted

if TYPE_CHECKING:
    from envplane.workers.service.worker import WorkerProcess


class QueueTimeout(Exception):
    """A queued call's wait ran out (raised into its waiter by the timer)."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(QueueTimeout())


@dataclass
class Waiter:
    future: asyncio.Future[WorkerProcess]
    only: WorkerProcess | None = None  # a strict session's worker
    only_slot: Any = None  # an OOM retry's grown Slot: only its next worker serves
    queued_at: float = field(default_factory=time.monotonic)

    def accepts(self, worker: WorkerProcess) -> bool:
        return (self.only is None or self.only is worker) and (
            self.only_slot is None or self.only_slot.worker is worker
        )


class CallQueue:
    def __init__(self, pool_name: str) -> None:
        self.pool_name = pool_name
        self.waiters: deque[Waiter] = deque()

    def __len__(self) -> int:
        return len(self.waiters)

    def __bool__(self) -> bool:
        return bool(self.waiters)

    async def wait(
        self,
        waiter: Waiter,
        deadline: float | None,
        *,
        max_queue: int,
        queue_timeout: float,
        workers: int,
        on_reject: Callable[[str], None],
        on_queued: Callable[[], None],
    ) -> WorkerProcess:
        """Queue ``waiter`` and wait for the worker it is handed (within ``queue_timeout`` and
        the call's deadline)."""
        if len(self.waiters) >= max_queue:
            on_reject("queue_full")
            raise ResourceExhausted(
                f"pool {self.pool_name!r}: its queue is full ({max_queue} calls waiting for "
                f"{workers} worker(s)); retry later, or raise max_queue or max_size"
            )
        self.waiters.append(waiter)
        on_queued()
        loop = asyncio.get_running_loop()
        wait = queue_timeout
        by_deadline = deadline is not None and deadline - loop.time() < wait
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
        timer = loop.call_at(loop.time() + max(wait, 0), _expire, waiter.future)
        try:
            return await waiter.future
        except QueueTimeout:
            self.forget(waiter)
            on_reject("queue_timeout")
            why = "the call's timeout" if by_deadline else f"queue_timeout ({queue_timeout:g} s)"
            raise DeadlineExceeded(
                f"pool {self.pool_name!r}: waited {loop.time() - waiter.queued_at:.3g} s in the queue behind busy "
                f"workers and gave up at {why}; {len(self.waiters)} call(s) still queued"
            ) from None
        except BaseException:
            self.forget(waiter)
            raise
        finally:
            timer.cancel()

    def forget(self, waiter: Waiter) -> None:
        with contextlib.suppress(ValueError):
            self.waiters.remove(waiter)
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            future.result().unreserve()  # it was handed a worker just as it gave up
        elif not future.done():
            future.cancel()

    def hand_to(self, worker: WorkerProcess, can_take: Callable[[WorkerProcess], bool]) -> None:
        """Give ``worker``'s free slots to the first waiters it can serve, in order."""
        while self.waiters and can_take(worker):
            chosen = next((w for w in self.waiters if w.accepts(worker)), None)
            if chosen is None:
                return
            self.waiters.remove(chosen)
            if chosen.future.done():
                continue
            worker.reserve()
            chosen.future.set_result(worker)

    def fail_all(self, error: BaseException) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def fail_bound_to(self, worker: WorkerProcess, error: BaseException) -> None:
        """Strict waiters for a worker that died can never be served."""
        for waiter in list(self.waiters):
            if waiter.only is worker and not waiter.future.done():
                self.waiters.remove(waiter)
                waiter.future.set_exception(error)
