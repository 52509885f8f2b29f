"""Fixtures of the services tests: service TOML with free ports, and a ServicesService over a
real core (migrated store, audit, events), closed after the test with every service stopped."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envplane.services.service.process_runtime import USER_SERVICES_ROOT
from envplane.services.service.services_service import ServicesService
from tests.support.daemons import ThreadDaemon
from tests.support.processes import free_port
from tests.support.settings import offline_settings

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
needs_postgres = pytest.mark.skipif(not POSTGRES_BIN, reason="PostgreSQL's server binaries are not installed")


@pytest.fixture
def ports() -> Callable[[], int]:
    return free_port


def chain_toml(redis: int, postgres: int, api: int) -> str:
    """The issue's chain of three: redis <- postgres (healthy) <- an HTTP api (healthy)."""
    return f"""
[services.redis]
ports = [{redis}]

[services.postgres]
ports = [{postgres}]
depends_on = {{ redis = "healthy" }}

[services.api]
runtime = "process"
command = ["python3", "-m", "http.server", "{api}", "--bind", "127.0.0.1"]
ports = [{api}]
depends_on = {{ postgres = "healthy" }}
restart = {{ policy = "on-failure", backoff = "200ms", max_backoff = "2s" }}
probe = {{ kind = "http", url = "http://127.0.0.1:{api}/", interval = "200ms" }}
"""


@pytest.fixture
def services_daemon(tmp_path: Path, uv_cache: Path) -> Iterator[Callable[..., ThreadDaemon]]:
    """Factory: ``services_daemon(toml, data=..., **settings)`` -> a started daemon whose service
    file is ``toml`` (``data`` names its data dir: the same name is the same dir; default a new
    one each). Stopped after the test."""
    daemons: list[ThreadDaemon] = []

    def make(toml: str, data: str = "", **overrides: Any) -> ThreadDaemon:
        config = tmp_path / f"services-{len(daemons)}.toml"
        config.write_text(toml)
        folder = tmp_path / (data or f"d{len(daemons)}")
        daemon = ThreadDaemon(offline_settings(folder, [], uv_cache, services_config=config, **overrides)).start()
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
async def make_services(make_core: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await make_services(toml_text, **settings)`` -> a started ServicesService."""
    made: list[ServicesService] = []

    async def make(toml: str, **overrides: Any) -> ServicesService:
        config = tmp_path / f"services-{len(made)}.toml"
        config.write_text(toml)
        core = await make_core(services_config=config, **overrides)
        service = ServicesService(core)
        await service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close()
        shutil.rmtree(USER_SERVICES_ROOT / service.instance_id, ignore_errors=True)
