"""The probes against real servers: a TCP listener, an HTTP server, commands, redis-server,
PostgreSQL (the CI's server), and the same probes against what is not there."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from envplane.services.service.definitions import Probe
from envplane.services.service.probes import probe
from tests.support.processes import free_port


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, list[int]]]:
    """Answers GET with the status at the head of ``codes`` (then 200)."""
    codes: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # the tcp probe connects and leaves
            writer.close()
            return
        code = codes.pop(0) if codes else 200
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], codes
    server.close()
    await server.wait_closed()


async def test_tcp(http_server: tuple[int, list[int]]) -> None:
    port, _ = http_server
    assert (await probe(Probe("tcp", port=port))).healthy
    closed = await probe(Probe("tcp", port=free_port()))
    assert not closed.healthy and "cannot connect to 127.0.0.1" in closed.output


async def test_http(http_server: tuple[int, list[int]]) -> None:
    port, codes = http_server
    url = f"http://127.0.0.1:{port}/ready?x=1"
    assert (await probe(Probe("http", url=url))).healthy
    codes.append(503)
    failed = await probe(Probe("http", url=url))
    assert not failed.healthy and "HTTP/1.1 503" in failed.output
    codes.append(418)
    assert (await probe(Probe("http", url=url, status=(418,)))).healthy
    assert not (await probe(Probe("http", url=f"http://127.0.0.1:{free_port()}/"))).healthy


async def test_exec(tmp_path: Path) -> None:
    assert (await probe(Probe("exec", command=("true",)), run_dir=tmp_path)).healthy
    failed = await probe(Probe("exec", command=("sh", "-c", "echo not yet; exit 3")), run_dir=tmp_path)
    assert not failed.healthy and "exit code 3" in failed.output and "not yet" in failed.output
    started = time.monotonic()
    slow = await probe(Probe("exec", command=("sleep", "30"), timeout=0.3, interval=1), run_dir=tmp_path)
    assert not slow.healthy and "timed out" in slow.output and time.monotonic() - started < 3
    assert not list(tmp_path.iterdir())  # its process group was killed and forgotten


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        server.terminate()
        server.wait(10)


async def test_redis(redis_port: int) -> None:
    for _ in range(100):
        result = await probe(Probe("redis", port=redis_port))
        if result.healthy:
            break
        await asyncio.sleep(0.05)
    assert result.healthy and result.output == "+PONG"
    assert not (await probe(Probe("redis", port=free_port()))).healthy


@pytest.mark.postgres
async def test_postgres() -> None:
    url = os.environ.get("ENVPLANE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server (ENVPLANE_TEST_POSTGRES_URL; .ci/run starts one)")
    parsed = make_url(url)
    ok = await probe(Probe("postgres", host=parsed.host or "127.0.0.1", port=parsed.port or 5432))
    assert ok.healthy, ok.output
    # A database that does not exist: the server is up and answers, as pg_isready counts it.
    other = await probe(Probe("postgres", port=parsed.port or 5432, database="no_such_db_envplane", user="nobody"))
    assert other.healthy, other.output
    assert not (await probe(Probe("postgres", port=free_port()))).healthy


async def test_a_probe_with_no_port_says_so() -> None:
    result = await probe(Probe("tcp"))
    assert not result.healthy and "no port to probe" in result.output
