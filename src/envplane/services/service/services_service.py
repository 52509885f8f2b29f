"""ServicesService: the capability's one entry point, what both faces and the compat face call.

It loads the registry (``ENVPLANE_SERVICES_CONFIG``, else the ``[services.*]`` tables of the
daemon's ``ENVPLANE_CONFIG``, over the embedded definitions: a bad file stops the daemon at
start with every problem listed), builds the runtimes (``process`` always; ``docker`` reaching
the engine only when a Docker service is used), and drives the :class:`Manager`, recording
what happens (``observability.py``).

At start it adopts what the previous daemon left running and healthy, and removes the rest.
At stop it stops every service (``ENVPLANE_SERVICES_ON_SHUTDOWN=leave``: leaves them running,
for the next daemon to adopt).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envplane.config import Settings
from envplane.config_file import CONFIG_VARIABLE
from envplane.core.capability import Core
from envplane.core.files import write_atomic
from envplane.errors import InvalidArgument
from envplane.services.service import registry as registry_module
from envplane.services.service.definitions import ServiceDef
from envplane.services.service.docker_runtime import DockerRuntime
from envplane.services.service.events import SERVICE, EventType
from envplane.services.service.manager import Manager
from envplane.services.service.observability import ServiceMetrics, ServiceObserver, TimedRuntime
from envplane.services.service.process_runtime import ProcessRuntime
from envplane.services.service.registry import Registry
from envplane.services.service.runtime import Instance, LogLine, Runtime
from envplane.services.service.units import UP, Change, State, healthy_in
from envplane.services.service.views import ServiceView, view
from envplane.services.service.workloads import Workloads

logger = logging.getLogger("envplane.services")
ENGINE_HEALTH_EVERY = 5.0  # seconds between looks at the Docker engine, for /health


@dataclass(frozen=True)
class HealthUpdate:
    service: str
    healthy: bool
    state: str
    message: str
    output: str
    timestamp: float
    heartbeat: bool = False


def load_registry(settings: Settings) -> Registry:
    """``ENVPLANE_SERVICES_CONFIG``, else the daemon's ``ENVPLANE_CONFIG`` (its ``[services.*]``
    tables; its other keys are the daemon's settings), else the embedded definitions alone."""
    if settings.services_config is not None:
        return registry_module.load(path=settings.services_config)
    path = os.environ.get(CONFIG_VARIABLE)
    return registry_module.load(path=Path(path)) if path else registry_module.load()


def overridden(registry: Registry, names: Sequence[str], overrides: Mapping[str, str]) -> dict[str, ServiceDef]:
    """The original protocol's ``overrides``, applied: ``<service>.image``, ``<service>.command``
    (split like a shell), ``<service>.env.<VAR>``, and ``<VAR>`` / ``env.<VAR>`` for every
    service named in the request (not their dependencies)."""
    changed: dict[str, dict[str, Any]] = {}
    problems = []
    for key, value in overrides.items():
        service, _, rest = key.partition(".")
        if service in registry.services and rest:
            target = [service]
        else:
            target, rest = list(names), ("env." + key.removeprefix("env.")) if key else ""
        field, _, variable = rest.partition(".")
        for name in target:
            fields = changed.setdefault(name, {})
            definition = registry[name]
            if field == "image" and not variable:
                fields["image"] = value
            elif field == "command" and not variable:
                try:
                    fields["command"] = tuple(shlex.split(value))
                except ValueError as exc:
                    problems.append(f"overrides[{key!r}]: {exc}")
            elif field == "env" and variable:
                fields.setdefault("env", dict(definition.env))[variable] = value
            else:
                problems.append(
                    f"overrides[{key!r}]: use <service>.image, <service>.command, <service>.env.<VAR> or <VAR>"
                )
    if problems:
        raise InvalidArgument("; ".join(problems))
    return {name: dataclasses.replace(registry[name], **fields) for name, fields in changed.items()}


def instance_id(folder: Path) -> str:
    """This data dir's instance id: what labels its containers (made once, kept)."""
    path = folder / "instance-id"
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    folder.mkdir(parents=True, exist_ok=True)
    text = uuid.uuid4().hex
    write_atomic(path, text + "\n")
    return text


