"""Start-up reconciliation: make disk and database agree after a crash or ``kill -9``.

The database holds the committed truth (see ``engine.py``). Before this runs, the core has
killed the process groups the dead daemon left running, wiped ``tmp/`` and recorded the
operations still RUNNING as FAILED (``Core.recover``). Then:

- envs still CREATING never committed: they become FAILED (with an event) and lose their folder;
- incomplete builds (no marker) are removed;
- every READY/BROKEN env gets its pyproject, lock and ``.venv`` link rewritten from its row; an
  env whose build is gone is BROKEN (sync rebuilds it), one whose build is back is READY;
- env folders with no row (an interrupted delete) are removed, and so are unreferenced builds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from dataclasses import dataclass, field

from envplane.core.capability import INTERRUPTED, Tx
from envplane.environments.identity import EnvId
from envplane.environments.service import queries
from envplane.environments.service.engine import OperationEngine, subject_of
from envplane.environments.service.events import EventType
from envplane.environments.service.views import EnvStatus

logger = logging.getLogger("envplane.recovery")


@dataclass
class RecoveryReport:
    creates_failed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    orphan_folders_removed: list[str] = field(default_factory=list)
    builds_removed: list[str] = field(default_factory=list)

    @property
    def unclean(self) -> bool:
        """Did the previous daemon stop in the middle of something?"""
        return bool(self.creates_failed or self.broken)


async def recover(engine: OperationEngine) -> RecoveryReport:
    layout = engine.layout
    report = RecoveryReport()
    await asyncio.to_thread(layout.create_dirs)

    def fail_interrupted(tx: Tx) -> None:
        for record in queries.all_envs(tx.db):
            if record.status != EnvStatus.CREATING:
                continue
            env = EnvId.of(record)
            queries.mark_status(tx.db, env.key, EnvStatus.FAILED, INTERRUPTED)
            tx.event(EventType.ENVIRONMENT_CREATION_FAILED, subject_of(env), {"error": INTERRUPTED})
            report.creates_failed.append(str(env))

    await engine.core.commit(fail_interrupted)

    for build_id in engine.builds.on_disk():
        if not layout.is_complete(build_id):
            await asyncio.to_thread(shutil.rmtree, layout.build_dir(build_id), True)
            report.builds_removed.append(build_id)

    records = await engine.core.store.run(queries.all_envs)
    known = {EnvId.of(r): r for r in records}
    for env, record in known.items():
        if record.status == EnvStatus.FAILED:
            await asyncio.to_thread(engine.remove_project, env)
            continue
        complete = bool(record.build_id) and layout.is_complete(record.build_id)
        status = EnvStatus.READY if complete else EnvStatus.BROKEN
        build_id = record.build_id if complete else ""
        await asyncio.to_thread(engine.materialize, env, record.pyproject_toml, record.uv_lock, build_id)
        if not complete:
            report.broken.append(str(env))
        if status != record.status:
            error = "" if complete else f"venv build {record.build_id or '?'} is missing; run sync to rebuild it"
            await engine.core.store.run(functools.partial(queries.mark_status, key=env.key, status=status, error=error))
        report.restored.append(str(env))

    for env in layout.project_dirs_on_disk():
        if env not in known:
            await asyncio.to_thread(engine.remove_project, env)
            report.orphan_folders_removed.append(str(env))

    report.builds_removed += await engine.release_builds()
    logger.info("recovery: %s", report)
    return report
