"""The read side: one env's status, listings, dependencies, and exporting the project files."""

from __future__ import annotations

import time

from envplane.core.pagination import Page, make_page, resolve_window
from envplane.environments.identity import EnvId
from envplane.environments.service import project as proj
from envplane.environments.service import queries
from envplane.environments.service.engine import OperationEngine
from envplane.environments.service.views import DepsView, EnvStatus, EnvView, ExportView
from envplane.errors import InvalidArgument, echo


async def status(engine: OperationEngine, env: EnvId) -> EnvView:
    return engine.view(env, await engine.record(env))


async def list_envs(
    engine: OperationEngine,
    *,
    workflow_id: str = "",
    node_id: str = "",
    status: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> Page[EnvView]:
    if status and status not in EnvStatus.__members__:
        raise InvalidArgument(f"status {echo(status)} is not one of {', '.join(EnvStatus.__members__)}")
    settings = engine.settings
    offset, limit = resolve_window(
        page_size, page_token, default=settings.default_page_size, maximum=settings.max_page_size
    )
    records, total = await engine.core.store.run(
        lambda s: queries.list_envs(
            s, workflow_id=workflow_id, node_id=node_id, status=status, offset=offset, limit=limit
        )
    )
    return make_page([engine.view(EnvId.of(r), r) for r in records], total, offset, limit)


async def list_deps(engine: OperationEngine, env: EnvId) -> DepsView:
    record = await engine.record(env)
    return DepsView(env, proj.declared_dependencies(record.pyproject_toml), proj.locked_packages(record.uv_lock))


async def export(engine: OperationEngine, env: EnvId, *, deadline: float | None = None) -> ExportView:
    record = await engine.ready_record(env, "export", allow_broken=True)
    args = ["export", "--frozen", "--format", "requirements-txt", "--no-header", "--no-emit-project"]
    async with engine.staging("export", record.pyproject_toml, record.uv_lock) as staging:
        result = await engine.run_uv(args, staging, [], deadline=deadline, resolving=False)
    # Record use (for cleanup). Not under the env lock: an env deleted meanwhile stays deleted.
    now = time.time()
    await engine.core.store.run(lambda s: queries.touch_env(s, env.key, now))
    return ExportView(env, record.pyproject_toml, record.uv_lock, result.stdout)
