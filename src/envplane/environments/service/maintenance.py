"""Keeping environments right and the data dir small: sync (rebuild or repair a venv from its
lock), delete, and cleanup (envs idle for a while, builds nothing uses)."""

from __future__ import annotations

import asyncio
import time

from envplane.core.audit import OperationRecord, OpStatus
from envplane.core.capability import Tx
from envplane.environments.identity import EnvId
from envplane.environments.service import queries
from envplane.environments.service.builds import build_id_for
from envplane.environments.service.engine import ALL_ENVIRONMENTS, OperationEngine, subject_of
from envplane.environments.service.events import EventType
from envplane.environments.service.records import EnvRecord
from envplane.environments.service.uv import UvResult
from envplane.environments.service.views import CleanupOutcome, EnvStatus, OperationOutcome
from envplane.errors import FailedPrecondition, InvalidArgument, NotFound


async def sync(
    engine: OperationEngine, env: EnvId, *, deadline: float | None = None, fail_if_busy: bool = False
) -> OperationOutcome:
    """Make the venv match the committed lock: rebuild a missing build, repair a tampered one."""
    async with engine.env_locks.hold(env, holder="sync", deadline=deadline, fail_if_busy=fail_if_busy):
        before = await engine.ready_record(env, "sync", allow_broken=True)
        op_id = await engine.start_operation(env, "sync")
        log: list[UvResult] = []
        try:
            interpreter = await engine.interpreter_of(before, deadline)
            build_id = build_id_for(before.uv_lock, interpreter.identity)
            async with (
                engine.builds.locks.hold(build_id, holder="sync"),
                engine.staging("sync", before.pyproject_toml, before.uv_lock) as staging,
            ):
                result = await engine.builds.ensure(build_id, staging, interpreter.path, deadline=deadline, repair=True)
                if result is not None:
                    log.append(result)
                await asyncio.to_thread(engine.materialize, env, before.pyproject_toml, before.uv_lock, build_id)

                def commit(tx: Tx) -> tuple[EnvRecord, OperationRecord]:
                    record = queries.mark_ready(
                        tx.db,
                        env.key,
                        build_id=build_id,
                        interpreter=interpreter.path,
                    )
                    op = tx.finish(
                        op_id,
                        status=OpStatus.SUCCEEDED,
                        stdout=result.stdout if result else "",
                        stderr=result.stderr if result else "",
                        exit_code=0,
                        details={"build_id": build_id, "was": before.status},
                    )
                    tx.event(
                        EventType.ENVIRONMENT_SYNCED, subject_of(env), {"build_id": build_id, "was": before.status}
                    )
                    return record, op

                record, op = await engine.core.commit(commit)
        except BaseException as exc:
            await engine.fail_operation(op_id, exc, log)
            raise
    engine.core.observe(op)
    if before.build_id != record.build_id:
        await engine.release_builds()
    return OperationOutcome(engine.view(env, record), op)


async def delete(
    engine: OperationEngine, env: EnvId, *, deadline: float | None = None, fail_if_busy: bool = False
) -> OperationRecord:
    async with engine.env_locks.hold(env, holder="delete", deadline=deadline, fail_if_busy=fail_if_busy):
        record = await engine.record(env)

        def commit(tx: Tx) -> OperationRecord:
            subject = subject_of(env)
            op_id = tx.start(subject, "delete", {"status": record.status})
            queries.delete_env(tx.db, env.key)
            tx.event(EventType.ENVIRONMENT_DELETED, subject, {"build_id": record.build_id})
            return tx.finish(op_id, status=OpStatus.SUCCEEDED, exit_code=0)

        op = await engine.core.commit(commit)
        await asyncio.to_thread(engine.remove_project, env)
    engine.core.observe(op)
    await engine.release_builds()
    return op


async def cleanup(engine: OperationEngine, idle_hours: float, *, dry_run: bool = False) -> CleanupOutcome:
    """Delete envs unused for ``idle_hours`` (busy ones are skipped) and unreferenced builds."""
    if not idle_hours > 0:  # also refuses NaN
        raise InvalidArgument(f"idle_hours must be greater than 0, got {idle_hours} (0 would delete every environment)")
    checked_at = time.time()
    cutoff = checked_at - idle_hours * 3600
    records = await engine.core.store.run(queries.all_envs)
    candidates = [EnvId.of(r) for r in records if r.last_used_at < cutoff and r.status != EnvStatus.CREATING]
    removed: list[EnvId] = []
    for env in candidates:
        if engine.env_locks.busy(env):
            continue
        if not dry_run:
            try:
                await delete(engine, env, fail_if_busy=True)
            except (NotFound, FailedPrecondition):
                continue
        removed.append(env)
    builds = await engine.builds.collect(engine.references, dry_run=dry_run)
    payload = {
        "idle_hours": idle_hours,
        "dry_run": dry_run,
        "removed": [str(e) for e in removed],
        "builds_removed": builds,
    }

    def commit(tx: Tx) -> OperationRecord:
        op_id = tx.start(ALL_ENVIRONMENTS, "cleanup", payload)
        tx.event(EventType.ENVIRONMENT_CLEANUP_COMPLETED, ALL_ENVIRONMENTS, payload)
        return tx.finish(op_id, status=OpStatus.SUCCEEDED, exit_code=0)

    engine.core.observe(await engine.core.commit(commit))
    return CleanupOutcome(removed, builds, dry_run, checked_at)
