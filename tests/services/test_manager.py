"""The manager over the process runtime, with real services: redis-server, PostgreSQL, Python
HTTP servers, shell commands. Each test has its own data dir and free ports."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envplane.errors import NotFound, ServiceFailed
from envplane.services.service import lifecycle
from envplane.services.service.definitions import Restart, ServiceDef
from envplane.services.service.units import Change, State, Unit
from tests.services.conftest import chain_toml, needs_postgres, needs_redis
from tests.support.processes import process_running
from tests.support.waiting import eventually_async


async def up(service: Any, names: list[str], *, wait: bool = True, timeout: float = 30) -> list[Change]:
    return [change async for change in service.up(names, wait=wait, timeout=timeout)]


def http_service(name: str, port: int, **fields: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in fields.items())
    return f"""
[services.{name}]
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ports = [{port}]
probe = {{ kind = "http", url = "http://127.0.0.1:{port}/", interval = "200ms" }}
{extra}"""


@needs_redis
@needs_postgres
async def test_a_chain_of_three_starts_in_order_and_stops_in_reverse(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    service = await make_services(chain_toml(ports(), ports(), ports()))
    changes = await up(service, ["api"])  # redis and postgres come along

    running = [c.service for c in changes if c.state == State.RUNNING]
    healthy = {c.service: c.timestamp for c in changes if c.state == State.HEALTHY}
    assert running == ["redis", "postgres", "api"]
    started = {c.service: c.timestamp for c in changes if c.state == State.RUNNING}
    assert healthy["redis"] <= started["postgres"] and healthy["postgres"] <= started["api"]
    waiting = [c.message for c in changes if c.service == "api" and c.state == State.WAITING]
    assert "waiting for postgres (healthy)" in waiting

    views = {v.name: v for v in await service.status(["redis", "postgres", "api"])}
    assert all(v.state == "healthy" and v.pid and v.started_at for v in views.values())
    assert views["postgres"].probe_output == "accepting connections"
    assert views["redis"].usage.memory_bytes > 0

    results = await service.down([])
    assert list(results) == ["api", "postgres", "redis"]  # dependents first
    assert all(message.startswith("stopped") for message in results.values())
    assert not any(process_running(v.pid) for v in views.values())


@needs_redis
async def test_stopping_a_dependency_stops_its_dependents_first(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    redis = ports()
    toml = f"[services.redis]\nports = [{redis}]\n" + http_service("web", ports(), depends_on='{ redis = "healthy" }')
    service = await make_services(toml)
    await up(service, ["web"])
    results = await service.down(["redis"])
    assert list(results) == ["web", "redis"]
    assert (await service.down(["redis"])) == {"redis": "was not running (stopped)"}


async def test_a_killed_service_is_seen_at_once_and_restarted_with_backoff(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    toml = http_service("web", ports(), restart='{ policy = "on-failure", backoff = "300ms", jitter = 0.2 }')
    service = await make_services(toml)
    await up(service, ["web"])
    unit = service.manager.units["web"]
    first_pid = unit.instance.pid
    with service.manager.subscribe() as queue:
        killed = time.monotonic()
        os.kill(first_pid, signal.SIGKILL)
        seen = await asyncio.wait_for(queue.get(), 5)
        detected = time.monotonic() - killed
        assert seen.state == State.RESTARTING and "killed by SIGKILL" in seen.message
        assert detected < 0.5  # a pidfd, not a poll: well under one probe interval
        while (await asyncio.wait_for(queue.get(), 10)).state != State.RUNNING:
            pass
        waited = time.monotonic() - killed
    assert 0.3 * 0.8 - 0.05 <= waited <= 0.3 * 1.2 + 1.0
    await eventually_async(lambda: unit.state == State.HEALTHY, what="web healthy again")
    assert unit.restarts == 1 and unit.instance.pid != first_pid
    assert not process_running(first_pid)


def test_backoff_doubles_is_capped_and_jittered() -> None:
    unit = Unit(ServiceDef("x", command=("true",), restart=Restart("always", 1.0, 8.0, 0.25)), None, "")  # type: ignore[arg-type]
    delays = []
    for streak in range(8):
        unit.streak = streak
        delays.append([lifecycle.backoff(unit) for _ in range(200)])
    assert min(delays[0]) >= 0.75 and max(delays[0]) <= 1.25
    assert min(delays[1]) >= 1.5 and max(delays[1]) <= 2.5
    assert all(6.0 <= d <= 10.0 for d in delays[7])  # capped at 8 s, then ±25 %
    assert len({round(d, 3) for d in delays[7]}) > 50  # spread, so services that fail together part


async def test_max_restarts_then_failed_with_the_end_of_its_log(make_services: Callable[..., Any]) -> None:
    toml = """
