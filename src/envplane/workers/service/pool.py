"""A pool of warm workers running one handler: routing, the queue, sessions, recovery.

Each position in the pool is a :class:`Slot` that always wants a live worker: when its worker
exits (a crash, a kill -9, a segfault, the memory watchdog, a recycle) the calls it ran fail
with the cause, its sessions are marked lost, and the slot starts a new worker after a capped,
jittered backoff (at once for a recycle). The pool cannot hang on a dead worker, which is where
``multiprocessing.Pool`` does: the death is seen by the process watcher, not by a result that
never comes. The supervisor task (one per pool) runs the RSS watchdog, the heartbeats that a
long call cannot block (the worker answers them on a thread of its own), the recycling by TTL,
the scale-down of idle extra workers, and session expiry.

Routing: a free slot is taken at once when nothing queues; otherwise callers wait in one FIFO
bounded by ``max_queue`` (full: ``ResourceExhausted``) and by ``queue_timeout`` and their own
deadline (``DeadlineExceeded``). A strict session waits for its own worker without holding up
the callers behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envplane.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PoolFailed,
    Unavailable,
    WorkerCrashed,
    WorkerOutOfMemory,
)
from envplane.workers.service.cgroups import MemoryCgroups
from envplane.workers.service.channel import Pickled
from envplane.workers.service.config import PoolConfig, check_command_name
from envplane.workers.service.launch import WorkerLaunch, worker_environment
from envplane.workers.service.logs import PoolLog
from envplane.workers.service.observer import NO_OBSERVER, PoolObserver
from envplane.workers.service.queue import CallQueue
from envplane.workers.service.routing import acquire, dispatch
from envplane.workers.service.sessions import Sessions, check_session_id
from envplane.workers.service.supervisor import supervise
from envplane.workers.service.views import PoolInfo, PoolState, pool_info
from envplane.workers.service.worker import WorkerProcess, WorkerState

logger = logging.getLogger("envplane.workers")
STABLE_SECONDS = 30.0  # a worker that lived this long resets its slot's backoff


@dataclass
class Slot:
    index: int
    memory_limit: int
    worker: WorkerProcess | None = None
    restarts: int = 0
    crashes_in_a_row: int = 0
    last_exit: str = ""
    next_start: float = 0.0
    attempted: bool = False  # its first worker has started (and got ready or failed)
    removed: bool = False


_STREAMS = ("generator", "async_generator")


class Pool:
    """Warm workers running ``config.handler`` with ``python`` (the env's interpreter)."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        python: str,
        name: str = "pool",
        run_dir: os.PathLike[str] | None = None,
        observer: PoolObserver = NO_OBSERVER,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.python = python
        self.observer = observer
        self.log = PoolLog()
        self.sessions = Sessions(config.session_ttl, config.max_sessions)
        self.state = PoolState.STARTING
        self.failure: PoolFailed | None = None
        self.commands: dict[str, dict[str, Any]] = {}
        self._run_dir = None if run_dir is None else Path(run_dir)
        self._cgroups = (
            MemoryCgroups.detect(str(run_dir) if run_dir is not None else f"pid-{os.getpid()}")
            if config.memory_limit and config.memory_cgroup
            else None
        )
        self._env = worker_environment(
            base_env if base_env is not None else os.environ, python, config.env, config.threads
        )
        self._slots: list[Slot] = []
        self._draining: set[WorkerProcess] = set()
        self.waiting = CallQueue(name)
        self._changed = asyncio.Condition()
        self._supervisor: asyncio.Task[None] | None = None
        self._starting: set[asyncio.Task[None]] = set()
        self._ever_ready = False
        self._closed = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ``min_size`` workers at once (each with its handshake); returns at once."""
        if self._supervisor is not None:
            return
        for _ in range(self.config.min_size):
            self._add_slot()
        self._supervisor = asyncio.create_task(supervise(self), name=f"pool {self.name} supervisor")

    async def wait_ready(self, timeout: float | None = None) -> PoolInfo:
        """Until every slot has a ready worker, or every first start is over with at least one
        ready (the failed ones retry with backoff). ``PoolFailed`` when none could start."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(self._settled)
        except TimeoutError:
            ready = sum(1 for s in self._slots if s.worker and s.worker.ready)
            raise DeadlineExceeded(
                f"pool {self.name!r}: {ready} of {len(self._slots)} workers ready after {timeout:g} s"
            ) from None
        if self.failure is not None:
            raise self.failure
        return self.info()

    def _settled(self) -> bool:
        if self.failure is not None or self.state in (PoolState.CLOSING, PoolState.CLOSED):
            return True
        live = self.live_slots()
        if all(s.worker is not None and s.worker.ready for s in live):
            return True
        return all(s.attempted for s in live) and any(s.worker is not None and s.worker.ready for s in live)

    async def close(self, grace: float | None = None) -> None:
        """Refuse new calls, let running ones finish for ``grace`` seconds, then kill what is
        left. Queued callers get ``Unavailable``. Safe twice."""
        if self.state is PoolState.CLOSED:
            return
        if self.state is PoolState.CLOSING:
            await self._closed.wait()
            return
        self.state = PoolState.CLOSING
        grace = self.config.cancel_grace if grace is None else grace
        self.waiting.fail_all(Unavailable(f"pool {self.name!r} is being deleted"))
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._starting):
            task.cancel()
        workers = [s.worker for s in self._slots if s.worker is not None] + list(self._draining)
        await asyncio.gather(*(w.close(grace) for w in workers), return_exceptions=True)
        self.sessions.clear()
        self.log.close()
        if self._cgroups is not None:
            self._cgroups.close()
        self.state = PoolState.CLOSED
        self._closed.set()
        await self._notify()

    async def __aenter__(self) -> Pool:
        await self.start()
        await self.wait_ready(self.config.startup_timeout + 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- workers ----------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        launch = WorkerLaunch(
            python=self.python,
            handler=self.config.handler,
            init=self.config.init,
            init_args=self.config.init_args,
            concurrency=self.config.concurrency,
            env=self._env,
            cwd=self.config.cwd or None,
            run_dir=self._run_dir,
            memory_limit=slot.memory_limit,
            label=f"worker.{self.name}",
            transport=self.config.transport,
            cgroups=self._cgroups,
        )
        worker = WorkerProcess(
            launch, self.log, slot=slot.index, on_call_done=lambda worker: dispatch(self, worker), on_exit=self._exited
        )
        worker.cancel_grace = self.config.cancel_grace
        slot.worker = worker
        task = asyncio.create_task(self._bring_up(slot, worker), name=f"pool {self.name} worker {slot.index}")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _bring_up(self, slot: Slot, worker: WorkerProcess) -> None:
        started = time.monotonic()
        try:
            await worker.start()
            self.log.add(slot.index, worker.pid, "envplane", f"worker {slot.index} started (pid {worker.pid})")
            ready = await worker.wait_ready(self.config.startup_timeout)
        except WorkerCrashed as exc:
            self._start_failed(slot, exc)
            return
        except OSError as exc:  # the interpreter cannot be run at all
            slot.attempted = True
            if slot.worker is worker:
                slot.worker = None
            self._start_failed(slot, WorkerCrashed(f"cannot start {self.python}: {exc.strerror or exc}"))
            return
        slot.attempted = True
        self.commands = ready.commands
        self._ever_ready = True
        if self.state is PoolState.STARTING:
            self.state = PoolState.READY
        self.observer.worker_ready(self, slot.index, worker.pid, time.monotonic() - started)
        dispatch(self, worker)
        await self._notify()

    def _start_failed(self, slot: Slot, exc: WorkerCrashed) -> None:
        slot.attempted = True
        slot.last_exit = exc.message
        if (
            not self._ever_ready
            and all(s.attempted for s in self._slots)
            and not any(s.worker is not None and s.worker.ready for s in self._slots)
        ):
            self.failure = PoolFailed(
                f"pool {self.name!r}: no worker could start: {exc.message}",
                detail=exc.detail,
            )
            self.state = PoolState.FAILED
            self.observer.pool_failed(self, self.failure.message)
            self.waiting.fail_all(self.failure)
        asyncio.get_running_loop().create_task(self._notify())

    def _exited(self, worker: WorkerProcess) -> None:
        """A worker process ended (whatever the reason): fail nothing twice, restart the slot."""
        description = worker.describe_exit()
        self.log.add(worker.slot, worker.pid, "envplane", f"worker {worker.slot} (pid {worker.pid}) {description}")
        lost = self.sessions.lose(worker, f"its worker (pid {worker.pid}) {description}")
        self._draining.discard(worker)
        slot = next((s for s in self._slots if s.worker is worker), None)
        if slot is None or self.state in (PoolState.CLOSING, PoolState.CLOSED):
            return
        slot.worker = None
        slot.last_exit = description
        if slot.removed:
            self._slots.remove(slot)
            return
        self.observer.worker_exited(self, slot.index, worker.pid, worker.exit_cause or "crash", lost)
        if self.state is PoolState.FAILED:
            return
        if worker.ready_at and time.time() - worker.ready_at > STABLE_SECONDS:
            slot.crashes_in_a_row = 0
        slot.crashes_in_a_row += 1
        delay = min(self.config.restart_backoff * 2 ** (slot.crashes_in_a_row - 1), self.config.max_restart_backoff)
        slot.next_start = time.monotonic() + delay * random.uniform(0.8, 1.2)
        self.waiting.fail_bound_to(worker, worker.crash_error())

    def recycle(self, worker: WorkerProcess, why: str) -> None:
        """Replace ``worker`` now; it finishes its calls, then exits (its sessions are lost)."""
        slot = next((s for s in self._slots if s.worker is worker), None)
        if slot is None or worker.state is WorkerState.DRAINING:
            return
        worker.exit_cause = f"recycled: {why}"
        worker.state = WorkerState.DRAINING
        self._draining.add(worker)
        self.sessions.lose(worker, f"its worker (pid {worker.pid}) was recycled: {why}")
        self.observer.worker_exited(self, slot.index, worker.pid, "recycled", 0)
        worker.stop_gracefully()
        slot.worker = None
        slot.last_exit = worker.exit_cause
        slot.restarts += 1
        if not slot.removed:
            self._spawn(slot)
        else:
            self._slots.remove(slot)

    def grow(self) -> None:
        """Calls queue: add a worker if the pool may grow and none is already starting."""
        live = self.live_slots()
        if len(live) >= self.config.max_size or self.failure is not None:
            return
        if any(s.worker is not None and s.worker.state is WorkerState.STARTING for s in live):
            return
        self._add_slot()

    def _add_slot(self) -> None:
        """A new position (the lowest index free), its worker started at once."""
        used = {s.index for s in self._slots}
        slot = Slot(next(i for i in range(len(used) + 1) if i not in used), self.config.memory_limit)
        self._slots.append(slot)
        self._spawn(slot)

    # ---- calls ---------------------------------------------------------------------------------

    async def _known(self, command: str, deadline: float | None, *, stream: bool) -> None:
        info = self.commands.get(command)
        if info is not None and self.failure is None and (info["kind"] in _STREAMS) is stream:
            return  # the hot path: a known command of the right kind
        check_command_name(command)
        if not self.commands and self.failure is None:
            remaining = None if deadline is None else max(deadline - asyncio.get_running_loop().time(), 0)
            await self.wait_ready(remaining)
        if self.failure is not None:
            raise self.failure
        info = self.commands.get(command)
        if info is None:
            names = ", ".join(sorted(self.commands)) or "none"
            raise NotFound(f"pool {self.name!r} has no command {command!r}; its handler's commands: {names}")
        streams = info["kind"] in _STREAMS
        if streams and not stream:
            raise InvalidArgument(f"{command!r} is a generator: call it with execute_stream")
        if stream and not streams:
            raise InvalidArgument(f"{command!r} returns one value: call it with execute, not execute_stream")

    async def _prologue(
        self, command: str, args: Any, timeout: float | None, session: str | None, use_pickle: bool, *, stream: bool
    ) -> tuple[float | None, Any]:
        """What both kinds of call check first: the timeout, the session id, the command (the
        first call waits for a handshake to know it); the deadline and the arguments to send."""
        deadline = None
        if timeout is not None and timeout != 0:
            if not timeout > 0:
                raise InvalidArgument(f"timeout must be above 0 seconds, got {timeout}")
            deadline = asyncio.get_running_loop().time() + timeout
        if session is not None:
            check_session_id(session)
        await self._known(command, deadline, stream=stream)
        return deadline, Pickled(pickle.dumps(args, protocol=4)) if use_pickle else args

    async def execute(
        self,
        command: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        session: str | None = None,
        use_pickle: bool = False,
        idempotent: bool = False,
    ) -> Any:
        """Run ``command`` with ``args`` (an object: keyword arguments; an array: positional)
        on a worker. Raises ``CommandError`` if the handler raised, ``WorkerCrashed`` /
        ``WorkerOutOfMemory`` if its worker died under it, ``DeadlineExceeded`` past ``timeout``
        (the command is then cancelled)."""
        deadline, args = await self._prologue(command, args, timeout, session, use_pickle, stream=False)
        started = time.monotonic()
        retry_crash = idempotent or command in self.config.idempotent
        only_slot: Slot | None = None
        outcome = "error"
        try:
            while True:
                worker = await acquire(self, session, deadline, only_slot)
                try:
                    if deadline is None:
                        value = await worker.call(command, args, session=session)
                    else:
                        async with asyncio.timeout_at(deadline):
                            value = await worker.call(command, args, session=session)
                    outcome = "ok"
                    return pickle.loads(value.data) if use_pickle and isinstance(value, Pickled) else value
                except TimeoutError:
                    outcome = "timeout"
                    raise DeadlineExceeded(
                        f"{command!r} ran past its timeout of {timeout:g} s and was cancelled"
                    ) from None
                except WorkerOutOfMemory as exc:
                    outcome = "oom"
                    if only_slot is not None:
                        exc.message += " (this was the one retry, with the grown limit)"
                        raise
                    only_slot = self._grown_slot(worker, exc) if session is None else None
                    if only_slot is None:
                        raise
                except WorkerCrashed:
                    outcome = "crashed"
                    if not retry_crash or session is not None:
                        raise
                    retry_crash = False
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.observer.call_finished(self, command, outcome, time.monotonic() - started)

    def _grown_slot(self, worker: WorkerProcess, exc: WorkerOutOfMemory) -> Slot | None:
        """retry_on_oom: restart the worker's slot at once with its limit grown (up to the cap)
        and return it, so the call reruns there; None when retrying is off or the cap is hit."""
        if not self.config.retry_on_oom:
            return None
        slot = next((s for s in self._slots if s.index == worker.slot and not s.removed), None)
        grown = min(int(worker.memory_limit * self.config.oom_growth), self.config.oom_ceiling)
        if slot is None or grown <= worker.memory_limit:
            exc.message += f" (not retried: the limit is at its cap of {self.config.oom_ceiling / 2**20:.1f} MiB)"
            return None
        slot.memory_limit = max(slot.memory_limit, grown)
        if slot.worker is None:
            slot.next_start = 0.0
            slot.restarts += 1
            self._spawn(slot)
        return slot

    async def execute_stream(
        self,
        command: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        session: str | None = None,
        use_pickle: bool = False,
    ) -> AsyncIterator[Any]:
        """The values a generator command yields, as it yields them. Closing the iterator
        early (or ``timeout``) cancels the command in the worker."""
        deadline, args = await self._prologue(command, args, timeout, session, use_pickle, stream=True)
        started = time.monotonic()
        outcome = "error"
        try:
            worker = await acquire(self, session, deadline)
            stream = worker.stream(command, args, session=session)
            try:
                async with contextlib.aclosing(stream):
                    while True:
                        try:
                            async with asyncio.timeout_at(deadline):
                                item = await anext(stream)
                        except StopAsyncIteration:
                            break
                        yield pickle.loads(item.data) if use_pickle and isinstance(item, Pickled) else item
                outcome = "ok"
            except TimeoutError:
                outcome = "timeout"
                raise DeadlineExceeded(
                    f"{command!r} streamed past its timeout of {timeout:g} s and was cancelled"
                ) from None
            except WorkerOutOfMemory:
                outcome = "oom"
                raise
            except WorkerCrashed:
                outcome = "crashed"
                raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        finally:
            self.observer.call_finished(self, command, outcome, time.monotonic() - started)

    async def end_session(self, session_id: str) -> bool:
        """Forget a session and drop its state in its worker; False if there was none."""
        session = self.sessions.drop(check_session_id(session_id))
        if session is None:
            return False
        if session.worker.alive:
            session.worker.drop_session(session_id)
        return True

    # ---- size ------------------------------------------------------------------------------

    async def scale(self, min_size: int, max_size: int = 0) -> PoolInfo:
        """New bounds: missing workers start at once, extra ones finish their calls and stop."""
        config = self.config.replace(min_size=min_size, max_size=max_size)
        self.config = config
        live = self.live_slots()
        for _ in range(config.min_size - len(live)):
            self._add_slot()
        extra = sorted(live, key=lambda s: (s.worker is not None and s.worker.inflight, -s.index))
        for slot in extra[: max(len(live) - config.max_size, 0)]:
            self.remove_slot(slot, f"scaled down to max_size {config.max_size}")
        await self._notify()
        return self.info()

    def remove_slot(self, slot: Slot, why: str) -> None:
        slot.removed = True
        worker = slot.worker
        if worker is None:
            self._slots.remove(slot)
            return
        worker.exit_cause = why
        if worker.state is WorkerState.STARTING:
            worker.kill(why)
            return
        worker.state = WorkerState.DRAINING
        self.sessions.lose(worker, f"its worker (pid {worker.pid}) stopped: {why}")
        worker.stop_gracefully()

    # ---- supervision -------------------------------------------------------------------------

    def recycle_all(self, why: str) -> None:
        """Replace every worker (its replacement starts at once, it drains): a rolling restart."""
        for slot in self.live_slots():
            if slot.worker is not None and slot.worker.state in (WorkerState.IDLE, WorkerState.BUSY):
                self.recycle(slot.worker, why)

    async def fail(self, message: str) -> None:
        """The pool cannot serve any more (its env is gone): FAILED with ``message``, workers stopped."""
        self.failure = PoolFailed(message)
        self.state = PoolState.FAILED
        self.waiting.fail_all(self.failure)
        workers = [s.worker for s in self._slots if s.worker is not None] + list(self._draining)
        await asyncio.gather(*(w.close(self.config.cancel_grace) for w in workers), return_exceptions=True)
        self.observer.pool_failed(self, message)
        await self._notify()

    def live_workers(self) -> list[WorkerProcess]:
        return [s.worker for s in self._slots if s.worker is not None and s.worker.alive] + list(self._draining)

    @property
    def slots(self) -> list[Slot]:
        """Every slot, those being removed included."""
        return self._slots

    def live_slots(self) -> list[Slot]:
        return [s for s in self._slots if not s.removed]

    @property
    def queued(self) -> int:
        return len(self.waiting)

    def restart_due(self, now: float) -> None:
        if self.failure is not None or self.state in (PoolState.CLOSING, PoolState.CLOSED):
            return
        for slot in self._slots:
            if slot.worker is None and not slot.removed and now >= slot.next_start:
                slot.restarts += 1
                self._spawn(slot)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- views -------------------------------------------------------------------------------

    def info(self) -> PoolInfo:
        return pool_info(self, self._slots)

    @property
    def memory_enforcement(self) -> str:
        """How ``memory_limit`` is enforced: by a cgroup of the kernel, or the RSS watchdog."""
        if not self.config.memory_limit:
            return ""
        return f"{self._cgroups.version} + rss watchdog" if self._cgroups else "rss watchdog"

    def worker_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.live_workers():
            counts[worker.state.value] = counts.get(worker.state.value, 0) + 1
        return counts
