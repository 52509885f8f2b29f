"""Creating an environment: from package specs (resolved by uv, or by an earlier identical spec),
or from an existing ``pyproject.toml`` + ``uv.lock`` installed as they are.

One create, step by step (``_Creation``):

1. validate the specs (or the project files, whose lock ``uv lock --check`` must accept) and
   find the interpreter: bad input fails here, before any state or audit;
2. (a) the existence check (``exist_ok`` may return the existing env here) and the lookup of an
   earlier resolution of the same spec, in one read; (b) the CREATING row, its event and its
   audit record, in one transaction;
3. resolve with ``uv add --no-sync`` in a staging folder, unless an identical spec was resolved
   before (its lock is reused) or a lock was given;
4. build (or share) the venv, materialize the folder, commit READY (``engine.build_and_commit``).

Any failure after step 2b leaves a FAILED env with nothing on disk, and the reason in its row.
The identical-spec path (a lock resolved before, its build complete on disk) is one commit
(``share``): nothing slow can be interrupted there, so the existence check, materializing and
the READY row go together. The engine remembers the locks of the specs it has seen, so the
check before it (step 2a) is needed only the first time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from sqlalchemy import Connection

from envplane.core.audit import OperationRecord, OpStatus
from envplane.core.capability import Tx
from envplane.core.progress import Progress, ProgressCallback, no_progress
from envplane.environments.identity import EnvId
from envplane.environments.service import project as proj
from envplane.environments.service import queries
from envplane.environments.service.builds import build_id_for, read_python_version
from envplane.environments.service.engine import OperationEngine, Staged, subject_of
from envplane.environments.service.events import EventType
from envplane.environments.service.interpreters import Interpreter, default_python_request
from envplane.environments.service.records import EnvRecord
from envplane.environments.service.uv import UvResult
from envplane.environments.service.views import EnvStatus, EnvView
from envplane.environments.specs import collect_specs, spec_hash
from envplane.errors import AlreadyExists, EnvplaneError, InvalidArgument, ResolutionFailed


@dataclass(frozen=True)
class ProjectFiles:
    """A ``pyproject.toml`` and its ``uv.lock``, to be installed as they are (no resolution)."""

    pyproject_toml: str
    uv_lock: str


async def create(
    engine: OperationEngine,
    env: EnvId,
    packages: Sequence[str] = (),
    requirements: str = "",
    python_version: str = "",
    *,
    project: ProjectFiles | None = None,
    deadline: float | None = None,
    fail_if_busy: bool = False,
    exist_ok: bool = False,
    on_progress: ProgressCallback | None = None,
) -> EnvView:
    """Create ``env``. With ``exist_ok``, an existing env made from the same spec (or the same
    project files) is returned as it is: idempotent, for engines that provision on every run."""
    progress = on_progress or no_progress
    allow_urls = engine.settings.allow_direct_references
    if project is not None:
        if packages or requirements:
            raise InvalidArgument("give packages/requirements or pyproject_toml + uv_lock, not both")
        declared = proj.check_project_files(project.pyproject_toml, project.uv_lock, allow_direct_references=allow_urls)
        specs = collect_specs(
            declared, allow_direct_references=allow_urls, packages_field="pyproject_toml dependencies"
        )
        request = python_version or proj.requires_python(project.pyproject_toml) or ""
    else:
        specs = collect_specs(packages, requirements, allow_direct_references=allow_urls)
        request = python_version
    request = request or default_python_request(engine.settings.default_python)
    source = "the given uv.lock" if project else f"{len(specs)} package(s)"
    await progress(Progress("validate", f"creating {env} from {source}, python {request}"))
    # Finding the interpreter is validation: an unavailable version is INVALID_ARGUMENT
    # and leaves no FAILED env behind.
    interpreter = await engine.interpreters.find(request, deadline=deadline)
    creation = _Creation(engine, env, specs, interpreter, request, project, progress, deadline)
    if project is not None:  # validation too: a lock that does not match leaves nothing behind
        await progress(Progress("validate", "checking that the given uv.lock matches its pyproject.toml"))
        await creation.check_lock()
    async with engine.env_locks.hold(env, holder="create", deadline=deadline, fail_if_busy=fail_if_busy):
        shared = await creation.share(exist_ok)  # the identical-spec path, when its lock is known
        if shared is None:
            reused = await creation.check(exist_ok)
            if reused is not None:
                shared = (reused, True)
            else:
                shared = await creation.share(exist_ok) or (await creation.run(), False)
    record, reused_it = shared
    if reused_it:
        await progress(Progress("done", f"environment {env} exists with the same spec: reusing it"))
        return engine.view(env, record, reused=True)
    await progress(Progress("done", f"environment {env} is READY"))
    return engine.view(env, record)


@dataclass
class _Creation:
    """The state of one create between its steps."""

    engine: OperationEngine
    env: EnvId
    specs: list[Requirement]
    interpreter: Interpreter
    python_request: str
    project: ProjectFiles | None
    progress: ProgressCallback
    deadline: float | None
    op_id: int = 0
    cached: tuple[str, str] | None = None  # (pyproject, lock) of an earlier identical spec
    log: list[UvResult] = field(default_factory=list)

    @property
    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"packages": [str(s) for s in self.specs], "python": self.python_request}
        if self.project is not None:
            details["from_lock"] = True
        return details

    @functools.cached_property
    def resolution_key(self) -> str:
        """The spec's canonical hash with its interpreter and package sources (several reads)."""
        return spec_hash(self.specs, self.interpreter.identity, self.engine.uv.index_fingerprint())

    async def check(self, exist_ok: bool) -> EnvRecord | None:
        """Step 2a, one transaction with no event: is the env there (``exist_ok`` reuses it:
        returned, only its use recorded), and was this spec resolved before?"""
        key, now = self.env.key, time.time()
        resolution_key = self.resolution_key if self.project is None else ""

        def check(db: Connection) -> EnvRecord | None:
            existing = queries.get_env(db, key)
            if resolution_key:
                self.cached = queries.get_resolution(db, resolution_key)
                if self.cached is not None:
                    self.engine.resolutions.put(resolution_key, self.cached)
            return self._reuse_or_refuse(db, existing, exist_ok, now)

        return await self.engine.core.store.run(check)

    def _reuse_or_refuse(
        self, db: Connection, existing: EnvRecord | None, exist_ok: bool, now: float
    ) -> EnvRecord | None:
        """An env already there (a FAILED one does not count): returned with its use recorded
        when ``exist_ok`` and it was made from this spec, else ALREADY_EXISTS. None: nothing is
        in the way. Both paths of a create ask this (``check`` and ``share``)."""
        if existing is None or existing.status == EnvStatus.FAILED:
            return None
        if exist_ok and self._same_spec(existing):
            queries.touch_env(db, self.env.key, now)
            return dataclasses.replace(existing, last_used_at=now)
        raise AlreadyExists(self._exists_message(existing, exist_ok))

    async def run(self) -> EnvRecord:
        """Steps 2b to 4: recorded CREATING first (recovery then knows it was under way)."""
        await self._begin()
        return await self._create()

    async def _begin(self) -> None:
        """Step 2b: the CREATING row, its event and its audit record, in one transaction."""
        env, now, subject = self.env, time.time(), subject_of(self.env)

        def begin(tx: Tx) -> None:
            queries.upsert_env(
                tx.db,
                env.key,
                status=EnvStatus.CREATING,
                python_request=self.python_request,
                python_version="",
                interpreter="",
                build_id="",
                pyproject_toml="",
                uv_lock="",
                error="",
                created_at=now,
                updated_at=now,
                last_used_at=now,
            )
            tx.event(EventType.ENVIRONMENT_CREATION_STARTED, subject, self.details)
            self.op_id = tx.start(subject, "create", self.details)

        await self.engine.core.commit(begin)

    def _same_spec(self, existing: EnvRecord) -> bool:
        """Was ``existing`` made from this request? Declared dependencies (pyproject.toml) are
        compared, not the lock: an env whose packages were updated since still matches the spec
        it was made from. Without a recorded resolution (another index configuration) the answer
        is no, so the caller gets ALREADY_EXISTS."""
        if existing.status not in (EnvStatus.READY, EnvStatus.BROKEN):
            return False
        if self.project is not None:
            return (existing.pyproject_toml, existing.uv_lock) == (self.project.pyproject_toml, self.project.uv_lock)
        return self.cached is not None and existing.pyproject_toml == self.cached[0]

    def _exists_message(self, existing: EnvRecord, exist_ok: bool) -> str:
        message = f"environment {self.env} already exists (status {existing.status})"
        if not exist_ok:
            return message
        declared = proj.declared_dependencies(existing.pyproject_toml)
        asked = [str(s) for s in self.specs] or "no packages"
        return (
            f"{message} with a different spec: it declares {declared or 'no packages'}, this request asks for "
            f"{asked}{' (from the given uv.lock)' if self.project else ''}; use another version_id, or delete it first"
        )

    async def _create(self) -> EnvRecord:
        """Steps 3 and 4; on any failure mark the env FAILED, remove its folder, record why."""
        try:
            return await self._resolve_build_commit()
        except BaseException as exc:
            message = exc.message if isinstance(exc, EnvplaneError) else "creation was interrupted"
            subject = subject_of(self.env)

            def mark_failed(tx: Tx) -> None:
                queries.mark_status(tx.db, self.env.key, EnvStatus.FAILED, message)
                tx.event(EventType.ENVIRONMENT_CREATION_FAILED, subject, {**self.details, "error": message})

            await asyncio.shield(asyncio.to_thread(self.engine.remove_project, self.env))
            await self.engine.fail_operation(self.op_id, exc, self.log, mark_failed)
            raise

    async def share(self, exist_ok: bool) -> tuple[EnvRecord, bool] | None:
        """The identical-spec path: the lock of an earlier resolution, and its build complete on
        disk. Nothing slow can be interrupted, so there is no CREATING step: ONE commit checks
        for the env (reused with ``exist_ok``, else ALREADY_EXISTS), materializes its folder,
        and writes the READY row, both events and the finished audit record. A failure leaves
        no row and no folder behind, only a FAILED audit record.

        Returns (the env, whether it was reused), or None when the lock or its build is not at
        hand (the caller takes the long way: ``check`` then ``run``)."""
        engine, env, interpreter = self.engine, self.env, self.interpreter
        if self.project is not None:
            return None
        known = self.cached or engine.resolutions.get(self.resolution_key)
        if known is None:
            return None
        pyproject, lock = known
        build_id = build_id_for(lock, interpreter.identity)
        build_dir = engine.layout.build_dir(build_id)
        subject, details, started = subject_of(env), self.details, time.time()
        materialized = False

        def commit(tx: Tx) -> tuple[EnvRecord, OperationRecord | None]:
            nonlocal materialized
            self.cached = known  # the lock an existing env is compared with
            reused = self._reuse_or_refuse(tx.db, queries.get_env(tx.db, env.key), exist_ok, started)
            if reused is not None:
                return reused, None
            engine.materialize(env, pyproject, lock, build_id)
            materialized = True
            record = queries.mark_ready(
                tx.db,
                env.key,
                python_request=self.python_request,
                python_version=read_python_version(build_dir) or interpreter.version,
                interpreter=interpreter.path,
                build_id=build_id,
                pyproject_toml=pyproject,
                uv_lock=lock,
                created_at=started,
            )
            tx.event(EventType.ENVIRONMENT_CREATION_STARTED, subject, details)
            outcome = {"build_id": build_id, "reused_lock": True}
            op = tx.record(
                subject, "create", {**details, **outcome}, started_at=started, status=OpStatus.SUCCEEDED, exit_code=0
            )
            tx.event(EventType.ENVIRONMENT_CREATED, subject, self._created_payload(record, pyproject, lock))
            return record, op

        # Keeps a collector from removing the build before this env references it; creates
        # sharing one build do not wait for each other.
        async with engine.builds.shared(build_id):
            if not engine.layout.is_complete(build_id):
                return None
            try:
                record, op = await engine.core.commit(commit)
            except AlreadyExists:
                raise
            except BaseException as exc:
                if materialized:
                    await asyncio.shield(asyncio.to_thread(engine.remove_project, env))
                await engine.record_failure(env, "create", exc, details, started_at=started)
                raise
        if op is None:
            return record, True
        await self.progress(Progress("resolve", "identical spec resolved before: reused its lock and its build"))
        engine.core.observe(op)
        return record, False

    def _created_payload(self, record: EnvRecord, pyproject: str, lock: str) -> dict[str, Any]:
        return {
            "python_version": record.python_version,
            "build_id": record.build_id,
            "dependencies": proj.declared_dependencies(pyproject),
            "locked": {p.name: p.version for p in proj.locked_packages(lock)},
        }

    async def _on_line(self, line: str) -> None:
        await self.progress(Progress("uv", line))

    async def _resolve(self) -> tuple[str, str]:
        """Step 3: the pyproject and lock to install."""
        engine, interpreter = self.engine, self.interpreter
        await self.progress(Progress("resolve", f"using python {interpreter.version} at {interpreter.path}"))
        if self.project is not None:
            await self.progress(Progress("resolve", "the given uv.lock is installed as it is (no resolution)"))
            return self.project.pyproject_toml, self.project.uv_lock
        if self.cached is not None:
            await self.progress(Progress("resolve", "identical spec resolved before: reusing its lock"))
            return self.cached
        await self.progress(Progress("resolve", f"resolving {len(self.specs)} package(s) with uv"))
        flags = ["--python", interpreter.path, *engine.uv.index_flags()]
        args = ["add", "--no-sync", *flags, *map(str, self.specs)] if self.specs else ["lock", *flags]
        template = proj.pyproject_template(interpreter.version)
        return await engine.resolve(
            "create", args, self.log, pyproject=template, on_line=self._on_line, deadline=self.deadline
        )

    async def check_lock(self) -> None:
        """``uv lock --check``: the lock must be what uv would write for this pyproject. A
        mismatch names both dependency lists (uv itself only says the lock needs updating)."""
        engine, project = self.engine, self.project
        assert project is not None
        args = ["lock", "--check", "--python", self.interpreter.path, *engine.uv.index_flags()]
        try:
            async with engine.staging("check", project.pyproject_toml, project.uv_lock) as staging:
                await engine.run_uv(args, staging, [], deadline=self.deadline, resolving=True)
        except ResolutionFailed as exc:
            if "needs to be updated" not in exc.detail:
                raise  # not a mismatch: uv could not resolve the pyproject at all
            declared = proj.declared_dependencies(project.pyproject_toml)
            locked_for = proj.locked_requirements(project.uv_lock)
            raise InvalidArgument(
                f"uv_lock does not match pyproject_toml: the pyproject declares {declared or 'no packages'}, "
                f"the lock was made for {locked_for or 'no packages'}; lock them together (ExportEnv returns "
                "a matching pair) or create from packages instead",
            ) from None  # uv's own output only says the lock needs updating, with advice about its flags

    async def _resolve_build_commit(self) -> EnvRecord:
        engine, env, interpreter = self.engine, self.env, self.interpreter
        pyproject, lock = await self._resolve()
        staged = Staged(pyproject, lock, interpreter, build_id_for(lock, interpreter.identity), self.log)
        await self.progress(Progress("install", f"installing into build {staged.build_id[:12]}"))
        resolution_key = self.resolution_key if self.project is None else ""
        build_dir = engine.layout.build_dir(staged.build_id)

        def commit(tx: Tx) -> tuple[EnvRecord, OperationRecord]:
            record = queries.mark_ready(
                tx.db,
                env.key,
                python_version=read_python_version(build_dir) or interpreter.version,
                interpreter=interpreter.path,
                build_id=staged.build_id,
                pyproject_toml=pyproject,
                uv_lock=lock,
            )
            if resolution_key:
                queries.put_resolution(tx.db, resolution_key, pyproject, lock)
                engine.resolutions.put(resolution_key, (pyproject, lock))
            op = tx.finish(
                self.op_id,
                status=OpStatus.SUCCEEDED,
                stdout=staged.stdout,
                stderr=staged.stderr,
                exit_code=0,
                details={"build_id": staged.build_id, "reused_lock": self.cached is not None},
            )
            tx.event(EventType.ENVIRONMENT_CREATED, subject_of(env), self._created_payload(record, pyproject, lock))
            return record, op

        record, op = await engine.build_and_commit(env, staged, commit, on_line=self._on_line, deadline=self.deadline)
        engine.core.observe(op)
        return record
