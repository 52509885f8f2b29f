"""Shared fixtures: a local wheelhouse (no package index), a private uv cache, services and
real daemons on loopback ports. Every settings object comes from ``support/settings.py``."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from envplane.config import Settings
from envplane.core.capability import Core
from envplane.environments import EnvironmentService
from envplane.store import Store
from tests.support.daemons import ThreadDaemon
from tests.support.settings import offline_settings
from tests.support.wheels import WheelSpec, build_noisy_failing_sdist, build_slow_sdist, build_wheel, slow_spans_file

WHEELS = [
    WheelSpec("alpha", "1.0.0"),
    WheelSpec("alpha", "1.1.0"),
    WheelSpec("alpha", "2.0.0"),
    WheelSpec("beta", "1.0.0", requires=("alpha>=1.1",)),
    WheelSpec("gamma", "0.1.0"),
    WheelSpec("gamma", "0.2.0"),
    WheelSpec("delta", "3.0.0", requires=("gamma",)),
    WheelSpec("broken", "1.0.0", requires=("does-not-exist>=1",)),
]
NOISY_BYTES = 24_000  # what the "noisy" sdist prints to stderr before its build fails


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links folder with tiny wheels: versions, a dependency, an unresolvable one."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    for spec in WHEELS:
        build_wheel(spec, folder)
    build_noisy_failing_sdist("noisy", "1.0.0", NOISY_BYTES, folder)
    return folder


_slow_counter = itertools.count(1)


@pytest.fixture(scope="session")
def slow_package(wheelhouse: Path) -> Callable[[float], str]:
    """Factory: a new sdist whose build sleeps ``seconds`` (a fresh name: never cached)."""

    def make(seconds: float = 3.0) -> str:
        name = f"slow{next(_slow_counter)}x{uuid.uuid4().hex[:6]}"
        build_slow_sdist(name, "1.0.0", seconds, wheelhouse, slow_spans_file(wheelhouse, name))
        return name

    return make


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


POSTGRES_ADMIN_URL = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if POSTGRES_ADMIN_URL else ["sqlite"]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the data dir) and, when ENVPLANE_TEST_POSTGRES_URL names a server,
    a fresh PostgreSQL database for this test: the service tests run against both."""
    if request.param == "sqlite":
        yield None
        return
    name = f"envplane_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def make_settings(
    tmp_path: Path, wheelhouse: Path, uv_cache: Path, database_url: str | None
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, **overrides}
        data_dir = values.pop("data_dir", tmp_path / "data")
        find_links = values.pop("find_links", [wheelhouse])
        return offline_settings(data_dir, find_links, values.pop("uv_cache_dir", uv_cache), **values)

    return make


@pytest.fixture
async def make_core(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Factory: a core over a migrated store, as a daemon makes it (stopped afterwards)."""
    made: list[Core] = []

    async def make(**overrides: Any) -> Core:
        settings = make_settings(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        core = Core(settings, Store(settings.resolved_database_url))
        await core.recover()
        made.append(core)
        return core

    yield make
    for core in made:
        await core.stop()
        core.store.close()


@pytest.fixture
async def make_service(make_core: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    services: list[EnvironmentService] = []

    async def make(**overrides: Any) -> EnvironmentService:
        service = EnvironmentService(await make_core(**overrides))
        await service.start()
        services.append(service)
        return service

    yield make
    for service in services:
        await service.close()


@pytest.fixture
async def service(make_service: Callable[..., Any]) -> EnvironmentService:
    result: EnvironmentService = await make_service()
    return result


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_wheelhouse() -> Path:
    """The locked ray and its dependencies as wheels (`make test` fetches them first), so
    test envs get the driver's exact ray without a package index."""
    folder = Path(os.environ.get("ENVPLANE_TEST_RAY_WHEELS") or REPO / ".cache" / "ray-wheels")
    if not any(folder.glob("ray-*.whl")):
        pytest.fail(f"no ray wheels in {folder}: run `make test` (or `make .cache/ray-wheels/.complete`) first")
    return folder


@pytest.fixture(scope="session")
def plane_settings(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, ray_wheelhouse: Path, uv_cache: Path
) -> Callable[[str], Settings]:
    """Settings for a provider or daemon of its own (a fresh data dir each): the tiny wheels
    and the ray wheels as find-links, no index."""

    def make(name: str) -> Settings:
        return offline_settings(tmp_path_factory.mktemp(name) / "data", [wheelhouse, ray_wheelhouse], uv_cache)

    return make


@pytest.fixture(scope="session")
def plane_daemon(plane_settings: Callable[[str], Settings]) -> Iterator[ThreadDaemon]:
    """A daemon whose envs can hold ray: providers' and Ray tests share it (own ids per test)."""
    running = ThreadDaemon(plane_settings("plane-daemon")).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, uv_cache: Path) -> Iterator[ThreadDaemon]:
    """One real daemon for the API tests; each test uses its own workflow id."""
    running = ThreadDaemon(offline_settings(tmp_path_factory.mktemp("daemon") / "data", [wheelhouse], uv_cache))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def wf() -> str:
    """A workflow id of this test's own, so tests sharing the daemon never collide."""
    return f"wf-{uuid.uuid4().hex[:10]}"
