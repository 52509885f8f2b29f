"""What every environment operation runs on: one composed object with a public surface, used by
the operations (``create.py``, ``changes.py``, ``maintenance.py``, ``reads.py``, ``run_code.py``)
and by start-up recovery (``recovery.py``) alike.

How a mutating operation runs (create, add/update/remove deps, sync):

1. take the env's lock (wait within the deadline, or fail fast with ``fail_if_busy``);
2. record the operation as RUNNING;
3. work in a private staging folder under ``tmp/``: write the committed pyproject/lock there,
   let uv change them, build (or reuse) the immutable venv for the new lock;
4. materialize the env folder (pyproject, lock, ``.venv`` link, each replaced atomically) and
   commit state + audit record + domain event in ONE database transaction (``Core.commit``).

The database commit is the point of no return; files on disk are re-derived from the committed
row at start-up (``recovery.py``), so a crash anywhere leaves either the old or the new state.
A failure before the commit restores the env folder from the old row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envplane.core.audit import OperationRecord, OpStatus
from envplane.core.capability import Core, Tx
from envplane.core.files import point_link, prune_empty_parents, remove_tree, write_atomic
from envplane.core.locks import KeyedLocks
from envplane.core.subject import Subject
from envplane.environments.identity import EnvId
from envplane.environments.service import project as proj
from envplane.environments.service import queries
from envplane.environments.service.builds import BuildCache
from envplane.environments.service.interpreters import Interpreter, InterpreterFinder
from envplane.environments.service.layout import LOCKFILE, PYPROJECT, VENV_LINK, Layout
from envplane.environments.service.records import EnvRecord
from envplane.environments.service.uv import LineCallback, UvResult, UvRunner
from envplane.environments.service.views import EnvStatus, EnvView
from envplane.errors import EnvBusy, EnvplaneError, FailedPrecondition, InternalError, NotFound, ResolutionFailed

T = TypeVar("T")

ENVIRONMENT = "environment"  # the subject kind of this capability's operations and events
ALL_ENVIRONMENTS = Subject(ENVIRONMENT)  # the subject of a cleanup


def subject_of(env: EnvId) -> Subject:
    return Subject(ENVIRONMENT, str(env), env.workflow_id, env.node_id, env.version_id)


@dataclass
class Staged:
    """The result of uv's work in a staging folder, ready to build and commit."""

    pyproject: str
    lock: str
    interpreter: Interpreter
    build_id: str
    log: list[UvResult]

    @property
    def stdout(self) -> str:
        return "".join(r.stdout for r in self.log)

    @property
    def stderr(self) -> str:
        return "".join(r.stderr for r in self.log)


