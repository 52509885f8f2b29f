"""The machinery every environment operation runs on (``service.py`` holds the operations).

How a mutating operation runs (create, add/update/remove deps, sync):

1. take the env's lock (wait within the deadline, or fail fast with ``fail_if_busy``);
2. record the operation as RUNNING;
3. work in a private staging folder under ``tmp/``: write the committed pyproject/lock there,
   let uv change them, build (or reuse) the immutable venv for the new lock;
4. materialize the env folder (pyproject, lock, ``.venv`` link, each replaced atomically) and
   commit state + audit record + domain event in ONE database transaction.

The database commit is the point of no return; files on disk are re-derived from the committed
row at start-up (``recovery.py``), so a crash anywhere leaves either the old or the new state.
A failure before the commit restores the env folder from the old row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from envplane.config import Settings
from envplane.environments import project as proj
from envplane.environments.builds import BuildCache
from envplane.environments.identity import EnvId
from envplane.environments.interpreters import (
    Interpreter,
    InterpreterFinder,
    default_python_request,
)
from envplane.environments.layout import (
    LOCKFILE,
    PYPROJECT,
    Layout,
    point_link,
    prune_empty_parents,
    remove_tree,
    write_atomic,
)
from envplane.environments.locks import KeyedLocks
from envplane.environments.recovery import RecoveryReport, recover
from envplane.environments.uv import LineCallback, UvResult, UvRunner
from envplane.environments.views import (
    EnvStatus,
    EnvView,
    OpStatus,
)
from envplane.errors import (
    EnvplaneError,
    FailedPrecondition,
    InternalError,
    NotFound,
    ResolutionFailed,
)
from envplane.events import EventBus
from envplane.metrics import Metrics
from envplane.store import EnvRecord, EventRecord, OperationRecord, Store
from envplane.store import repository as repo

T = TypeVar("T")
logger = logging.getLogger("envplane.environments")


@dataclass
class _Staged:
    """The result of uv's work in a staging folder, ready to commit."""

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


