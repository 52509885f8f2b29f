"""The workers capability's service: the daemon's named pools, their definitions, their audit.

A pool is declared against an environment (its interpreter runs the workers; its project
folder is their working directory), stored, and started. Definitions survive the daemon:
``start()`` brings every stored pool back with fresh workers (the core has already killed any
worker a dead daemon left, by its ``run/`` marker). Lifecycle changes (create, scale, delete)
are audited and evented with subject ``pool/<name>``; so are worker exits (the event, not an
operation); single calls are only counted in the metrics.

The environments capability is reached through :class:`EnvironmentAccess`, a protocol the
daemon fulfils with the environments service at composition: capabilities never import each
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from envplane.core.audit import OpStatus
from envplane.core.capability import Core, Tx
from envplane.core.locks import KeyedLocks
from envplane.errors import (
    AlreadyExists,
    DeadlineExceeded,
    EnvplaneError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PoolFailed,
)
from envplane.workers.service import queries
from envplane.workers.service.config import PoolConfig, check_pool_name
from envplane.workers.service.events import POOL, EventType
from envplane.workers.service.logs import LogLine
from envplane.workers.service.observability import DaemonObserver, WorkerMetrics
from envplane.workers.service.pool import Pool
from envplane.workers.service.queries import StoredPool, subject_of
from envplane.workers.service.views import PoolInfo, PoolState

logger = logging.getLogger("envplane.workers")


@dataclass(frozen=True)
class EnvTarget:
    """What a pool needs of its environment."""

    python: str  # the env's interpreter
    project_dir: str  # the workers' default working directory


@dataclass(frozen=True)
class EnvChange:
    """An environment's packages or venv changed (``deleted``: it is gone)."""

    workflow_id: str
    node_id: str
    version_id: str
    why: str  # the environments event, e.g. "DependenciesAdded"
    deleted: bool = False


class EnvironmentAccess(Protocol):
    """The environments capability, as the workers see it (fulfilled in ``server.compose``)."""

    async def target(self, workflow_id: str, node_id: str, version_id: str) -> EnvTarget:
        """The env's interpreter; NotFound / FailedPrecondition (not READY) otherwise."""
        ...

    async def add_packages(
        self, workflow_id: str, node_id: str, version_id: str, packages: list[str], deadline: float | None
    ) -> None: ...

    def changes(self) -> AsyncIterator[EnvChange]:
        """Every change to any env from now on, as it is committed (until the daemon stops)."""
        ...


@dataclass(frozen=True)
class PoolView:
    name: str
    workflow_id: str
    node_id: str
    version_id: str
    created_at: float
    info: PoolInfo


@dataclass
class _Managed:
    stored: StoredPool
    pool: Pool


