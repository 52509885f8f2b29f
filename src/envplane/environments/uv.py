"""Running the uv binary: one place that builds command lines, bounds concurrency and kills.

Every uv invocation goes through :class:`UvRunner` so that (a) a global semaphore bounds how
many uv processes run at once, (b) package sources come from settings as explicit flags
(uv has no environment variable for ``--no-index``), (c) interpreter downloads are off, and
(d) a cancelled request kills uv's whole process group instead of leaving it running, and
(e) each running group is recorded under ``<data_dir>/run/`` so that, after a ``kill -9`` of the
daemon, the next start can kill what the dead daemon left running (``kill_orphans``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from envplane.config import Settings
from envplane.errors import DeadlineExceeded

LineCallback = Callable[[str], Awaitable[None]]
MAX_CAPTURE_BYTES = 256 * 1024


def find_uv_binary(configured: str | None) -> str:
    """The configured binary, else the one shipped by the ``uv`` PyPI package, else PATH."""
    if configured:
        return configured
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):  # pragma: no cover - depends on the install
        return "uv"


@dataclass(frozen=True)
class UvResult:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _clip(data: bytes) -> str:
    if len(data) > MAX_CAPTURE_BYTES:
        data = data[-MAX_CAPTURE_BYTES:]
    return data.decode(errors="replace")


class UvRunner:
    """Runs uv subcommands for the environment service."""

    def __init__(self, settings: Settings) -> None:
        self.binary = find_uv_binary(settings.uv_bin)
        self._settings = settings
        self.run_dir = settings.data_dir / "run"
        self._slots = asyncio.Semaphore(settings.max_concurrent_uv)
        self._running = 0
        self.started_total = 0

    @property
    def running(self) -> int:
        return self._running

    def index_flags(self) -> list[str]:
        """Package-source flags for resolving commands (add, lock, sync, remove)."""
        s = self._settings
        flags: list[str] = []
        if s.no_index:
            flags.append("--no-index")
        if s.index_url:
            flags += ["--default-index", s.index_url]
        for url in s.extra_index_urls:
            flags += ["--index", url]
        for link in s.find_links:
            flags += ["--find-links", link]
        return flags

    def index_fingerprint(self) -> str:
        """Part of the resolution cache key: a lock made against other sources is not reused."""
        s = self._settings
        return repr((s.no_index, s.index_url, tuple(s.extra_index_urls), tuple(s.find_links)))

    def _environment(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
        env.update(
            UV_PYTHON_DOWNLOADS="never",
            UV_NO_CONFIG="1",
            UV_NO_PROGRESS="1",
            NO_COLOR="1",
        )
        if self._settings.uv_cache_dir:
            env["UV_CACHE_DIR"] = str(self._settings.uv_cache_dir)
        if extra:
            env.update(extra)
        return env

    async def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        on_line: LineCallback | None = None,
        deadline: float | None = None,
    ) -> UvResult:
        """Run ``uv <args>``; stream stderr lines to ``on_line``; never raise on exit codes.

        ``deadline`` is a ``time.monotonic()`` instant; past it the process group is killed
        and :class:`DeadlineExceeded` is raised.
        """
        timeout = self._settings.uv_timeout_seconds
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise DeadlineExceeded("the request deadline passed before uv could start")
        async with self._slots:
            self._running += 1
            self.started_total += 1
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                cwd=cwd,
                env=self._environment(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            marker = self._record_group(proc.pid)
            try:
                assert proc.stdout is not None and proc.stderr is not None
                out_task = asyncio.ensure_future(proc.stdout.read())
                err_task = asyncio.ensure_future(self._read_lines(proc.stderr, on_line))
                try:
                    async with asyncio.timeout(timeout):
                        stdout, stderr = await asyncio.gather(out_task, err_task)
                        await proc.wait()
                except TimeoutError as exc:
                    raise DeadlineExceeded(
                        f"uv {args[0]} did not finish within {timeout:.0f} s and was stopped"
                    ) from exc
            finally:
                self._running -= 1
                if proc.returncode is None:
                    await _kill_group(proc)
                marker.unlink(missing_ok=True)
        assert proc.returncode is not None
        return UvResult(tuple(args), proc.returncode, _clip(stdout), _clip(stderr), time.monotonic() - started)

    def _record_group(self, pgid: int) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        marker = self.run_dir / f"uv-{pgid}"
        marker.write_text(f"{pgid}\n")
        return marker

    def kill_orphans(self) -> list[int]:
        """Kill the uv process groups a previous daemon recorded and did not reap."""
        killed: list[int] = []
        if not self.run_dir.is_dir():
            return killed
        for marker in self.run_dir.glob("uv-*"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                pgid = int(marker.name.removeprefix("uv-"))
                os.killpg(pgid, signal.SIGKILL)
                killed.append(pgid)
            marker.unlink(missing_ok=True)
        return killed

    @staticmethod
    async def _read_lines(stream: asyncio.StreamReader, on_line: LineCallback | None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while line := await stream.readline():
            size += len(line)
            chunks.append(line)
            while size > MAX_CAPTURE_BYTES * 2 and len(chunks) > 1:
                size -= len(chunks.pop(0))
            if on_line is not None:
                text = line.decode(errors="replace").rstrip()
                if text:
                    await on_line(text)
        return b"".join(chunks)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL uv and anything it spawned, then reap it. Shielded so cancellation cannot skip it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())
