"""The daemon (``envplane serve``): one process, one event loop, gRPC and REST side by side,
composed from an explicit, ordered list of capabilities (:func:`compose`).

Lifecycle (:class:`DaemonState`), uvicorn-style: ``startup()`` → serve until a stop signal →
``shutdown()``. Start-up order: settings checked (a non-loopback address needs a token), the
data dir locked, both ports bound (a taken port fails here, before anything starts), the
database migrated, the core's recovery, each capability's ``start()`` (its own recovery), then
the listeners. Shutdown runs the reverse: listeners (health NOT_SERVING, drain for
``shutdown_grace_seconds``) → capabilities in reverse order → the core (retention task, event
bus) → the store. A start-up that fails half-way runs the same shutdown for what it started,
so nothing is left listening and the data dir is released. Signal handlers only set a flag; a
second signal skips the grace period. Readiness is awaited (:meth:`Daemon.serving`), never
polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from enum import StrEnum
from typing import Any

import uvicorn

from envplane.activity.capability import ActivityCapability
from envplane.api.grpc_server import GrpcServer
from envplane.api.rest_app import create_app
from envplane.api.rest_guard import allowed_hosts
from envplane.config import Settings, is_loopback
from envplane.core.capability import Capability, Core
from envplane.core.datadir import DataDirLock
from envplane.core.files import write_atomic
from envplane.environments.capability import EnvironmentsCapability
from envplane.environments.identity import EnvId
from envplane.environments.service import EnvironmentService, EnvStatus
from envplane.environments.service.engine import ENVIRONMENT
from envplane.environments.service.events import EventType
from envplane.errors import FailedPrecondition, NotFound
from envplane.observations.capability import ObservationsCapability
from envplane.services.capability import ServicesCapability
from envplane.store import Store
from envplane.workers.capability import WorkersCapability
from envplane.workers.service.worker_service import EnvChange, EnvTarget, WorkerService

logger = logging.getLogger("envplane.server")
STATE_FILE = "daemon.json"


class DaemonState(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"
    STOPPED = "stopped"


class EnvironmentsForWorkers:
    """What the workers capability needs of the environments one (``EnvironmentAccess``), over
    the environments service: capabilities never import each other, the daemon joins them."""

    CHANGES = (
        EventType.DEPENDENCIES_ADDED,
        EventType.DEPENDENCIES_UPDATED,
        EventType.DEPENDENCIES_REMOVED,
        EventType.ENVIRONMENT_SYNCED,
        EventType.ENVIRONMENT_DELETED,
    )

    def __init__(self, service: EnvironmentService, core: Core) -> None:
        self.service = service
        self.core = core

    async def target(self, workflow_id: str, node_id: str, version_id: str) -> EnvTarget:
        env = EnvId.parse(workflow_id, node_id, version_id)
        view = await self.service.status(env)
        if view.status != EnvStatus.READY:
            raise FailedPrecondition(
                f"environment {env} is {view.status}, not READY: workers need its interpreter"
                + (f" ({view.record.error})" if view.record.error else "")
            )
        return EnvTarget(view.python_executable, view.env_path)

    async def add_packages(
        self, workflow_id: str, node_id: str, version_id: str, packages: list[str], deadline: float | None
    ) -> None:
        await self.service.add_deps(EnvId.parse(workflow_id, node_id, version_id), packages, deadline=deadline)

    async def changes(self) -> AsyncIterator[EnvChange]:
        async for event in self.core.bus.live(types=self.CHANGES, kinds=[ENVIRONMENT]):
            subject = event.subject
            deleted = event.type == EventType.ENVIRONMENT_DELETED
            yield EnvChange(subject.workflow_id, subject.node_id, subject.version_id, event.type, deleted)


class WorkersForServices:
    """What the services capability needs of the worker pools (``Workloads``: the original
    protocol's ExecuteTask and GetResourceAvailability name a pool by workload class)."""

    def __init__(self, service: WorkerService) -> None:
        self.service = service

    def capacity(self, workload_class: str) -> tuple[int, int] | None:
        if workload_class:
            try:
                pools = [self.service.pool(workload_class).info()]
            except NotFound:
                return None
        else:
            pools = [self.service.pool(view.name).info() for view in self.service.list_pools()]
        capacity = sum(info.config.max_size for info in pools)
        busy = sum(1 for info in pools for worker in info.workers if worker.state == "busy")
        return capacity, busy

    def commands(self, workload_class: str) -> list[str]:
        return sorted(self.service.pool(workload_class).info().commands)

    async def execute(self, workload_class: str, command: str, args: Any, *, timeout: float | None) -> Any:
        return await self.service.execute(workload_class, command, args, timeout=timeout)


def compose(core: Core) -> list[Capability]:
    """The capabilities of this daemon, in start order (stopped in reverse). A capability that
    needs another gets that one's service here (workers get the environments service; services
    get the workers', for the original protocol's tasks). Services start last and stop first:
    a pool may use them, never the reverse."""
    environments = EnvironmentsCapability(core)
    workers = WorkersCapability(core, EnvironmentsForWorkers(environments.service, core))
    services = ServicesCapability(core, WorkersForServices(workers.service))
    return [ActivityCapability(core), environments, workers, ObservationsCapability(core), services]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); an empty host is loopback (``:0``)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_bind_policy(settings: Settings, token: str | None) -> None:
    """Refuse to listen off loopback without a token, naming the settings that decide it."""
    for name, address in (("ENVPLANE_GRPC_ADDR", settings.grpc_addr), ("ENVPLANE_HTTP_ADDR", settings.http_addr)):
        host, _ = split_address(address)
        if not is_loopback(host) and token is None and not settings.allow_insecure_bind:
            raise ValueError(
                f"refusing to listen on {address} ({name}), which is not a loopback address, without a token: "
                "set ENVPLANE_AUTH_TOKEN (or ENVPLANE_AUTH_TOKEN_FILE), or ENVPLANE_ALLOW_INSECURE_BIND=true "
                "to accept calls from anyone who can reach it"
            )


