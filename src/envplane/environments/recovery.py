"""Start-up reconciliation: make disk and database agree after a crash or ``kill -9``.

The database holds the committed truth (see ``service.py``). At start:

- uv process groups the dead daemon left running are killed first (they could still write);
- operations still RUNNING were interrupted: they are recorded as FAILED;
- envs still CREATING never committed: they become FAILED (with an event) and lose their folder;
- staging folders and incomplete builds (no marker) are removed;
- every READY/BROKEN env gets its pyproject, lock and ``.venv`` link rewritten from its row; an
  env whose build is gone is BROKEN (sync rebuilds it), one whose build is back is READY;
- env folders with no row (an interrupted delete) are removed, and so are unreferenced builds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from envplane.environments.identity import EnvId
from envplane.environments.views import EnvStatus
from envplane.events import EventType
from envplane.store import EventRecord
from envplane.store import repository as repo

if TYPE_CHECKING:
    from envplane.environments.engine import OperationEngine

logger = logging.getLogger("envplane.recovery")

INTERRUPTED = "interrupted: the daemon stopped before the operation finished"


@dataclass
class RecoveryReport:
    orphans_killed: list[int] = field(default_factory=list)
    operations_failed: int = 0
    creates_failed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    orphan_folders_removed: list[str] = field(default_factory=list)
    builds_removed: list[str] = field(default_factory=list)


async def recover(service: OperationEngine) -> RecoveryReport:
    layout = service.layout
    report = RecoveryReport()
    report.orphans_killed = service.uv.kill_orphans()
    await asyncio.to_thread(shutil.rmtree, layout.tmp, True)
    layout.create_dirs()

    def fail_interrupted(session: Session, events: list[EventRecord]) -> None:
        report.operations_failed = len(repo.fail_running_operations(session, INTERRUPTED))
        for record in repo.all_envs(session):
            if record.status != EnvStatus.CREATING:
                continue
            env = EnvId.of(record)
            repo.upsert_env(session, env.key, status=EnvStatus.FAILED, error=INTERRUPTED, updated_at=time.time())
            events.append(
                repo.add_event(session, EventType.ENVIRONMENT_CREATION_FAILED, env.key, {"error": INTERRUPTED})
            )
            report.creates_failed.append(str(env))

    await service._commit(fail_interrupted)

    for build_id in service.builds.on_disk():
        if not layout.is_complete(build_id):
            await asyncio.to_thread(shutil.rmtree, layout.build_dir(build_id), True)
            report.builds_removed.append(build_id)

    records = await service.store.run(repo.all_envs)
    known = {EnvId.of(r): r for r in records}
    for env, record in known.items():
        if record.status == EnvStatus.FAILED:
            await asyncio.to_thread(service._remove_project, env)
            continue
        complete = bool(record.build_id) and layout.is_complete(record.build_id)
        status = EnvStatus.READY if complete else EnvStatus.BROKEN
        build_id = record.build_id if complete else ""
        await asyncio.to_thread(service._materialize, env, record.pyproject_toml, record.uv_lock, build_id)
        if not complete:
            report.broken.append(str(env))
        if status != record.status:
            error = "" if complete else f"venv build {record.build_id or '?'} is missing; run sync to rebuild it"
            update = functools.partial(repo.upsert_env, key=env.key, status=status, error=error, updated_at=time.time())
            await service.store.run(update)
        report.restored.append(str(env))

    for env in layout.project_dirs_on_disk():
        if env not in known:
            await asyncio.to_thread(service._remove_project, env)
            report.orphan_folders_removed.append(str(env))

    report.builds_removed += await service._release_builds()
    logger.info("recovery: %s", report)
    return report