class OperationEngine:
    """State and plumbing shared by the operations: locks, builds, commits, staging."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: EventBus,
        metrics: Metrics | None = None,
        uv: UvRunner | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.metrics = metrics or Metrics()
        self.layout = Layout(settings.data_dir)
        self.uv = uv or UvRunner(settings)
        self.builds = BuildCache(self.layout, self.uv)
        self.interpreters = InterpreterFinder(self.uv)
        self.env_locks = KeyedLocks("environment")
        # Event-producing commits and their publication happen in id order under this lock,
        # so a watcher following live events never sees a later cursor before an earlier one.
        self._commit_lock = asyncio.Lock()
        self._warmup: asyncio.Future[None] | None = None
        self.metrics.bind(uv_running=lambda: self.uv.running, watchers=lambda: self.bus.watchers)

    async def start(self) -> RecoveryReport:
        """Create the folders, reconcile disk with the database (see ``recovery.py``) and
        start looking up the default interpreter, so the first create does not pay for it."""
        await asyncio.to_thread(self.layout.create_dirs)
        report = await recover(self)
        self._warmup = asyncio.ensure_future(self._warm_default_interpreter())
        return report

    async def _warm_default_interpreter(self) -> None:
        try:
            await self.interpreters.find(default_python_request(self.settings.default_python))
        except EnvplaneError as exc:  # reported again, with context, to whoever asks for it
            logger.warning("default python is not available: %s", exc.message)

    async def close(self) -> None:
        """Stop background work owned by the service (daemon shutdown)."""
        if self._warmup is not None and not self._warmup.done():
            self._warmup.cancel()
            with contextlib.suppress(BaseException):
                await self._warmup
        await self.interpreters.close()

    # ------------------------------------------------------------------ plumbing

    async def _commit(self, fn: Callable[[Session, list[EventRecord]], T]) -> T:
        """Run ``fn`` in one transaction; publish the events it appended after the commit."""
        events: list[EventRecord] = []
        async with self._commit_lock:
            result = await self.store.run(lambda s: fn(s, events))
            self.bus.publish(events)
        return result

    async def _shielded_commit(self, fn: Callable[[Session, list[EventRecord]], T]) -> T:
        """A commit that a cancelled request cannot interrupt (failure bookkeeping)."""
        return await asyncio.shield(self._commit(fn))

    def _observe(self, op: OperationRecord) -> None:
        self.metrics.operations.labels(op.operation, op.status).inc()
        if op.duration_ms is not None:
            self.metrics.operation_seconds.labels(op.operation).observe(op.duration_ms / 1000)

    def _view(self, env: EnvId, record: EnvRecord) -> EnvView:
        project = self.layout.project_dir(env)
        link = self.layout.venv_link(env)
        return EnvView(
            id=env,
            record=record,
            env_path=str(project),
            venv_path=str(link),
            python_executable=str(self.layout.python_executable(env)),
            dependencies=proj.declared_dependencies(record.pyproject_toml),
            busy_with=self.env_locks.busy(env),
            has_pyproject=(project / PYPROJECT).is_file(),
            has_lock=(project / LOCKFILE).is_file(),
            has_venv=(link / "bin" / "python").exists(),
        )

    async def _record(self, env: EnvId) -> EnvRecord:
        record = await self.store.run(lambda s: repo.get_env(s, env.key))
        if record is None:
            raise NotFound(f"environment {env} does not exist")
        return record

    async def _ready_record(self, env: EnvId, operation: str, *, allow_broken: bool = False) -> EnvRecord:
        record = await self._record(env)
        allowed = {EnvStatus.READY, EnvStatus.BROKEN} if allow_broken else {EnvStatus.READY}
        if record.status not in allowed:
            hint = " (run sync to rebuild it)" if record.status == EnvStatus.BROKEN else ""
            raise FailedPrecondition(f"cannot {operation} environment {env}: its status is {record.status}{hint}")
        return record

    async def _interpreter_of(self, record: EnvRecord, deadline: float | None) -> Interpreter:
        return await self.interpreters.of_env(
            record.interpreter, record.python_version, record.python_request, deadline=deadline
        )

    def _materialize(self, env: EnvId, pyproject: str, lock: str, build_id: str) -> None:
        """Make the env folder show this state: files replaced atomically, link re-pointed.

        An empty ``build_id`` (the build is gone) leaves no ``.venv`` link rather than a dangling one.
        """
        folder = self.layout.project_dir(env)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in ((PYPROJECT, pyproject), (LOCKFILE, lock)):
            path = folder / name
            if not path.is_file() or path.read_text() != text:
                write_atomic(path, text)
        link = self.layout.venv_link(env)
        if not build_id:
            remove_tree(link)
            return
        target = self.layout.build_dir(build_id)
        if not link.is_symlink() or link.resolve() != target.resolve():
            point_link(link, target)

    def _remove_project(self, env: EnvId) -> None:
        folder = self.layout.project_dir(env)
        remove_tree(folder)
        prune_empty_parents(folder.parent, self.layout.projects)

    async def _references(self) -> set[str]:
        return await self.store.run(repo.build_references)

    async def _release_builds(self) -> list[str]:
        """Collect builds that no env references any more."""
        return await self.builds.collect(self._references)

    @contextlib.asynccontextmanager
    async def _staging(self, purpose: str, pyproject: str = "", lock: str = "") -> AsyncIterator[Path]:
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

    async def _uv_checked(
        self,
        args: list[str],
        cwd: Path,
        log: list[UvResult],
        on_line: LineCallback | None,
        deadline: float | None,
        *,
        resolving: bool,
    ) -> UvResult:
        result = await self.uv.run(args, cwd=cwd, on_line=on_line, deadline=deadline)
        log.append(result)
        if not result.ok:
            headline = proj.uv_error_headline(result.stderr, f"uv {args[0]} failed")
            error_class = ResolutionFailed if resolving else InternalError
            raise error_class(
                f"uv {args[0]} failed (exit code {result.exit_code}): {headline}",
                detail=result.stderr.strip(),
            )
        return result

    async def _build_and_commit(
        self,
        env: EnvId,
        staged: _Staged,
        commit: Callable[[Session, list[EventRecord]], T],
        restore: EnvRecord | None,
        on_line: LineCallback | None,
        deadline: float | None,
    ) -> T:
        """Ensure the build, materialize the env folder, commit; undo the folder on failure."""
        async with self.builds.locks.hold(staged.build_id, holder="build"):
            if not self.layout.is_complete(staged.build_id):  # a shared build needs no staging
                async with self._staging("build", staged.pyproject, staged.lock) as staging_project:
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
                await asyncio.to_thread(self._materialize, env, staged.pyproject, staged.lock, staged.build_id)
                return await self._commit(commit)
            except BaseException:
                if restore is not None and restore.build_id:
                    await asyncio.to_thread(
                        self._materialize, env, restore.pyproject_toml, restore.uv_lock, restore.build_id
                    )
                raise

    async def _fail_operation(
        self,
        op_id: int,
        exc: BaseException,
        log: Sequence[UvResult],
        extra: Callable[[Session, list[EventRecord]], None] | None = None,
    ) -> None:
        if isinstance(exc, EnvplaneError):
            error = exc.message
        elif isinstance(exc, asyncio.CancelledError):
            error = "cancelled: the caller went away or its deadline passed"
        else:
            error = f"{type(exc).__name__}: {exc}"
        last = log[-1] if log else None
        stderr = getattr(exc, "detail", "") or (last.stderr if last else "")

        def fail(session: Session, events: list[EventRecord]) -> OperationRecord:
            if extra is not None:
                extra(session, events)
            return repo.finish_operation(
                session,
                op_id,
                status=OpStatus.FAILED,
                stdout=last.stdout if last else "",
                stderr=stderr,
                exit_code=last.exit_code if last else None,
                error=error,
            )

        op = await self._shielded_commit(fail)
        self._observe(op)