class WorkerService:
    def __init__(self, core: Core, environments: EnvironmentAccess) -> None:
        self.core = core
        self.environments = environments
        core.subject_kinds.add(POOL)
        core.event_types.update(EventType)
        self.metrics = WorkerMetrics(core.metrics.registry, self._pool_infos)
        core.metrics.add_refresher(self.metrics.refresh)
        self._observer = DaemonObserver(self, self.metrics)
        self._pools: dict[str, _Managed] = {}
        self._locks = KeyedLocks("pool")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follower: asyncio.Task[None] | None = None
        self._closed = False

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Bring back every stored pool (fresh workers, not awaited); returns how many."""
        for stored in await self.core.store.run(queries.all_pools):
            try:
                target = await self.environments.target(stored.workflow_id, stored.node_id, stored.version_id)
            except EnvplaneError as exc:
                pool = self._pool(stored, EnvTarget("", ""))
                pool.failure = PoolFailed(f"pool {stored.name!r} cannot start: {exc.message}")
                pool.state = PoolState.FAILED
                self._pools[stored.name] = _Managed(stored, pool)
                logger.warning("pool %s not started: %s", stored.name, exc.message)
                continue
            pool = self._pool(stored, target)
            self._pools[stored.name] = _Managed(stored, pool)
            await pool.start()
        self._follower = asyncio.create_task(self._follow_environments(), name="workers: environment changes")
        return len(self._pools)

    async def _follow_environments(self) -> None:
        """A pool's workers run its env's interpreter and packages: when the env changes, the
        workers are recycled one by one onto the new build (each replacement starts before its
        old worker drains); when the env is deleted, the pool fails, saying so."""
        async for change in self.environments.changes():
            env = (change.workflow_id, change.node_id, change.version_id)
            where = "/".join(part for part in env if part)
            for managed in list(self._pools.values()):
                if _env_of(managed.stored) != env or managed.pool.state is not PoolState.READY:
                    continue
                if change.deleted:
                    await managed.pool.fail(f"pool {managed.stored.name!r}: its environment {where} was deleted")
                else:
                    managed.pool.recycle_all(f"its environment {where} changed ({change.why})")

    async def close(self) -> None:
        """Stop every pool (running calls get the shutdown grace). Safe twice."""
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        grace = self.core.settings.shutdown_grace_seconds
        pools = [managed.pool for managed in self._pools.values()]
        await asyncio.gather(*(pool.close(grace) for pool in pools), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()

    def _pool(self, stored: StoredPool, target: EnvTarget) -> Pool:
        config = stored.config
        if not config.cwd and target.project_dir:
            config = config.replace(cwd=target.project_dir)
        return Pool(
            config,
            python=target.python,
            name=stored.name,
            run_dir=self.core.data_dir.run,
            observer=self._observer,
        )

    def background(self, coro: Any) -> None:
        """Run a bookkeeping commit (an event from a pool callback) owned by this service."""
        if self._closed:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- operations -------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        env: tuple[str, str, str],
        config: PoolConfig,
        *,
        wait_ready: bool = False,
        exist_ok: bool = False,
        deadline: float | None = None,
    ) -> PoolView:
        check_pool_name(name)
        async with self._locks.hold(name, holder="create", deadline=deadline):
            existing = self._pools.get(name)
            if existing is not None:
                if exist_ok and existing.stored.config == config and _env_of(existing.stored) == env:
                    return self._view(existing)
                raise AlreadyExists(
                    f"pool {name!r} exists"
                    + (" with another definition" if exist_ok else "")
                    + "; delete it first or choose another name"
                )
            target = await self.environments.target(*env)
            if config.transport == "grpc":
                await self._ensure_grpcio(env, target, config, deadline)
            now = time.time()
            stored = StoredPool(name, *env, config=config, created_at=now, updated_at=now)
            pool = self._pool(stored, target)
            started = time.time()
            if wait_ready:
                await pool.start()
                try:
                    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
                    await pool.wait_ready(remaining if remaining is not None else config.startup_timeout + 5)
                except BaseException as exc:
                    await pool.close(0)
                    await self._record_failure(stored, "pool.create", exc, started)
                    if isinstance(exc, DeadlineExceeded):
                        raise DeadlineExceeded(f"{exc.message}; the pool was not kept") from None
                    raise
            op = await self.core.commit(lambda tx: self._commit_create(tx, stored, started))
            self.core.observe(op)
            self._pools[name] = _Managed(stored, pool)
            if not wait_ready:
                await pool.start()
            return self._view(self._pools[name])

    def _commit_create(self, tx: Tx, stored: StoredPool, started: float) -> Any:
        queries.insert(tx.db, stored)
        subject = subject_of(stored)
        tx.event(EventType.POOL_CREATED, subject, {"handler": stored.config.handler, "size": stored.config.min_size})
        return tx.record(
            subject,
            "pool.create",
            {"handler": stored.config.handler, "min_size": stored.config.min_size, "max_size": stored.config.max_size},
            started_at=started,
            status=OpStatus.SUCCEEDED,
        )

    async def _ensure_grpcio(
        self, env: tuple[str, str, str], target: EnvTarget, config: PoolConfig, deadline: float | None
    ) -> None:
        if await _imports(target.python, "grpc"):
            return
        where = "/".join(part for part in env if part)
        if not config.add_grpcio:
            raise FailedPrecondition(
                f"the grpc transport needs grpcio in environment {where}, which lacks it: add it "
                f"(`envplane env add {' '.join(p for p in env[:2])} grpcio`), set add_grpcio, or use transport pipe"
            )
        await self.environments.add_packages(*env, ["grpcio"], deadline)

    async def _record_failure(self, stored: StoredPool, operation: str, exc: BaseException, started: float) -> None:
        reason = exc.message if isinstance(exc, EnvplaneError) else f"{type(exc).__name__}: {exc}"
        detail = exc.detail if isinstance(exc, EnvplaneError) else ""

        def record(tx: Tx) -> Any:
            return tx.record(
                subject_of(stored),
                operation,
                {"handler": stored.config.handler},
                started_at=started,
                status=OpStatus.FAILED,
                error=reason,
                stderr=detail,
            )

        op = await self.core.commit_shielded(record)
        if isinstance(exc, EnvplaneError):
            exc.operation_id = op.id
        self.core.observe(op)

    def _managed(self, name: str) -> _Managed:
        check_pool_name(name)
        managed = self._pools.get(name)
        if managed is None:
            known = ", ".join(sorted(self._pools)) or "none"
            raise NotFound(f"no pool named {name!r} (pools: {known})")
        return managed

    async def delete(self, name: str, *, grace: float | None = None) -> tuple[PoolView, int]:
        """Drain within ``grace`` seconds, kill what is left, forget the definition."""
        if grace is not None and not grace >= 0:
            raise InvalidArgument(f"grace must be >= 0 seconds, got {grace}")
        managed = self._managed(name)
        async with self._locks.hold(name, holder="delete"):
            managed = self._managed(name)
            started = time.time()
            view = self._view(managed)
            await managed.pool.close(grace)
            stored = managed.stored

            def commit(tx: Tx) -> Any:
                queries.remove(tx.db, stored.name)
                tx.event(EventType.POOL_DELETED, subject_of(stored), {})
                return tx.record(
                    subject_of(stored), "pool.delete", {"grace_s": grace}, started_at=started, status=OpStatus.SUCCEEDED
                )

            op = await self.core.commit(commit)
            self.core.observe(op)
            del self._pools[name]
            return view, op.id

    async def scale(self, name: str, min_size: int, max_size: int = 0) -> PoolView:
        async with self._locks.hold(name, holder="scale"):
            managed = self._managed(name)
            config = managed.stored.config.replace(min_size=min_size, max_size=max_size)  # checked here
            started = time.time()
            stored = managed.stored
            now = time.time()

            def commit(tx: Tx) -> Any:
                queries.set_config(tx.db, stored.name, config, now)
                payload = {"min_size": config.min_size, "max_size": config.max_size}
                tx.event(EventType.POOL_SCALED, subject_of(stored), payload)
                return tx.record(
                    subject_of(stored), "pool.scale", payload, started_at=started, status=OpStatus.SUCCEEDED
                )

            op = await self.core.commit(commit)
            self.core.observe(op)
            managed.stored = StoredPool(
                stored.name, stored.workflow_id, stored.node_id, stored.version_id, config, stored.created_at, now
            )
            await managed.pool.scale(config.min_size, config.max_size)
            return self._view(managed)

    def list_pools(self) -> list[PoolView]:
        return [self._view(self._pools[name]) for name in sorted(self._pools)]

    async def get(self, name: str, *, wait_ready: float = 0) -> PoolView:
        managed = self._managed(name)
        if wait_ready > 0:
            with contextlib.suppress(PoolFailed):  # the view shows the failure
                await managed.pool.wait_ready(wait_ready)
        return self._view(managed)

    def pool(self, name: str) -> Pool:
        return self._managed(name).pool

    async def execute(
        self,
        name: str,
        command: str,
        args: Any,
        *,
        timeout: float | None = None,
        session: str | None = None,
        idempotent: bool = False,
        deadline: float | None = None,
    ) -> Any:
        pool = self._managed(name).pool
        return await pool.execute(
            command, args, timeout=_timeout(timeout, deadline), session=session, idempotent=idempotent
        )

    def execute_stream(
        self,
        name: str,
        command: str,
        args: Any,
        *,
        timeout: float | None = None,
        session: str | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[Any]:
        pool = self._managed(name).pool
        return pool.execute_stream(command, args, timeout=_timeout(timeout, deadline), session=session)

    def logs(self, name: str, *, worker: int | None, tail: int, follow: bool) -> AsyncIterator[LogLine]:
        return self._managed(name).pool.log.follow(worker, tail, follow)

    async def end_session(self, name: str, session_id: str) -> bool:
        return await self._managed(name).pool.end_session(session_id)

    # ---- views --------------------------------------------------------------------------------

    def _view(self, managed: _Managed) -> PoolView:
        stored = managed.stored
        return PoolView(
            stored.name, stored.workflow_id, stored.node_id, stored.version_id, stored.created_at, managed.pool.info()
        )

    def _pool_infos(self) -> Mapping[str, Pool]:
        return {name: managed.pool for name, managed in self._pools.items()}

    def stored(self, name: str) -> StoredPool | None:
        managed = self._pools.get(name)
        return managed.stored if managed else None

    def health(self) -> dict[str, Any]:
        """Figures for ``GET /health``: pools, the failed ones, live workers."""
        pools = [managed.pool for managed in self._pools.values()]
        return {
            "pools": len(pools),
            "pools_failed": sum(1 for pool in pools if pool.state is PoolState.FAILED),
            "workers_ready": sum(
                count for pool in pools for state, count in pool.worker_states().items() if state in ("idle", "busy")
            ),
        }


def _env_of(stored: StoredPool) -> tuple[str, str, str]:
    return (stored.workflow_id, stored.node_id, stored.version_id)


def _timeout(timeout: float | None, deadline: float | None) -> float | None:
    """The call's own timeout and the transport's deadline: whichever ends first."""
    if deadline is None:
        return timeout or None
    remaining = max(deadline - time.monotonic(), 0.001)
    return min(timeout, remaining) if timeout else remaining


async def _imports(python: str, module: str) -> bool:
    """Whether the env's interpreter can import ``module`` (a 1-process probe, no site changes)."""
    proc = await asyncio.create_subprocess_exec(
        python,
        "-c",
        f"import {module}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    return await proc.wait() == 0
