"""A pool's supervisor: the one task that watches its workers between calls.

Every tick (100 ms when a memory limit or ``max_rss`` is set, else 250 ms) it runs the RSS
watchdog; every ``heartbeat_interval`` it pings each ready worker over the control channel (a
worker answers on a thread of its own, so a long call does not block it) and kills one silent
past ``heartbeat_timeout``; every second it expires idle sessions, recycles workers past their
``ttl`` and stops idle extra workers above ``min_size``; and it starts the replacements whose
backoff is over. A failing check is logged and the next tick runs: the supervisor outlives any
one bad check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from envplane.workers.service.worker import WorkerState

if TYPE_CHECKING:
    from envplane.workers.service.pool import Pool

logger = logging.getLogger("envplane.workers")


async def supervise(pool: Pool) -> None:
    config = pool.config
    tick = 0.1 if (config.memory_limit or config.max_rss) else 0.25
    last_beat = last_slow = time.monotonic()
    while True:
        await asyncio.sleep(tick)
        now = time.monotonic()
        try:
            watch_memory(pool)
            if now - last_beat >= pool.config.heartbeat_interval:
                last_beat = now
                heartbeat(pool, now)
            if now - last_slow >= 1.0:
                last_slow = now
                slow_checks(pool)
            pool.restart_due(now)
        except Exception:
            logger.exception("pool %s: supervisor check failed", pool.name)


def watch_memory(pool: Pool) -> None:
    config = pool.config
    if not (config.memory_limit or config.max_rss):
        return
    for worker in pool.live_workers():
        current = worker.sample_memory()
        if worker.memory_limit and current > worker.memory_limit and not worker.in_cgroup:
            # (In a cgroup the kernel enforces the limit on what it charged the group; RSS
            # also counts shared pages it never charged, and would kill too early.)
            worker.peak_rss = max(worker.peak_rss, current)
            worker.kill("out of memory")
        elif config.max_rss and current > config.max_rss and worker.state is WorkerState.IDLE:
            pool.recycle(worker, f"RSS {current} bytes above max_rss {config.max_rss}")


def heartbeat(pool: Pool, now: float) -> None:
    timeout = pool.config.heartbeat_timeout
    for worker in pool.live_workers():
        if worker.ready is None:
            continue
        silent = now - worker.last_pong
        if silent > timeout:
            worker.kill(f"stopped answering heartbeats for {silent:.1f} s")
        else:
            worker.ping()


def slow_checks(pool: Pool) -> None:
    config = pool.config
    for session in pool.sessions.expire():
        if session.worker.alive:
            session.worker.drop_session(session.id)
    now = time.time()
    live = pool.live_slots()
    for slot in live:
        worker = slot.worker
        if worker is not None and worker.ready is not None and config.ttl and now - worker.ready_at > config.ttl:
            pool.recycle(worker, f"lived past its ttl of {config.ttl:g} s")
    if pool.queued:
        return
    idle = [
        s
        for s in live
        if s.worker is not None
        and s.worker.state is WorkerState.IDLE
        and now - max(s.worker.ready_at, s.worker.last_call_end) > config.idle_timeout
    ]
    for slot in idle[: max(len(live) - config.min_size, 0)]:
        pool.remove_slot(slot, f"idle for {config.idle_timeout:g} s above min_size {config.min_size}")
