"""kill -9 of the daemon: every worker gone within 2 s; the restarted daemon brings the declared
pools back with fresh workers; a second daemon's workers are never touched."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envplane.client import EnvplaneClient
from tests.support.daemons import ProcessDaemon
from tests.support.processes import process_running
from tests.support.settings import offline_settings
from tests.support.waiting import eventually
from tests.workers.handlers import BASIC, write_handler

pytestmark = pytest.mark.slow


@pytest.fixture
def make_daemon(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Iterator[Callable[[str], ProcessDaemon]]:
    daemons: list[ProcessDaemon] = []

    def make(name: str) -> ProcessDaemon:
        daemon = ProcessDaemon.of(offline_settings(tmp_path / name, [wheelhouse], uv_cache, log_level="info"))
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop_if_running()


def _pool(daemon: ProcessDaemon, handler: Path, name: str) -> list[int]:
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        client.environments.create("wf", "node", packages=["alpha"], exist_ok=True)
        pool = client.workers.create_pool(name, "wf", "node", str(handler), min_size=2)
        assert client.workers.execute(name, "echo", ["hi"]) == "hi"
        return [w.pid for w in pool.workers]


def test_kill_9_of_the_daemon(make_daemon: Callable[[str], ProcessDaemon], tmp_path: Path) -> None:
    handler = write_handler(tmp_path, "basic", BASIC)
    first, other = make_daemon("first").start(), make_daemon("other").start()
    pids = _pool(first, handler, "p")
    bystanders = _pool(other, handler, "p")  # same pool name, another data dir
    first.kill9()
    killed = time.monotonic()
    eventually(
        lambda: not any(process_running(pid) for pid in pids), timeout=5, what="the dead daemon's workers to exit"
    )
    assert time.monotonic() - killed < 2.0
    assert all(process_running(pid) for pid in bystanders)

    first.start()  # same data dir: the declared pool comes back with fresh workers
    with EnvplaneClient(first.grpc_addr, timeout=120) as client:
        pool = client.workers.get_pool("p", wait_ready=30)
        assert pool.state == "ready" and len(pool.workers) == 2
        assert not {w.pid for w in pool.workers} & set(pids)
        assert client.workers.execute("p", "echo", [1]) == 1
    assert all(process_running(pid) for pid in bystanders)  # the restart killed nothing of the other daemon
    with EnvplaneClient(other.grpc_addr, timeout=60) as client:
        assert client.workers.execute("p", "pid") in bystanders


def test_clean_stop_stops_workers_and_restart_restores_pools(
    make_daemon: Callable[[str], ProcessDaemon], tmp_path: Path
) -> None:
    handler = write_handler(tmp_path, "basic", BASIC)
    daemon = make_daemon("d").start()
    pids = _pool(daemon, handler, "kept")
    assert daemon.stop() == 0
    assert not any(process_running(pid) for pid in pids)
    assert not list((daemon.data_dir / "run").glob("worker.*"))  # markers gone with their workers
    daemon.start()
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        assert [p.name for p in client.workers.list_pools()] == ["kept"]
        assert client.workers.get_pool("kept", wait_ready=30).state == "ready"
