"""Fixtures of the worker tests: handler files and pools of real worker processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from envplane.workers import Pool, PoolConfig
from tests.workers.handlers import BASIC, write_handler

TRANSPORTS = ["pipe", "grpc"]


@pytest.fixture(scope="session")
def foreign_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv on another interpreter than the tests' (Debian's python3.11 when present, else
    this one), with nothing installed: no envplane, no grpcio."""
    from uv import find_uv_bin

    base = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else sys.executable
    venv = tmp_path_factory.mktemp("foreign") / "venv"
    subprocess.run([str(find_uv_bin()), "venv", "-q", str(venv), "--python", base], check=True)
    return str(venv / "bin" / "python")


@pytest.fixture
def handler(tmp_path: Path) -> Path:
    return write_handler(tmp_path, "basic", BASIC)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_pool(handler: Path, transport: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory: a started, ready pool on the basic handler (closed after the test)."""
    pools: list[Pool] = []

    async def make(**options: Any) -> Pool:
        options.setdefault("heartbeat_interval", 0.2)
        options.setdefault("heartbeat_timeout", 2.0)
        options.setdefault("restart_backoff", 0.05)
        python = options.pop("python", sys.executable)
        config = PoolConfig(str(options.pop("handler", handler)), transport=transport, **options)
        pool = Pool(config, python=python, name=f"test{len(pools)}", run_dir=tmp_path / "run")
        pools.append(pool)
        await pool.start()
        await pool.wait_ready(30)
        return pool

    yield make
    for pool in pools:
        await pool.close(grace=1)