[services.flaky]
command = ["sh", "-c", "echo about to fail; exit 3"]
restart = { policy = "on-failure", backoff = "50ms", max_restarts = 2 }
"""
    service = await make_services(toml)
    changes = await up(service, ["flaky"], wait=False, timeout=10)
    unit = service.manager.units["flaky"]
    await eventually_async(lambda: unit.state == State.FAILED, what="flaky failed")
    assert unit.restarts == 2 and unit.last_exit is not None and unit.last_exit.code == 3
    assert "exited with code 3" in unit.message
    assert changes[0].service == "flaky"
    view = (await service.status(["flaky"]))[0]
    assert view.exit_code == 3 and view.restarts == 2


async def test_a_failing_probe_makes_it_unhealthy_and_up_wait_says_what_the_probe_saw(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    port = ports()
    toml = f"""
[services.web]
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ports = [{port}]
probe = {{ kind = "http", url = "http://127.0.0.1:{port}/missing", interval = "100ms", retries = 2 }}
"""
    service = await make_services(toml)
    with pytest.raises(ServiceFailed) as failed:
        await up(service, ["web"], timeout=1.5)
    assert failed.value.message == "service 'web' did not get healthy"
    assert "404" in failed.value.detail and "last probe output" in failed.value.detail
    assert service.manager.units["web"].state == State.UNHEALTHY  # still running: not torn down
    assert process_running(service.manager.units["web"].instance.pid)


async def test_a_failed_required_dependency_skips_its_dependents(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    toml = f"""
[services.db]
command = ["sh", "-c", "echo cannot open the data dir >&2; exit 1"]
probe = {{ kind = "tcp", port = {ports()} }}
""" + http_service("app", ports(), depends_on='{ db = "healthy" }')
    service = await make_services(toml)
    with pytest.raises(ServiceFailed) as failed:
        await up(service, ["app"], timeout=10)
    app = service.manager.units["app"]
    assert app.state == State.SKIPPED and app.instance is None
    assert "dependency db failed" in app.message and "exited with code 1" in app.message
    assert "db: failed" in failed.value.detail and "app: skipped" in failed.value.detail
    assert service.manager.units["db"].state == State.FAILED
    # app's shim was started ahead (while db got ready): called off, it is gone too
    folder = str(service.manager.runtime("process").folder("app"))
    await eventually_async(lambda: not _shims_for(folder), timeout=5, what="app's warm shim to exit")


def _shims_for(folder: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"shim.py") for a in argv) and folder.encode() in argv:
            found.append(int(pid))
    return found


async def test_an_optional_dependency_that_fails_does_not_skip(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    toml = """
[services.cache]
command = ["false"]
required = false
""" + http_service("app", ports(), depends_on='{ cache = "started" }')
    service = await make_services(toml)
    await up(service, ["cache", "app"], wait=False, timeout=10)
    await eventually_async(lambda: service.manager.units["app"].state == State.HEALTHY, what="app healthy")


async def test_completed_successfully_waits_for_a_one_shot(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    toml = """
[services.migrate]
command = ["sh", "-c", "sleep 0.3; echo migrated"]
""" + http_service("app", ports(), depends_on='{ migrate = "completed_successfully" }')
    service = await make_services(toml)
    changes = await up(service, ["app"])
    done = next(c.timestamp for c in changes if c.service == "migrate" and c.state == State.EXITED)
    started = next(c.timestamp for c in changes if c.service == "app" and c.state == State.RUNNING)
    assert done <= started
    lines = [line.text async for line in service.logs("migrate", tail=5)]
    assert lines == ["migrated"]


async def test_a_dependent_survives_its_dependencys_transient_readiness_loss(
    make_services: Callable[..., Any], ports: Callable[[], int], tmp_path: Any
) -> None:
    ready = tmp_path / "ready"
    ready.write_text("yes")
    toml = f"""