class ResolutionCache:
    """Locks of specs resolved before (spec hash -> (pyproject, uv.lock)), most recent kept.
    The database holds them all (``resolutions``); this saves the identical-spec create a read.
    Filled from commits (worker threads) and read on the event loop, hence the lock."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, files: tuple[str, str]) -> None:
        with self._lock:
            self._entries[key] = files
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class OperationEngine:
    """Locks, builds, staging, materializing and commits, shared by the operations."""

    def __init__(self, core: Core, uv: UvRunner | None = None) -> None:
        self.core = core
        self.settings = core.settings
        self.layout = Layout(core.data_dir)
        self.uv = uv or UvRunner(core.settings, core.data_dir)
        self.builds = BuildCache(self.layout, self.uv)
        self.interpreters = InterpreterFinder(self.uv)
        self.env_locks = KeyedLocks("environment", busy_error=EnvBusy)
        self.resolutions = ResolutionCache()

    # ------------------------------------------------------------------ reading state

    async def record(self, env: EnvId) -> EnvRecord:
        record = await self.core.store.run(lambda s: queries.get_env(s, env.key))
        if record is None:
            raise NotFound(f"environment {env} does not exist")
        return record

    async def ready_record(self, env: EnvId, operation: str, *, allow_broken: bool = False) -> EnvRecord:
        """The env's record, if its status allows ``operation`` (else FailedPrecondition)."""
        record = await self.record(env)
        allowed = {EnvStatus.READY, EnvStatus.BROKEN} if allow_broken else {EnvStatus.READY}
        if record.status not in allowed:
            hint = " (run sync to rebuild it)" if record.status == EnvStatus.BROKEN else ""
            raise FailedPrecondition(f"cannot {operation} environment {env}: its status is {record.status}{hint}")
        return record

    def view(self, env: EnvId, record: EnvRecord, *, reused: bool = False) -> EnvView:
        # Plain strings: every answer renders a view, and pathlib costs more than the stats.
        project = self.layout.project_path(env)
        link = os.path.join(project, VENV_LINK)
        python = os.path.join(link, "bin", "python")
        return EnvView(
            id=env,
            record=record,
            env_path=project,
            venv_path=link,
            python_executable=python,
            dependencies=proj.declared_dependencies(record.pyproject_toml),
            busy_with=self.env_locks.busy(env),
            has_pyproject=os.path.isfile(os.path.join(project, PYPROJECT)),
            has_lock=os.path.isfile(os.path.join(project, LOCKFILE)),
            has_venv=os.path.exists(python),
            reused=reused,
        )

    async def interpreter_of(self, record: EnvRecord, deadline: float | None) -> Interpreter:
        return await self.interpreters.of_env(
            record.interpreter, record.python_version, record.python_request, deadline=deadline
        )

    # ------------------------------------------------------------------ disk

    def materialize(self, env: EnvId, pyproject: str, lock: str, build_id: str) -> None:
        """Make the env folder show this state: files replaced atomically, link re-pointed.
        Blocking (call it in a thread). An empty ``build_id`` (the build is gone) leaves no
        ``.venv`` link rather than a dangling one.

        A folder made here is new: no committed row points at it yet, so nobody reads it and
        its files are written in place (recovery removes a folder without a row); an existing
        folder is changed only by atomic replaces, so its readers see the old or the new state."""
        folder = self.layout.project_dir(env)
        link = folder / VENV_LINK
        target = self.layout.build_dir(build_id)
        try:
            os.makedirs(folder)
        except FileExistsError:
            pass
        else:
            for name, text in ((PYPROJECT, pyproject), (LOCKFILE, lock)):
                with open(os.path.join(folder, name), "w") as handle:
                    handle.write(text)
            if build_id:
                os.symlink(os.path.relpath(target, folder), link)
            return
        for name, text in ((PYPROJECT, pyproject), (LOCKFILE, lock)):
            path = folder / name
            if not path.is_file() or path.read_text() != text:
                write_atomic(path, text)
        if not build_id:
            remove_tree(link)
            return
        if not link.is_symlink() or link.resolve() != target.resolve():
            point_link(link, target)

    def remove_project(self, env: EnvId) -> None:
        """Remove the env folder and the parents it leaves empty. Blocking."""
        folder = self.layout.project_dir(env)
        remove_tree(folder)
        prune_empty_parents(folder.parent, self.layout.projects)

    async def references(self) -> set[str]:
        """The builds some env's committed row points at."""
        return await self.core.store.run(queries.build_references)

    async def release_builds(self) -> list[str]:
        """Collect builds that no env references any more."""
        return await self.builds.collect(self.references)

    @contextlib.asynccontextmanager
    async def staging(self, purpose: str, pyproject: str = "", lock: str = "") -> AsyncIterator[Path]:
        """A private folder under ``tmp/`` holding the given project files, removed afterwards."""
        path = await asyncio.to_thread(self.layout.staging_dir, purpose)
        try:
            if pyproject:
                (path / PYPROJECT).write_text(pyproject)
            if lock:
                (path / LOCKFILE).write_text(lock)
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, path, True)

    # ------------------------------------------------------------------ uv and builds

    async def run_uv(
        self,
        args: list[str],
        cwd: Path,
        log: list[UvResult],
        *,
        on_line: LineCallback | None = None,
        deadline: float | None = None,
        resolving: bool,
    ) -> UvResult:
        """Run uv, keep its result in ``log``; a failure is ResolutionFailed while resolving,
        InternalError otherwise, with uv's own words (less its advice about uv flags)."""
        result = await self.uv.run(args, cwd=cwd, on_line=on_line, deadline=deadline)
        log.append(result)
        if not result.ok:
            headline = proj.uv_error_headline(result.stderr, f"uv {args[0]} failed")
            error_class = ResolutionFailed if resolving else InternalError
            raise error_class(
                f"uv {args[0]} failed (exit code {result.exit_code}): {headline}",
                detail=proj.without_flag_hints(result.stderr).strip(),
            )
        return result

    async def resolve(
        self,
        purpose: str,
        args: list[str],
        log: list[UvResult],
        *,
        pyproject: str,
        lock: str = "",
        on_line: LineCallback | None = None,
        deadline: float | None = None,
    ) -> tuple[str, str]:
        """Run a resolving uv command (``add``, ``lock``, ``remove``) in a staging copy of the
        project; the pyproject and lock it leaves there (the committed ones are untouched)."""
        async with self.staging(purpose, pyproject, lock) as staging:
            await self.run_uv(args, staging, log, on_line=on_line, deadline=deadline, resolving=True)
            return (staging / PYPROJECT).read_text(), (staging / LOCKFILE).read_text()

    async def build_and_commit(
        self,
        env: EnvId,
        staged: Staged,
        commit: Callable[[Tx], T],
        *,
        restore: EnvRecord | None = None,
        on_line: LineCallback | None = None,
        deadline: float | None = None,
    ) -> T:
        """Ensure the build, materialize the env folder, commit; undo the folder on failure."""
        async with self.builds.locks.hold(staged.build_id, holder="build"):
            if not self.layout.is_complete(staged.build_id):  # a shared build needs no staging
                async with self.staging("build", staged.pyproject, staged.lock) as staging_project:
                    result = await self.builds.ensure(
                        staged.build_id,
                        staging_project,
                        staged.interpreter.path,
                        on_line=on_line,
                        deadline=deadline,
                    )
                if result is not None:
                    staged.log.append(result)
            try:
                await asyncio.to_thread(self.materialize, env, staged.pyproject, staged.lock, staged.build_id)
                return await self.core.commit(commit)
            except BaseException:
                if restore is not None and restore.build_id:
                    await asyncio.to_thread(
                        self.materialize, env, restore.pyproject_toml, restore.uv_lock, restore.build_id
                    )
                raise

    # ------------------------------------------------------------------ audit

    async def start_operation(self, env: EnvId, operation: str, details: Mapping[str, Any] | None = None) -> int:
        return await self.core.commit(lambda tx: tx.start(subject_of(env), operation, dict(details or {})))

    async def record_failure(
        self, env: EnvId, operation: str, exc: BaseException, details: Mapping[str, Any], *, started_at: float
    ) -> None:
        """Audit an operation that failed before it was recorded RUNNING (shielded)."""
        error = _reason(exc)

        def record(tx: Tx) -> OperationRecord:
            return tx.record(
                subject_of(env), operation, dict(details), started_at=started_at, status=OpStatus.FAILED, error=error
            )

        op = await self.core.commit_shielded(record)
        if isinstance(exc, EnvplaneError):
            exc.operation_id = op.id
        self.core.observe(op)

    async def fail_operation(
        self,
        op_id: int,
        exc: BaseException,
        log: Sequence[UvResult] = (),
        also: Callable[[Tx], None] | None = None,
    ) -> None:
        """Finish the record FAILED with why and uv's last output (``also`` adds to the same
        transaction), shielded from the caller's cancellation; the error learns its record."""
        error = _reason(exc)
        if isinstance(exc, EnvplaneError):
            exc.operation_id = op_id
        last = log[-1] if log else None
        stderr = getattr(exc, "detail", "") or (last.stderr if last else "")

        def fail(tx: Tx) -> OperationRecord:
            if also is not None:
                also(tx)
            return tx.finish(
                op_id,
                status=OpStatus.FAILED,
                stdout=last.stdout if last else "",
                stderr=stderr,
                exit_code=last.exit_code if last else None,
                error=error,
            )

        self.core.observe(await self.core.commit_shielded(fail))


def _reason(exc: BaseException) -> str:
    """Why an operation failed, for its audit record."""
    if isinstance(exc, EnvplaneError):
        return exc.message
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled: the caller went away or its deadline passed"
    return f"{type(exc).__name__}: {exc}"
