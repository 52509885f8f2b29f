"""Running the uv binary: one place that builds command lines, bounds concurrency and kills.

Every uv invocation goes through :class:`UvRunner` so that (a) a global semaphore bounds how
many uv processes run at once, (b) package sources come from settings as explicit flags
(uv has no environment variable for ``--no-index``), (c) interpreter downloads are off, and
(d) a cancelled request kills uv's whole process group instead of leaving it running, and
(e) each running group is recorded under ``<data_dir>/run/`` so that, after a ``kill -9`` of the
daemon, the next start can kill what the dead daemon left running (``core/processes.py`` does
(d)/(e)), and (f) each uv process gets a temporary folder of its own under ``<data_dir>/tmp/``.

Why (f): ``uv add``/``uv remove --no-sync`` take an exclusive lock on the *base interpreter*
(a file named after it in ``$TMPDIR``) for the whole resolution, although they never write to
it. With one shared ``$TMPDIR``, creates of different envs on one interpreter resolved one at a
time (measured: three 1.5 s sdist builds took 1.5 s each, back to back). Each env's files are
separate and envplane serializes work on one env itself, so that lock protects nothing here.
A private folder also keeps uv's temporary build trees inside the data dir, which start-up
recovery wipes after a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from envplane.config import Settings
from envplane.core.datadir import DataDir
from envplane.core.processes import LineCallback as LineCallback
from envplane.core.processes import ProcessResult, run_group
from envplane.errors import DeadlineExceeded

# What a uv run gives back: the command's args (without the binary), exit code, output.
UvResult = ProcessResult


def find_uv_binary(configured: str | None) -> str:
    """The configured binary, else the one shipped by the ``uv`` PyPI package, else PATH."""
    if configured:
        return configured
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):  # pragma: no cover - depends on the install
        return "uv"


class UvRunner:
    """Runs uv subcommands for the environment service."""

    def __init__(self, settings: Settings, data_dir: DataDir) -> None:
        self.binary = find_uv_binary(settings.uv_bin)
        self._settings = settings
        self.data_dir = data_dir
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
            private_tmp = self.data_dir.staging_dir("uv")
            try:
                result = await run_group(
                    [self.binary, *args],
                    label="uv",
                    run_dir=self.data_dir.run,
                    timeout=timeout,
                    cwd=cwd,
                    env={**self._environment(env), "TMPDIR": str(private_tmp)},
                    on_line=on_line,
                )
            finally:
                self._running -= 1
                shutil.rmtree(private_tmp, ignore_errors=True)
        if result.timed_out:
            raise DeadlineExceeded(f"uv {args[0]} did not finish within {timeout:.0f} s and was stopped")
        return dataclasses.replace(result, args=tuple(args))
