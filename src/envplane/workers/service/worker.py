"""One worker process, seen from the pool: start-up handshake, calls over the channel, death.

The worker runs ``bootstrap.py`` with the env's interpreter in a process group of its own,
recorded under ``run/`` like uv (so a restarted daemon kills what a dead one left). Replies are
parsed in the pipe's ``data_received`` callback and resolve the caller's future directly, so a
call costs one write and one read. A call's slot is held until the *worker* says the call is
over, not until the caller stops waiting: a cancelled call keeps its slot until its command
stopped (or the worker is recycled after the grace), so the next caller never shares a worker
with a command still running, and a late result is dropped, never delivered to anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncGenerator, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane.core.processes import forget_group, record_group
from envplane.errors import InvalidArgument, WorkerCrashed, WorkerOutOfMemory
from envplane.workers.service import bootstrap
from envplane.workers.service.channel import END, Call, Pickled, Ready, Replies, command_error, unframe, value_of
from envplane.workers.service.launch import WorkerLaunch
from envplane.workers.service.logs import MAX_LINE, PoolLog
from envplane.workers.service.memory import peak_rss, rss

if TYPE_CHECKING:
    from envplane.workers.service.grpc_channel import GrpcChannel

LOADER = "import sys;p=sys.argv[1];exec(compile(open(p).read(),p,'exec'),{'__name__':'__envplane_worker__'})"
BOOTSTRAP = Path(bootstrap.__file__)
CREDIT_BATCH = bootstrap.STREAM_WINDOW // 2


class WorkerState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"  # finishing its calls before a recycle or a scale-down
    EXITED = "exited"


class WorkerProcess:
    """A running worker and its calls. The pool decides *which* worker runs a call; this class
    runs it and reports the end of every call (``on_call_done``) and of the worker (``on_exit``)."""

    def __init__(
        self,
        launch: WorkerLaunch,
        log: PoolLog,
        *,
        slot: int,
        on_call_done: Callable[[WorkerProcess], None],
        on_exit: Callable[[WorkerProcess], None],
    ) -> None:
        self.launch = launch
        self.log = log
        self.slot = slot
        self.memory_limit = launch.memory_limit
        self.state = WorkerState.STARTING
        self.pid = 0
        self.ready: Ready | None = None
        self.started_at = time.time()
        self.ready_at = 0.0
        self.calls_served = 0
        self.last_call_end = 0.0  # wall clock, for the idle scale-down
        self.inflight = 0  # calls holding a slot: from reservation to the worker's last frame
        self.calls: dict[int, Call] = {}
        self.exit_code: int | None = None
        self.exit_cause = ""  # set by whoever kills it (out of memory, heartbeat, recycle)
        self.peak_rss = 0
        self.last_pong = time.monotonic()
        self.init_error: dict[str, str] | None = None
        self._on_call_done = on_call_done
        self._on_exit = on_exit
        self._ids = itertools.count(1)
        self._ping = itertools.count(1)
        self._proc: asyncio.subprocess.Process | None = None
        self._calls_out: asyncio.WriteTransport | None = None
        self._control_out: asyncio.WriteTransport | None = None
        self._replies_in: asyncio.ReadTransport | None = None
        self._ready = asyncio.get_running_loop().create_future()
        self._exited = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._marker: Path | None = None
        self._grpc: GrpcChannel | None = None
        self._cgroup: Path | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self.cgroup_oom = False  # the kernel's OOM killer ended it, in its memory cgroup

    # ---- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the process; ``wait_ready`` waits for its handshake."""
        launch = self.launch
        calls_r, calls_w = os.pipe()
        control_r, control_w = os.pipe()
        replies_r, replies_w = os.pipe()
        # stdout/stderr are pipes of our own, not asyncio's: a child the handler started may keep
        # them open after the worker died, and asyncio's wait() would wait for that child too.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child_ends = (calls_r, control_r, replies_w)
        spec = {
            "handler": launch.handler,
            "init": launch.init,
            "init_args": launch.init_args,
            "concurrency": launch.concurrency,
            "transport": launch.transport,
            "parent": os.getpid(),
        }
        try:
            self._proc = await asyncio.create_subprocess_exec(
                launch.python,
                "-c",
                LOADER,
                str(BOOTSTRAP),
                ",".join(map(str, child_ends)),
                json.dumps(spec),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=child_ends,
                start_new_session=True,
                env=dict(launch.env),
                cwd=launch.cwd or None,
            )
        except BaseException:
            for fd in (calls_w, control_w, replies_r, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (*child_ends, out_w, err_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pid = self._proc.pid
        # Watch it before anything else can be interrupted: from here on, its exit is seen.
        self._pumps = [
            asyncio.create_task(self._pump(out_r, "stdout")),
            asyncio.create_task(self._pump(err_r, "stderr")),
        ]
        self._tasks = [*self._pumps, asyncio.create_task(self._watch())]
        calls_file = os.fdopen(calls_w, "wb", buffering=0)
        control_file = os.fdopen(control_w, "wb", buffering=0)
        replies_file = os.fdopen(replies_r, "rb", buffering=0)
        if launch.run_dir is not None:
            self._marker = record_group(launch.run_dir, launch.label, self.pid)
        if launch.cgroups is not None and launch.memory_limit:
            try:
                self._cgroup = launch.cgroups.create(f"{launch.label}-{self.slot}", launch.memory_limit)
                launch.cgroups.attach(self._cgroup, self.pid)
            except OSError as exc:  # the watchdog still enforces the limit
                self.log.add(self.slot, self.pid, "envplane", f"no memory cgroup for this worker: {exc}")
                if self._cgroup is not None:
                    launch.cgroups.remove(self._cgroup)
                    self._cgroup = None
        loop = asyncio.get_running_loop()
        try:
            self._calls_out, _ = await loop.connect_write_pipe(asyncio.Protocol, calls_file)
            self._control_out, _ = await loop.connect_write_pipe(asyncio.Protocol, control_file)
            self._replies_in, _ = await loop.connect_read_pipe(lambda: Replies(self.on_message), replies_file)
        except BaseException:  # cancelled half-way (the pool closes while it starts)
            self.kill("stopped while starting")
            for transport in (self._calls_out, self._control_out, self._replies_in):
                if transport is not None:
                    transport.close()
            for file in (calls_file, control_file, replies_file):
                file.close()
            raise

    async def wait_ready(self, timeout: float) -> Ready:
        """The handshake, or the reason there is none (raised as WorkerCrashed)."""
        waiter = asyncio.ensure_future(asyncio.shield(self._ready))
        exited = asyncio.ensure_future(self._exited.wait())
        try:
            done, _ = await asyncio.wait({waiter, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if waiter in done:
            return waiter.result()  # type: ignore[no-any-return]
        waiter.cancel()
        if not self._exited.is_set():
            self.kill(f"not ready within {timeout:g} s")
            await self.wait_exited(5)
        raise self.start_failure()

    def start_failure(self) -> WorkerCrashed:
        if self.init_error is not None:
            error = self.init_error
            headline = f"the handler {self.launch.handler!r} failed to load: {error['type']}: {error['message']}"
        else:
            headline = f"the worker {self.describe_exit()} before it was ready"
        return WorkerCrashed(headline, cause=self.describe_exit(), detail=self.log.tail_text(self.slot, self.pid))

    def kill(self, cause: str) -> None:
        """SIGKILL the worker's process group; ``cause`` names why in every report."""
        if not self.exit_cause:
            self.exit_cause = cause
        if self.exit_code is None and self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def stop_gracefully(self) -> None:
        """Ask the worker to exit once its calls are done (a recycle, a scale-down)."""
        if self._calls_out is not None and not self._calls_out.is_closing():
            self._calls_out.write(bootstrap.encode({"op": "stop"}))

    async def wait_exited(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._exited.wait()
        return self._exited.is_set()

    async def close(self, grace: float) -> None:
        """Let running calls finish for ``grace`` seconds, then kill; reaped when this returns."""
        if self._proc is None:  # never spawned
            return
        if self.exit_code is None:
            self.stop_gracefully()
            if not await self.wait_exited(grace):
                self.kill("stopped: its calls did not finish within the grace period")
        await self.wait_exited(10)
        for task in self._tasks:
            await asyncio.wait([task], timeout=1)

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    def describe_exit(self) -> str:
        code = self.exit_code
        if code is None:
            return "is running"
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"{how} ({self.exit_cause})" if self.exit_cause else how

    async def _watch(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        self.exit_code = code
        self.state = WorkerState.EXITED
        # The group may hold the handler's children: they go with the worker.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        await self._release_cgroup()
        if self._marker is not None:
            forget_group(self._marker)
        # Its last words, then stop reading: an escaped child may hold the pipes for ever.
        await asyncio.wait(self._pumps, timeout=0.5)
        for pump in self._pumps:
            pump.cancel()
        for transport in (self._calls_out, self._control_out):
            if transport is not None:
                transport.close()
        if self._grpc is not None:
            await self._grpc.close()
        self._fail_calls()
        self._exited.set()
        if not self._ready.done():
            self._ready.set_exception(self.start_failure())
            self._ready.exception()  # retrieved: wait_ready reads it from start_failure()
        self._on_exit(self)

    async def _release_cgroup(self) -> None:
        """Read the kernel's verdict (an OOM kill in the group, its peak), then remove it."""
        cgroups, group = self.launch.cgroups, self._cgroup
        if cgroups is None or group is None:
            return
        if cgroups.oom_killed(group):
            # The group's own figure: what the limit measures (RSS also counts shared pages
            # the group was never charged for).
            self.exit_cause = "out of memory"
            self.cgroup_oom = True
            self.peak_rss = cgroups.peak(group) or self.peak_rss
        cgroups.kill_all(group)  # what left the process group (setsid) is still in the cgroup
        for _ in range(50):  # the killed processes leave the group as they are reaped
            cgroups.remove(group)
            if not group.exists():
                break
            await asyncio.sleep(0.02)
        self._cgroup = None

    async def _pump(self, fd: int, name: str) -> None:
        """Copy the worker's output to its log, line by line, always draining the pipe: a line
        without an end (a progress bar, a huge dump) is cut at ``MAX_LINE``, never waited for,
        so a handler can never block on a full stdout."""
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=1 << 16)
        file = os.fdopen(fd, "rb", buffering=0)
        try:
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), file)
        except BaseException:
            file.close()
            raise
        try:
            await self._copy(stream, name)
        finally:
            transport.close()

    async def _copy(self, stream: asyncio.StreamReader, name: str) -> None:
        pending = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await stream.read(1 << 16):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.log.add(self.slot, self.pid, name, line)
                while len(pending) > MAX_LINE:
                    self.log.add(self.slot, self.pid, name, pending[:MAX_LINE])
                    pending = pending[MAX_LINE:]
        if pending:
            self.log.add(self.slot, self.pid, name, pending)

    # ---- the channel ----------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "pong":
            self.last_pong = time.monotonic()
            return
        call = self.calls.get(message.get("id", 0))
        if op == "chunk":
            if call is not None and call.chunks is not None and not call.abandoned:
                call.chunks.put_nowait(value_of(message))
            return
        if op in ("result", "error", "end"):
            if call is None:
                return
            if op == "error":
                outcome: Any = command_error(message["error"], call.command)
            elif op == "result":
                outcome = value_of(message)
            else:
                outcome = END
            self._end_call(call, outcome, served=True)
            return
        if op == "ready":
            self.ready = Ready(message["pid"], message["python"], message["executable"], message["commands"])
            if message.get("port"):
                from envplane.workers.service.grpc_channel import GrpcChannel  # grpcio on first use

                self._grpc = GrpcChannel(int(message["port"]))
            self.ready_at = time.time()
            self.last_pong = time.monotonic()
            self.state = WorkerState.IDLE
            if not self._ready.done():
                self._ready.set_result(self.ready)
        elif op == "init_failed":
            self.init_error = message["error"]

    @staticmethod
    def _deliver(call: Call, outcome: Any) -> None:
        if call.future is not None:
            if not call.future.done():
                if isinstance(outcome, BaseException):
                    call.future.set_exception(outcome)
                else:
                    call.future.set_result(outcome)
        elif call.chunks is not None:
            call.chunks.put_nowait(outcome)

    def _fail_calls(self) -> None:
        if not self.calls:
            return
        error = self.crash_error()
        for call in self.calls.values():
            if not call.abandoned:
                self._deliver(call, error)
        self.inflight -= len(self.calls)
        self.calls.clear()

    def crash_error(self) -> WorkerCrashed:
        detail = self.log.tail_text(self.slot, self.pid)
        if self.exit_cause == "out of memory":
            peak = max(self.peak_rss, 0)
            return WorkerOutOfMemory(
                f"the worker (pid {self.pid}) passed its memory limit of {_mib(self.memory_limit)} during the call "
                f"({'peak charged to its memory cgroup' if self.cgroup_oom else 'peak RSS'} {_mib(peak)}) "
                "and was killed",
                peak_rss=peak,
                limit=self.memory_limit,
                detail=detail,
            )
        return WorkerCrashed(
            f"the worker (pid {self.pid}) running the call {self.describe_exit()}",
            cause=self.describe_exit(),
            detail=detail,
        )

    def _refresh_state(self) -> None:
        if self.state in (WorkerState.IDLE, WorkerState.BUSY):
            self.state = WorkerState.BUSY if self.inflight else WorkerState.IDLE

    def reserve(self) -> None:
        """Hold one of the worker's slots for a call the pool routed here."""
        self.inflight += 1
        self._refresh_state()

    def unreserve(self) -> None:
        """Give back a slot whose call was never sent."""
        self.inflight -= 1
        self._refresh_state()
        self._on_call_done(self)

    def _send(self, call: Call, command: str, args: Any) -> None:
        self.calls[call.id] = call
        message: dict[str, Any] = {"op": "call", "id": call.id, "cmd": command, "session": call.session}
        if isinstance(args, Pickled):
            message["args_pickle"] = args.data
        else:
            message["args"] = args
        try:
            frame = bootstrap.encode(message)
        except (TypeError, ValueError) as exc:
            del self.calls[call.id]
            self.unreserve()
            raise InvalidArgument(f"the arguments of {command!r} cannot be sent to the worker: {exc}") from None
        if self._calls_out is None or self._calls_out.is_closing() or not self.alive:
            del self.calls[call.id]
            self.unreserve()
            raise self.crash_error()
        if self._grpc is not None:
            task = asyncio.get_running_loop().create_task(self._exchange(self._grpc, call, frame))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)
        else:
            self._calls_out.write(frame)

    async def _exchange(self, channel: GrpcChannel, call: Call, frame: bytes) -> None:
        """The grpc transport: one RPC per call; its response frames are handled as if they had
        come over the pipe. Cancelling goes over the control pipe as for the pipe transport, so
        the RPC runs to the command's last frame (the slot is freed by it, as always)."""
        try:
            if call.future is not None:
                self.on_message(unframe(await channel.call(frame)))
            else:
                async for reply in channel.stream(frame):
                    self.on_message(unframe(reply))
        except Exception as exc:
            # A dying worker breaks its RPCs first: let the exit report the real cause.
            if await self.wait_exited(1.0) or call.id not in self.calls:
                return
            failure = WorkerCrashed(f"the gRPC call to the worker (pid {self.pid}) failed: {exc}")
            self._end_call(call, failure, served=False)

    def _end_call(self, call: Call, outcome: Any, *, served: bool) -> None:
        """The call is over in the worker: free its slot, hand its outcome to a caller who is
        still there (an abandoned call's outcome is dropped), let the pool route the slot."""
        del self.calls[call.id]
        self.inflight -= 1
        if served:
            self.calls_served += 1
            self.last_call_end = time.time()
        if not call.abandoned:
            self._deliver(call, outcome)
        self._refresh_state()
        self._on_call_done(self)

    async def call(self, command: str, args: Any, *, session: str | None) -> Any:
        """Run one command (a slot is already reserved); cancel the caller to cancel it."""
        call = Call(next(self._ids), command, session, time.monotonic())
        call.future = asyncio.get_running_loop().create_future()
        self._send(call, command, args)
        try:
            return await call.future
        except asyncio.CancelledError:
            self.abandon(call)
            raise

    async def stream(self, command: str, args: Any, *, session: str | None) -> AsyncGenerator[Any, None]:
        """The chunks of a generator command as the worker yields them."""
        call = Call(next(self._ids), command, session, time.monotonic())
        call.chunks = asyncio.Queue()
        self._send(call, command, args)
        finished = False
        try:
            while True:
                item = await call.chunks.get()
                if item is END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                call.consumed += 1
                if call.consumed % CREDIT_BATCH == 0:
                    self._control({"op": "credit", "id": call.id, "n": CREDIT_BATCH})
                yield item
        finally:
            if not finished:
                self.abandon(call)

    def abandon(self, call: Call) -> None:
        """The caller left (cancelled, timed out, closed the stream): stop the command, drop
        whatever it still sends, and recycle the worker if it has not stopped after the grace."""
        if call.id not in self.calls or call.abandoned:
            return
        call.abandoned = True
        self._control({"op": "cancel", "id": call.id})
        grace = self.cancel_grace
        asyncio.get_running_loop().call_later(grace, self._check_stopped, call.id, grace)

    cancel_grace = 2.0

    def _check_stopped(self, call_id: int, grace: float) -> None:
        if call_id in self.calls and self.alive:
            self.kill(f"recycled: a cancelled call did not stop within {grace:g} s")

    def _control(self, message: dict[str, Any]) -> None:
        if self._control_out is not None and not self._control_out.is_closing():
            self._control_out.write(bootstrap.encode(message))

    def ping(self) -> None:
        self._control({"op": "ping", "n": next(self._ping)})

    def drop_session(self, session: str) -> None:
        if self._calls_out is not None and not self._calls_out.is_closing():
            self._calls_out.write(bootstrap.encode({"op": "drop_session", "session": session}))

    # ---- what the pool reads ----------------------------------------------------------------

    def sample_memory(self) -> int:
        """Current RSS (bytes), remembering the peak."""
        if not self.alive or not self.pid:
            return 0
        current = rss(self.pid)
        self.peak_rss = max(self.peak_rss, current, peak_rss(self.pid))
        return current

    @property
    def in_cgroup(self) -> bool:
        return self._cgroup is not None

    def current_call(self) -> Call | None:
        live = [c for c in self.calls.values() if not c.abandoned]
        return min(live, key=lambda c: c.started) if live else None


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
