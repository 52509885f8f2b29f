"""Which worker runs a call: a free one at once when nothing queues (the least loaded), the
session's own for a strict session, the grown slot for an OOM retry; otherwise the call waits
in the pool's FIFO (``queue.py``) until a slot frees. A slot frees when its worker says a call
is over (``dispatch``), which is also where a worker past ``max_calls`` is recycled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from envplane.errors import ResourceExhausted, Unavailable
from envplane.workers.service.queue import Waiter
from envplane.workers.service.views import PoolState
from envplane.workers.service.worker import WorkerProcess, WorkerState

if TYPE_CHECKING:
    from envplane.workers.service.pool import Pool, Slot


def can_take(pool: Pool, worker: WorkerProcess | None) -> bool:
    return (
        worker is not None
        and worker.state in (WorkerState.IDLE, WorkerState.BUSY)
        and worker.inflight < pool.config.concurrency
    )


def free_worker(pool: Pool, prefer: WorkerProcess | None = None) -> WorkerProcess | None:
    if can_take(pool, prefer):
        return prefer
    best: WorkerProcess | None = None
    for slot in pool.slots:
        worker = slot.worker
        if can_take(pool, worker) and (best is None or worker.inflight < best.inflight):  # type: ignore[union-attr]
            best = worker
            if not best.inflight:  # type: ignore[union-attr]
                break
    return best


def dispatch(pool: Pool, worker: WorkerProcess) -> None:
    """A slot of ``worker`` freed (or it got ready): hand it to the first waiter it can serve."""
    if worker.state not in (WorkerState.IDLE, WorkerState.BUSY):
        return
    limit = pool.config.max_calls
    if limit and worker.calls_served >= limit:
        pool.recycle(worker, f"served {worker.calls_served} calls (max_calls {limit})")
        return
    pool.waiting.hand_to(worker, lambda candidate: can_take(pool, candidate))


async def acquire(
    pool: Pool, session_id: str | None, deadline: float | None, only_slot: Slot | None = None
) -> WorkerProcess:
    if pool.failure is not None:
        raise pool.failure
    if pool.state in (PoolState.CLOSING, PoolState.CLOSED):
        raise Unavailable(f"pool {pool.name!r} is being deleted")
    only: WorkerProcess | None = None
    prefer: WorkerProcess | None = None
    if session_id is not None:
        session = pool.sessions.find(session_id)
        if session is None:
            pool.sessions.check_room()
        elif pool.config.affinity == "hint":
            prefer = session.worker
        else:
            only = session.worker
            if pool.config.affinity == "strict_fail_fast" and not can_take(pool, only):
                raise ResourceExhausted(
                    f"session {session_id!r}: its worker (pid {only.pid}) is busy (affinity strict_fail_fast)"
                )
    if only_slot is not None:
        worker = only_slot.worker if can_take(pool, only_slot.worker) else None
    elif only is not None:
        worker = only if can_take(pool, only) else None
    else:
        worker = free_worker(pool, prefer) if not pool.waiting else None
    if worker is None:
        worker = await pool.waiting.wait(
            Waiter(asyncio.get_running_loop().create_future(), only, only_slot),
            deadline,
            max_queue=pool.config.max_queue,
            queue_timeout=pool.config.queue_timeout,
            workers=len(pool.slots),
            on_reject=lambda reason: pool.observer.call_rejected(pool, reason),
            on_queued=pool.grow,
        )
    else:
        worker.reserve()
    if session_id is not None:
        pool.sessions.bind(session_id, worker)
    return worker