class ServicesService:
    def __init__(self, core: Core, workloads: Workloads | None = None) -> None:
        self.core = core
        self.workloads = workloads
        self.settings = core.settings
        self.registry = load_registry(core.settings)
        self.folder = core.settings.data_dir / "services"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.instance_id = instance_id(self.folder)
        self.metrics = ServiceMetrics(core.metrics.registry, lambda: self.manager.units)
        core.metrics.add_refresher(self._refresh)
        core.subject_kinds.add(SERVICE)
        core.event_types.update(EventType)
        self.docker = DockerRuntime(self.instance_id, core.settings.docker_host)
        runtimes: dict[str, Runtime] = {
            "process": TimedRuntime(
                ProcessRuntime(self.folder, core.settings.data_dir, self.instance_id), self.metrics
            ),
            "docker": TimedRuntime(self.docker, self.metrics),
        }
        self.observer = ServiceObserver(core, self.metrics)
        self.manager = Manager(
            self.registry,
            runtimes,
            self.observer,
            run_dir=core.data_dir.run,
            parallel=core.settings.services_parallel_starts,
        )
        self._engine_health: dict[str, Any] | None = None
        self._engine_task: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        self.metrics.refresh()

    @property
    def uses_docker(self) -> bool:
        """Docker services are configured (beyond the embedded ones) or running."""
        configured = any(s.runtime == "docker" and not s.embedded for s in self.registry.services.values())
        running = any(u.definition.runtime == "docker" and u.state in UP for u in self.manager.units.values())
        return configured or running

    async def start(self) -> tuple[list[str], list[str]]:
        adopted, removed = await self.manager.adopt()
        self._watch_engine_if_used()
        return adopted, removed

    def _watch_engine_if_used(self) -> None:
        if self.uses_docker and self._engine_task is None:
            self._engine_task = asyncio.create_task(self._watch_engine())

    async def _watch_engine(self) -> None:
        while True:
            self._engine_health = await asyncio.to_thread(self.docker.health)
            await asyncio.sleep(ENGINE_HEALTH_EVERY)

    def health(self) -> dict[str, Any]:
        """For ``GET /health`` (flat figures): services up and failed, and, when Docker
        services are configured or running, the engine (``docker``: its version, or why it
        cannot be reached; ``status`` is then "degraded")."""
        units = list(self.manager.units.values())
        report: dict[str, Any] = {
            "services_up": sum(1 for u in units if u.state in UP),
            "services_failed": sum(1 for u in units if u.state in (State.FAILED, State.SKIPPED)),
        }
        self._watch_engine_if_used()
        if self.uses_docker:
            engine = self._engine_health
            if engine is None:
                report["docker"] = "not checked yet"
            elif engine.get("ok"):
                report["docker"] = engine.get("engine", "ok")
            else:
                report["docker"] = f"unreachable: {engine.get('error', '')}"
                report["status"] = "degraded"
        return report

    # -- operations ------------------------------------------------------------------------------

    def _timeout(self, seconds: float) -> float:
        if seconds < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {seconds:g}")
        return seconds or self.settings.services_wait_seconds

    def up(
        self,
        names: Sequence[str],
        *,
        wait: bool,
        timeout: float = 0,
        overrides: Mapping[str, str] | None = None,
        serial: bool = False,
    ) -> AsyncIterator[Change]:
        wanted = self._names(names, empty_ok=False)
        definitions = overridden(self.registry, wanted, overrides or {})
        return self.manager.up(
            wanted, wait=wait, timeout=self._timeout(timeout), definitions=definitions, serial=serial
        )

    async def down(self, names: Sequence[str], *, timeout: float | None = None) -> dict[str, str]:
        if timeout is not None and timeout < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {timeout:g}")
        return await self.manager.down(self._names(names, empty_ok=True), timeout=timeout)

    async def restart(self, name: str, *, timeout: float | None = None, wait_timeout: float = 0) -> ServiceView:
        if timeout is not None and timeout < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {timeout:g}")
        self._names([name], empty_ok=False)
        unit = await self.manager.restart(name, timeout=timeout, wait_timeout=self._timeout(wait_timeout))
        return view(unit)

    def _names(self, names: Sequence[str], *, empty_ok: bool) -> list[str]:
        names = [n.strip() for n in names]
        if not names and not empty_ok:
            raise InvalidArgument("name at least one service")
        if any(not n for n in names):
            raise InvalidArgument("a service name is empty")
        return self.manager.known(names) if names else []

    async def status(self, names: Sequence[str] = (), *, usage: bool = True) -> list[ServiceView]:
        wanted = self._names(names, empty_ok=True) or self.registry.order()
        units = [self.manager.unit(name) for name in wanted]

        async def one(unit: Any) -> ServiceView:
            measured = None
            if usage and unit.instance is not None and unit.state in UP:
                with contextlib.suppress(Exception):
                    measured = await unit.runtime.usage(unit.instance)
            return view(unit, measured)

        return list(await asyncio.gather(*(one(unit) for unit in units)))

    def logs(self, name: str, *, tail: int = 0, since: float = 0, follow: bool = False) -> AsyncIterator[LogLine]:
        if tail < 0:
            raise InvalidArgument(f"tail must be >= 0, got {tail}")
        if since < 0:
            raise InvalidArgument(f"since must be an epoch time >= 0, got {since:g}")
        if not name:
            raise InvalidArgument("name the service whose logs to read")
        unit = self.manager.unit(self.manager.known([name])[0])
        return unit.runtime.logs(name, unit.instance, tail=tail, since=since, follow=follow)

    def instance(self, name: str) -> Instance | None:
        """What runs ``name`` now (its pid or container), for the faces to name it."""
        return self.manager.unit(self.manager.known([name])[0]).instance

    async def watch_health(
        self, names: Sequence[str], *, heartbeat: float, once: bool = False
    ) -> AsyncIterator[HealthUpdate]:
        """Each service's health now, then (unless ``once``) each change, and every
        ``heartbeat`` seconds of quiet a heartbeat (so a client knows the stream is alive);
        until the client goes."""
        if heartbeat < 0:
            raise InvalidArgument(f"interval_seconds must be >= 0, got {heartbeat:g}")
        wanted = set(self.manager.known(self._names(names, empty_ok=True)))
        with self.manager.subscribe() as queue:
            for name in sorted(wanted):
                unit = self.manager.unit(name)
                yield HealthUpdate(
                    name,
                    unit.is_healthy,
                    unit.state.value,
                    unit.message,
                    unit.failure_output(),
                    time.time(),
                )
            while not once:
                try:
                    async with asyncio.timeout(heartbeat or 10.0):
                        change = await queue.get()
                except TimeoutError:
                    yield HealthUpdate("", True, "", "heartbeat", "", time.time(), heartbeat=True)
                    continue
                if change.service not in wanted:
                    continue
                probe = self.manager.unit(change.service).definition.probe
                healthy = healthy_in(change.state, has_probe=probe is not None)
                yield HealthUpdate(
                    change.service, healthy, change.state.value, change.message, change.output, change.timestamp
                )

    async def pull(self, images: Sequence[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The engine's pull progress for ``images`` (or every Docker service's image)."""
        wanted = [i.strip() for i in images if i.strip()]
        if not wanted:  # the configured Docker services' images, and those of any running
            configured = {s.image for s in self.registry.services.values() if s.runtime == "docker" and not s.embedded}
            running = {u.definition.image for u in self.manager.units.values() if u.definition.image and u.state in UP}
            wanted = sorted(configured | running)
        if not wanted:
            raise InvalidArgument("name the images to pull (no Docker service is configured or running)")
        for image in wanted:
            if any(c.isspace() for c in image):
                raise InvalidArgument(f"{image!r} is not an image reference")
        for image in wanted:
            async for step in self.docker.pull(image):
                yield image, step

    async def close(self) -> None:
        if self._engine_task is not None:
            self._engine_task.cancel()
        await self.manager.close(stop_services=self.settings.services_on_shutdown == "stop")
        await self.observer.close()
