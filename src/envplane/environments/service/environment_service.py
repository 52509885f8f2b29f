"""The environment service: every operation on per-node uv environments, for every face (gRPC,
REST, the UV Venv Manager protocol, ``LocalEnvironmentProvider``) and for other capabilities
(workers run in environments).

Each operation lives in a module of its own, over one :class:`OperationEngine`:

==================  ==========================================================
``create.py``       create, from specs or from a pyproject.toml + uv.lock
``changes.py``      add, update, remove dependencies
``maintenance.py``  sync, delete, cleanup
``reads.py``        status, list, dependencies, export
``run_code.py``     run users' code with an env's interpreter (compat RunCode)
==================  ==========================================================

This class is their one entry point, owns the background work (the default interpreter's
warm-up) and runs recovery at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from prometheus_client import Gauge

from envplane.config import Settings
from envplane.core.capability import Core
from envplane.core.locks import KeyedLocks
from envplane.environments.service import changes, maintenance, queries, reads, run_code
from envplane.environments.service import create as creation
from envplane.environments.service.builds import BuildCache
from envplane.environments.service.engine import ENVIRONMENT, OperationEngine
from envplane.environments.service.events import EventType
from envplane.environments.service.interpreters import default_python_request
from envplane.environments.service.layout import Layout
from envplane.environments.service.recovery import RecoveryReport, recover
from envplane.environments.service.uv import UvRunner
from envplane.environments.service.views import EnvStatus
from envplane.errors import EnvplaneError

logger = logging.getLogger("envplane.environments")
P = ParamSpec("P")
R = TypeVar("R")


def operation(
    fn: Callable[Concatenate[OperationEngine, P], Awaitable[R]],
) -> Callable[Concatenate[EnvironmentService, P], Coroutine[Any, Any, R]]:
    """``fn(engine, ...)`` as a method of the service: ``service.create(...)`` runs
    ``create.create(service.engine, ...)``."""

    @functools.wraps(fn)
    async def method(self: EnvironmentService, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await fn(self.engine, *args, **kwargs)

    return method


class EnvironmentService:
    """One instance per core; safe for concurrent use from many requests."""

    def __init__(self, core: Core, *, uv: UvRunner | None = None) -> None:
        self.core = core
        self.engine = OperationEngine(core, uv)
        self._warmup: asyncio.Future[None] | None = None
        core.subject_kinds.add(ENVIRONMENT)
        core.event_types.update(EventType)
        registry = core.metrics.registry
        Gauge("envplane_uv_processes_running", "uv processes running now.", registry=registry).set_function(
            lambda: self.engine.uv.running
        )
        self._by_status = Gauge("envplane_environments", "Environments by status.", ["status"], registry=registry)
        core.metrics.add_refresher(self._count_environments)

    # The engine's parts callers look at (status of uv, builds, locks, paths).
    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def layout(self) -> Layout:
        return self.engine.layout

    @property
    def uv(self) -> UvRunner:
        return self.engine.uv

    @property
    def builds(self) -> BuildCache:
        return self.engine.builds

    @property
    def env_locks(self) -> KeyedLocks:
        return self.engine.env_locks

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> RecoveryReport:
        """Reconcile disk with the database (``recovery.py``), then start looking up the default
        interpreter, so the first create does not pay for it."""
        report = await recover(self.engine)
        if self._warmup is None:
            self._warmup = asyncio.ensure_future(self._warm_default_interpreter())
        return report

    async def _warm_default_interpreter(self) -> None:
        try:
            await self.engine.interpreters.find(default_python_request(self.settings.default_python))
        except EnvplaneError as exc:  # reported again, with context, to whoever asks for it
            logger.warning("default python is not available: %s", exc.message)

    async def close(self) -> None:
        """Stop background work owned by the service (safe twice)."""
        warmup, self._warmup = self._warmup, None
        if warmup is not None and not warmup.done():
            warmup.cancel()
            with contextlib.suppress(BaseException):
                await warmup
        await self.engine.interpreters.close()

    async def _count_environments(self) -> None:
        counts = await self.core.store.run(queries.status_counts)
        for status in EnvStatus:
            self._by_status.labels(status.value).set(counts.get(status, 0))

    # ------------------------------------------------------------------ operations
    # Each is the module function of the same name, with this service's engine as its first
    # argument: one signature, in the module that does the work.

    create = operation(creation.create)
    status = operation(reads.status)
    list_envs = operation(reads.list_envs)
    list_deps = operation(reads.list_deps)
    export = operation(reads.export)
    add_deps = operation(changes.add_deps)
    update_deps = operation(changes.update_deps)
    remove_deps = operation(changes.remove_deps)
    sync = operation(maintenance.sync)
    delete = operation(maintenance.delete)
    cleanup = operation(maintenance.cleanup)
    run_code = operation(run_code.run_code)
