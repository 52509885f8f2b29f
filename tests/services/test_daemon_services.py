"""Services through a real daemon: gRPC (client.services), REST (/v1/services, NDJSON and SSE),
errors as statuses, audit and events, metrics; kill -9 of the daemon, then adoption."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from envplane.client import EnvplaneClient
from envplane.errors import NotFound, ServiceFailed
from tests.services.conftest import needs_redis
from tests.support.daemons import ProcessDaemon, ThreadDaemon
from tests.support.processes import free_port, process_running
from tests.support.settings import offline_settings
from tests.support.waiting import eventually


def web_toml(port: int, name: str = "web", extra: str = "") -> str:
    return f"""
[services.{name}]
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ports = [{port}]
restart = {{ policy = "on-failure", backoff = "200ms" }}
probe = {{ kind = "http", url = "http://127.0.0.1:{port}/", interval = "200ms" }}
{extra}
"""


@needs_redis
def test_up_status_logs_health_and_down_over_grpc(services_daemon: Callable[..., ThreadDaemon]) -> None:
    redis, web = free_port(), free_port()
    daemon = services_daemon(f"[services.redis]\nports = [{redis}]\n" + web_toml(web, extra='depends_on = ["redis"]'))
    with EnvplaneClient(daemon.grpc_addr) as client:
        progress = list(client.services.up(["web"], wait=True))
        assert [p.state for p in progress if p.service == "web"][-1] == "healthy"
        assert {p.service for p in progress} == {"redis", "web"}
        assert all(0 <= p.progress <= 100 and p.timestamp > 0 for p in progress)

        services = {s.name: s for s in client.services.status(["web", "redis"])}
        assert services["web"].state == "healthy" and services["web"].pid > 0
        assert services["web"].ports == [f"127.0.0.1:{web}"] and services["web"].depends_on == {"redis": "started"}
        assert services["redis"].memory_bytes > 0 and services["redis"].has_health

        httpx.get(f"http://127.0.0.1:{web}/hello", timeout=5)
        lines = eventually(
            lambda: [x for x in client.services.logs("web", tail=50) if "GET /hello" in x.text], what="the access line"
        )
        assert lines[0].stream == "stderr" and abs(lines[0].timestamp - time.time()) < 30

        updates = client.services.health(["web", "redis"], once=True)
        assert {u.service: u.healthy for u in updates} == {"redis": True, "web": True}

        stream = client.services.health(["web"], heartbeat=0.2)
        first = next(stream)
        assert first.service == "web" and first.healthy
        assert next(stream).heartbeat  # nothing changed: a heartbeat
        os.kill(services["web"].pid, signal.SIGKILL)
        change = next(u for u in stream if not u.heartbeat)
        assert change.service == "web" and change.state == "restarting" and not change.healthy
        stream.close()  # leaving the stream ends the call
        back = eventually(lambda: [s for s in client.services.status(["web"]) if s.state == "healthy"], what="back")
        assert back[0].restarts == 1 and back[0].pid != services["web"].pid

        results = client.services.down()
        assert [r.name for r in results] == ["web", "redis"] and all(r.ok for r in results)
        ops = eventually(
            lambda: client.operations.list(kind="service", operation="service.stop").operations, what="audit"
        )
        assert {op.subject.id for op in ops} == {"web", "redis"}
        kinds = {op.operation for op in client.operations.list(kind="service", page_size=200).operations}
        assert kinds >= {"service.start", "service.stop", "service.health", "service.restart"}


def test_errors_are_statuses_that_name_the_problem(services_daemon: Callable[..., ThreadDaemon]) -> None:
    ghost = '\n[services.ghost]\ncommand = ["false"]\nprobe = { kind = "tcp", port = 1 }'
    daemon = services_daemon(web_toml(free_port(), extra='depends_on = { ghost = "healthy" }' + ghost))
    with EnvplaneClient(daemon.grpc_addr) as client:
        with pytest.raises(NotFound, match="no service named 'nope'"):
            list(client.services.up(["nope"]))
        with pytest.raises(ServiceFailed) as failed:
            list(client.services.up(["web"], wait=True, timeout=5))
        assert "ghost: failed" in str(failed.value) and "web: skipped" in str(failed.value)
    channel = grpc.insecure_channel(daemon.grpc_addr)
    from envplane.v1 import services_pb2 as pb
    from envplane.v1 import services_pb2_grpc as pb_grpc

    stub = pb_grpc.ServiceManagerStub(channel)
    with pytest.raises(grpc.RpcError) as bad:
        stub.StopServices(pb.StopServicesRequest(has_timeout=True, timeout_seconds=-1))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "timeout_seconds" in bad.value.details()
    with pytest.raises(grpc.RpcError) as bad:
        list(stub.StreamLogs(pb.StreamLogsRequest(name="web", tail=-2)))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()

    with httpx.Client(base_url=daemon.http_url, timeout=30) as rest:
        assert rest.get("/v1/services/nope").status_code == 404
        answer = rest.post("/v1/services:stop", json={"names": ["web"], "bogus": 1})
        assert answer.status_code == 422 and "bogus" in answer.json()["error"]["message"]
        assert rest.get("/v1/services/web/logs", params={"tail": -1}).status_code == 422


def test_the_rest_mirror_streams_ndjson_and_sse(services_daemon: Callable[..., ThreadDaemon]) -> None:
    port = free_port()
    daemon = services_daemon(web_toml(port))
    with httpx.Client(base_url=daemon.http_url, timeout=60) as rest:
        with rest.stream("POST", "/v1/services:start", json={"names": ["web"], "wait": True}) as answer:
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in answer.iter_lines() if line]
        assert lines[-1]["service"] == "web" and lines[-1]["state"] == "healthy"
        one = rest.get("/v1/services/web").json()
        assert one["state"] == "healthy" and one["pid"] > 0
        listing = rest.get("/v1/services", params={"name": ["web"]}).json()["services"]
        assert [s["name"] for s in listing] == ["web"]

        with rest.stream(
            "GET",
            "/v1/services:health",
            params={"name": "web", "once": "true"},
            headers={"Accept": "text/event-stream"},
        ) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            events = [line for line in answer.iter_lines() if line.startswith("data: ")]
        assert json.loads(events[0].removeprefix("data: "))["healthy"] is True

        restarted = rest.post("/v1/services/web:restart", json={}).json()
        assert restarted["state"] == "healthy" and restarted["pid"] != one["pid"] and restarted["restarts"] == 1
        stopped = rest.post("/v1/services:stop", json={}).json()["results"]
        assert stopped == [{"name": "web", "ok": True, "message": stopped[0]["message"]}]
        metrics = rest.get("/metrics").text
        assert 'envplane_service_start_total{runtime="process",service="web"} 2.0' in metrics
        assert 'envplane_service_restarts_total{cause="requested",service="web"} 1.0' in metrics
        assert "envplane_health_check_duration_seconds_bucket" in metrics
        assert 'envplane_runtime_api_duration_seconds_count{call="start",runtime="process"}' in metrics


def test_a_bad_service_file_stops_the_daemon_with_every_problem(tmp_path: Path, uv_cache: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[services.a]\ncommand = ["x"]\ndepends_on = ["b"]\nprot = 1\n[services.c]\nruntime = "vm"\n')
    settings = offline_settings(tmp_path / "data", [], uv_cache, services_config=config)
    with pytest.raises(Exception) as failed:
        ThreadDaemon(settings).start()
    text = str(failed.value)
    assert "unknown field 'prot'" in text and "unknown service 'b'" in text and "runtime must be one of" in text


# -- kill -9 of the daemon, then adoption ------------------------------------------------------


@pytest.fixture
def process_daemon(tmp_path: Path, uv_cache: Path) -> Iterator[Callable[[str], ProcessDaemon]]:
    daemons: list[ProcessDaemon] = []

    def make(toml: str) -> ProcessDaemon:
        config = tmp_path / "services.toml"
        config.write_text(toml)
        daemon = ProcessDaemon.of(
            offline_settings(tmp_path / "data", [], uv_cache, services_config=config, log_level="info")
        )
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop_if_running()


@pytest.mark.slow
@needs_redis
def test_kill_9_then_the_next_daemon_adopts_the_healthy_and_cleans_the_rest(
    process_daemon: Callable[[str], ProcessDaemon],
) -> None:
    redis, web, doomed = free_port(), free_port(), free_port()
    toml = f"[services.redis]\nports = [{redis}]\n" + web_toml(web) + web_toml(doomed, "doomed")
    daemon = process_daemon(toml).start()
    with EnvplaneClient(daemon.grpc_addr) as client:
        list(client.services.up(["redis", "web", "doomed"], wait=True))
        before = {s.name: s for s in client.services.status(["redis", "web", "doomed"])}
    daemon.kill9()
    time.sleep(0.5)
    assert all(process_running(s.pid) for s in before.values())  # services outlive the daemon
    os.kill(before["doomed"].pid, signal.SIGSTOP)  # running, but it will not answer its probe

    daemon.start()
    with EnvplaneClient(daemon.grpc_addr) as client:
        after = {s.name: s for s in client.services.status(["redis", "web", "doomed"])}
        assert after["redis"].pid == before["redis"].pid and after["redis"].adopted
        assert after["web"].pid == before["web"].pid and after["web"].state == "healthy"
        assert after["doomed"].state == "stopped" and not after["doomed"].pid
        eventually(lambda: not process_running(before["doomed"].pid), timeout=5, what="the unhealthy one removed")

        began = time.monotonic()
        progress = list(client.services.up(["redis", "web"], wait=True))  # already up: adopted, not duplicated
        assert time.monotonic() - began < 1.0
        assert {p.service: p.state for p in progress} == {"redis": "healthy", "web": "healthy"}
        assert client.services.status(["web"])[0].pid == before["web"].pid
    assert daemon.stop() == 0
    # a clean stop stops what it runs (ENVPLANE_SERVICES_ON_SHUTDOWN=stop, the default)
    eventually(lambda: not any(process_running(before[n].pid) for n in ("redis", "web")), timeout=10, what="stopped")


def test_the_cli_up_wait_ps_logs_health_down(services_daemon: Callable[..., ThreadDaemon]) -> None:
    from tests.test_cli import envplane

    port, bad = free_port(), free_port()
    broken = (
        f'\n[services.broken]\ncommand = ["python3", "-m", "http.server", "{bad}", "--bind", "127.0.0.1"]\n'
        f'ports = [{bad}]\nprobe = {{ kind = "http", url = "http://127.0.0.1:{bad}/nope", interval = "100ms" }}\n'
    )
    daemon = services_daemon(web_toml(port) + broken)
    up = envplane(daemon, "services", "up", "--wait", "web")
    assert up.returncode == 0, up.stderr
    assert "web: healthy: HTTP/1.0 200 OK" in up.stdout and "web: running (pid" in up.stdout
    ps = envplane(daemon, "services", "ps", "--json")
    assert [s["name"] for s in json.loads(ps.stdout) if s["state"] == "healthy"] == ["web"]
    assert envplane(daemon, "services", "health", "web").returncode == 0
    httpx.get(f"http://127.0.0.1:{port}/from-the-cli-test", timeout=5)
    logs = eventually(lambda: envplane(daemon, "services", "logs", "web", "-n", "5").stdout, what="logs")
    assert "from-the-cli-test" in logs and "stderr" in logs

    failed = envplane(daemon, "services", "up", "--wait", "--timeout", "2", "broken")
    assert failed.returncode == 5
    assert "service 'broken' did not get healthy" in failed.stderr and "404" in failed.stderr
    assert envplane(daemon, "services", "health", "broken").returncode == 5
    unknown = envplane(daemon, "services", "up", "nope")
    assert unknown.returncode == 3 and "no service named 'nope'" in unknown.stderr

    down = envplane(daemon, "services", "down")
    assert down.returncode == 0 and "ok web: stopped" in down.stdout and "ok broken: stopped" in down.stdout
