"""The environment service: every operation on per-node uv environments, for every face.

Create, status/list, dependency changes (add, update, remove), sync, export, delete, cleanup,
the audit log and domain events. How an operation runs, step by step, is in ``engine.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.orm import Session

from envplane.environments import project as proj
from envplane.environments.builds import build_id_for, read_python_version
from envplane.environments.engine import OperationEngine, _Staged
from envplane.environments.identity import EnvId
from envplane.environments.interpreters import (
    Interpreter,
    default_python_request,
)
from envplane.environments.layout import (
    LOCKFILE,
    PYPROJECT,
    write_atomic,
)
from envplane.environments.specs import collect_specs, parse_spec, spec_hash
from envplane.environments.uv import UvResult
from envplane.environments.views import (
    CleanupOutcome,
    DepsView,
    EnvStatus,
    EnvView,
    ExportView,
    OperationOutcome,
    OperationsDeleted,
    OpStatus,
    Progress,
    ProgressCallback,
    RunOutcome,
)
from envplane.errors import (
    AlreadyExists,
    DeadlineExceeded,
    EnvplaneError,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    Unimplemented,
)
from envplane.events import EventType
from envplane.pagination import Page, make_page, resolve_window
from envplane.processes import ProcessResult, run_group
from envplane.store import EnvRecord, EventRecord, OperationRecord
from envplane.store import repository as repo


async def _no_progress(_: Progress) -> None:
    return None


def _same_spec(existing: EnvRecord, resolution: tuple[str, str] | None) -> bool:
    """Was ``existing`` made from the spec whose earlier resolution is ``resolution``?

    Declared dependencies (pyproject.toml) are compared, not the lock: an env whose packages
    were updated since still matches the spec it was made from. Without a recorded resolution
    (another index configuration) the answer is no, so the caller gets ALREADY_EXISTS."""
    if existing.status not in (EnvStatus.READY, EnvStatus.BROKEN) or resolution is None:
        return False
    return existing.pyproject_toml == resolution[0]


def _exists_message(env: EnvId, existing: EnvRecord, specs: Sequence[Requirement], exist_ok: bool) -> str:
    message = f"environment {env} already exists (status {existing.status})"
    if not exist_ok:
        return message
    declared = proj.declared_dependencies(existing.pyproject_toml)
    return (
        f"{message} with a different spec: it declares {declared or 'no packages'}, this request asks for "
        f"{[str(s) for s in specs] or 'no packages'}; use another version_id, or delete it first"
    )


class EnvironmentService(OperationEngine):
    """One instance per daemon; safe for concurrent use from many requests."""

    # ------------------------------------------------------------------ create

    async def create(
        self,
        env: EnvId,
        packages: Sequence[str] = (),
        requirements: str = "",
        python_version: str = "",
        *,
        deadline: float | None = None,
        fail_if_busy: bool = False,
        exist_ok: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> EnvView:
        """Create ``env``. With ``exist_ok``, an existing env made from the same spec is returned
        as it is (idempotent, for engines that provision on every run)."""
        progress = on_progress or _no_progress
        specs = collect_specs(packages, requirements, allow_direct_references=self.settings.allow_direct_references)
        request = python_version or default_python_request(self.settings.default_python)
        await progress(Progress("validate", f"creating {env} with {len(specs)} package(s), python {request}"))
        key = env.key
        # Finding the interpreter is validation: an unavailable version is INVALID_ARGUMENT
        # and leaves no FAILED env behind.
        interpreter = await self.interpreters.find(request, deadline=deadline)
        async with self.env_locks.hold(
            env, holder="create", deadline=deadline, fail_if_busy=fail_if_busy, label=str(env)
        ):
            now = time.time()
            details: dict[str, Any] = {"packages": [str(s) for s in specs], "python": request}
            resolution_key = spec_hash(specs, interpreter.identity, self.uv.index_fingerprint())

            def begin(
                session: Session, events: list[EventRecord]
            ) -> tuple[int, tuple[str, str] | None, EnvRecord | None]:
                # One transaction: the existence check, the CREATING row, its event and audit
                # record, and the lookup of an earlier resolution of the same spec.
                existing = repo.get_env(session, key)
                cached = repo.get_resolution(session, resolution_key)
                if existing is not None and existing.status != EnvStatus.FAILED:
                    if exist_ok and _same_spec(existing, cached):
                        repo.touch_env(session, key, now)
                        return 0, cached, dataclasses.replace(existing, last_used_at=now)
                    raise AlreadyExists(_exists_message(env, existing, specs, exist_ok))
                repo.upsert_env(
                    session,
                    key,
                    status=EnvStatus.CREATING,
                    python_request=request,
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
                events.append(repo.add_event(session, EventType.ENVIRONMENT_CREATION_STARTED, key, details))
                op_id = repo.start_operation(session, key, "create", details)
                return op_id, cached, None

            op_id, cached, reused = await self._commit(begin)
            if reused is not None:
                record = reused
            else:
                record = await self._create_or_fail(
                    env, specs, interpreter, (resolution_key, cached), op_id, details, progress, deadline
                )
        if reused is not None:
            await progress(Progress("done", f"environment {env} exists with the same spec: reusing it"))
            return dataclasses.replace(self._view(env, record), reused=True)
        await progress(Progress("done", f"environment {env} is READY"))
        return self._view(env, record)

    async def _create_or_fail(
        self,
        env: EnvId,
        specs: list[Requirement],
        interpreter: Interpreter,
        resolution: tuple[str, tuple[str, str] | None],
        op_id: int,
        details: dict[str, Any],
        progress: ProgressCallback,
        deadline: float | None,
    ) -> EnvRecord:
        """Run the create; on any failure mark the env FAILED, remove its folder, record why."""
        key = env.key
        log: list[UvResult] = []
        try:
            return await self._create_body(env, specs, interpreter, resolution, op_id, log, progress, deadline)
        except BaseException as exc:
            message = exc.message if isinstance(exc, EnvplaneError) else "creation was interrupted"

            def mark_failed(session: Session, events: list[EventRecord]) -> None:
                repo.upsert_env(session, key, status=EnvStatus.FAILED, error=message, updated_at=time.time())
                events.append(
                    repo.add_event(
                        session,
                        EventType.ENVIRONMENT_CREATION_FAILED,
                        key,
                        {**details, "error": message},
                    )
                )

            await asyncio.shield(asyncio.to_thread(self._remove_project, env))
            await self._fail_operation(op_id, exc, log, mark_failed)
            raise

    async def _create_body(
        self,
        env: EnvId,
        specs: list[Requirement],
        interpreter: Interpreter,
        resolution: tuple[str, tuple[str, str] | None],
        op_id: int,
        log: list[UvResult],
        progress: ProgressCallback,
        deadline: float | None,
    ) -> EnvRecord:
        key = env.key

        async def on_line(line: str) -> None:
            await progress(Progress("uv", line))

        await progress(Progress("resolve", f"using python {interpreter.version} at {interpreter.path}"))
        resolution_key, cached = resolution
        if cached is not None:
            pyproject, lock = cached
            await progress(Progress("resolve", "identical spec resolved before: reusing its lock"))
        else:
            await progress(Progress("resolve", f"resolving {len(specs)} package(s) with uv"))
            async with self._staging("create", proj.pyproject_template(interpreter.version)) as staging:
                if specs:
                    args = ["add", "--no-sync", "--python", interpreter.path, *self.uv.index_flags()]
                    args += [str(s) for s in specs]
                else:
                    args = ["lock", "--python", interpreter.path, *self.uv.index_flags()]
                await self._uv_checked(args, staging, log, on_line, deadline, resolving=True)
                pyproject = (staging / PYPROJECT).read_text()
                lock = (staging / LOCKFILE).read_text()
        staged = _Staged(pyproject, lock, interpreter, build_id_for(lock, interpreter.identity), log)
        await progress(Progress("install", f"installing into build {staged.build_id[:12]}"))

        def commit(session: Session, events: list[EventRecord]) -> tuple[EnvRecord, OperationRecord]:
            now = time.time()
            python_version = read_python_version(self.layout.build_dir(staged.build_id))
            record = repo.upsert_env(
                session,
                key,
                status=EnvStatus.READY,
                python_version=python_version or interpreter.version,
                interpreter=interpreter.path,
                build_id=staged.build_id,
                pyproject_toml=pyproject,
                uv_lock=lock,
                error="",
                updated_at=now,
                last_used_at=now,
            )
            repo.put_resolution(session, resolution_key, pyproject, lock)
            locked = {p.name: p.version for p in proj.locked_packages(lock)}
            op = repo.finish_operation(
                session,
                op_id,
                status=OpStatus.SUCCEEDED,
                stdout=staged.stdout,
                stderr=staged.stderr,
                exit_code=0,
                details={"build_id": staged.build_id, "reused_lock": cached is not None},
            )
            events.append(
                repo.add_event(
                    session,
                    EventType.ENVIRONMENT_CREATED,
                    key,
                    {
                        "python_version": record.python_version,
                        "build_id": staged.build_id,
                        "dependencies": proj.declared_dependencies(pyproject),
                        "locked": locked,
                    },
                )
            )
            return record, op

        record, op = await self._build_and_commit(env, staged, commit, None, on_line, deadline)
        self._observe(op)
        return record

    # ------------------------------------------------------------------ read side

    async def status(self, env: EnvId) -> EnvView:
        return self._view(env, await self._record(env))

    async def list_envs(
        self,
        *,
        workflow_id: str = "",
        node_id: str = "",
        status: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[EnvView]:
        if status and status not in EnvStatus.__members__:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(EnvStatus.__members__)}")
        offset, limit = resolve_window(
            page_size,
            page_token,
            default=self.settings.default_page_size,
            maximum=self.settings.max_page_size,
        )
        records, total = await self.store.run(
            lambda s: repo.list_envs(
                s, workflow_id=workflow_id, node_id=node_id, status=status, offset=offset, limit=limit
            )
        )
        views = [self._view(EnvId.of(r), r) for r in records]
        return make_page(views, total, offset, limit)

    async def list_deps(self, env: EnvId) -> DepsView:
        record = await self._record(env)
        return DepsView(env, proj.declared_dependencies(record.pyproject_toml), proj.locked_packages(record.uv_lock))

    async def export(self, env: EnvId, *, deadline: float | None = None) -> ExportView:
        record = await self._ready_record(env, "export", allow_broken=True)
        async with self._staging("export", record.pyproject_toml, record.uv_lock) as staging:
            result = await self.uv.run(
                [
                    "export",
                    "--frozen",
                    "--format",
                    "requirements-txt",
                    "--no-header",
                    "--no-emit-project",
                ],
                cwd=staging,
                deadline=deadline,
            )
        if not result.ok:
            raise InternalError(f"uv export failed (exit code {result.exit_code})", detail=result.stderr.strip())
        await self._touch(env)
        return ExportView(env, record.pyproject_toml, record.uv_lock, result.stdout)

    async def _touch(self, env: EnvId) -> None:
        """Record use (for cleanup). Not under the env lock: an env deleted meanwhile stays deleted."""
        now = time.time()
        await self.store.run(lambda s: repo.touch_env(s, env.key, now))

    # ------------------------------------------------------------------ dependency changes

    async def add_deps(
        self,
        env: EnvId,
        packages: Sequence[str] = (),
        requirements: str = "",
        *,
        deadline: float | None = None,
        fail_if_busy: bool = False,
    ) -> OperationOutcome:
        specs = collect_specs(packages, requirements, allow_direct_references=self.settings.allow_direct_references)
        if not specs:
            raise InvalidArgument("packages: give at least one package to add")

        def command(record: EnvRecord, interpreter: Interpreter) -> list[list[str]]:
            return [["add", "--no-sync", "--python", interpreter.path, *self.uv.index_flags(), *map(str, specs)]]

        return await self._change(env, "add", EventType.DEPENDENCIES_ADDED, specs, command, deadline, fail_if_busy)

    async def update_deps(
        self,
        env: EnvId,
        packages: Sequence[str] = (),
        requirements: str = "",
        *,
        deadline: float | None = None,
        fail_if_busy: bool = False,
    ) -> OperationOutcome:
        """Upgrade the named packages (all when none are named) to the newest allowed versions.

        A name with a version constraint (``alpha>=2``) also replaces the declared spec.
        """
        specs = collect_specs(packages, requirements, allow_direct_references=self.settings.allow_direct_references)

        def command(record: EnvRecord, interpreter: Interpreter) -> list[list[str]]:
            declared = proj.declared_names(record.pyproject_toml)
            locked = {canonicalize_name(p.name) for p in proj.locked_packages(record.uv_lock)}
            for spec in specs:
                name = canonicalize_name(spec.name)
                if name not in declared and name not in locked:
                    raise NotFound(
                        f"packages: {spec.name!r} is not a dependency of environment {env}; use add to add it"
                    )
            upgrades = [a for s in specs for a in ("--upgrade-package", s.name)] or ["--upgrade"]
            base = ["--python", interpreter.path, *self.uv.index_flags(), *upgrades]
            constrained = [str(s) for s in specs if s.specifier or s.extras or s.marker or s.url]
            if constrained:
                return [["add", "--no-sync", *base, *constrained]]
            return [["lock", *base]]

        return await self._change(env, "update", EventType.DEPENDENCIES_UPDATED, specs, command, deadline, fail_if_busy)

    async def remove_deps(
        self,
        env: EnvId,
        packages: Sequence[str],
        *,
        deadline: float | None = None,
        fail_if_busy: bool = False,
    ) -> OperationOutcome:
        if not packages:
            raise InvalidArgument("packages: give at least one package to remove")
        names = []
        for i, text in enumerate(packages):
            spec = parse_spec(f"packages[{i}]", text)
            if spec.specifier or spec.extras or spec.url or spec.marker:
                raise InvalidArgument(f"packages[{i}]: give a bare package name to remove, not {text!r}")
            names.append(spec)

        def command(record: EnvRecord, interpreter: Interpreter) -> list[list[str]]:
            declared = proj.declared_names(record.pyproject_toml)
            missing = [n.name for n in names if canonicalize_name(n.name) not in declared]
            if missing:
                raise NotFound(
                    f"packages: {', '.join(map(repr, missing))} "
                    f"{'is' if len(missing) == 1 else 'are'} not declared in environment {env}"
                )
            return [
                [
                    "remove",
                    "--no-sync",
                    "--python",
                    interpreter.path,
                    *self.uv.index_flags(),
                    *(n.name for n in names),
                ]
            ]

        return await self._change(env, "remove", EventType.DEPENDENCIES_REMOVED, names, command, deadline, fail_if_busy)

    async def _change(
        self,
        env: EnvId,
        operation: str,
        event_type: EventType,
        specs: Sequence[Requirement],
        command: Callable[[EnvRecord, Interpreter], list[list[str]]],
        deadline: float | None,
        fail_if_busy: bool,
    ) -> OperationOutcome:
        key = env.key
        details: dict[str, Any] = {"packages": [str(s) for s in specs]}
        async with self.env_locks.hold(
            env, holder=operation, deadline=deadline, fail_if_busy=fail_if_busy, label=str(env)
        ):
            before = await self._ready_record(env, operation)
            interpreter = await self._interpreter_of(before, deadline)
            commands = command(before, interpreter)  # validation errors happen before any audit
            op_id = await self._commit(lambda s, _e: repo.start_operation(s, key, operation, details))
            log: list[UvResult] = []
            try:
                async with self._staging(operation, before.pyproject_toml, before.uv_lock) as staging:
                    for args in commands:
                        await self._uv_checked(args, staging, log, None, deadline, resolving=True)
                    pyproject = (staging / PYPROJECT).read_text()
                    lock = (staging / LOCKFILE).read_text()
                staged = _Staged(pyproject, lock, interpreter, build_id_for(lock, interpreter.identity), log)
                changes = proj.version_changes(before.uv_lock, lock)

                def commit(session: Session, events: list[EventRecord]) -> tuple[EnvRecord, OperationRecord]:
                    now = time.time()
                    record = repo.upsert_env(
                        session,
                        key,
                        status=EnvStatus.READY,
                        build_id=staged.build_id,
                        pyproject_toml=pyproject,
                        uv_lock=lock,
                        error="",
                        updated_at=now,
                        last_used_at=now,
                    )
                    op = repo.finish_operation(
                        session,
                        op_id,
                        status=OpStatus.SUCCEEDED,
                        stdout=staged.stdout,
                        stderr=staged.stderr,
                        exit_code=0,
                        details={"build_id": staged.build_id, "changes": changes},
                    )
                    events.append(
                        repo.add_event(
                            session,
                            event_type,
                            key,
                            {**details, "changes": changes, "build_id": staged.build_id},
                        )
                    )
                    return record, op

                record, op = await self._build_and_commit(env, staged, commit, before, None, deadline)
            except BaseException as exc:
                await self._fail_operation(op_id, exc, log)
                raise
        self._observe(op)
        if before.build_id != record.build_id:
            await self._release_builds()
        return OperationOutcome(self._view(env, record), op, changes)

    # ------------------------------------------------------------------ sync

    async def sync(self, env: EnvId, *, deadline: float | None = None, fail_if_busy: bool = False) -> OperationOutcome:
        """Make the venv match the committed lock: rebuild a missing build, repair a tampered one."""
        key = env.key
        async with self.env_locks.hold(
            env, holder="sync", deadline=deadline, fail_if_busy=fail_if_busy, label=str(env)
        ):
            before = await self._ready_record(env, "sync", allow_broken=True)
            op_id = await self._commit(lambda s, _e: repo.start_operation(s, key, "sync", {}))
            log: list[UvResult] = []
            try:
                interpreter = await self._interpreter_of(before, deadline)
                build_id = build_id_for(before.uv_lock, interpreter.identity)
                async with (
                    self.builds.locks.hold(build_id, holder="sync"),
                    self._staging("sync", before.pyproject_toml, before.uv_lock) as staging,
                ):
                    result = await self.builds.ensure(
                        build_id, staging, interpreter.path, deadline=deadline, repair=True
                    )
                    if result is not None:
                        log.append(result)
                    await asyncio.to_thread(self._materialize, env, before.pyproject_toml, before.uv_lock, build_id)

                    def commit(session: Session, events: list[EventRecord]) -> tuple[EnvRecord, OperationRecord]:
                        now = time.time()
                        record = repo.upsert_env(
                            session,
                            key,
                            status=EnvStatus.READY,
                            build_id=build_id,
                            interpreter=interpreter.path,
                            error="",
                            updated_at=now,
                            last_used_at=now,
                        )
                        op = repo.finish_operation(
                            session,
                            op_id,
                            status=OpStatus.SUCCEEDED,
                            stdout=result.stdout if result else "",
                            stderr=result.stderr if result else "",
                            exit_code=0,
                            details={"build_id": build_id, "was": before.status},
                        )
                        events.append(
                            repo.add_event(
                                session,
                                EventType.ENVIRONMENT_SYNCED,
                                key,
                                {"build_id": build_id, "was": before.status},
                            )
                        )
                        return record, op

                    record, op = await self._commit(commit)
            except BaseException as exc:
                await self._fail_operation(op_id, exc, log)
                raise
        self._observe(op)
        if before.build_id != record.build_id:
            await self._release_builds()
        return OperationOutcome(self._view(env, record), op)

    # ------------------------------------------------------------------ run code

    async def run_code(
        self,
        env: EnvId,
        code: str,
        *,
        timeout: float = 0,
        deadline: float | None = None,
        fail_if_busy: bool = False,
    ) -> RunOutcome:
        """Run Python ``code`` with the env's interpreter, in the env folder, in a process group
        of its own: killed with its children when ``timeout`` (default: the setting) or the call's
        deadline passes. Audited as operation ``run``; a non-zero exit is a FAILED run, not an error."""
        if not self.settings.run_code_enabled:
            raise Unimplemented("RunCode is disabled on this daemon (ENVPLANE_RUN_CODE_ENABLED=false)")
        if not code.strip():
            raise InvalidArgument("code is empty")
        if timeout < 0:
            raise InvalidArgument(f"timeout must be >= 0 seconds (0 = the default), got {timeout}")
        limit = timeout or self.settings.run_code_timeout_seconds
        by_deadline = False  # which limit stops the code, for the message
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded("the call's deadline passed before the code could start")
            by_deadline = remaining < limit
            limit = min(limit, remaining)
        key = env.key
        async with self.env_locks.hold(env, holder="run", deadline=deadline, fail_if_busy=fail_if_busy, label=str(env)):
            await self._ready_record(env, "run code in")
            details = {"timeout_s": round(limit, 3), "code_bytes": len(code.encode())}
            op_id = await self._commit(lambda s, _e: repo.start_operation(s, key, "run", details))
            result: ProcessResult | None = None
            try:
                result = await self._run_python(env, code, op_id, limit)
                if result.timed_out:
                    why = (
                        "the call's deadline passed while the code ran"
                        if by_deadline
                        else f"the code ran longer than its timeout of {limit:g} s"
                    )
                    raise DeadlineExceeded(f"{why}; its process group was killed", detail=result.stderr[-4000:])

                done = result

                def finish(session: Session, _events: list[EventRecord]) -> OperationRecord:
                    repo.touch_env(session, key, time.time())
                    return repo.finish_operation(
                        session,
                        op_id,
                        status=OpStatus.SUCCEEDED if done.exit_code == 0 else OpStatus.FAILED,
                        stdout=done.stdout,
                        stderr=done.stderr,
                        exit_code=done.exit_code,
                        error="" if done.exit_code == 0 else f"the code exited with code {done.exit_code}",
                    )

                op = await self._commit(finish)
            except BaseException as exc:
                await self._fail_operation(op_id, exc, [result] if result else [])
                raise
        self._observe(op)
        return RunOutcome(env, op, done.exit_code, done.stdout, done.stderr)

    async def _run_python(self, env: EnvId, code: str, op_id: int, timeout: float) -> ProcessResult:
        """The code goes in a file (argv has a size limit); the env's venv is activated for it."""
        script = self.layout.tmp / f"run-{op_id}.py"
        await asyncio.to_thread(write_atomic, script, code)
        venv = self.layout.venv_link(env)
        variables = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))}
        variables.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        try:
            return await run_group(
                [str(self.layout.python_executable(env)), str(script)],
                label="code",
                run_dir=self.uv.run_dir,
                timeout=timeout,
                cwd=self.layout.project_dir(env),
                env=variables,
            )
        finally:
            script.unlink(missing_ok=True)

    # ------------------------------------------------------------------ delete and cleanup

    async def delete(self, env: EnvId, *, deadline: float | None = None, fail_if_busy: bool = False) -> OperationRecord:
        key = env.key
        async with self.env_locks.hold(
            env, holder="delete", deadline=deadline, fail_if_busy=fail_if_busy, label=str(env)
        ):
            record = await self._record(env)

            def commit(session: Session, events: list[EventRecord]) -> OperationRecord:
                op_id = repo.start_operation(session, key, "delete", {"status": record.status})
                repo.delete_env(session, key)
                events.append(
                    repo.add_event(session, EventType.ENVIRONMENT_DELETED, key, {"build_id": record.build_id})
                )
                return repo.finish_operation(session, op_id, status=OpStatus.SUCCEEDED, exit_code=0)

            op = await self._commit(commit)
            await asyncio.to_thread(self._remove_project, env)
        self._observe(op)
        await self._release_builds()
        return op

    async def cleanup(self, idle_hours: float, *, dry_run: bool = False) -> CleanupOutcome:
        """Delete envs unused for ``idle_hours`` (busy ones are skipped) and unreferenced builds."""
        if not idle_hours > 0:
            raise InvalidArgument(
                f"idle_hours must be greater than 0, got {idle_hours} (0 would delete every environment)"
            )
        checked_at = time.time()
        cutoff = checked_at - idle_hours * 3600
        records = await self.store.run(repo.all_envs)
        candidates = [EnvId.of(r) for r in records if r.last_used_at < cutoff and r.status != EnvStatus.CREATING]
        removed: list[EnvId] = []
        for env in candidates:
            if self.env_locks.busy(env):
                continue
            if not dry_run:
                try:
                    await self.delete(env, fail_if_busy=True)
                except (NotFound, FailedPrecondition):
                    continue
            removed.append(env)
        builds = await self.builds.collect(self._references, dry_run=dry_run)
        payload = {
            "idle_hours": idle_hours,
            "dry_run": dry_run,
            "removed": [str(e) for e in removed],
            "builds_removed": builds,
        }

        def commit(session: Session, events: list[EventRecord]) -> OperationRecord:
            op_id = repo.start_operation(session, ("", "", ""), "cleanup", payload)
            events.append(repo.add_event(session, EventType.ENVIRONMENT_CLEANUP_COMPLETED, ("", "", ""), payload))
            return repo.finish_operation(session, op_id, status=OpStatus.SUCCEEDED, exit_code=0)

        op = await self._commit(commit)
        self._observe(op)
        return CleanupOutcome(removed, builds, dry_run, checked_at, op.id)

    # ------------------------------------------------------------------ audit and events

    async def operations(
        self,
        *,
        workflow_id: str = "",
        node_id: str = "",
        version_id: str | None = None,
        operation: str = "",
        status: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[OperationRecord]:
        if status and status not in OpStatus.__members__:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(OpStatus.__members__)}")
        offset, limit = resolve_window(
            page_size,
            page_token,
            default=self.settings.default_page_size,
            maximum=self.settings.max_page_size,
        )
        records, total = await self.store.run(
            lambda s: repo.list_operations(
                s,
                workflow_id=workflow_id,
                node_id=node_id,
                version_id=version_id,
                operation=operation,
                status=status,
                offset=offset,
                limit=limit,
            )
        )
        return make_page(records, total, offset, limit)

    async def delete_operations(
        self, *, workflow_id: str = "", node_id: str = "", before: float | None = None
    ) -> OperationsDeleted:
        """Delete finished audit records matching the filter (RUNNING ones are kept)."""
        count, nodes = await self.store.run(
            lambda s: repo.delete_operations(s, workflow_id=workflow_id, node_id=node_id, before=before)
        )
        return OperationsDeleted(count, [n for n in nodes if n])

    def watch(self, after: int = 0, *, types: Sequence[str] = (), follow: bool = True) -> AsyncIterator[EventRecord]:
        if after < 0:
            raise InvalidArgument(f"after_cursor must be >= 0, got {after}")
        unknown = [t for t in types if t not in {e.value for e in EventType}]
        if unknown:
            raise InvalidArgument(
                f"types: unknown event type(s) {', '.join(map(repr, unknown))}; known: "
                + ", ".join(e.value for e in EventType)
            )
        return self.bus.watch(after, types=types, follow=follow)
