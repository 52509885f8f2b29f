"""Child processes the daemon runs (uv, users' code): each in a process group of its own.

One place for what every such process needs: (a) a timeout after which the whole group is
killed (children included), (b) a kill when the request that started it is cancelled,
(c) bounded capture of stdout/stderr (a process printing forever cannot exhaust memory),
and (d) a marker file ``<run_dir>/<label>-<pgid>`` while it runs, so that after a ``kill -9``
of the daemon the next start can kill what the dead daemon left behind (``kill_orphans``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LineCallback = Callable[[str], Awaitable[None]]
MAX_CAPTURE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ProcessResult:
    args: tuple[str, ...]
    exit_code: int  # -9 when killed by the timeout
    stdout: str  # the last MAX_CAPTURE_BYTES or so
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


async def run_group(
    argv: Sequence[str],
    *,
    label: str,
    run_dir: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_line: LineCallback | None = None,
    capture_bytes: int = MAX_CAPTURE_BYTES,
) -> ProcessResult:
    """Run ``argv`` in a new session; stream stderr lines to ``on_line``; never raise on exit
    codes. Past ``timeout`` seconds the group is killed and ``timed_out`` is set (the output
    read until then is kept)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    marker = record_group(run_dir, label, proc.pid)
    timed_out = False
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out_task = asyncio.ensure_future(_read_capped(proc.stdout, None, capture_bytes))
        err_task = asyncio.ensure_future(_read_capped(proc.stderr, on_line, capture_bytes))
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
        # The pipes close when the group is gone; a process that escaped the group (setsid)
        # could hold them open, so do not wait for them for ever.
        done, _ = await asyncio.wait({out_task, err_task}, timeout=5)
        stdout = out_task.result() if out_task in done else b""
        stderr = err_task.result() if err_task in done else b""
    finally:
        # Kill and forget the marker first: these cannot be interrupted. Reaping comes last,
        # since a second cancellation can interrupt the wait (the reaper then finishes alone).
        _kill_group(proc)
        marker.unlink(missing_ok=True)
        for task in (out_task, err_task):
            task.cancel()
        await reap(proc)
    assert proc.returncode is not None
    return ProcessResult(
        tuple(argv),
        proc.returncode,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        time.monotonic() - started,
        timed_out,
    )


DAEMON_ONLY_VARIABLES = ("UV_", "VIRTUAL_ENV", "PYTHON")  # prefixes the daemon's own interpreter and uv use


def venv_environment(
    base: Mapping[str, str], venv: Path | None, bin_dir: Path, *, drop: tuple[str, ...] = ()
) -> dict[str, str]:
    """Variables for a child that runs an env's interpreter: ``base`` without the daemon's own
    Python and uv settings (nor the ``drop`` prefixes), the env's ``bin_dir`` first on PATH,
    and ``VIRTUAL_ENV`` naming the env's venv when there is one."""
    variables = {k: v for k, v in base.items() if not k.startswith(DAEMON_ONLY_VARIABLES + drop)}
    variables["PATH"] = f"{bin_dir}{os.pathsep}{base.get('PATH', '')}"
    if venv is not None:
        variables["VIRTUAL_ENV"] = str(venv)
    return variables


def record_group(run_dir: Path, label: str, pgid: int) -> Path:
    """Write the marker of a process group in flight: its id and its leader's start time, so a
    later start never kills a group whose id the kernel has since given to someone else."""
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / f"{label}-{pgid}"
    marker.write_text(f"{pgid} {start_time(pgid) or ''}\n")
    return marker


def forget_group(marker: Path) -> None:
    marker.unlink(missing_ok=True)


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def kill_orphans(run_dir: Path) -> list[int]:
    """Kill the process groups a previous daemon recorded and did not reap (only where the
    group's leader is still the process recorded, when the marker says when it started)."""
    killed: list[int] = []
    if not run_dir.is_dir():
        return killed
    for marker in run_dir.glob("*-*"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
            pgid = int(marker.name.rpartition("-")[2])
            recorded = marker.read_text().split()
            leader_started = start_time(pgid)
            if len(recorded) > 1 and leader_started is not None and recorded[1] != leader_started:
                raise ProcessLookupError  # the id now belongs to another process
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
        marker.unlink(missing_ok=True)
    return killed


async def _read_capped(stream: asyncio.StreamReader, on_line: LineCallback | None, cap: int) -> bytes:
    """Read to EOF keeping about the last ``cap`` bytes (errors are usually at the end)."""
    chunks: list[bytes] = []
    size = 0
    while line := await stream.readline():
        size += len(line)
        chunks.append(line)
        while size > cap and len(chunks) > 1:
            size -= len(chunks.pop(0))
        if on_line is not None:
            text = line.decode(errors="replace").rstrip()
            if text:
                await on_line(text)
    data = b"".join(chunks)
    return data[-cap:] if len(data) > cap else data


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process and anything it spawned (its session's group), unless it is reaped."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


_reapers: set[asyncio.Future[int]] = set()


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for the process to be collected. If the caller is cancelled meanwhile, the wait goes
    on in the background (referenced here until done): an unreaped child would stay a zombie,
    and its transport would be garbage-collected as "still running"."""
    if proc.returncode is not None:
        return
    waiter = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.shield(waiter)
    except asyncio.CancelledError:
        _reapers.add(waiter)
        waiter.add_done_callback(_reapers.discard)
        raise