def bind_socket(address: str) -> socket.socket:
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for HTTP on {address}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = DaemonState.CREATED
        self.stop_requested = asyncio.Event()
        self.force_exit = False
        self.grpc_port = 0
        self.http_port = 0
        self.capabilities: list[Capability] = []
        self._serving = asyncio.Event()
        self._started: list[Capability] = []
        self._data_lock: DataDirLock | None = None
        self._http_socket: socket.socket | None = None
        self._store: Store | None = None
        self._core: Core | None = None
        self._grpc: GrpcServer | None = None
        self._http: _Uvicorn | None = None
        self._http_loop: asyncio.Task[None] | None = None

    @property
    def core(self) -> Core:
        assert self._core is not None, "the daemon has not started"
        return self._core

    async def serving(self) -> None:
        """Wait until the daemon answers on both ports."""
        await self._serving.wait()

    # ------------------------------------------------------------------ start-up

    async def startup(self) -> None:
        self.state = DaemonState.STARTING
        try:
            await self._start()
        except BaseException:
            await self._stop_parts(grace=0)
            self.state = DaemonState.STOPPED
            raise
        self.state = DaemonState.SERVING
        self._serving.set()

    async def _start(self) -> None:
        s = self.settings
        token = s.resolved_auth_token()
        check_bind_policy(s, token)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._data_lock = DataDirLock(s.data_dir, "an envplane daemon")
        self._data_lock.acquire()
        self._http_socket = bind_socket(s.http_addr)
        self.http_port = self._http_socket.getsockname()[1]
        self._store = await asyncio.to_thread(Store, s.resolved_database_url)  # migrates
        self._core = Core(s, self._store)
        self.capabilities = compose(self._core)
        grpc_host, grpc_port = split_address(s.grpc_addr)
        services = [service for capability in self.capabilities for service in capability.grpc_services()]
        self._grpc = GrpcServer(services, join_address(grpc_host, grpc_port), token=token)
        self.grpc_port = self._grpc.port
        await self._core.recover()
        for capability in self.capabilities:
            self._started.append(capability)
            await capability.start()
        await self._grpc.start()
        await self._start_http(token)
        self._core.retention.start()
        self._write_state()
        http_host, _ = split_address(s.http_addr)
        logger.info(
            "envplane serving: gRPC %s, REST http://%s (docs at /docs), data in %s%s",
            join_address(grpc_host, self.grpc_port),
            join_address(http_host, self.http_port),
            s.data_dir,
            "; a token is required" if token else "",
        )

    async def _start_http(self, token: str | None) -> None:
        s = self.settings
        http_host, _ = split_address(s.http_addr)
        routers = [router for c in self.capabilities if (router := c.rest_router()) is not None]
        app = create_app(
            routers,
            metrics=self.core.metrics,
            health=self.health,
            hosts=allowed_hosts(http_host, self.http_port, s.allowed_hosts),
            cors_origins=s.cors_origins,
            token=token,
        )
        config = uvicorn.Config(
            app,
            log_level=s.log_level.lower(),
            lifespan="off",
            timeout_graceful_shutdown=int(s.shutdown_grace_seconds) or None,
        )
        config.load()
        server = _Uvicorn(config)
        server.lifespan = config.lifespan_class(config)
        self._http = server
        # uvicorn's serve() is startup() + main_loop() + shutdown(); calling them apart lets the
        # daemon await the listener being up instead of polling a flag.
        await server.startup(sockets=[self._http_socket] if self._http_socket else None)
        self._http_loop = asyncio.ensure_future(server.main_loop())

    def health(self) -> Mapping[str, Any]:
        figures: dict[str, Any] = {"state": self.state.value}
        for capability in self.capabilities:
            figures.update(capability.health())
        return figures

    def _write_state(self) -> None:
        """Record pid and real ports (useful with port 0) in ``<data_dir>/daemon.json``."""
        state = {"pid": os.getpid(), "grpc_port": self.grpc_port, "http_port": self.http_port}
        write_atomic(self.settings.data_dir / STATE_FILE, json.dumps(state))

    # ------------------------------------------------------------------ shutdown

    def request_stop(self) -> None:
        if self.stop_requested.is_set():
            self.force_exit = True
            if self._http is not None:
                self._http.force_exit = True
        self.stop_requested.set()

    async def shutdown(self) -> None:
        """Stop everything that started, in order (safe twice)."""
        if self.state in (DaemonState.STOPPING, DaemonState.STOPPED):
            return
        self.state = DaemonState.STOPPING
        await self._stop_parts(grace=0.0 if self.force_exit else self.settings.shutdown_grace_seconds)
        self.state = DaemonState.STOPPED
        logger.info("envplane stopped")

    async def _stop_parts(self, grace: float) -> None:
        """Listeners → capabilities in reverse → core → store → data dir. Each part is stopped
        only if it started, so a failed start-up unwinds through here too."""
        if self._http is not None:
            self._http.should_exit = True
            if self._http_loop is not None:
                with contextlib.suppress(Exception):
                    await self._http_loop
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.shutdown(), timeout=grace + 1)
            self._http = None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        while self._started:
            capability = self._started.pop()
            try:
                await capability.stop()
            except Exception:
                logger.exception("stopping %s failed", capability.name)
        if self._core is not None:
            await self._core.stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        with contextlib.suppress(OSError):
            (self.settings.data_dir / STATE_FILE).unlink()
        if self._data_lock is not None:
            self._data_lock.release()
            self._data_lock = None

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Serve until :meth:`request_stop` (SIGINT/SIGTERM in the main thread)."""
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
        await self.startup()
        try:
            await self.stop_requested.wait()
        finally:
            await self.shutdown()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(settings: Settings | None = None, **overrides: Any) -> None:
    settings = settings or Settings(**overrides)
    configure_logging(settings.log_level)
    asyncio.run(Daemon(settings).run())
