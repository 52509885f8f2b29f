"""The daemon (`envplane serve`): one process, one event loop, gRPC and REST side by side.

Lifecycle, uvicorn-style: ``startup()`` (data dir, store, recovery, listeners) →
wait for a stop signal → ``shutdown()`` (health NOT_SERVING, stop accepting, drain for
``shutdown_grace_seconds``, close watchers, dispose the store). Signal handlers only set an
event; a second signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from envplane.api.grpc_server import GrpcServer
from envplane.api.rest_app import create_app
from envplane.config import Settings
from envplane.datadir import DataDirLock
from envplane.environments import EnvironmentService
from envplane.events import EventBus
from envplane.metrics import Metrics
from envplane.store import Store

logger = logging.getLogger("envplane.server")
STATE_FILE = "daemon.json"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port), with a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


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
        self.stop_requested = asyncio.Event()
        self.force_exit = False
        self.grpc_port = 0
        self.http_port = 0

    async def startup(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_lock = DataDirLock(s.data_dir, "an envplane daemon")
        self.data_lock.acquire()
        try:
            await self._start_parts()
        except BaseException:
            self.data_lock.release()
            raise

    async def _start_parts(self) -> None:
        s = self.settings
        self.store = Store(s.resolved_database_url)
        self.bus = EventBus(self.store)
        self.metrics = Metrics()
        self.service = EnvironmentService(s, self.store, self.bus, self.metrics)
        report = await self.service.start()
        if report.operations_failed or report.creates_failed or report.broken:
            logger.warning("recovered after an unclean stop: %s", report)
        self.grpc = GrpcServer(self.service, s.grpc_addr, compat_envmanager=s.compat_envmanager)
        await self.grpc.start()
        self.grpc_port = self.grpc.port
        self.http_socket = bind_socket(s.http_addr)
        self.http_port = self.http_socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.service, self.metrics),
            log_level=s.log_level.lower(),
            lifespan="off",
            timeout_graceful_shutdown=int(s.shutdown_grace_seconds) or None,
        )
        self.http = _Uvicorn(config)
        self.http_task = asyncio.ensure_future(self.http.serve(sockets=[self.http_socket]))
        while not self.http.started:
            if self.http_task.done():
                self.http_task.result()
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        self._write_state()
        grpc_host, _ = split_address(s.grpc_addr)
        http_host, _ = split_address(s.http_addr)
        logger.info(
            "envplane serving: gRPC %s:%d, REST http://%s:%d (docs at /docs), data in %s",
            grpc_host,
            self.grpc_port,
            http_host,
            self.http_port,
            s.data_dir,
        )

    def _write_state(self) -> None:
        """Record pid and real ports (useful with port 0) in ``<data_dir>/daemon.json``."""
        state = {"pid": os.getpid(), "grpc_port": self.grpc_port, "http_port": self.http_port}
        path = self.settings.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def request_stop(self) -> None:
        if self.stop_requested.is_set():
            self.force_exit = True
            self.http.force_exit = True
        self.stop_requested.set()

    async def shutdown(self) -> None:
        grace = 0.0 if self.force_exit else self.settings.shutdown_grace_seconds
        self.http.should_exit = True
        self.bus.close()
        await self.grpc.stop(grace)
        await self.service.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.http_task, timeout=grace + 1)
        self.store.close()
        with contextlib.suppress(OSError):
            (self.settings.data_dir / STATE_FILE).unlink()
        self.data_lock.release()
        logger.info("envplane stopped")

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Serve until :meth:`request_stop` (SIGINT/SIGTERM in the main thread)."""
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
        self.ready = asyncio.Event()
        await self.startup()
        self.ready.set()
        try:
            await self.stop_requested.wait()
        finally:
            await self.shutdown()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(settings: Settings | None = None, **overrides: Any) -> None:
    settings = settings or Settings(**overrides)
    configure_logging(settings.log_level)
    asyncio.run(Daemon(settings).run())
