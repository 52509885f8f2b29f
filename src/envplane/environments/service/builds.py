"""Immutable venv builds, content-addressed by (uv.lock, interpreter).

Identical locks on the same interpreter share one build; a changed lock gets a new build that
envs switch to atomically (their ``.venv`` link is re-pointed). A build is complete only once
its marker file exists; anything without the marker is a leftover of an interrupted build and
is removed. Builds no environment references are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from envplane.core.files import remove_tree
from envplane.core.locks import KeyedLocks
from envplane.environments.service.layout import COMPLETE_MARKER, Layout
from envplane.environments.service.project import without_flag_hints
from envplane.environments.service.uv import LineCallback, UvResult, UvRunner
from envplane.errors import InternalError


def build_id_for(lock_text: str, interpreter: str) -> str:
    digest = hashlib.sha256()
    digest.update(interpreter.encode())
    digest.update(b"\0")
    digest.update(lock_text.encode())
    return digest.hexdigest()[:32]


def read_python_version(build: Path) -> str:
    """The interpreter version recorded by uv in ``pyvenv.cfg`` (``version_info``)."""
    try:
        for line in (build / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version"):
                return value.strip()
    except OSError:
        pass
    return ""


class BuildCache:
    """Builds on disk. ``locks`` are exclusive (making, repairing, collecting one build);
    :meth:`shared` lets any number of creates point envs at a complete build at once, while
    keeping a collector away from it."""

    def __init__(self, layout: Layout, uv: UvRunner) -> None:
        self._layout = layout
        self._uv = uv
        self.locks = KeyedLocks("build")
        self._sharers: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def shared(self, build_id: str) -> AsyncIterator[None]:
        """Use a build alongside others: waits out an exclusive holder (a collector, say), then
        counts as a user until the block ends, so the collector leaves the build alone."""
        while self.locks.busy(build_id):
            async with self.locks.hold(build_id, holder="share"):
                pass
        self._sharers[build_id] += 1  # no await since the check: nothing can slip in between
        try:
            yield
        finally:
            self._sharers[build_id] -= 1
            if not self._sharers[build_id]:
                del self._sharers[build_id]

    async def ensure(
        self,
        build_id: str,
        project: Path,
        interpreter: str,
        *,
        on_line: LineCallback | None = None,
        deadline: float | None = None,
        repair: bool = False,
    ) -> UvResult | None:
        """Make sure build ``build_id`` exists for the lock in ``project``.

        Returns uv's result, or None when the build was already complete (and not repaired).

        Callers hold ``self.locks`` for ``build_id`` so a collector cannot remove it meanwhile.
        ``repair`` re-runs ``uv sync --frozen`` on a complete build (restores tampered files).
        """
        path = self._layout.build_dir(build_id)
        marker = path / COMPLETE_MARKER
        if marker.exists() and not repair:
            return None
        if not marker.exists():
            remove_tree(path)
        result = await self._uv.run(
            [
                "sync",
                "--frozen",
                "--no-install-project",
                "--python",
                interpreter,
                *self._uv.index_flags(),
            ],
            cwd=project,
            env={"UV_PROJECT_ENVIRONMENT": str(path)},
            on_line=on_line,
            deadline=deadline,
        )
        if not result.ok:
            if not marker.exists():
                await asyncio.to_thread(remove_tree, path)
            raise InternalError(
                f"uv sync failed (exit code {result.exit_code}) while installing the locked packages",
                detail=without_flag_hints(result.stderr).strip(),
            )
        marker.write_text(build_id + "\n")
        return result

    def on_disk(self) -> list[str]:
        if not self._layout.builds.is_dir():
            return []
        return sorted(p.name for p in self._layout.builds.iterdir() if p.is_dir())

    async def collect(self, references: Callable[[], Awaitable[set[str]]], *, dry_run: bool = False) -> list[str]:
        """Remove builds no environment references and nobody is using; return their ids.

        ``references`` is asked again while each candidate's lock is held: a create that
        committed a reference since the first look keeps its build.
        """
        removed: list[str] = []
        first_look = await references()
        for build_id in self.on_disk():
            if build_id in first_look or self.locks.busy(build_id) or self._sharers[build_id]:
                continue
            async with self.locks.hold(build_id, holder="collect"):
                if self._sharers[build_id] or build_id in await references():
                    continue
                if not dry_run:
                    await asyncio.to_thread(remove_tree, self._layout.build_dir(build_id))
            removed.append(build_id)
        return removed