[services.dep]
command = ["sleep", "600"]
probe = {{ kind = "exec", command = ["test", "-f", "{ready}"], interval = "100ms", retries = 1 }}
""" + http_service("app", ports(), depends_on='{ dep = "healthy" }')
    service = await make_services(toml)
    await up(service, ["app"])
    dep, app = service.manager.units["dep"], service.manager.units["app"]
    app_pid = app.instance.pid
    ready.unlink()
    await eventually_async(lambda: dep.state == State.UNHEALTHY, what="dep unhealthy")
    await asyncio.sleep(0.5)
    assert app.state == State.HEALTHY and app.instance.pid == app_pid
    ready.write_text("yes")
    await eventually_async(lambda: dep.state == State.HEALTHY, what="dep healthy again")
    assert app.instance.pid == app_pid and app.restarts == 0


async def test_stop_signal_then_sigkill_after_the_grace(make_services: Callable[..., Any]) -> None:
    toml = """
[services.stubborn]
command = ["sh", "-c", "trap '' TERM; sleep 600 & wait; sleep 600"]
stop_grace = "500ms"
"""
    service = await make_services(toml)
    await up(service, ["stubborn"], wait=False)
    await eventually_async(lambda: service.manager.units["stubborn"].state == State.RUNNING, what="running")
    pid = service.manager.units["stubborn"].instance.pid
    began = time.monotonic()
    results = await service.down(["stubborn"])
    took = time.monotonic() - began
    assert results["stubborn"] == "stopped: killed by SIGKILL: still running 0.5 s after SIGTERM"
    assert 0.45 <= took < 3
    assert not process_running(pid)
    group = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pid]
    assert group == []  # its children went with it


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


async def test_a_command_that_cannot_start_fails_at_once(make_services: Callable[..., Any]) -> None:
    toml = '[services.ghost]\ncommand = ["/nonexistent/ghostd"]\nrestart = "always"\n'
    service = await make_services(toml)
    with pytest.raises(ServiceFailed) as failed:
        await up(service, ["ghost"], timeout=10)
    unit = service.manager.units["ghost"]
    assert unit.state == State.FAILED and unit.restarts == 0
    assert "cannot start /nonexistent/ghostd" in unit.message
    assert "ghost: failed" in failed.value.detail


async def test_unknown_services_and_bad_arguments_are_clear(make_services: Callable[..., Any]) -> None:
    service = await make_services("")
    with pytest.raises(NotFound, match=r"no service named 'nope' \(services: .*redis"):
        await up(service, ["nope"])
    with pytest.raises(Exception, match="name at least one service"):
        service.up([], wait=False)
    with pytest.raises(Exception, match="timeout_seconds must be >= 0"):
        await service.down(["redis"], timeout=-1)
    with pytest.raises(Exception, match="tail must be >= 0"):
        service.logs("redis", tail=-1)


async def test_a_changed_spec_restarts_the_service_with_it(
    make_services: Callable[..., Any], ports: Callable[[], int]
) -> None:
    service = await make_services(http_service("web", ports()))
    await up(service, ["web"])
    before = service.manager.units["web"].instance.pid
    changed = {"web": __import__("dataclasses").replace(service.registry["web"], env={"MODE": "b"})}
    async for _ in service.manager.up(["web"], wait=True, timeout=20, definitions=changed):
        pass
    unit = service.manager.units["web"]
    assert unit.instance.pid != before and unit.definition.env == {"MODE": "b"}
    assert not process_running(before)
    again = unit.instance.pid
    await up(service, ["web"])  # unchanged: nothing restarts
    assert service.manager.units["web"].instance.pid == again


async def test_serial_starts_one_at_a_time(make_services: Callable[..., Any], ports: Callable[[], int]) -> None:
    """The original protocol's ``parallel = false``: each service once the one before settled."""
    service = await make_services(http_service("one", ports()) + http_service("two", ports()))
    changes = [c async for c in service.manager.up(["one", "two"], wait=True, timeout=20, serial=True)]
    one_healthy = next(c.timestamp for c in changes if c.service == "one" and c.state == State.HEALTHY)
    two_starting = next(c.timestamp for c in changes if c.service == "two" and c.state == State.STARTING)
    assert one_healthy <= two_starting
    parallel = await make_services(http_service("three", ports()) + http_service("four", ports()))
    changes = [c async for c in parallel.manager.up(["three", "four"], wait=True, timeout=20)]
    four_starting = next(c.timestamp for c in changes if c.service == "four" and c.state == State.STARTING)
    three_healthy = next(c.timestamp for c in changes if c.service == "three" and c.state == State.HEALTHY)
    assert four_starting < three_healthy  # by default, independent services start together
