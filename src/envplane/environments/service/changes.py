"""Dependency changes: add, update, remove. Each is one uv command in a staging copy of the
env's project, then a new build, then one commit; a failure leaves the env exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envplane.core.audit import OperationRecord, OpStatus
from envplane.core.capability import Tx
from envplane.environments.identity import EnvId
from envplane.environments.service import project as proj
from envplane.environments.service import queries
from envplane.environments.service.builds import build_id_for
from envplane.environments.service.engine import OperationEngine, Staged, subject_of
from envplane.environments.service.events import EventType
from envplane.environments.service.interpreters import Interpreter
from envplane.environments.service.records import EnvRecord
from envplane.environments.service.uv import UvResult
from envplane.environments.service.views import OperationOutcome
from envplane.environments.specs import collect_specs, parse_spec
from envplane.errors import InvalidArgument, NotFound

# The uv command of a change, from the env's committed record and its interpreter; it may
# raise (NotFound for a package the env does not have) before anything is audited.
Command = Callable[[EnvRecord, Interpreter], list[str]]


async def add_deps(
    engine: OperationEngine,
    env: EnvId,
    packages: Sequence[str] = (),
    requirements: str = "",
    *,
    deadline: float | None = None,
    fail_if_busy: bool = False,
) -> OperationOutcome:
    specs = collect_specs(packages, requirements, allow_direct_references=engine.settings.allow_direct_references)
    if not specs:
        raise InvalidArgument("packages: give at least one package to add")

    def command(record: EnvRecord, interpreter: Interpreter) -> list[str]:
        return ["add", "--no-sync", "--python", interpreter.path, *engine.uv.index_flags(), *map(str, specs)]

    return await _change(engine, env, "add", EventType.DEPENDENCIES_ADDED, specs, command, deadline, fail_if_busy)


async def update_deps(
    engine: OperationEngine,
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
    specs = collect_specs(packages, requirements, allow_direct_references=engine.settings.allow_direct_references)

    def command(record: EnvRecord, interpreter: Interpreter) -> list[str]:
        declared = proj.declared_names(record.pyproject_toml)
        locked = {canonicalize_name(p.name) for p in proj.locked_packages(record.uv_lock)}
        for spec in specs:
            name = canonicalize_name(spec.name)
            if name not in declared and name not in locked:
                raise NotFound(f"packages: {spec.name!r} is not a dependency of environment {env}; use add to add it")
        upgrades = [a for s in specs for a in ("--upgrade-package", s.name)] or ["--upgrade"]
        base = ["--python", interpreter.path, *engine.uv.index_flags(), *upgrades]
        constrained = [str(s) for s in specs if s.specifier or s.extras or s.marker or s.url]
        return ["add", "--no-sync", *base, *constrained] if constrained else ["lock", *base]

    return await _change(engine, env, "update", EventType.DEPENDENCIES_UPDATED, specs, command, deadline, fail_if_busy)


async def remove_deps(
    engine: OperationEngine,
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

    def command(record: EnvRecord, interpreter: Interpreter) -> list[str]:
        declared = proj.declared_names(record.pyproject_toml)
        missing = [n.name for n in names if canonicalize_name(n.name) not in declared]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise NotFound(f"packages: {', '.join(map(repr, missing))} {verb} not declared in environment {env}")
        return ["remove", "--no-sync", "--python", interpreter.path, *engine.uv.index_flags(), *(n.name for n in names)]

    return await _change(engine, env, "remove", EventType.DEPENDENCIES_REMOVED, names, command, deadline, fail_if_busy)


async def _change(
    engine: OperationEngine,
    env: EnvId,
    operation: str,
    event_type: EventType,
    specs: Sequence[Requirement],
    command: Command,
    deadline: float | None,
    fail_if_busy: bool,
) -> OperationOutcome:
    details: dict[str, Any] = {"packages": [str(s) for s in specs]}
    async with engine.env_locks.hold(env, holder=operation, deadline=deadline, fail_if_busy=fail_if_busy):
        before = await engine.ready_record(env, operation)
        interpreter = await engine.interpreter_of(before, deadline)
        args = command(before, interpreter)  # validation errors happen before any audit
        op_id = await engine.start_operation(env, operation, details)
        log: list[UvResult] = []
        try:
            pyproject, lock = await engine.resolve(
                operation, args, log, pyproject=before.pyproject_toml, lock=before.uv_lock, deadline=deadline
            )
            staged = Staged(pyproject, lock, interpreter, build_id_for(lock, interpreter.identity), log)
            changes = proj.version_changes(before.uv_lock, lock)

            def commit(tx: Tx) -> tuple[EnvRecord, OperationRecord]:
                record = queries.mark_ready(
                    tx.db,
                    env.key,
                    build_id=staged.build_id,
                    pyproject_toml=pyproject,
                    uv_lock=lock,
                )
                op = tx.finish(
                    op_id,
                    status=OpStatus.SUCCEEDED,
                    stdout=staged.stdout,
                    stderr=staged.stderr,
                    exit_code=0,
                    details={"build_id": staged.build_id, "changes": changes},
                )
                tx.event(event_type, subject_of(env), {**details, "changes": changes, "build_id": staged.build_id})
                return record, op

            record, op = await engine.build_and_commit(env, staged, commit, restore=before, deadline=deadline)
        except BaseException as exc:
            await engine.fail_operation(op_id, exc, log)
            raise
    engine.core.observe(op)
    if before.build_id != record.build_id:
        await engine.release_builds()
    return OperationOutcome(engine.view(env, record), op, changes)
